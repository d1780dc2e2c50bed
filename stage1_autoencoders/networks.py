"""Convolutional encoder and decoder stacks shared by every autoencoder, sized from the image and channel list.

Each entry of hidden_channels is a level (a conv and num_res_blocks residual blocks). How much the image shrinks
is set on its own by downsampling_factor (a power of two): the first log2(factor) levels halve the image, the rest
keep its size. So 32x32 CIFAR images with factor 4 give an 8x8 code grid whatever the number of levels. Left
unset, every level halves the image (the layout of runs made before the factor existed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
        layers += [nn.SiLU(), OutputConv2d(widths[-1], out_channels, 3, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.layers(h)


class OutputConv2d(nn.Conv2d):
    """The decoder's last conv, to the image's few channels, as nn.Conv2d (same weights, same state dict).

    Without gradients on a CPU it runs as one matrix product from every position's channels to every tap's
    contribution, then a sum of the contributions shifted into place: oneDNN runs a conv to 1-3 output channels at
    about 5 GMAC/s, this twice as fast (a 28x28 VAE's importance-weighted likelihood, which decodes 32 samples per
    image, 1.15x faster; the same numbers up to float rounding). Training runs the conv itself, whose backward is
    faster than this one's."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The convs that the sum of taps computes (the decoder's always is one); any other runs as a conv.
        self.sums_taps = (self.out_channels <= 3 and self.stride == (1, 1) and self.dilation == (1, 1) and self.groups == 1
                          and self.padding_mode == "zeros" and isinstance(self.padding, tuple))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (torch.is_grad_enabled() or x.device.type != "cpu" or not self.sums_taps or x.dim() != 4
                or x.shape[1] != self.in_channels or x.numel() == 0):
            return super().forward(x)  # and the conv's own errors for a wrong input
        batch, channels, height, width = x.shape
        (kernel_height, kernel_width), (pad_height, pad_width) = self.kernel_size, self.padding
        out_height, out_width = height + 2 * pad_height - kernel_height + 1, width + 2 * pad_width - kernel_width + 1
        taps = self.weight.permute(1, 2, 3, 0).reshape(channels, -1)  # (C_in, kh * kw * C_out)
        contributions = (x.permute(0, 2, 3, 1).reshape(-1, channels) @ taps).view(batch, height, width, kernel_height, kernel_width, self.out_channels)
        contributions = F.pad(contributions, (0, 0, 0, 0, 0, 0, pad_width, pad_width, pad_height, pad_height))
        output = self.bias if self.bias is not None else 0
        for row in range(kernel_height):
            for column in range(kernel_width):
                output = output + contributions[:, row : row + out_height, column : column + out_width, row, column]
        # In the conv's layout: channels last for a channels-last input, else contiguous.
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        return output.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
