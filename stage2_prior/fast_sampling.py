"""The fast PixelCNN sampler: the naive sampler's codes (up to float rounding breaking a near-tie) at about one
forward pass of arithmetic.

Every layer keeps its inputs in padded, channels-last buffers, positions-major, (positions, B, C), where whole rows
are computed (the vertical stack, the row schedule): one row of a layer is then a contiguous (W * B, C) matrix and
every kernel window a strided view of a buffer.

- Vertical stack: once a row is final, each layer computes that row once from its kernel's rows above it, one
  matrix product over all the row's windows, and one more gives what the row adds to the next row's horizontal
  stack.
- Horizontal stack, two schedules that draw the same codes:
  - by position: each position computes only itself from its kernel's left neighbours, one small matrix product
    per layer (Ramachandran et al. 2017 cache the same way).
  - by row, a fixed-point iteration (Song et al. 2021 solve autoregressive sampling as such a system): guess the
    whole row (the row above), compute every position from the guess in one pass, and draw each position's code
    with its own Gumbel noise. If the first position that changed is p, positions up to p were computed from final
    codes and are final; the rest take the new codes as the next guess, and the next pass computes only them. A row
    of W positions needs at most W passes: one sample of the grey-level priors of benchmarks/pixelcnn_sampling.py
    needs 2.1 a row at 7x7 and 2.8 at 16x16, of the MNIST report's PixelCNN over VQ-VAE codes 4.9 of 7.
  Batches over ROW_SCHEDULE_MAX_BATCH go by position: there arithmetic dominates, and passes repeat it. At smaller
  ones each call's overhead dominates, and which schedule is faster depends on the prior (how well the row above
  guesses a row) and the machine: each call takes the one measured faster so far (ScheduleClock).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import Counter

import torch

# Batches up to this size may sample by row. Measured on one CPU thread, rows against positions: one sample of the
# benchmark's 16x16 grey levels 20 against 33 ms, of the MNIST report's 7x7 VQ-VAE codes 10.0 against 8.4 ms; three
# samples 43 against 54 ms at 16x16; four a tie at 16x16, positions 1.4x faster on the VQ-VAE codes.
ROW_SCHEDULE_MAX_BATCH = 4


def gumbel_max(logits: torch.Tensor, noise: torch.Tensor, temperature: float) -> torch.Tensor:
    """argmax(logits / T + g) with Gumbel noise g is a sample of softmax(logits / T)."""
    logits = logits.float()
    return (logits + noise if temperature == 1.0 else logits / temperature + noise).argmax(dim=-1)


class _Weights:
    """The prior's weights as the contiguous (inputs, outputs) matrices the sampler multiplies by, rows in the order
    its windows are laid out, (taps..., channel).

    Gates are computed as tanh(a) * (1 + tanh(b / 2)), 2 tanh(a) sigmoid(b) in two calls instead of three: every
    pre-activation comes out with its gate half halved (`half_gate`), and every product that reads a doubled gate
    output halves it (powers of two: exact). Biases that such a product adds ride along as a last weight row
    against a column of ones."""

    def __init__(self, prior):
        layers, channels = list(prior.layers), prior.hidden_channels
        half_gate = torch.cat([torch.ones(channels), torch.full((channels,), 0.5)]).to(prior.embedding.weight)
        self.half_gate = half_gate
        self.horizontal = [_by_tap(layer.horizontal_conv.weight, half_gate) for layer in layers]
        # The first layer's vertical input is the embedding; later ones read the doubled gate of the layer before.
        self.vertical = [_by_tap(layer.vertical_conv.weight, half_gate * (1.0 if layer.first else 0.5)) for layer in layers]
        self.vertical_bias = [layer.vertical_conv.bias * half_gate for layer in layers]
        # It reads the vertical features, whose gate half comes out halved: undone on its input side.
        self.to_horizontal = [_by_tap(layer.vertical_to_horizontal.weight, half_gate / half_gate[:, None]) for layer in layers]
        self.horizontal_bias = [(layer.vertical_to_horizontal.bias + layer.horizontal_conv.bias) * half_gate for layer in layers]
        # Row 0 has no row above: the shift down gives it zeros from the vertical stack, its bias included.
        self.first_row_bias = [layer.horizontal_conv.bias * half_gate for layer in layers]
        self.residual = [None if layer.last else _reading_doubled_gate(layer.residual) for layer in layers]
        self.skips = torch.cat([_reading_doubled_gate(layer.skip) for layer in layers])
        self.head_hidden = prior.head_hidden.weight.flatten(1).t().contiguous()
        self.head_output = prior.head_output.weight.flatten(1).t().contiguous()


def _by_tap(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """A conv weight (C_out, C_in, kh, kw) as a contiguous (kh * kw * C_in, C_out) matrix, times `scale`."""
    return weight.permute(2, 3, 1, 0).reshape(-1, weight.shape[0]) * scale


def _reading_doubled_gate(conv) -> torch.Tensor:
    """A 1x1 conv that reads a doubled gate output, as a (C_in + 1, C_out) matrix: weights halved, bias last."""
    return torch.cat([conv.weight.flatten(1).t() * 0.5, conv.bias[None]])


def _windows(buffer: torch.Tensor, counts: tuple[int, ...], steps: tuple[int, ...]) -> torch.Tensor:
    """A view of the windows of a positions-major buffer (positions, B, C), (windows, B, taps..., C): window i
    starts at position i * steps[0]; counts[1:] and steps[1:] give its taps' counts and strides in positions."""
    size, channels = buffer.shape[-2:]
    position = size * channels
    return buffer.as_strided((counts[0], size, *counts[1:], channels),
                             (steps[0] * position, channels, *(step * position for step in steps[1:]), 1),
                             buffer.storage_offset())


