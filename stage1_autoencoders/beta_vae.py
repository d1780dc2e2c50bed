"""β-VAE (Higgins et al. 2017): the KL term weighted by β, for more disentangled latents at the cost of
reconstructions. Options: a linear KL warm-up, and the capacity annealing of Burgess et al. 2018, where the
loss is β·|KL − C| with the capacity C raised linearly from 0 to capacity_max nats."""

from __future__ import annotations

import torch

from stage1_autoencoders.vae import VAE


class BetaVAE(VAE):
    model_type = "beta_vae"
    config_ranges = {**VAE.config_ranges, "beta": (0, 1e6), "capacity_max": (0, 1e6)}
    config_added_in = {**VAE.config_added_in, "capacity_max": "0.1.0", "capacity_steps": "0.1.0"}  # older files lack them

    def __init__(
        self,
        image_size: int = 28,
        in_channels: int = 1,
        hidden_channels: tuple[int, ...] = (32, 64),
        latent_dim: int = 16,
        likelihood: str = "bernoulli",
        observation_std: float = 0.1,
        beta: float = 4.0,
        kl_warmup_steps: int = 0,
        capacity_max: float = 0.0,
        capacity_steps: int = 0,
        downsampling_factor: int | None = None,
        num_res_blocks: int = 1,
    ):
        super().__init__(image_size, in_channels, hidden_channels, latent_dim, likelihood, observation_std,
                         downsampling_factor, num_res_blocks)
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}.")
        self.beta, self.kl_warmup_steps = beta, kl_warmup_steps
        self.capacity_max, self.capacity_steps = capacity_max, capacity_steps

    def kl_weight(self, step: int | None) -> float:
        """β, ramped up linearly over the warm-up; `step=None` means training is over (full β)."""
        if step is None or self.kl_warmup_steps <= 0:
            return self.beta
        return self.beta * min(1.0, step / self.kl_warmup_steps)

    def capacity(self, step: int | None) -> float:
        if step is None or self.capacity_steps <= 0:
            return self.capacity_max
        return self.capacity_max * min(1.0, step / self.capacity_steps)

    def kl_loss(self, kl: torch.Tensor, step: int | None) -> torch.Tensor:
        if self.capacity_max > 0:
            return self.kl_weight(step) * (kl - self.capacity(step)).abs()
        return self.kl_weight(step) * kl
