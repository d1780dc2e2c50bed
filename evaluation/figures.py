"""The seed's figures as PNG, drawn with torchvision's save_image and PIL (no plotting library needed):
t-SNE of latents coloured by label, sample grids, β-VAE traversals and interpolations, and the VQ-VAE's
originals / reconstructions / code-index maps."""

from __future__ import annotations

import colorsys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import save_image

from stage1_autoencoders.data import to_float

# matplotlib's tab10: ten labels that stay distinguishable.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def save_grid(images: torch.Tensor, path: str, nrow: int = 8, min_side: int = 48) -> None:
    """Float images in [0, 1] (N, C, H, W) as one PNG grid; small images (8x8 digits, 28x28 MNIST) are blown up
    with nearest-neighbour pixels to at least `min_side`, so that a grid is readable in REPORT.md."""
    images = images.detach().float().cpu()
    scale = -(-min_side // images.shape[-1])  # ceiling division
    if scale > 1:
        images = F.interpolate(images, scale_factor=scale, mode="nearest")
    save_image(images, path, nrow=nrow, padding=2, pad_value=1.0)


def embed_2d(latents: torch.Tensor, seed: int = 0) -> tuple[np.ndarray, str]:
    """Latents (N, D) -> (N, 2) points: t-SNE for D > 2, the latents themselves for D = 2 (nothing to project)."""
    latents = latents.detach().float().cpu().numpy()
    if latents.shape[1] == 2:
        return latents, "latents (2-D, shown as they are)"
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    perplexity = min(30.0, (len(latents) - 1) / 3)
    # One OpenMP thread: on a small shared machine t-SNE's busy-waiting threads ran 4-15x slower than one thread.
    with threadpool_limits(limits=1):
        points = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(latents)
    return points, f"t-SNE of {latents.shape[1]}-D latents"


def scatter_png(points: np.ndarray, labels: np.ndarray | None, path: str, title: str, size: int = 640) -> None:
    """A scatter plot drawn with PIL: one dot per point, coloured by label, with a legend."""
    margin, legend_width, radius = 40, 90, 2
    image = Image.new("RGB", (size + legend_width, size), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    low, high = points.min(0), points.max(0)
    scaled = (points - low) / np.where(high > low, high - low, 1.0) * (size - 2 * margin) + margin
    colours = [PALETTE[int(label) % len(PALETTE)] for label in labels] if labels is not None else [PALETTE[0]] * len(points)
    for (x, y), colour in zip(scaled, colours):
        y = size - y  # y grows upwards, as in a plot
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    draw.rectangle((margin // 2, margin // 2, size - margin // 2, size - margin // 2), outline=(200, 200, 200))
    draw.text((margin // 2, 6), title, fill="black", font=font)
    if labels is not None:
        for row, label in enumerate(sorted(set(int(label) for label in labels))):
            top = margin + 18 * row
            draw.rectangle((size + 4, top, size + 16, top + 12), fill=PALETTE[label % len(PALETTE)])
            draw.text((size + 22, top), str(label), fill="black", font=font)
    image.save(path)


@torch.no_grad()
def latent_scatter(model, images: torch.Tensor, labels: torch.Tensor | None, path: str, title: str, seed: int = 0) -> None:
    """The seed's latent-space figure: test images' latents (model.embed) in 2-D, coloured by label."""
    model.eval()
    device = _device(model)
    latents = torch.cat([model.embed(to_float(batch).to(device)).cpu() for batch in images.split(256)])
    points, how = embed_2d(latents, seed)
    scatter_png(points, None if labels is None else labels.numpy(), path, f"{title}: {how}")


@torch.no_grad()
def latent_traversal(model, images: torch.Tensor, num_dims: int = 10, steps: int = 9, span: float = 3.0) -> torch.Tensor:
    """One latent varied from -span to +span, the others fixed at the first image's posterior mean; one row per
    latent, the `num_dims` latents with the largest mean KL over `images` first (the ones the model uses).
    Returns the images of the grid, (rows * steps, C, H, W), to save with nrow=steps."""
    model.eval()
    device = _device(model)
    mean, logvar = model.encode(to_float(images).to(device))
    kl_per_dim = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean(0)
    dims = kl_per_dim.argsort(descending=True)[: min(num_dims, mean.shape[1])]
    values = torch.linspace(-span, span, steps, device=device)
    z = mean[:1].repeat(len(dims) * steps, 1)
    for row, dim in enumerate(dims):
        z[row * steps : (row + 1) * steps, dim] = values
    return model.decode(z)


@torch.no_grad()
def interpolations(model, start: torch.Tensor, end: torch.Tensor, steps: int = 8) -> torch.Tensor:
    """Linear paths in latent space between pairs of images (model.embed), each row: start image, `steps`
    decoded points from start to end, end image. Returns (pairs * (steps + 2), C, H, W), to save with nrow=steps+2."""
    model.eval()
    device = _device(model)
    x_start, x_end = to_float(start).to(device), to_float(end).to(device)
    z_start, z_end = model.embed(x_start), model.embed(x_end)
    t = torch.linspace(0, 1, steps, device=device)[None, :, None]
    path = model.decode(((1 - t) * z_start[:, None] + t * z_end[:, None]).flatten(0, 1)).view(len(start), steps, *x_start.shape[1:])
    return torch.cat([x_start[:, None], path, x_end[:, None]], dim=1).flatten(0, 1)


def code_colours(num_embeddings: int) -> torch.Tensor:
    """(K, 3) colours for code indices: hues stepped by the golden ratio, so that codes with nearby indices differ."""
    golden = (5**0.5 - 1) / 2
    return torch.tensor([colorsys.hsv_to_rgb((index * golden) % 1.0, 0.65, 0.95) for index in range(num_embeddings)])


@torch.no_grad()
def vqvae_figure(vqvae, images: torch.Tensor) -> torch.Tensor:
    """Three rows: originals, their reconstructions, and their code-index maps (one colour per code, each latent
    position blown up to the patch it decodes). Returns (3 * n, 3, H, W), to save with nrow=n."""
    vqvae.eval()
    device = _device(vqvae)
    x = to_float(images).to(device)
    codes = vqvae.encode_to_indices(x)
    reconstructions = vqvae.decode_indices(codes)
    code_maps = code_colours(vqvae.num_embeddings).to(device)[codes].permute(0, 3, 1, 2)
    code_maps = F.interpolate(code_maps, size=x.shape[-2:], mode="nearest")
    rgb = (lambda images: images.expand(-1, 3, -1, -1)) if x.shape[1] == 1 else (lambda images: images)
    return torch.cat([rgb(x), rgb(reconstructions), code_maps])
