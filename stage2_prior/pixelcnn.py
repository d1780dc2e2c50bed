"""The gated PixelCNN prior over a VQ-VAE's grid of codebook indices.

van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders": a vertical stack that sees
every row above the current one and a horizontal stack that sees the current row up to the current column,
together covering the whole causal past with no blind spot. Each layer is a gated unit tanh(a) * sigmoid(b);
the horizontal stack has residual connections and every layer sends a skip connection to the output head, which
gives a categorical distribution over the K codes at every position.

Each layer of kernel k sees k // 2 more rows above and columns aside, so 8 layers of kernel 3 cover a 9x9 grid.
For larger grids (16x16, 32x32) dilation_cycle=n gives the layers dilations 1, 2, ..., 2**(n-1), repeated
(WaveNet's schedule): the reach then grows to the sum of the dilations with every offset still covered, and
the stacks stay exactly causal and blind-spot free.

Convolutions here pad explicitly and run with padding=0, so the same weights compute either the whole grid
(training) or one row / one position from a cached window (fast sampling, stage2_prior/fast_sampling.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hub import HubModel


def gate(features: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """tanh(a) * sigmoid(b) with a, b the two halves of the channels (along `dim`)."""
    content, gate_logits = features.chunk(2, dim=dim)
    return torch.tanh(content) * torch.sigmoid(gate_logits)


class GatedLayer(nn.Module):
    """One layer of both stacks. `first` marks the layer that reads the code embeddings: its horizontal input is
    shifted one column right (a position must not see its own code) and it has no residual. The `last` layer only
    sends its skip connection on: no later layer reads its stacks' outputs, so it computes none. With `dilation`
    d the kernels take every d-th row and column, so a layer looks d times as far at the same cost."""

    def __init__(self, channels: int, kernel_size: int, first: bool, last: bool, dilation: int = 1):
        super().__init__()
        self.reach = kernel_size // 2  # how many kernel taps above / to the left of the centre
        self.dilation = dilation
        self.span = self.reach * dilation  # how many rows above / columns to the left one layer looks
        self.first, self.last = first, last
        # The horizontal input is padded this much on the left; one more for the first layer's shift.
        self.horizontal_left_pad = self.span + 1 if first else self.span
        self.vertical_conv = nn.Conv2d(channels, 2 * channels, (self.reach + 1, kernel_size), dilation=dilation)
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_conv = nn.Conv2d(channels, 2 * channels, (1, self.reach + 1), dilation=dilation)
        self.skip = nn.Conv2d(channels, channels, 1)
        self.residual = None if last else nn.Conv2d(channels, channels, 1)

    def forward(self, vertical, horizontal, vertical_bias, horizontal_bias):
        """Whole grid: (B, C, H, W) inputs of both stacks -> their outputs and this layer's skip."""
        height, width = vertical.shape[-2:]
        # Row i of the vertical features sees input rows i-span .. i (all columns within the kernel).
        vertical_features = self.vertical_conv(F.pad(vertical, (self.span, self.span, self.span, 0)))
        # Shifted down one row before it reaches the horizontal stack, so row i only learns from rows above it.
        vertical_to_horizontal = F.pad(self.vertical_to_horizontal(vertical_features), (0, 0, 1, 0))[:, :, :height]
        window = F.pad(horizontal, (self.horizontal_left_pad, 0))[..., : width + self.span]
        gated = gate(self.horizontal_conv(window) + vertical_to_horizontal + horizontal_bias)
        skip = self.skip(gated)
        if self.last:
            return None, None, skip
        new_horizontal = self.residual(gated)
        if not self.first:
            new_horizontal = new_horizontal + horizontal
        return gate(vertical_features + vertical_bias), new_horizontal, skip