def _head(prior, weights: _Weights, gated: torch.Tensor) -> torch.Tensor:
    """Every layer's doubled gate output beside a column of ones -> logits: all skips in one product, then the head."""
    hidden = torch.addmm(prior.head_hidden.bias, torch.relu_(gated @ weights.skips), weights.head_hidden)
    return torch.addmm(prior.head_output.bias, torch.relu_(hidden), weights.head_output)


class _VerticalStack:
    """Every layer's vertical stack, a row at a time, and what each row adds to the next row's horizontal stack:
    `row_biases`, per layer (W * B, 2C), positions-major, the horizontal conv's bias and the class bias included,
    overwritten in place by each `advance`."""

    def __init__(self, prior, weights: _Weights, class_biases, size: int, height: int, width: int):
        self.size, self.width = size, width
        self.embedding = prior.embedding.weight
        channels = prior.hidden_channels
        layers = list(prior.layers)
        half_gate = weights.half_gate
        # Layer l's input, padded as in GatedLayer.forward: span zero rows above and span columns either side.
        inputs = [self.embedding.new_zeros((height + layer.span, width + 2 * layer.span, size, channels)) for layer in layers]
        first = layers[0].span
        self.first_input = inputs[0][first:, first : first + width]  # row r: (W, B, C)
        self.row_biases, self.layers = [], []
        for index, layer in enumerate(layers):
            vertical_class_bias, horizontal_class_bias = (
                [bias * half_gate for bias in class_biases[index]] if prior.conditional else [None, None])
            # Row 0 has no row above: the shift down gives it nothing from the vertical stack, not even its bias.
            first_row = weights.first_row_bias[index] + (0 if horizontal_class_bias is None else horizontal_class_bias)
            self.row_biases.append(first_row.expand(width, size, 2 * channels).contiguous().view(width * size, -1))
            padded_width = inputs[index].shape[1]
            # Row r's windows: this view offset by r padded rows.
            windows = _windows(inputs[index].flatten(0, 1), (width, layer.reach + 1, 2 * layer.reach + 1),
                               (1, layer.dilation * padded_width, layer.dilation))
            following = None if layer.last else layers[index + 1].span
            output = None if layer.last else inputs[index + 1][following:, following : following + width]
            self.layers.append((windows, windows.stride(0) * padded_width, weights.vertical_bias[index], weights.vertical[index],
                                weights.to_horizontal[index], weights.horizontal_bias[index], self.row_biases[-1], output,
                                vertical_class_bias, horizontal_class_bias))

    def advance(self, row: int, codes: torch.Tensor) -> None:
        """Takes row `row`'s final codes (W, B); `row_biases` become row + 1's."""
        width, size = self.width, self.size
        torch.index_select(self.embedding, 0, codes.reshape(-1), out=self.first_input[row].view(width * size, -1))
        for (windows, row_stride, vertical_bias, vertical, to_horizontal, horizontal_bias, row_bias, output,
             vertical_class_bias, horizontal_class_bias) in self.layers:
            rows = windows.as_strided(windows.shape, windows.stride(), windows.storage_offset() + row * row_stride)
            features = torch.addmm(vertical_bias, rows.reshape(width * size, -1), vertical)
            torch.addmm(horizontal_bias, features, to_horizontal, out=row_bias)
            if horizontal_class_bias is not None:
                row_bias.view(width, size, -1).add_(horizontal_class_bias)
            if output is not None:
                if vertical_class_bias is not None:
                    features.view(width, size, -1).add_(vertical_class_bias)
                content, gate_logits = torch.tanh_(features).chunk(2, dim=1)
                torch.addcmul(content, content, gate_logits, out=output[row].view(width * size, -1))


