"""Finite scalar quantisation (Mentzer et al. 2023): each of a few latent dimensions is bounded and rounded to one
of `levels[i]` values, so the codebook is the implicit grid of prod(levels) points. Nothing is learned, nothing
can collapse, and there is no codebook or commitment loss; the code index is the grid point as a mixed-radix number
(the first dimension least significant, as in vector-quantize-pytorch). Same interface as VectorQuantizer.

normalize_inputs standardises each dimension over the batch (a BatchNorm without affine parameters, over every
process's batch under DDP; running statistics at evaluation) before the bound. Without it, a small VQ-VAE collapses to one code within a few dozen
steps: its encoder's outputs start nearly constant, the decoder pushes them all one way, and tanh saturates where
no gradient brings them back (1 of 64 codes used after 120 MNIST steps, with this module and with
vector-quantize-pytorch's FSQ alike). Standardised inputs spread over the levels from the first step on."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn


class FiniteScalarQuantizer(nn.Module):
    def __init__(self, levels: tuple[int, ...] | list[int], embedding_dim: int, normalize_inputs: bool = True, eps: float = 1e-3):
        super().__init__()
        levels = [int(level) for level in levels]
        if not levels or min(levels) < 3:
            # With 2 levels the bound's shift saturates tanh and nearly every input rounds to the same value.
            raise ValueError(f"fsq_levels={levels}: give one or more levels per dimension, each at least 3 (e.g. 8 5 5 5).")
        self.levels, self.embedding_dim, self.eps = levels, embedding_dim, eps
        self.num_embeddings = math.prod(levels)
        self.codebook_dim = len(levels)
        projected = embedding_dim != len(levels)
        self.project_in = nn.Linear(embedding_dim, len(levels)) if projected else nn.Identity()
        self.project_out = nn.Linear(len(levels), embedding_dim) if projected else nn.Identity()
        self.normalize = BatchStandardize(len(levels)) if normalize_inputs else nn.Identity()
        basis = torch.cumprod(torch.tensor([1] + levels[:-1]), 0)
        self.register_buffer("level_counts", torch.tensor(levels, dtype=torch.float32), persistent=False)
        self.register_buffer("basis", basis, persistent=False)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """(..., d) -> values in (-L/2, L/2) per dimension, shifted for even L so rounding gives exactly L values."""
        half = (self.level_counts - 1) * (1 + self.eps) / 2
        offset = torch.where(self.level_counts % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """(..., d) -> grid values scaled to [-1, 1], with straight-through gradients through the rounding."""
        bounded = self.bound(z)
        rounded = bounded + (bounded.round() - bounded).detach()
        return rounded / (self.level_counts // 2)

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        half_width = self.level_counts // 2
        digits = (codes * half_width + half_width).round().long()
        return (digits * self.basis).sum(-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        half_width = self.level_counts // 2
        digits = (indices[..., None] // self.basis) % self.level_counts.long()
        return (digits - half_width) / half_width

    def nearest_codes(self, flat: torch.Tensor) -> torch.Tensor:
        """Encoder outputs (N, embedding_dim) -> code indices (N,) in 0..num_embeddings-1."""
        return self.codes_to_indices(self.quantize(self.normalize(self.project_in(flat).float())))

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (B, h, w) -> quantised vectors (B, D, h, w)."""
        codes = self.indices_to_codes(indices).to(self.basis.device, torch.float32)
        return self.project_out(codes).permute(0, 3, 1, 2)

    def forward(self, z: torch.Tensor):
        """z (B, D, h, w) -> quantised z, codebook loss (0), commitment loss (0), indices (B, h, w), counts (K,)."""
        b, d, h, w = z.shape
        codes = self.quantize(self.normalize(self.project_in(z.permute(0, 2, 3, 1).reshape(-1, d)).float()))
        indices = self.codes_to_indices(codes.detach())
        counts = torch.bincount(indices, minlength=self.num_embeddings).float()
        quantized = self.project_out(codes.to(z.dtype)).view(b, h, w, d).permute(0, 3, 1, 2)
        zero = torch.zeros((), device=z.device)
        return quantized, zero, zero, indices.view(b, h, w), counts


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _summed_over_processes(x: torch.Tensor) -> torch.Tensor:
    """x summed over every process under DDP, gradients flowing back to each; x itself in one process."""
    if _world_size() > 1:
        from torch.distributed.nn.functional import all_reduce  # only where torch is built with distributed support
        return all_reduce(x)
    return x


class BatchStandardize(nn.Module):
    """BatchNorm1d(affine=False) whose training statistics span the whole batch of every process under DDP, so that
    N processes quantise as one process with the same global batch does (torch's SyncBatchNorm runs on GPUs only;
    this all-reduce, differentiable, runs over gloo too). The buffers are BatchNorm1d's, under its names."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, num_features)."""
        if not self.training:
            return (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)
        if len(x) < 2 and _world_size() == 1:
            # One value has no spread: it would standardise to 0 and pull the running variance to 0 (BatchNorm1d
            # refuses it too). Under DDP the rows of every process count, which only the all-reduce below knows:
            # a check there would wait on the device every step, and a process refusing alone would leave the
            # others waiting in the all-reduce.
            raise ValueError(f"FSQ standardises its input over the training batch's latent positions, and this batch "
                             f"has {len(x)}: train with at least 2 (a larger --train_batch_size).")
        count = torch.full((1,), float(len(x)), device=x.device, dtype=x.dtype)
        sums = _summed_over_processes(torch.cat([x.sum(0), count]))
        total = sums[-1]
        mean = sums[:-1] / total
        centred = x - mean
        # Around the global mean: no cancellation, as E[x^2] - mean^2 would have.
        squares = _summed_over_processes((centred * centred).sum(0))
        variance = squares / total
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(variance * total / (total - 1).clamp(min=1), self.momentum)  # unbiased, as BatchNorm keeps it
        return centred / torch.sqrt(variance + self.eps)