class GatedPixelCNN(HubModel):
    """An autoregressive prior p(codes) = prod_ij p(code_ij | codes before ij in raster order [, class])."""

    model_type = "gated_pixelcnn"
    # What a config.json may hold (hub/validation.py checks it before anything is built).
    config_ranges = {"num_embeddings": (2, 65536), "grid_height": (1, 256), "grid_width": (1, 256),
                     "hidden_channels": (1, 4096), "num_layers": (1, 128), "kernel_size": (3, 31), "num_classes": (1, 65536)}
    config_added_in = {"dilation_cycle": "0.2.0"}  # older files lack it, and take the undilated default

    def __init__(
        self,
        num_embeddings: int = 64,
        grid_height: int = 7,
        grid_width: int = 7,
        hidden_channels: int = 64,
        num_layers: int = 8,
        kernel_size: int = 3,
        dilation_cycle: int = 1,
        num_classes: int | None = None,
        vqvae_id: str | None = None,
        vqvae_revision: str | None = None,
    ):
        super().__init__()
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size}: use an odd size >= 3 (the stacks are centred on a column).")
        if num_layers < 1 or num_embeddings < 2 or hidden_channels < 1:
            raise ValueError(
                f"num_layers={num_layers}, num_embeddings={num_embeddings}, hidden_channels={hidden_channels}: "
                "need at least one layer, two codes and one channel."
            )
        if isinstance(dilation_cycle, bool) or not isinstance(dilation_cycle, int) or not (
            1 <= dilation_cycle and 2 ** (dilation_cycle - 1) <= max(grid_height, grid_width)
        ):
            raise ValueError(
                f"dilation_cycle={dilation_cycle!r}: use an integer >= 1 whose largest dilation 2**(cycle-1) fits the "
                f"{grid_height}x{grid_width} grid (1: no dilation; 4: dilations 1, 2, 4, 8 repeated)."
            )
        if num_classes is not None and num_classes < 1:
            raise ValueError(f"num_classes={num_classes}: give a positive count, or None for an unconditional prior.")
        self.num_embeddings = num_embeddings
        self.grid_height = grid_height
        self.grid_width = grid_width
        self.hidden_channels = hidden_channels
        self.dilation_cycle = dilation_cycle
        self.num_classes = num_classes
        self.vqvae_id = vqvae_id
        self.vqvae_revision = vqvae_revision

        self.embedding = nn.Embedding(num_embeddings, hidden_channels)
        self.layers = nn.ModuleList(
            GatedLayer(hidden_channels, kernel_size, first=index == 0, last=index == num_layers - 1,
                       dilation=2 ** (index % dilation_cycle))
            for index in range(num_layers)
        )
        # The paper's conditional bias V^T h: one learned vector per class, per layer and stack, added before the gate.
        self.class_bias = None
        if num_classes is not None:
            self.class_bias = nn.Embedding(num_classes, num_layers * 4 * hidden_channels)
            nn.init.zeros_(self.class_bias.weight)
        self.head_hidden = nn.Conv2d(hidden_channels, hidden_channels, 1)
        self.head_output = nn.Conv2d(hidden_channels, num_embeddings, 1)

    @property
    def conditional(self) -> bool:
        return self.num_classes is not None

    def forward(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """codes: LongTensor (B, H, W) of codebook indices; labels: (B,) class ids for a conditional prior.
        Returns logits (B, K, H, W); logits[:, :, i, j] depend only on codes before (i, j) in raster order."""
        self.check_codes(codes)
        biases = self.layer_biases(labels, codes.shape[0])
        embedded = self.embedding(codes).permute(0, 3, 1, 2)
        vertical = horizontal = embedded
        skips = 0
        for layer, (vertical_bias, horizontal_bias) in zip(self.layers, biases):
            vertical, horizontal, skip = layer(
                vertical, horizontal, vertical_bias[:, :, None, None], horizontal_bias[:, :, None, None]
            )
            skips = skips + skip
        return self.head(skips)

    def head(self, skips: torch.Tensor) -> torch.Tensor:
        """The summed skip connections (B, C, H, W) -> logits over the K codes (B, K, H, W)."""
        return self.head_output(F.relu(self.head_hidden(F.relu(skips))))

    @property
    def receptive_field(self) -> tuple[int, int]:
        """(rows above, columns either side in those rows) that the logits at a position see: the vertical stacks
        add their spans, the shift down adds one row. The grid is covered when they reach (H - 1, W - 1)."""
        span = sum(layer.span for layer in self.layers)
        return span + 1, span

    def nll_bits_per_code(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Negative log-likelihood of each grid in bits per code, shape (B,). The uniform prior scores log2(K)."""
        logits = self(codes, labels)
        nats = F.cross_entropy(logits, codes, reduction="none").flatten(1).mean(1)
        return nats / math.log(2)

    def layer_biases(self, labels: torch.Tensor | None, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the (vertical, horizontal) class biases, each (B, 2C); zeros for an unconditional prior."""
        channels = 2 * self.hidden_channels
        if not self.conditional:
            if labels is not None:
                raise ValueError("This prior is unconditional (num_classes=None) but labels were given; drop them.")
            zeros = self.embedding.weight.new_zeros((batch_size, channels))
            return [(zeros, zeros)] * len(self.layers)
        if labels is None:
            raise ValueError(
                f"This prior is class-conditional ({self.num_classes} classes): pass labels, a LongTensor (B,)."
            )
        if labels.shape != (batch_size,):
            raise ValueError(f"labels has shape {tuple(labels.shape)}; expected ({batch_size},), one class per grid.")
        if labels.dtype != torch.long or labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(f"labels must be integer class ids in [0, {self.num_classes}); got {labels.dtype} values.")
        per_layer = self.class_bias(labels).split(channels, dim=1)
        return list(zip(per_layer[0::2], per_layer[1::2]))

    def check_codes(self, codes: torch.Tensor) -> None:
        expected = (self.grid_height, self.grid_width)
        if codes.dtype != torch.long or codes.dim() != 3 or tuple(codes.shape[1:]) != expected:
            raise ValueError(
                f"codes must be a LongTensor (B, {expected[0]}, {expected[1]}) of codebook indices; got "
                f"{codes.dtype} of shape {tuple(codes.shape)}. Encode images with VQVAE.encode_to_indices."
            )
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.num_embeddings):
            raise ValueError(
                f"codes must lie in [0, {self.num_embeddings}); got [{int(codes.min())}, {int(codes.max())}]. "
                "The prior's num_embeddings must match the VQ-VAE's codebook."
            )
