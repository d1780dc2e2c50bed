"""Class-conditional baselines: what the labels alone give a simple prior, the opponent a class-conditional learned
prior must beat (the unconditional ones, uniform codes and N(0, I), know no labels).

- ClassCodeFrequencies: per class, the empirical frequency of each code at each position of the VQ-VAE's grid,
  codes drawn independently. Whatever a class-conditional PixelCNN scores above it comes from modelling how codes
  depend on each other, not from the label.
- ClassMixtures: a Gaussian mixture fitted to each class's latents (MixturePrior.fit per class).

Both are fitted to the train split's codes or latents at evaluation time; they are not saved.
"""

from __future__ import annotations

import math

import torch

from stage2_prior.mixture_prior import MixturePrior


class ClassCodeFrequencies:
    def __init__(self, codes: torch.Tensor, labels: torch.Tensor, num_embeddings: int, num_classes: int,
                 smoothing: float = 1.0):
        """codes (N, h, w) and labels (N,) of the train split. `smoothing` pseudo-counts per code keep a code never
        seen at a position in a class at a finite NLL."""
        if codes.dim() != 3 or labels.shape != codes.shape[:1]:
            raise ValueError(f"codes {tuple(codes.shape)} and labels {tuple(labels.shape)}: expected (N, h, w) and (N,).")
        counts = torch.zeros(num_classes, codes.shape[1] * codes.shape[2], num_embeddings, dtype=torch.float64)
        flat = codes.flatten(1)
        positions = torch.arange(flat.shape[1]).expand_as(flat)
        counts.index_put_((labels[:, None].expand_as(flat), positions, flat), torch.ones(flat.shape, dtype=torch.float64),
                          accumulate=True)
        self.grid_size = tuple(codes.shape[1:])
        self.num_classes = num_classes
        self.log_probs = (counts + smoothing).log() - (counts.sum(-1, keepdim=True) + smoothing * num_embeddings).log()

    def sample(self, labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """Code grids (N, h, w), sample i of class labels[i]."""
        probabilities = self.log_probs[labels].exp().flatten(0, 1)  # (N * positions, K)
        generator = torch.Generator().manual_seed(seed)
        codes = torch.multinomial(probabilities, 1, generator=generator)
        return codes.view(len(labels), *self.grid_size)

    def nll_bits(self, codes: torch.Tensor, labels: torch.Tensor) -> float:
        """Mean NLL of code grids given their labels, in bits per code."""
        flat = codes.flatten(1)
        positions = torch.arange(flat.shape[1]).expand_as(flat)
        log_probs = self.log_probs[labels[:, None].expand_as(flat), positions, flat]
        return -log_probs.mean().item() / math.log(2)


class ClassMixtures:
    def __init__(self, latents: torch.Tensor, labels: torch.Tensor, num_classes: int, n_components: int, seed: int = 0):
        """One MixturePrior per class, fitted to that class's latents (N, D)."""
        missing = [label for label in range(num_classes) if (labels == label).sum() < n_components]
        if missing:
            raise ValueError(f"classes {missing} have fewer than n_components={n_components} train images to fit a "
                             f"mixture to; use more train images or fewer components.")
        self.num_classes = num_classes
        self.mixtures = [MixturePrior.fit(latents[labels == label], n_components, seed=seed) for label in range(num_classes)]

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """Latents (N, D), sample i of class labels[i]."""
        generator = torch.Generator().manual_seed(seed)
        z = torch.empty(len(labels), self.mixtures[0].latent_dim)
        for label, mixture in enumerate(self.mixtures):
            chosen = labels == label
            if chosen.any():
                z[chosen] = mixture.sample(int(chosen.sum()), generator=generator)
        return z
