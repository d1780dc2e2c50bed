"""A dataset as grids of VQ-VAE code indices: encoded once, in batches, across every rank, and cached on disk.

The cache file is named by a hash of the VQ-VAE's weights and of the decoded images themselves, so a second run
with the same VQ-VAE and data reads it, and a different VQ-VAE (or another dataset, split, size or subset) can
never read a stale one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import safetensors.torch
import torch
from accelerate.utils import broadcast_object_list
from tqdm.auto import tqdm

from stage1_autoencoders.data import ImageData, to_float
from training.batches import make_dataloader

CACHE_FORMAT = 1  # bump when what a cache file holds changes


@dataclass
class CodeData:
    """The train and test splits as code grids (N, h, w) (LongTensor, CPU), with the images' labels."""

    train_codes: torch.Tensor
    test_codes: torch.Tensor
    train_labels: torch.Tensor | None
    test_labels: torch.Tensor | None
    num_classes: int | None
    cache_file: str | None = None
    from_cache: bool = False


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 of every tensor in the state dict (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def images_fingerprint(*images: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for split in images:
        digest.update(f"{tuple(split.shape)}:{split.dtype}".encode())
        digest.update(split.contiguous().numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def encode_images(vqvae, images: torch.Tensor, accelerator, batch_size: int, description: str = "encoding") -> torch.Tensor:
    """uint8 images (N, C, H, W) -> codes (N, h, w) on the CPU. Each rank encodes its shard of the batches; every
    rank gets all codes back, in the images' order (gather_for_metrics drops the padding of the last batches)."""
    vqvae.eval()
    loader = make_dataloader(images, batch_size=batch_size, shuffle=False)
    loader = accelerator.prepare_data_loader(loader)
    codes = []
    for (batch,) in tqdm(loader, desc=description,
                           disable=None if accelerator.is_local_main_process else True):
        indices = vqvae.encode_to_indices(to_float(batch).to(accelerator.device))
        codes.append(accelerator.gather_for_metrics(indices).cpu())
    codes = torch.cat(codes)
    if len(codes) != len(images):
        raise RuntimeError(f"encoded {len(codes)} grids for {len(images)} images; the sharded loader lost or repeated some.")
    return codes


def extract_codes(vqvae, data: ImageData, accelerator, cache_dir: str | None, batch_size: int = 256) -> CodeData:
    """Codes of both splits, read from `cache_dir` when this VQ-VAE has encoded these images before.
    cache_dir=None encodes without caching."""
    vqvae = vqvae.to(accelerator.device)
    cache_file = None
    if cache_dir is not None:
        key = hashlib.sha256(
            json.dumps([CACHE_FORMAT, weights_fingerprint(vqvae), images_fingerprint(data.train_images, data.test_images)]).encode()
        ).hexdigest()[:32]
        cache_file = os.path.join(cache_dir, f"codes-{key}.safetensors")
    # The main process decides and tells the others, so that all of them take the same branch (encoding is
    # collective) even if another job writes the cache file between two ranks' checks.
    cached = [cache_file is not None and os.path.isfile(cache_file)]
    if accelerator.num_processes > 1:
        cached = broadcast_object_list(cached)
    cached = cached[0]
    if cached:
        tensors = safetensors.torch.load_file(cache_file)
        train_codes, test_codes = tensors["train_codes"].long(), tensors["test_codes"].long()
    else:
        train_codes = encode_images(vqvae, data.train_images, accelerator, batch_size, "encoding train split")
        test_codes = encode_images(vqvae, data.test_images, accelerator, batch_size, "encoding test split")
        if cache_file is not None and accelerator.is_main_process:
            _write_atomically(cache_file, {"train_codes": train_codes, "test_codes": test_codes}, data.info)
        accelerator.wait_for_everyone()
    return CodeData(train_codes, test_codes, data.train_labels, data.test_labels, data.num_classes, cache_file, cached)


def _write_atomically(path: str, tensors: dict[str, torch.Tensor], dataset_info: dict) -> None:
    """A crash leaves no half-written cache: write beside it, then rename into place."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = f"{path}.partial-{os.getpid()}"
    small = {name: t.to(torch.int32).contiguous() for name, t in tensors.items()}
    safetensors.torch.save_file(small, partial, metadata={"dataset": json.dumps(dataset_info, default=str)})
    os.replace(partial, path)