class _RowStack:
    """Every layer's horizontal stack over a whole row at once, from a guess of the row's codes."""

    def __init__(self, prior, weights: _Weights, row_biases: list[torch.Tensor], size: int, width: int):
        self.prior, self.weights, self.row_biases, self.size, self.width = prior, weights, row_biases, size, width
        self.embedding = prior.embedding.weight
        channels = prior.hidden_channels
        self.layers = list(prior.layers)
        # Layer l's input at column j sits at position span + j; the first layer's is the code of column j - 1.
        self.inputs = [self.embedding.new_zeros((width + layer.span, size, channels)) for layer in self.layers]
        self.pre_activation = self.embedding.new_zeros((width * size, 2 * channels))
        # Every layer's doubled gate output and a column of ones, side by side: all skips are one product.
        self.gated = self.embedding.new_ones((width * size, len(self.layers) * (channels + 1)))
        self.suffixes = {}

    def _suffix(self, start: int):
        """The views that compute positions start.. of the row, made once per start."""
        if start not in self.suffixes:
            size, width, channels = self.size, self.width, self.prior.hidden_channels
            tail = slice(start * size, None)
            pre_activation = self.pre_activation[tail]
            content, gate_logits = pre_activation.chunk(2, dim=1)
            # The first layer's input changes from the code before `start` on.
            changed = max(start - 1, 0)
            first_input = self.inputs[0][self.layers[0].span + 1 + changed :].view(-1, channels)
            layers = []
            for index, layer in enumerate(self.layers):
                slot = index * (channels + 1)
                following = None if layer.last else self.layers[index + 1].span
                layers.append((
                    _windows(self.inputs[index], (width, layer.reach + 1), (1, layer.dilation))[start:],
                    self.weights.horizontal[index], self.row_biases[index][tail],
                    self.gated[tail, slot : slot + channels], self.gated[tail, slot : slot + channels + 1],
                    self.weights.residual[index],
                    None if layer.last else self.inputs[index + 1][following + start : following + width].view(-1, channels),
                    None if layer.first or layer.last else self.inputs[index][layer.span + start : layer.span + width].view(-1, channels),
                ))
            self.suffixes[start] = (changed, first_input, pre_activation, content, gate_logits, self.gated[tail], layers)
        return self.suffixes[start]

    def logits(self, codes: torch.Tensor, start: int) -> torch.Tensor:
        """Codes (W, B) of the row -> logits ((W - start) * B, K) of positions start.., each from the codes before it
        (and the rows above). The layers' inputs before `start` must be those of these codes (computed earlier)."""
        changed, first_input, pre_activation, content, gate_logits, gated, layers = self._suffix(start)
        torch.index_select(self.embedding, 0, codes[changed:-1].reshape(-1), out=first_input)
        positions = pre_activation.shape[0]
        for windows, horizontal, row_bias, gated_slot, gated_with_one, residual, output, own in layers:
            torch.addmm(row_bias, windows.reshape(positions, -1), horizontal, out=pre_activation)
            torch.tanh_(pre_activation)
            torch.addcmul(content, content, gate_logits, out=gated_slot)
            if output is None:
                continue
            if own is None:
                torch.mm(gated_with_one, residual, out=output)
            else:
                torch.addmm(own, gated_with_one, residual, out=output)
        return _head(self.prior, self.weights, gated)

    def sample_row(self, noise: torch.Tensor, temperature: float, guess: torch.Tensor) -> torch.Tensor:
        """One row's codes (W, B) by fixed-point iteration from `guess` (W, B); noise (B, W, K). Each pass computes
        the positions not yet final: the layers' inputs before them are those of the final codes already."""
        width, size = self.width, self.size
        noise = noise.transpose(0, 1).reshape(width * size, -1)
        codes = guess.clone()
        final = 0  # positions before this one are final
        while final < width:
            drawn = gumbel_max(self.logits(codes, final), noise[final * size :], temperature).view(width - final, size)
            changed = torch.ne(drawn, codes[final:]).any(dim=1).tolist()
            codes[final:] = drawn
            if True not in changed:
                break
            final += changed.index(True) + 1
        return codes


