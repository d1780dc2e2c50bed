"""Sampling code grids from a GatedPixelCNN, naively and fast, and decoding them with the VQ-VAE.

Both samplers draw every position's code as argmax(logits / T + Gumbel noise) (the Gumbel-max trick), with the
noise for a whole batch drawn up front from one seeded CPU generator. So they consume identical randomness, and
the fast sampler returns exactly the codes of the naive one (up to float rounding breaking a near-tie).

- naive: the whole network over the whole grid once per position, H*W full passes.
- fast: stage2_prior/fast_sampling.py, about one full forward pass of arithmetic: each layer's stacks are cached
  and only what a new code changes is computed, a position at a time at large batches; at small ones, that or a
  whole row at a time (a fixed-point iteration over the row), whichever was measured faster for the prior.
"""

from __future__ import annotations

from functools import partial

import torch
from tqdm.auto import tqdm

from stage2_prior.fast_sampling import FastSampler, gumbel_max
from stage2_prior.pixelcnn import GatedPixelCNN

METHODS = ("fast", "naive")


@torch.no_grad()
def sample_codes(
    prior: GatedPixelCNN,
    num_samples: int,
    seed: int = 0,
    temperature: float = 1.0,
    labels: int | torch.Tensor | None = None,
    batch_size: int = 64,
    method: str = "fast",
    progress: bool = False,
) -> torch.Tensor:
    """Samples `num_samples` grids of codes, LongTensor (N, H, W) on the prior's device.

    labels: for a conditional prior, one class for all samples (int) or one per sample (N,).
    The codes depend on (seed, batch_size, temperature, labels), not on the method or the device (up to float
    rounding breaking a near-tie)."""
    if method not in METHODS:
        raise ValueError(f"method={method!r}: choose one of {METHODS}.")
    if num_samples < 0 or batch_size < 1:
        raise ValueError(f"num_samples={num_samples}, batch_size={batch_size}: need num_samples >= 0 and batch_size >= 1.")
    if not temperature > 0:
        raise ValueError(f"temperature={temperature}: use a positive temperature (1.0 samples the model as trained).")
    labels = _labels_per_sample(prior, labels, num_samples)
    device = next(prior.parameters()).device
    was_training = prior.training
    if was_training:  # eval() and train() visit every submodule: a noticeable cost when sampling one grid
        prior.eval()
    generator = torch.Generator().manual_seed(seed)
    sample_batch = FastSampler(prior) if method == "fast" else partial(_sample_batch_naive, prior)
    batches = []
    starts = range(0, num_samples, batch_size)
    for start in tqdm(starts, desc=f"sampling codes ({method})", disable=not progress):
        size = min(batch_size, num_samples - start)
        noise = _gumbel((size, prior.grid_height, prior.grid_width, prior.num_embeddings), generator).to(device)
        batch_labels = None if labels is None else labels[start : start + size].to(device)
        batches.append(sample_batch(noise, temperature, batch_labels))
    if was_training:
        prior.train()
    if not batches:
        return torch.empty((0, prior.grid_height, prior.grid_width), dtype=torch.long, device=device)
    return torch.cat(batches)


@torch.no_grad()
def sample_images(prior: GatedPixelCNN, vqvae, num_samples: int, batch_size: int = 64, **sampling_options) -> torch.Tensor:
    """Samples codes and decodes them with the VQ-VAE: float images (N, C, H, W) in [0, 1]."""
    if tuple(vqvae.latent_grid_size) != (prior.grid_height, prior.grid_width) or vqvae.num_embeddings != prior.num_embeddings:
        raise ValueError(
            f"The prior models {prior.grid_height}x{prior.grid_width} grids of {prior.num_embeddings} codes but the "
            f"VQ-VAE has a {vqvae.latent_grid_size} grid of {vqvae.num_embeddings} codes; use the VQ-VAE the prior "
            f"was trained on ({prior.vqvae_id})."
        )
    codes = sample_codes(prior, num_samples, batch_size=batch_size, **sampling_options)
    return decode_codes(vqvae, codes, batch_size)


@torch.no_grad()
def sample_uniform_codes(num_embeddings: int, grid_size: tuple[int, int], num_samples: int, seed: int = 0) -> torch.Tensor:
    """The baseline: every code drawn independently and uniformly (the prior under which the VQ-VAE's KL is constant)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(num_embeddings, (num_samples, *grid_size), generator=generator)


@torch.no_grad()
def decode_codes(vqvae, codes: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Grids of codes (N, h, w) -> images (N, C, H, W) in [0, 1], on the VQ-VAE's device, batch by batch."""
    device = next(vqvae.parameters()).device
    was_training = vqvae.training
    vqvae.eval()
    images = [vqvae.decode_indices(batch.to(device)) for batch in codes.split(batch_size)]
    vqvae.train(was_training)
    if not images:
        return torch.empty((0, vqvae.in_channels, vqvae.image_size, vqvae.image_size), device=device)
    return torch.cat(images)


def _labels_per_sample(prior: GatedPixelCNN, labels, num_samples: int) -> torch.Tensor | None:
    if labels is None:
        if prior.conditional:
            raise ValueError(f"This prior is class-conditional: pass labels (a class in [0, {prior.num_classes}) or one per sample).")
        return None
    if not prior.conditional:
        raise ValueError("This prior is unconditional (trained without --conditional); sample it without labels.")
    labels = torch.as_tensor(labels, dtype=torch.long)
    if labels.dim() == 0:
        labels = labels.expand(num_samples)
    if labels.shape != (num_samples,):
        raise ValueError(f"labels has shape {tuple(labels.shape)}; give one class, or one per sample ({num_samples},).")
    if num_samples and (labels.min() < 0 or labels.max() >= prior.num_classes):
        raise ValueError(f"labels must be classes in [0, {prior.num_classes}); got [{int(labels.min())}, {int(labels.max())}].")
    return labels


def _gumbel(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    uniform = torch.rand(shape, generator=generator).clamp_(min=torch.finfo(torch.float32).tiny)
    return uniform.log_().neg_().log_().neg_()  # -log(-log(u)), in place: B * H * W * K values, no copies


def _sample_batch_naive(prior: GatedPixelCNN, noise, temperature, labels) -> torch.Tensor:
    size, height, width, _ = noise.shape
    codes = torch.zeros((size, height, width), dtype=torch.long, device=noise.device)
    for row in range(height):
        for column in range(width):
            logits = prior(codes, labels)[:, :, row, column]
            codes[:, row, column] = gumbel_max(logits, noise[:, row, column], temperature)
    return codes
