"""A normalizing-flow prior over a continuous latent space, fitted to the aggregate posterior of an AE, VAE or
β-VAE (stage2_prior/fit_latent_prior.py): a masked autoregressive flow (MAF, Papamakarios et al. 2017) or a neural
spline flow (NSF, Durkan et al. 2019), both from zuko rather than written here.

The flow models standardised latents (z - shift) / scale, with shift and scale the training latents' mean and
standard deviation, stored as buffers; log_prob adds that map's log-Jacobian, so it is the exact density of z.
Everything the flow needs is in config.json (checked before anything is built) and model.safetensors.
"""

from __future__ import annotations

import contextlib

import torch
import zuko

from hub import HubModel

FLOWS = {"maf": zuko.flows.MAF, "nsf": zuko.flows.NSF}
DISPLAY_NAMES = {"maf": "MAF", "nsf": "spline flow"}  # the prior's name in the report and the app's menus
# Bounds on what a config.json may ask to build: enough for any latent prior here, small enough to build anywhere.
MAX_LATENT_DIM, MAX_TRANSFORMS, MAX_HIDDEN_FEATURES, MAX_HIDDEN_LAYERS, MAX_BINS = 4096, 32, 4096, 8, 64
MAX_FLOW_PARAMETERS = 2**24  # 64 MB of float32: far above any latent prior here


def flow_parameter_count(latent_dim: int, flow: str, transforms: int, hidden_features: tuple[int, ...], bins: int) -> int:
    """What zuko's MAF / NSF of these sizes holds: per transform an MLP from z to each dimension's parameters (a
    shift and log-scale, or a rational-quadratic spline's 3 * bins - 1)."""
    per_dimension = 2 if flow == "maf" else 3 * bins - 1
    widths = [latent_dim, *hidden_features, latent_dim * per_dimension]
    return transforms * sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(widths, widths[1:]))


def _check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}={value!r}: must be an integer from {low} to {high}.")
    return value


class StandardisedLatents:
    """For priors that model standardised latents (z - shift) / scale: the buffers, and setting them from the
    training latents. Both live in model.safetensors."""

    def register_standardisation(self, latent_dim: int) -> None:
        self.register_buffer("shift", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))

    @torch.no_grad()
    def standardise_to(self, latents: torch.Tensor) -> None:
        """Sets shift and scale to the mean and standard deviation of the training latents (N, D)."""
        self.shift.copy_(latents.mean(0))
        self.scale.copy_(latents.std(0).clamp(min=1e-6))


class FlowPrior(HubModel, StandardisedLatents):
    model_type = "flow_prior"
    conditional = False

    def __init__(
        self,
        latent_dim: int = 16,
        flow: str = "maf",
        transforms: int = 3,
        hidden_features: tuple[int, ...] = (128, 128),
        bins: int = 8,
        autoencoder_id: str | None = None,
        autoencoder_revision: str | None = None,
    ):
        super().__init__()
        if flow not in FLOWS:
            raise ValueError(f"flow={flow!r}: choose one of {sorted(FLOWS)} (masked autoregressive or neural spline).")
        _check_int("latent_dim", latent_dim, 1, MAX_LATENT_DIM)
        _check_int("transforms", transforms, 1, MAX_TRANSFORMS)
        _check_int("bins", bins, 2, MAX_BINS)
        if not isinstance(hidden_features, (list, tuple)) or not 1 <= len(hidden_features) <= MAX_HIDDEN_LAYERS:
            raise ValueError(f"hidden_features={hidden_features!r}: give 1 to {MAX_HIDDEN_LAYERS} layer widths.")
        hidden_features = tuple(_check_int("hidden_features", width, 1, MAX_HIDDEN_FEATURES) for width in hidden_features)
        self.latent_dim, self.flow_name, self.transforms, self.bins = latent_dim, flow, transforms, bins
        self.autoencoder_id, self.autoencoder_revision = autoencoder_id, autoencoder_revision
        size = flow_parameter_count(latent_dim, flow, transforms, hidden_features, bins)
        if size > MAX_FLOW_PARAMETERS:
            raise ValueError(f"a {flow} of these sizes holds {size:,} numbers, more than {MAX_FLOW_PARAMETERS:,}; "
                             f"use fewer --transforms or smaller --hidden_features.")
        options = {"bins": bins} if flow == "nsf" else {}
        # zuko builds its autoregressive masks with an op the meta device lacks (unique over rows), so a skeleton
        # built for its shapes (hub/validation.py) holds the flow on the CPU: the count above bounds its size.
        on_meta = torch.empty(0).is_meta
        with torch.device("cpu") if on_meta else contextlib.nullcontext():
            self.flow = FLOWS[flow](latent_dim, transforms=transforms, hidden_features=hidden_features, **options)
        self.register_standardisation(latent_dim)

    @property
    def display_name(self) -> str:
        return DISPLAY_NAMES[self.flow_name]

    def _check(self, z: torch.Tensor) -> None:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z has shape {tuple(z.shape)}; expected (B, {self.latent_dim}).")

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Exact log p(z), (B,) in nats, for latents (B, D)."""
        self._check(z)
        standardised = (z.float() - self.shift) / self.scale
        return (self.flow().log_prob(standardised) - self.scale.log().sum()).to(z.dtype)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """What fitting minimises, per latent: -log p(z) in nats, (B,)."""
        return -self.log_prob(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latents (n, D), float32, on the prior's device: seeded base noise pushed through the inverse flow."""
        device = self.shift.device
        noise = torch.randn(n, self.latent_dim, generator=generator, device=generator.device if generator else device)
        if n == 0:
            return noise.to(device)
        standardised = self.flow().transform.inv(noise.to(device))
        return standardised * self.scale + self.shift


@torch.no_grad()
def sample_images(prior, autoencoder, num_samples: int, seed: int = 0, batch_size: int = 256) -> torch.Tensor:
    """Latents from a latent prior (flow, two-stage VAE, mixture), decoded by the autoencoder: images (N, C, H, W)."""
    if autoencoder.latent_dim != prior.latent_dim:
        raise ValueError(
            f"The prior models {prior.latent_dim}-dimensional latents but the autoencoder's are "
            f"{autoencoder.latent_dim}-dimensional; use the autoencoder it was fitted to ({prior.autoencoder_id})."
        )
    autoencoder.eval()
    prior.eval()
    device = next(autoencoder.parameters()).device
    prior_device = next(iter(prior.buffers())).device
    z = prior.sample(num_samples, generator=torch.Generator(prior_device).manual_seed(seed))
    if num_samples == 0:
        return torch.empty((0, autoencoder.in_channels, autoencoder.image_size, autoencoder.image_size), device=device)
    return torch.cat([autoencoder.decode(batch.to(device)) for batch in z.split(batch_size)])
