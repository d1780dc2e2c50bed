"""Convolutional encoder and decoder stacks shared by every autoencoder, sized from the image and channel list."""

from __future__ import annotations

import torch
from torch import nn


def latent_grid_side(image_size: int, hidden_channels: tuple[int, ...] | list[int]) -> int:
    """Each level halves the image; the image side must divide evenly so the decoder mirrors the encoder."""
    factor = 2 ** len(hidden_channels)
    if image_size % factor:
        raise ValueError(
            f"image_size {image_size} is not divisible by 2**{len(hidden_channels)} = {factor} "
            f"(one halving per entry of hidden_channels={list(hidden_channels)}); use fewer levels or --resolution."
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
    """(B, C, H, W) -> (B, hidden_channels[-1], H / 2**L, W / 2**L): a strided conv and a residual block per level."""

    def __init__(self, in_channels: int, hidden_channels: tuple[int, ...]):
        super().__init__()
        layers, channels = [], in_channels
        for width in hidden_channels:
            layers += [nn.Conv2d(channels, width, 4, stride=2, padding=1), ResidualBlock(width)]
            channels = width
        layers.append(nn.SiLU())
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ConvDecoder(nn.Module):
    """Mirror of ConvEncoder: (B, hidden_channels[-1], h, w) -> logits (B, out_channels, h * 2**L, w * 2**L)."""

    def __init__(self, out_channels: int, hidden_channels: tuple[int, ...]):
        super().__init__()
        widths = list(reversed(hidden_channels))
        layers = []
        for width, next_width in zip(widths, widths[1:] + [widths[-1]]):
            layers += [ResidualBlock(width), nn.SiLU(), nn.ConvTranspose2d(width, next_width, 4, stride=2, padding=1)]
        layers += [nn.SiLU(), nn.Conv2d(widths[-1], out_channels, 3, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.layers(h)
