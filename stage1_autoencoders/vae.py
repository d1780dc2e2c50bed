"""The variational autoencoder (Kingma & Welling 2014): a Gaussian posterior, a reparameterised sample, and a
KL term to the N(0, I) prior that makes decoding N(0, I) a way to generate."""

from __future__ import annotations

import torch

from stage1_autoencoders.autoencoder import AE
from stage1_autoencoders.likelihoods import gaussian_kl, reconstruction_nll
from stage1_autoencoders.outputs import AutoencoderOutput


class VAE(AE):
    model_type = "vae"

    def latent_head_size(self) -> int:
        return 2 * self.latent_dim  # mean and log-variance

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.to_latent(self.encoder(x).flatten(1)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)  # exp() stays finite in float16 and float32

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[0]

    def sample_posterior(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mean + std * noise: the latents the decoder was trained on, whose pool over the training set is the
        aggregate posterior a learned prior should match."""
        mean, logvar = self.encode(x)
        noise = torch.randn(mean.shape, generator=generator, device=generator.device if generator else mean.device)
        return mean + noise.to(mean.device) * (0.5 * logvar).exp()

    def kl_weight(self, step: int | None) -> torch.Tensor | float:
        return 1.0

    def kl_loss(self, kl: torch.Tensor, step: int | None) -> torch.Tensor:
        return self.kl_weight(step) * kl

    def forward(self, x: torch.Tensor, step: int | None = None) -> AutoencoderOutput:
        mean, logvar = self.encode(x)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        logits = self.decode_logits(z)
        reconstruction = reconstruction_nll(logits, x, self.likelihood, self.observation_std).mean()
        kl = gaussian_kl(mean, logvar).mean()
        loss = reconstruction + self.kl_loss(kl, step)
        return AutoencoderOutput(loss, {"reconstruction": reconstruction, "kl": kl}, logits, z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images decoded from z ~ N(0, I): the baseline prior that stage 2's learned priors compete with."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=generator.device if generator else device)
        return self.decode(z.to(device))
