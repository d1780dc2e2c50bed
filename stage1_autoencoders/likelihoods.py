"""Reconstruction likelihoods and the Gaussian KL, per image in nats (summed over pixels, averaged over the batch)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LIKELIHOODS = ("bernoulli", "gaussian")


def check_likelihood(likelihood: str) -> str:
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood {likelihood!r} is not one of {LIKELIHOODS}.")
    return likelihood


def reconstruction_nll(logits: torch.Tensor, x: torch.Tensor, likelihood: str, observation_std: float) -> torch.Tensor:
    """-log p(x | z) per image, shape (B,). Bernoulli treats pixels in [0, 1] as probabilities (continuous
    Bernoulli without its normaliser, the usual choice for MNIST); Gaussian has mean sigmoid(logits), fixed std.
    Computed in float32, also under mixed precision (a sum over thousands of pixels in bf16 loses the loss)."""
    logits, x = logits.float(), x.float()
    if likelihood == "bernoulli":
        per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        mean = torch.sigmoid(logits)
        per_pixel = 0.5 * ((x - mean) / observation_std) ** 2 + math.log(observation_std * math.sqrt(2 * math.pi))
    return per_pixel.flatten(1).sum(1)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per image, shape (B,), in float32 also under mixed precision."""
    mean, logvar = mean.float(), logvar.float()
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
