"""A prior and the stage-1 model that decodes its samples, held together as one sampler."""

from __future__ import annotations

from collections.abc import Callable

import torch


class TwoStageGenerator:
    """What `hub.from_pretrained` returns for a prior: `generator.sample(16, seed=0)` -> images in [0, 1].

    `prior` and `decoder` stay reachable for everything else (likelihoods, encoding, the app). `sampler` is the
    prior's own sampling function, called as sampler(prior, decoder, num_samples, **options).
    """

    def __init__(self, prior: torch.nn.Module, decoder: torch.nn.Module, sampler: Callable[..., torch.Tensor]):
        self.prior, self.decoder, self.sampler = prior, decoder, sampler

    def sample(self, num_samples: int, **options) -> torch.Tensor:
        """Float images (N, C, H, W) in [0, 1]; options are the prior sampler's (seed, temperature, labels, ...)."""
        return self.sampler(self.prior, self.decoder, num_samples, **options)

    def to(self, device: str | torch.device) -> "TwoStageGenerator":
        self.prior.to(device)
        self.decoder.to(device)
        return self

    def __repr__(self) -> str:
        return f"TwoStageGenerator(prior={type(self.prior).__name__}, decoder={type(self.decoder).__name__})"
