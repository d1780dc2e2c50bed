"""The VampPrior VAE (Tomczak & Welling 2018): a VAE whose prior is the mixture of its own posteriors at K learned
pseudo-inputs, p(z) = 1/K Σ_k q(z | u_k), trained with it. The KL term has no closed form under this prior, so it is
the one-sample estimate log q(z | x) - log p(z) at the posterior sample the decoder sees. Its prior is part of the
model: `sample` draws from it and `prior_log_prob` is its exact log-density (for the IWAE likelihood)."""

from __future__ import annotations

import math

import torch
from torch import nn

from stage1_autoencoders.likelihoods import reconstruction_nll
from stage1_autoencoders.outputs import AutoencoderOutput
from stage1_autoencoders.vae import VAE

MAX_PSEUDO_INPUTS = 10_000  # a config.json may not ask for more (each is a full image of parameters)


def diagonal_gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, exp(logvar)) summed over the last dimension; broadcasts."""
    return -0.5 * (((z - mean) ** 2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)


class VampPriorVAE(VAE):
    model_type = "vamp_vae"
    prior_name = "VampPrior"  # its baseline prior in the report and the app is its own, not N(0, I)

    def __init__(
        self,
        image_size: int = 28,
        in_channels: int = 1,
        hidden_channels: tuple[int, ...] = (32, 64),
        latent_dim: int = 16,
        likelihood: str = "bernoulli",
        observation_std: float = 0.1,
        downsampling_factor: int | None = None,
        num_res_blocks: int = 1,
        num_pseudo_inputs: int = 100,
        kl_warmup_steps: int = 0,
    ):
        if isinstance(num_pseudo_inputs, bool) or not isinstance(num_pseudo_inputs, int) or not 1 <= num_pseudo_inputs <= MAX_PSEUDO_INPUTS:
            raise ValueError(f"num_pseudo_inputs={num_pseudo_inputs!r}: must be an integer from 1 to {MAX_PSEUDO_INPUTS}.")
        super().__init__(image_size, in_channels, hidden_channels, latent_dim, likelihood, observation_std,
                         downsampling_factor, num_res_blocks)
        self.num_pseudo_inputs, self.kl_warmup_steps = num_pseudo_inputs, kl_warmup_steps
        # Pseudo-inputs are images: learned logits, squashed into [0, 1] like the data. They start as varied noise, so
        # the mixture's components differ from the first step (a uniform grey start makes them all alike).
        self.pseudo_input_logits = nn.Parameter(torch.randn(num_pseudo_inputs, in_channels, image_size, image_size))

    def kl_weight(self, step: int | None) -> float:
        """Ramped up linearly over the warm-up, as the paper trains it: an encoder that ignores its input makes this
        KL zero at once (every posterior equals the pseudo-inputs'), so without a warm-up it tends to collapse."""
        if step is None or self.kl_warmup_steps <= 0:
            return 1.0
        return min(1.0, step / self.kl_warmup_steps)

    def pseudo_posteriors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The K mixture components: posterior means and log-variances (K, D) at the pseudo-inputs."""
        return self.encode(torch.sigmoid(self.pseudo_input_logits))

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) under the VampPrior, (B,) in nats, for latents (B, D)."""
        means, logvars = self.pseudo_posteriors()
        per_component = diagonal_gaussian_log_prob(z[:, None, :], means[None], logvars[None])
        return torch.logsumexp(per_component, dim=1) - math.log(self.num_pseudo_inputs)

    def forward(self, x: torch.Tensor, step: int | None = None) -> AutoencoderOutput:
        mean, logvar = self.encode(x)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        logits = self.decode_logits(z)
        reconstruction = reconstruction_nll(logits, x, self.likelihood, self.observation_std).mean()
        kl = (diagonal_gaussian_log_prob(z, mean, logvar) - self.prior_log_prob(z)).mean()
        loss = reconstruction + self.kl_loss(kl, step)
        return AutoencoderOutput(loss, {"reconstruction": reconstruction, "kl": kl}, logits, z)

    @torch.no_grad()
    def sample_latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latents from the VampPrior: a pseudo-input uniformly, then a draw from its posterior."""
        means, logvars = self.pseudo_posteriors()
        device = generator.device if generator is not None else means.device
        components = torch.randint(self.num_pseudo_inputs, (n,), generator=generator, device=device).to(means.device)
        noise = torch.randn(n, self.latent_dim, generator=generator, device=device).to(means.device)
        return means[components] + noise * (0.5 * logvars[components]).exp()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images decoded from the VampPrior, the model's own prior."""
        return self.decode(self.sample_latents(n, generator))
