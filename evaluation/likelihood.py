"""Likelihoods and reconstructions on the test split: ELBO and importance-weighted log p(x) for VAEs, the code NLL
under a PixelCNN prior, reconstruction error for every autoencoder, codebook usage for the VQ-VAE.

log p(x) is in the model's own likelihood (stage1_autoencoders/likelihoods.py): for the Bernoulli likelihood on
grey pixels in [0, 1] that is the unnormalised continuous Bernoulli that MNIST papers report, so compare numbers
between our models, not with discrete-data results.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import nn
from tqdm.auto import tqdm

from stage1_autoencoders.data import to_float
from stage1_autoencoders.likelihoods import reconstruction_nll
from stage1_autoencoders.train import codebook_statistics as training_codebook_statistics

LogProb = Callable[[torch.Tensor], torch.Tensor]  # latents (B, D) -> log density (B,)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextmanager
def _channels_last(model: torch.nn.Module):
    """The model's conv weights in channels-last order while inside: oneDNN then runs every conv and transposed
    conv channels last, which decodes 2048 MNIST latents 1.7x faster on a CPU (same numbers up to float
    rounding). The model gets its own memory order back on the way out."""
    was_contiguous = all(p.is_contiguous() for p in model.parameters())
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        if was_contiguous:
            model.to(memory_format=torch.contiguous_format)


def _batches(images: torch.Tensor, batch_size: int, description: str, progress: bool):
    return tqdm(images.split(batch_size), desc=description, disable=None if progress else True, leave=False)


@torch.no_grad()
def vae_likelihoods(
    model,
    images: torch.Tensor,
    priors: dict[str, LogProb] | None = None,
    num_importance_samples: int = 32,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, dict[str, float]]:
    """ELBO and the importance-weighted estimate of log p(x) (Burda et al. 2016) of a VAE, per prior.

    With k posterior samples z_k ~ q(z|x) and log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x):
    ELBO ~ mean_k log w_k, log p(x) ~ logsumexp_k log w_k - log k (a bound that tightens as k grows).
    The decoder's log p(x|z_k) is shared by every prior, so extra priors cost only their log densities.
    Returns, per prior name, means over the images in nats per image and in bits per dimension.
    """
    if num_importance_samples < 1:
        raise ValueError(f"num_importance_samples={num_importance_samples}: use at least 1 sample per image.")
    priors = priors or {"N(0,I)": standard_normal_log_prob}
    model.eval()
    device = _device(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    k = num_importance_samples
    totals = {name: {"elbo": 0.0, "log_px": 0.0} for name in priors}
    chunk = _decoder_chunk(model)
    with _channels_last(model):
        for batch in _batches(images, batch_size, "likelihood", progress):
            _add_log_weights(model, to_float(batch).to(device), priors, k, generator, totals, chunk)
    dimensions = images[0].numel()
    results = {}
    for name, total in totals.items():
        elbo, log_px = total["elbo"] / len(images), total["log_px"] / len(images)
        results[name] = {
            "elbo_nats": elbo,
            "log_px_nats": log_px,
            "negative_elbo_bits_per_dim": -elbo / (dimensions * math.log(2)),
            "nll_bits_per_dim": -log_px / (dimensions * math.log(2)),
            "num_importance_samples": k,
        }
    return results


def _decoder_chunk(model) -> int:
    """How many latents to decode per call: about 16 MB for the widest layer's activations at the image's size.
    Decoding all k * B samples at once made activations of hundreds of MB, which glibc's malloc maps fresh from the
    OS for every call (above its 32 MB mmap threshold) and the first touch of every page then costs a fault:
    chunks of 64-128 decoded a 28x28 VAE's latents 1.7x faster (one CPU thread), with the same numbers."""
    widest = max(layer.out_channels for layer in model.decoder.modules() if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)))
    return max(1, (16 << 20) // (4 * widest * model.image_size**2))


def _add_log_weights(model, x: torch.Tensor, priors: dict[str, LogProb], k: int, generator, totals: dict,
                     chunk: int) -> None:
    """Adds one batch's ELBO and importance-weighted log p(x) sums to `totals`, per prior: all k posterior
    samples of all images decode `chunk` at a time (_decoder_chunk)."""
    mean, logvar = model.encode(x)
    std = (0.5 * logvar).exp()
    eps = torch.randn((k, *mean.shape), generator=generator, device=x.device)
    z = mean + std * eps  # (k, B, D)
    log_q = (-0.5 * (eps.pow(2) + math.log(2 * math.pi)) - std.log()).sum(-1)
    latents, x_repeated = z.flatten(0, 1), x.expand(k, *x.shape).flatten(0, 1)
    log_px_given_z = torch.cat([
        -reconstruction_nll(model.decode_logits(some_latents), images, model.likelihood, model.observation_std)
        for some_latents, images in zip(latents.split(chunk), x_repeated.split(chunk))
    ]).view(k, -1)
    for name, log_prior in priors.items():
        log_w = log_px_given_z + log_prior(latents).view(k, -1) - log_q
        totals[name]["elbo"] += log_w.mean(0).sum().item()
        totals[name]["log_px"] += (torch.logsumexp(log_w, 0) - math.log(k)).sum().item()


@torch.no_grad()
def reconstruction_error(model, images: torch.Tensor, batch_size: int = 256, progress: bool = False) -> float:
    """Mean squared error per pixel (images in [0, 1]) of the deterministic reconstruction, over the images."""
    model.eval()
    device = _device(model)
    total = 0.0
    with _channels_last(model):
        for batch in _batches(images, batch_size, "reconstruction", progress):
            x = to_float(batch).to(device)
            total += (model.reconstruct(x) - x).pow(2).flatten(1).mean(1).sum().item()
    return total / len(images)


@torch.no_grad()
def encode_codes(vqvae, images: torch.Tensor, batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """uint8 images -> LongTensor (N, h, w) of code indices, on the CPU."""
    vqvae.eval()
    device = _device(vqvae)
    return torch.cat([vqvae.encode_to_indices(to_float(b).to(device)).cpu() for b in _batches(images, batch_size, "codes", progress)])


def codebook_statistics(codes: torch.Tensor, num_embeddings: int) -> dict[str, float]:
    """Fraction of the codebook used by `codes`, and the perplexity exp(H) of their frequencies (at most K),
    computed as stage-1 training reports them."""
    counts = torch.bincount(codes.flatten(), minlength=num_embeddings).float()
    return training_codebook_statistics(counts, prefix="")


@torch.no_grad()
def code_nll_bits(prior, codes: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 256) -> float:
    """Mean NLL of code grids under a GatedPixelCNN, in bits per code; a conditional prior scores with `labels`."""
    if prior.conditional and labels is None:
        raise ValueError("This PixelCNN is class-conditional: its code NLL needs the test split's labels.")
    prior.eval()
    device = _device(prior)
    total = 0.0
    for start in range(0, len(codes), batch_size):
        batch = codes[start : start + batch_size].to(device)
        batch_labels = None if not prior.conditional else labels[start : start + batch_size].to(device)
        total += prior.nll_bits_per_code(batch, batch_labels).sum().item()
    return total / len(codes)
