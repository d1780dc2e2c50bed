"""The second stage of the two-stage VAE (Dai & Wipf 2019): a small VAE over the first stage's latents, fitted to
their aggregate posterior (stage2_prior/fit_latent_prior.py). Sampling draws u ~ N(0, I) and decodes it into a
latent z for the first stage's decoder.

Its decoder is a Gaussian with one learned variance γ shared by every dimension, as in the paper: as γ falls the
second VAE can match the latents' distribution closely, instead of blurring it as a fixed-variance decoder would.
Like the flow, it works on standardised latents and stores the map as buffers. It has no exact log-density (its
likelihood is only bounded by an ELBO), so the report scores it by its samples alone.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hub import HubModel
from stage1_autoencoders.likelihoods import gaussian_kl
from stage2_prior.flow_prior import MAX_HIDDEN_FEATURES, MAX_HIDDEN_LAYERS, MAX_LATENT_DIM, StandardisedLatents, _check_int


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1]))


class TwoStageVAEPrior(HubModel, StandardisedLatents):
    model_type = "two_stage_vae_prior"
    conditional = False

    def __init__(
        self,
        latent_dim: int = 16,
        hidden_features: tuple[int, ...] = (256, 256),
        autoencoder_id: str | None = None,
        autoencoder_revision: str | None = None,
    ):
        super().__init__()
        _check_int("latent_dim", latent_dim, 1, MAX_LATENT_DIM)
        if not isinstance(hidden_features, (list, tuple)) or not 1 <= len(hidden_features) <= MAX_HIDDEN_LAYERS:
            raise ValueError(f"hidden_features={hidden_features!r}: give 1 to {MAX_HIDDEN_LAYERS} layer widths.")
        hidden = [_check_int("hidden_features", width, 1, MAX_HIDDEN_FEATURES) for width in hidden_features]
        self.latent_dim = latent_dim
        self.autoencoder_id, self.autoencoder_revision = autoencoder_id, autoencoder_revision
        # The second latent u has the first's size, as in the paper (its decoder can then be near-invertible).
        self.encoder = _mlp([latent_dim, *hidden, 2 * latent_dim])
        self.decoder = _mlp([latent_dim, *reversed(hidden), latent_dim])
        self.log_gamma = nn.Parameter(torch.zeros(()))
        self.register_standardisation(latent_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """What fitting minimises, per latent: the negative ELBO (B,) of latents (B, D), in nats of the
        standardised latents."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z has shape {tuple(z.shape)}; expected (B, {self.latent_dim}).")
        x = (z.float() - self.shift) / self.scale
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        logvar = logvar.clamp(-30.0, 20.0)
        u = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        squared_error = (x - self.decoder(u)).pow(2).sum(1)
        nll = 0.5 * squared_error / self.log_gamma.exp() + 0.5 * self.latent_dim * (self.log_gamma + math.log(2 * math.pi))
        return nll + gaussian_kl(mean, logvar)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latents (n, D), float32, on the prior's device: u ~ N(0, I), decoded (the decoder's mean)."""
        device = self.shift.device
        u = torch.randn(n, self.latent_dim, generator=generator, device=generator.device if generator else device)
        return self.decoder(u.to(device)) * self.scale + self.shift
