"""A Gaussian mixture prior over a continuous latent space ("ex-post density estimation", Ghosh et al. 2020).

Fitted with scikit-learn to the aggregate posterior: one draw from q(z | x) per training image of a VAE or β-VAE
(stage2_prior/fit_mixture.py), the deterministic latents of a plain AE. It makes the plain AE a generator and
gives the VAE a learned rival to N(0, I). The fitted mixture lives in buffers (weights, means, full covariances),
so it saves as safetensors + config.json like every model, never as a pickled scikit-learn object.
"""

from __future__ import annotations

import torch

from hub import HubModel

COVARIANCE_TYPES = ("full", "diag", "tied", "spherical")


class MixturePrior(HubModel):
    model_type = "gaussian_mixture_prior"
    config_ranges = {"latent_dim": (1, 4096), "n_components": (1, 4096)}  # checked before anything is built
    conditional = False

    def __init__(
        self,
        latent_dim: int = 16,
        n_components: int = 10,
        covariance_type: str = "full",
        autoencoder_id: str | None = None,
        autoencoder_revision: str | None = None,
    ):
        super().__init__()
        if covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type={covariance_type!r}: choose one of {COVARIANCE_TYPES}.")
        if latent_dim < 1 or n_components < 1:
            raise ValueError(f"latent_dim={latent_dim}, n_components={n_components}: both must be at least 1.")
        self.latent_dim, self.n_components, self.covariance_type = latent_dim, n_components, covariance_type
        self.autoencoder_id, self.autoencoder_revision = autoencoder_id, autoencoder_revision
        # Every covariance type is stored as full matrices: one sampling and density code path.
        self.register_buffer("weights", torch.full((n_components,), 1.0 / n_components, dtype=torch.float64))
        self.register_buffer("means", torch.zeros(n_components, latent_dim, dtype=torch.float64))
        self.register_buffer("covariances", torch.eye(latent_dim, dtype=torch.float64).repeat(n_components, 1, 1))

    @classmethod
    def fit(
        cls,
        latents: torch.Tensor,
        n_components: int = 10,
        covariance_type: str = "full",
        seed: int = 0,
        max_iter: int = 200,
        **config,
    ) -> "MixturePrior":
        """Fits the mixture to latents (N, D) with EM (k-means initialisation, seeded). `config`: autoencoder_id, ..."""
        from sklearn.mixture import GaussianMixture  # only fitting needs scikit-learn; loading and sampling do not

        if latents.dim() != 2 or len(latents) < n_components:
            raise ValueError(
                f"latents has shape {tuple(latents.shape)}; need (N, D) with at least n_components={n_components} rows."
            )
        mixture = GaussianMixture(n_components, covariance_type=covariance_type, max_iter=max_iter, random_state=seed)
        mixture.fit(latents.detach().double().cpu().numpy())
        prior = cls(latents.shape[1], n_components, covariance_type, **config)
        covariances = torch.from_numpy(mixture.covariances_)
        if covariance_type == "tied":
            covariances = covariances.expand(n_components, -1, -1)
        elif covariance_type == "diag":
            covariances = torch.diag_embed(covariances)
        elif covariance_type == "spherical":
            covariances = covariances[:, None, None] * torch.eye(latents.shape[1], dtype=torch.float64)
        with torch.no_grad():
            prior.weights.copy_(torch.from_numpy(mixture.weights_))
            prior.means.copy_(torch.from_numpy(mixture.means_))
            prior.covariances.copy_(covariances)
        return prior.eval()

    def _scale_tril(self) -> torch.Tensor:
        return torch.linalg.cholesky(self.covariances)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) under the mixture, (B,) in nats, for latents (B, D)."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z has shape {tuple(z.shape)}; expected (B, {self.latent_dim}).")
        components = torch.distributions.MultivariateNormal(self.means, scale_tril=self._scale_tril())
        per_component = components.log_prob(z.to(self.means)[:, None, :]) + self.weights.log()
        return torch.logsumexp(per_component, dim=1).to(z.dtype)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.log_prob(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latents (n, D), float32, on the prior's device: a component by its weight, then its Gaussian."""
        device = generator.device if generator is not None else self.means.device
        if n == 0:
            return torch.empty((0, self.latent_dim), device=self.means.device)
        components = torch.multinomial(self.weights.to(device), n, replacement=True, generator=generator)
        noise = torch.randn(n, self.latent_dim, 1, generator=generator, device=device, dtype=torch.float64)
        components, noise = components.to(self.means.device), noise.to(self.means.device)
        z = self.means[components] + (self._scale_tril()[components] @ noise)[..., 0]
        return z.float()


@torch.no_grad()
def sample_images(prior: MixturePrior, autoencoder, num_samples: int, seed: int = 0, batch_size: int = 256) -> torch.Tensor:
    """Latents from the mixture, decoded by the autoencoder: float images (N, C, H, W) in [0, 1]."""
    if autoencoder.latent_dim != prior.latent_dim:
        raise ValueError(
            f"The mixture models {prior.latent_dim}-dimensional latents but the autoencoder's are "
            f"{autoencoder.latent_dim}-dimensional; use the autoencoder it was fitted to ({prior.autoencoder_id})."
        )
    autoencoder.eval()
    device = next(autoencoder.parameters()).device
    z = prior.sample(num_samples, generator=torch.Generator(prior.means.device).manual_seed(seed))
    if num_samples == 0:
        return torch.empty((0, autoencoder.in_channels, autoencoder.image_size, autoencoder.image_size), device=device)
    return torch.cat([autoencoder.decode(batch.to(device)) for batch in z.split(batch_size)])

