"""Looking inside a stage-1 model: reconstructions, paths between two images in latent space, latents set by hand
and swept one at a time (VAE, β-VAE), and the grid of codes a VQ-VAE turns an image into.

Images come in as uint8 (1, C, H, W) at the model's size and go out as floats in [0, 1].
"""

from __future__ import annotations

import torch

from evaluation.figures import vqvae_figure
from stage1_autoencoders.data import to_float

TRAVERSAL_SPAN = 3.0  # latents are swept over [-3, 3], where N(0, I) puts almost all of its mass
TRAVERSAL_STEPS = 9


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def reconstruct(model, image: torch.Tensor) -> torch.Tensor:
    """The image and its reconstruction, (2, C, H, W)."""
    x = to_float(image).to(_device(model))
    return torch.cat([x, model.reconstruct(x)])


@torch.no_grad()
def interpolate(model, start: torch.Tensor, end: torch.Tensor, steps: int) -> torch.Tensor:
    """start, `steps` images decoded from evenly spaced points on the line between the two latents, end:
    (steps + 2, C, H, W). A VQ-VAE's latent is its grid of quantized vectors, decoded as they are."""
    device = _device(model)
    x = to_float(torch.cat([start, end])).to(device)
    z_start, z_end = model.embed(x)
    t = torch.linspace(0, 1, steps, device=device)[:, None]
    path = (1 - t) * z_start + t * z_end
    if model.model_type == "vqvae":
        path = path.view(steps, model.embedding_dim, *model.latent_grid_size)
    return torch.cat([x[:1], model.decode(path), x[1:]])


@torch.no_grad()
def decode_latent(model, values: list[float]) -> torch.Tensor:
    """The image decoded from one latent vector; `values` beyond the model's latent_dim are ignored, missing ones are 0."""
    return model.decode(latent_vector(model, values)[None])


@torch.no_grad()
def traversal(model, values: list[float]) -> torch.Tensor:
    """One row per latent: that latent swept over [-span, span] with the others held at `values`.
    (latent_dim * steps, C, H, W), to show `steps` wide."""
    base = latent_vector(model, values)
    sweep = torch.linspace(-TRAVERSAL_SPAN, TRAVERSAL_SPAN, TRAVERSAL_STEPS, device=base.device)
    z = base.repeat(model.latent_dim * TRAVERSAL_STEPS, 1)
    for dim in range(model.latent_dim):
        z[dim * TRAVERSAL_STEPS : (dim + 1) * TRAVERSAL_STEPS, dim] = sweep
    return model.decode(z)


def latent_vector(model, values: list[float]) -> torch.Tensor:
    z = torch.zeros(model.latent_dim, device=_device(model))
    count = min(len(values), model.latent_dim)
    z[:count] = torch.tensor(values[:count], dtype=torch.float32)
    return z


@torch.no_grad()
def code_map(vqvae, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluation report's VQ-VAE figure for one image (the image, its reconstruction, its codes coloured one
    colour per code: (3, 3, H, W)) and the code indices themselves, (h, w)."""
    indices = vqvae.encode_to_indices(to_float(image).to(_device(vqvae)))[0]
    return vqvae_figure(vqvae, image), indices.cpu()
