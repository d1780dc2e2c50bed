"""Convolutional encoder and decoder stacks shared by every autoencoder, sized from the image and channel list.

Each entry of hidden_channels is a level (a conv and num_res_blocks residual blocks). How much the image shrinks
is set on its own by downsampling_factor (a power of two): the first log2(factor) levels halve the image, the rest
keep its size. So 32x32 CIFAR images with factor 4 give an 8x8 code grid whatever the number of levels. Left
unset, every level halves the image (the layout of runs made before the factor existed).
"""

from __future__ import annotations

import torch
from torch import nn


def downsampling_levels(hidden_channels: tuple[int, ...] | list[int], downsampling_factor: int | None) -> int:
    """How many of the levels halve the image: log2(downsampling_factor), or all of them when it is None."""
    if downsampling_factor is None:
        return len(hidden_channels)
    levels = int(downsampling_factor).bit_length() - 1
    if downsampling_factor < 1 or 2 ** levels != downsampling_factor or levels > len(hidden_channels):
        raise ValueError(
            f"downsampling_factor {downsampling_factor} must be a power of two from 1 to 2**{len(hidden_channels)} "
            f"(one halving per entry of hidden_channels={list(hidden_channels)}); give more --hidden_channels levels "
            f"or a smaller --downsampling_factor."
        )
    return levels


def latent_grid_side(image_size: int, hidden_channels: tuple[int, ...] | list[int], downsampling_factor: int | None = None) -> int:
    """The code grid's side; the image side must divide evenly so the decoder mirrors the encoder."""
    factor = 2 ** downsampling_levels(hidden_channels, downsampling_factor)
    if image_size % factor:
        raise ValueError(
            f"image_size {image_size} is not divisible by the downsampling factor {factor} "
            f"(hidden_channels={list(hidden_channels)}, downsampling_factor={downsampling_factor}); "
            f"use a smaller --downsampling_factor or --resolution."
        )
    return image_size // factor


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.SiLU(), nn.Conv2d(channels, channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ConvEncoder(nn.Module):
    """(B, C, H, W) -> (B, hidden_channels[-1], H / factor, W / factor): per level a conv (strided while the image
    is still to shrink) and num_res_blocks residual blocks."""

    def __init__(self, in_channels: int, hidden_channels: tuple[int, ...], downsampling_factor: int | None = None,
                 num_res_blocks: int = 1):
        super().__init__()
        halvings = downsampling_levels(hidden_channels, downsampling_factor)
        layers, channels = [], in_channels
        for level, width in enumerate(hidden_channels):
            if level < halvings:
                layers.append(nn.Conv2d(channels, width, 4, stride=2, padding=1))
            else:
                layers.append(nn.Conv2d(channels, width, 3, padding=1))
            layers += [ResidualBlock(width) for _ in range(num_res_blocks)]
            channels = width
        layers.append(nn.SiLU())
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ConvDecoder(nn.Module):
    """Mirror of ConvEncoder: (B, hidden_channels[-1], h, w) -> (B, out_channels, h * factor, w * factor)."""

    def __init__(self, out_channels: int, hidden_channels: tuple[int, ...], downsampling_factor: int | None = None,
                 num_res_blocks: int = 1):
        super().__init__()
        halvings = downsampling_levels(hidden_channels, downsampling_factor)
        widths = list(reversed(hidden_channels))
        levels = list(reversed(range(len(hidden_channels))))  # the encoder level each decoder level undoes
        layers = []
        for level, width, next_width in zip(levels, widths, widths[1:] + [widths[-1]]):
            layers += [ResidualBlock(width) for _ in range(num_res_blocks)]
            layers.append(nn.SiLU())
            if level < halvings:
                layers.append(nn.ConvTranspose2d(width, next_width, 4, stride=2, padding=1))
            else:
                layers.append(nn.Conv2d(width, next_width, 3, padding=1))
        layers += [nn.SiLU(), nn.Conv2d(widths[-1], out_channels, 3, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.layers(h)
