"""Reconstruction likelihoods and the Gaussian KL, per image in nats (summed over pixels, averaged over the batch).

- bernoulli: pixels in [0, 1] read as probabilities (the usual choice for near-binary MNIST). Not a distribution
  over 8-bit values, so it has no bits/dim.
- gaussian: mean sigmoid(logits), a fixed, stated std (observation_std, on the [0, 1] scale). A density: its
  bits/dim adds log2(256) per value (the dequantisation convention of the flow and VAE literature).
- logistic: the discretized logistic of PixelCNN++ (Salimans et al. 2017): per value a mean and a learned
  log-scale; a probability over the 256 levels, so its bits/dim is the literature's for 8-bit images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LIKELIHOODS = ("bernoulli", "gaussian", "logistic")
# Share of pixels within 10% of black or white above which grey images count as near-binary (MNIST: 0.91,
# sklearn digits with 17 levels: 0.65).
NEAR_BINARY_SHARE = 0.85


def check_likelihood(likelihood: str) -> str:
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood {likelihood!r} is not one of {LIKELIHOODS}.")
    return likelihood


def decoder_channels(likelihood: str, channels: int) -> int:
    """Outputs the decoder needs per image channel: a mean, and for the logistic also a log-scale."""
    return 2 * channels if likelihood == "logistic" else channels


def choose_likelihood(images: torch.Tensor) -> tuple[str, str]:
    """The default for uint8 images (N, C, H, W), and why: Bernoulli for near-binary grey images, Gaussian else."""
    share = ((images <= 25) | (images >= 230)).float().mean().item()
    if images.shape[1] == 1 and share >= NEAR_BINARY_SHARE:
        return "bernoulli", f"grey images, {share:.0%} of pixels near black or white"
    kind = "grey" if images.shape[1] == 1 else "colour"
    return "gaussian", f"{kind} images, {share:.0%} of pixels near black or white"


def reconstruction_nll(logits: torch.Tensor, x: torch.Tensor, likelihood: str, observation_std: float) -> torch.Tensor:
    """-log p(x | z) per image, shape (B,), for x in [0, 1] (k / 255 for 8-bit images). Computed in float32, also
    under mixed precision (a sum over thousands of pixels in bf16 loses the loss)."""
    logits, x = logits.float(), x.float()
    if likelihood == "bernoulli":
        per_value = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    elif likelihood == "gaussian":
        mean = torch.sigmoid(logits)
        per_value = 0.5 * ((x - mean) / observation_std) ** 2 + math.log(observation_std * math.sqrt(2 * math.pi))
    else:
        mean, log_scale = logits.chunk(2, dim=1)
        per_value = -discretized_logistic_log_prob(2 * x - 1, mean, log_scale)
    return per_value.flatten(1).sum(1)


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x) of 8-bit values x rescaled to [-1, 1] (bins of width 2/255), as PixelCNN++'s
    discretized_logistic: the logistic's mass over x's bin, the edge bins taking the tails."""
    log_scale = log_scale.clamp(min=-7.0)
    centered = x - mean
    inv_scale = torch.exp(-log_scale)
    plus = inv_scale * (centered + 1.0 / 255)
    minus = inv_scale * (centered - 1.0 / 255)
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus): the mass below the first bin's upper edge
    log_one_minus_cdf_minus = -F.softplus(minus)  # the mass above the last bin's lower edge
    cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    middle = inv_scale * centered
    # Where the bin's mass underflows, its density at the centre times the bin width.
    log_pdf_mid = middle - log_scale - 2.0 * F.softplus(middle) - math.log(127.5)
    inner = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid)
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_minus, inner))


def reconstruction_mean(logits: torch.Tensor, likelihood: str) -> torch.Tensor:
    """The image the decoder's output stands for, in [0, 1]."""
    if likelihood == "logistic":
        mean = logits.chunk(2, dim=1)[0]
        return (mean.clamp(-1.0, 1.0) + 1.0) / 2.0
    return torch.sigmoid(logits)


def bits_per_dim(nll_nats: float | torch.Tensor, num_values: int, likelihood: str) -> float | torch.Tensor | None:
    """An NLL in nats per image -> bits per 8-bit value; None for the Bernoulli, which is no distribution over them."""
    if likelihood == "bernoulli":
        return None
    per_value = nll_nats / (num_values * math.log(2))
    return per_value + 8.0 if likelihood == "gaussian" else per_value  # a density on [0, 1]: + log2(256) per value


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per image, shape (B,), in float32 also under mixed precision."""
    mean, logvar = mean.float(), logvar.float()
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