class _PositionStack:
    """Every layer's horizontal stack at one position at a time, as matrices over one position's channels.

    Layer l's input is kept channels last, positions grouped by column mod dilation, (B, d, W' / d, C): the window
    of reach + 1 positions (every d-th) that the layer reads for a column is then one contiguous (B, (reach + 1) * C)
    matrix. Views of every column's window and input slot are made once per batch, so the per-position loop only
    calls matrix products and gates."""

    def __init__(self, prior, weights: _Weights, row_biases: list[torch.Tensor], size: int, width: int):
        self.prior, self.weights, self.size, self.width = prior, weights, size, width
        self.embedding = prior.embedding.weight
        channels = prior.hidden_channels
        layers = list(prior.layers)
        self.gated = self.embedding.new_ones((size, len(layers) * (channels + 1)))
        inputs, windows, at = [], [], []
        for layer in layers:
            dilation, length = layer.dilation, width + layer.horizontal_left_pad
            inputs.append(self.embedding.new_zeros((size, dilation, -(-length // dilation), channels)))
            windows.append([inputs[-1][:, column % dilation, column // dilation : column // dilation + layer.reach + 1].reshape(size, -1)
                            for column in range(width)])
            # This layer's input at each column: its residual, and what the layer before writes there.
            at.append([inputs[-1][:, position % dilation, position // dilation]
                       for position in range(layer.horizontal_left_pad, length)])
        self.first_input = at[0]
        self.layers = []
        for index, layer in enumerate(layers):
            pre_activation = self.embedding.new_empty((size, 2 * channels))
            slot = index * (channels + 1)
            self.layers.append((
                windows[index], weights.horizontal[index], row_biases[index].view(width, size, -1).unbind(0),
                pre_activation, *pre_activation.chunk(2, dim=1),
                self.gated[:, slot : slot + channels], self.gated[:, slot : slot + channels + 1], weights.residual[index],
                None if layer.last else at[index + 1], None if layer.first or layer.last else at[index],
            ))

    def sample_row(self, noise: torch.Tensor, temperature: float, guess=None) -> torch.Tensor:
        """One row's codes (W, B), left to right; noise (B, W, K). A window only reads positions already written
        in this row, so the inputs need no reset between rows."""
        codes = torch.empty((self.width, self.size), dtype=torch.long, device=noise.device)
        for column in range(self.width):
            for (windows, horizontal, row_bias, pre_activation, content, gate_logits, gated, gated_with_one, residual,
                 output, own) in self.layers:
                torch.addmm(row_bias[column], windows[column], horizontal, out=pre_activation)
                torch.tanh_(pre_activation)
                torch.addcmul(content, content, gate_logits, out=gated)
                if output is None:
                    continue
                if own is None:
                    torch.mm(gated_with_one, residual, out=output[column])
                else:
                    torch.addmm(own[column], gated_with_one, residual, out=output[column])
            codes[column] = gumbel_max(_head(self.prior, self.weights, self.gated), noise[:, column], temperature)
            torch.index_select(self.embedding, 0, codes[column], out=self.first_input[column])
        return codes


# Per prior: its parameters, flattened, and the _Weights made from them.
_built_weights: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Per prior: a ScheduleClock per batch size and device.
_schedule_clocks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@torch.inference_mode()
def _weights_of(prior) -> _Weights:
    """The prior's _Weights, made again only when a parameter changed. Changes are found by comparing the parameters,
    element for element, with those the weights were made from (a concatenation and one comparison, cheaper than
    the weights' few hundred small calls): a parameter's version counter would miss edits through `.data`, as
    diffusers' EMAModel.copy_to makes them."""
    parameters = torch.cat([parameter.reshape(-1) for parameter in prior.parameters()])
    built = _built_weights.get(prior)
    if built is not None and built[0].device == parameters.device and built[0].dtype == parameters.dtype \
            and torch.equal(built[0], parameters):
        return built[1]
    weights = _Weights(prior)
    _built_weights[prior] = (parameters, weights)
    _schedule_clocks.pop(prior, None)  # other weights, other passes a row: the schedules are timed again
    return weights


class ScheduleClock:
    """Seconds per call of each schedule for one prior and batch shape, kept across calls: which is faster depends
    on the prior and the machine, and a call's rows average out how well the row above guesses each row (a background
    row converges in one pass; timing single rows misjudged that).

    The schedules take turns until each has TRIAL_CALLS calls timed, not counting its first (which makes buffers and
    kernels: slow whichever it is); then every call takes the faster by its mean (over about the last MEMORY_CALLS),
    and every RETIME_EVERY-th call the slower, so that a mean made on a few calls can change."""

    TRIAL_CALLS = 2
    MEMORY_CALLS = 16
    RETIME_EVERY = 16

    def __init__(self):
        self.seconds, self.calls = {}, Counter()
        self.lock = threading.Lock()  # an app samples from several threads

    def pick(self) -> type:
        schedules = (_RowStack, _PositionStack)
        with self.lock:
            if min(self.calls[schedule] for schedule in schedules) < 1 + self.TRIAL_CALLS:  # the first is not timed
                return min(schedules, key=lambda schedule: self.calls[schedule])  # rows first on a tie
            faster, slower = sorted(schedules, key=self.seconds.get)
            return slower if self.calls.total() % self.RETIME_EVERY == self.RETIME_EVERY - 1 else faster

    def record(self, schedule: type, seconds: float) -> None:
        with self.lock:
            self.calls[schedule] += 1
            timed = self.calls[schedule] - 1  # not the first
            if timed:
                mean = self.seconds.get(schedule, seconds)
                self.seconds[schedule] = mean + (seconds - mean) / min(timed, self.MEMORY_CALLS)


def calls_taken(prior) -> Counter:
    """How many calls of up to ROW_SCHEDULE_MAX_BATCH samples the fast sampler has made from this prior by each
    schedule ("rows", "positions"; larger batches all go by position)."""
    taken = Counter()
    for clock in _schedule_clocks.get(prior, {}).values():
        for schedule, count in clock.calls.items():
            taken["rows" if schedule is _RowStack else "positions"] += count
    return taken


def _synchronize(device: torch.device) -> None:
    """Waits for the device's queued work, so that a call's time is its own (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # that GPU, not the current one
    elif device.type != "cpu" and hasattr(getattr(torch, device.type, None), "synchronize"):
        getattr(torch, device.type).synchronize()


class FastSampler:
    """Samples batches of code grids from a GatedPixelCNN: `FastSampler(prior)(noise, temperature, labels)` gives
    the codes (B, H, W) that naive sampling draws with the same Gumbel noise (B, H, W, K)."""

    def __init__(self, prior):
        self.prior, self.weights = prior, _weights_of(prior)

    @torch.inference_mode()
    def __call__(self, noise: torch.Tensor, temperature: float, labels: torch.Tensor | None) -> torch.Tensor:
        prior = self.prior
        size, height, width, _ = noise.shape
        vertical = _VerticalStack(prior, self.weights, prior.layer_biases(labels, size), size, height, width)
        clock = None
        if size <= ROW_SCHEDULE_MAX_BATCH:
            clock = _schedule_clocks.setdefault(prior, {}).setdefault((size, str(noise.device)), ScheduleClock())
            _synchronize(noise.device)  # work queued before this call is not its own
        started = time.perf_counter()
        schedule = _PositionStack if clock is None else clock.pick()
        horizontal = schedule(prior, self.weights, vertical.row_biases, size, width)
        codes = torch.zeros((height, width, size), dtype=torch.long, device=noise.device)
        for row in range(height):
            # The first guess of a row is the row above (codes change slowly down an image); zeros for row 0.
            codes[row] = horizontal.sample_row(noise[:, row], temperature, codes[row - 1] if row else codes[0])
            if row + 1 < height:
                vertical.advance(row, codes[row])
        if clock is not None:
            _synchronize(noise.device)
            clock.record(schedule, time.perf_counter() - started)
        return codes.permute(2, 0, 1).contiguous()
