"""Sampling code grids from a GatedPixelCNN, naively and fast, and decoding them with the VQ-VAE.

Both samplers draw every position's code as argmax(logits / T + Gumbel noise) (the Gumbel-max trick), with the
noise for a whole batch drawn up front from one seeded CPU generator. So they consume identical randomness, and
the fast sampler returns exactly the codes of the naive one (up to float rounding breaking a near-tie).

- naive: the whole network over the whole grid once per position, H*W full passes.
- fast: each layer keeps its inputs in padded buffers. After a row is finished, the vertical stack computes that
  row once from the kernel's rows above it (every dilation-th); within a row, the horizontal stack computes only
  the current position from its kernel's left neighbours, one matrix product per layer. The whole grid then costs
  about one full forward pass in arithmetic (Ramachandran et al. 2017 cache the same way: recompute only what the
  newest position changes); at small batches the ~45 PyTorch calls per position dominate instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from stage2_prior.pixelcnn import GatedPixelCNN, gate

METHODS = ("fast", "naive")


@torch.no_grad()
def sample_codes(
    prior: GatedPixelCNN,
    num_samples: int,
    seed: int = 0,
    temperature: float = 1.0,
    labels: int | torch.Tensor | None = None,
    batch_size: int = 64,
    method: str = "fast",
    progress: bool = False,
) -> torch.Tensor:
    """Samples `num_samples` grids of codes, LongTensor (N, H, W) on the prior's device.

    labels: for a conditional prior, one class for all samples (int) or one per sample (N,).
    The codes depend on (seed, batch_size, temperature, labels), not on the method or the device (up to float
    rounding breaking a near-tie)."""
    if method not in METHODS:
        raise ValueError(f"method={method!r}: choose one of {METHODS}.")
    if num_samples < 0 or batch_size < 1:
        raise ValueError(f"num_samples={num_samples}, batch_size={batch_size}: need num_samples >= 0 and batch_size >= 1.")
    if not temperature > 0:
        raise ValueError(f"temperature={temperature}: use a positive temperature (1.0 samples the model as trained).")
    labels = _labels_per_sample(prior, labels, num_samples)
    device = next(prior.parameters()).device
    was_training = prior.training
    prior.eval()
    generator = torch.Generator().manual_seed(seed)
    sample_batch = _sample_batch_fast if method == "fast" else _sample_batch_naive
    batches = []
    starts = range(0, num_samples, batch_size)
    for start in tqdm(starts, desc=f"sampling codes ({method})", disable=not progress):
        size = min(batch_size, num_samples - start)
        noise = _gumbel((size, prior.grid_height, prior.grid_width, prior.num_embeddings), generator).to(device)
        batch_labels = None if labels is None else labels[start : start + size].to(device)
        batches.append(sample_batch(prior, noise, temperature, batch_labels))
    prior.train(was_training)
    if not batches:
        return torch.empty((0, prior.grid_height, prior.grid_width), dtype=torch.long, device=device)
    return torch.cat(batches)


@torch.no_grad()
def sample_images(prior: GatedPixelCNN, vqvae, num_samples: int, batch_size: int = 64, **sampling_options) -> torch.Tensor:
    """Samples codes and decodes them with the VQ-VAE: float images (N, C, H, W) in [0, 1]."""
    if tuple(vqvae.latent_grid_size) != (prior.grid_height, prior.grid_width) or vqvae.num_embeddings != prior.num_embeddings:
        raise ValueError(
            f"The prior models {prior.grid_height}x{prior.grid_width} grids of {prior.num_embeddings} codes but the "
            f"VQ-VAE has a {vqvae.latent_grid_size} grid of {vqvae.num_embeddings} codes; use the VQ-VAE the prior "
            f"was trained on ({prior.vqvae_id})."
        )
    codes = sample_codes(prior, num_samples, batch_size=batch_size, **sampling_options)
    return decode_codes(vqvae, codes, batch_size)


@torch.no_grad()
def sample_uniform_codes(num_embeddings: int, grid_size: tuple[int, int], num_samples: int, seed: int = 0) -> torch.Tensor:
    """The baseline: every code drawn independently and uniformly (the prior under which the VQ-VAE's KL is constant)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(num_embeddings, (num_samples, *grid_size), generator=generator)


@torch.no_grad()
def decode_codes(vqvae, codes: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Grids of codes (N, h, w) -> images (N, C, H, W) in [0, 1], on the VQ-VAE's device, batch by batch."""
    device = next(vqvae.parameters()).device
    was_training = vqvae.training
    vqvae.eval()
    images = [vqvae.decode_indices(batch.to(device)) for batch in codes.split(batch_size)]
    vqvae.train(was_training)
    if not images:
        return torch.empty((0, vqvae.in_channels, vqvae.image_size, vqvae.image_size), device=device)
    return torch.cat(images)


def _labels_per_sample(prior: GatedPixelCNN, labels, num_samples: int) -> torch.Tensor | None:
    if labels is None:
        if prior.conditional:
            raise ValueError(f"This prior is class-conditional: pass labels (a class in [0, {prior.num_classes}) or one per sample).")
        return None
    if not prior.conditional:
        raise ValueError("This prior is unconditional (trained without --conditional); sample it without labels.")
    labels = torch.as_tensor(labels, dtype=torch.long)
    if labels.dim() == 0:
        labels = labels.expand(num_samples)
    if labels.shape != (num_samples,):
        raise ValueError(f"labels has shape {tuple(labels.shape)}; give one class, or one per sample ({num_samples},).")
    if num_samples and (labels.min() < 0 or labels.max() >= prior.num_classes):
        raise ValueError(f"labels must be classes in [0, {prior.num_classes}); got [{int(labels.min())}, {int(labels.max())}].")
    return labels


def _gumbel(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    uniform = torch.rand(shape, generator=generator).clamp_(min=torch.finfo(torch.float32).tiny)
    return uniform.log_().neg_().log_().neg_()  # -log(-log(u)), in place: B * H * W * K values, no copies


def _pick(logits: torch.Tensor, noise: torch.Tensor, temperature: float) -> torch.Tensor:
    """Gumbel-max: argmax(logits / T + g) is a sample of softmax(logits / T)."""
    return (logits.float() / temperature + noise).argmax(dim=-1)


def _sample_batch_naive(prior: GatedPixelCNN, noise, temperature, labels) -> torch.Tensor:
    size, height, width, _ = noise.shape
    codes = torch.zeros((size, height, width), dtype=torch.long, device=noise.device)
    for row in range(height):
        for column in range(width):
            logits = prior(codes, labels)[:, :, row, column]
            codes[:, row, column] = _pick(logits, noise[:, row, column], temperature)
    return codes


class _HorizontalLayer:
    """One layer's horizontal stack for the current row, as matrices over one position's channels.

    The layer's input is kept channels last, positions grouped by column mod dilation, (B, d, W' / d, C): the
    window of reach + 1 positions (every d-th) that the layer reads for a column is then one contiguous
    (B, (reach + 1) * C) matrix, and the conv weight is reordered to match. Views of every column's window and
    input slot are made once per batch, so the per-position loop only calls matrix products and gates.
    The gated output lives in a slice of one (B, L * (C + 1)) matrix whose extra column is 1: the biases of the
    residual and of the skip ride along as a last weight column, so each is a single product, and the skips of
    all layers summed are one product over the whole matrix. The gate is computed as tanh(a) * (1 + tanh(b / 2)),
    which is 2 tanh(a) sigmoid(b) in two calls instead of three: the pre-activations' gate half is scaled by 1/2
    and the weights that read the gated output by 1/2 (powers of two: exact)."""

    def __init__(self, layer, gated: torch.Tensor, index: int, width: int):
        size = gated.shape[0]
        channels = layer.skip.weight.shape[0]
        dilation, length = layer.dilation, width + layer.horizontal_left_pad
        self.inputs = gated.new_zeros((size, dilation, -(-length // dilation), channels))
        self.windows = [
            self.inputs[:, column % dilation, column // dilation : column // dilation + layer.reach + 1].reshape(size, -1)
            for column in range(width)
        ]
        # This layer's input at each column: its residual, and what the layer before writes there.
        self.at = [self.inputs[:, position % dilation, position // dilation] for position in range(layer.horizontal_left_pad, length)]
        weight = layer.horizontal_conv.weight[:, :, 0]  # (2C, C, reach + 1)
        self.horizontal = weight.permute(0, 2, 1).reshape(2 * channels, -1).t() * _gate_half_scale(channels)
        self.pre_activation = gated.new_empty((size, 2 * channels))
        self.content, self.gate_logits = self.pre_activation.chunk(2, dim=1)
        self.gated = gated[:, index * (channels + 1) : index * (channels + 1) + channels]
        self.gated_with_one = gated[:, index * (channels + 1) : (index + 1) * (channels + 1)]
        self.residual = None if layer.last else _with_bias(layer.residual, 0.5).t()
        self.first = layer.first


class _VerticalWeights:
    """One layer's vertical stack as matrices for one row: the conv over unfolded (C * kh * kw) windows, and the
    1x1 conv into the horizontal stack."""

    def __init__(self, layer):
        self.conv = layer.vertical_conv.weight.flatten(1).t()
        self.to_horizontal = layer.vertical_to_horizontal.weight[:, :, 0, 0].t()


def _with_bias(conv, weight_scale: float = 1.0) -> torch.Tensor:
    """A 1x1 conv as a (C_out, C_in + 1) matrix whose last column is the bias."""
    return torch.cat([conv.weight[:, :, 0, 0] * weight_scale, conv.bias[:, None]], dim=1)


def _gate_half_scale(channels: int) -> torch.Tensor:
    """(2C,): 1 for the content half of a pre-activation, 1/2 for the gate half (see _HorizontalLayer)."""
    return torch.cat([torch.ones(channels), torch.full((channels,), 0.5)])


@torch.inference_mode()
def _sample_batch_fast(prior: GatedPixelCNN, noise, temperature, labels) -> torch.Tensor:
    size, height, width, _ = noise.shape
    layers = prior.layers
    biases = prior.layer_biases(labels, size)
    embedding = prior.embedding.weight
    channels = embedding.shape[1]
    codes = torch.zeros((size, height, width), dtype=torch.long, device=noise.device)

    gated = embedding.new_ones((size, len(layers) * (channels + 1)))
    steps = [_HorizontalLayer(layer, gated, index, width) for index, layer in enumerate(layers)]
    skip_weight = torch.cat([_with_bias(layer.skip, 0.5) for layer in layers], dim=1).t()
    gate_half_scale = _gate_half_scale(channels).to(embedding)
    head_hidden = prior.head_hidden.weight[:, :, 0, 0].t()
    head_output = prior.head_output.weight[:, :, 0, 0].t()
    verticals = [_VerticalWeights(layer) for layer in layers]

    # Each layer's vertical input, padded as in GatedLayer.forward: `span` zero rows above, `span` columns each side.
    vertical_inputs = [embedding.new_zeros((size, channels, height + layer.span, width + 2 * layer.span)) for layer in layers]
    # Per layer and column, (B, 2C): everything the horizontal pre-activation adds besides its own window: the
    # vertical stack's contribution from the row above (zero for row 0), the conv bias and the class bias.
    row_biases = [
        ((layer.horizontal_conv.bias + horizontal_bias) * gate_half_scale).expand(width, size, 2 * channels).unbind(0)
        for layer, (_, horizontal_bias) in zip(layers, biases)
    ]

    for row in range(height):
        # Positions are written left to right and a window only reads positions already written in this row,
        # so the horizontal inputs need no reset between rows.
        for column in range(width):
            for index, step in enumerate(steps):
                torch.addmm(row_biases[index][column], step.windows[column], step.horizontal, out=step.pre_activation)
                torch.tanh_(step.pre_activation)
                torch.addcmul(step.content, step.content, step.gate_logits, out=step.gated)
                if step.residual is None:
                    continue
                output = steps[index + 1].at[column]
                if step.first:
                    torch.mm(step.gated_with_one, step.residual, out=output)
                else:
                    torch.addmm(step.at[column], step.gated_with_one, step.residual, out=output)
            hidden = torch.addmm(prior.head_hidden.bias, torch.relu(gated @ skip_weight), head_hidden)
            logits = torch.addmm(prior.head_output.bias, torch.relu(hidden), head_output)
            code = _pick(logits, noise[:, row, column], temperature)
            codes[:, row, column] = code
            steps[0].at[column].copy_(F.embedding(code, embedding))

        # The row is complete: run the vertical stack over it once; it feeds the horizontal stack of the next row.
        if row + 1 == height:
            break
        first_span = layers[0].span
        vertical_inputs[0][:, :, row + first_span, first_span : first_span + width] = F.embedding(codes[:, row], embedding).permute(0, 2, 1)
        for index, (layer, vertical, (vertical_bias, horizontal_bias)) in enumerate(zip(layers, verticals, biases)):
            # The vertical conv over one row as one matrix product over its unfolded windows: per-row conv2d calls
            # made batch-1 sampling 1.3-1.8x slower (16x16, CPU), for the same arithmetic.
            rows = vertical_inputs[index][:, :, row : row + layer.span + 1]
            windows = F.unfold(rows, layer.vertical_conv.kernel_size, dilation=layer.dilation).transpose(1, 2)
            features = torch.addmm(layer.vertical_conv.bias, windows.reshape(size * width, -1), vertical.conv)
            to_horizontal = torch.addmm(layer.vertical_to_horizontal.bias, features, vertical.to_horizontal).view(size, width, -1)
            row_biases[index] = ((to_horizontal + layer.horizontal_conv.bias + horizontal_bias[:, None]) * gate_half_scale).transpose(0, 1).contiguous().unbind(0)
            if not layer.last:
                following = layers[index + 1].span
                vertical_inputs[index + 1][:, :, row + following, following : following + width] = gate(
                    features.view(size, width, -1) + vertical_bias[:, None], dim=2
                ).transpose(1, 2)
    return codes
