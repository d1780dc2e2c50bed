"""The gated PixelCNN: its receptive field, its input, its likelihood, and fast sampling against naive sampling."""

import math
from collections import Counter

import pytest
import torch

from stage2_prior import fast_sampling
from stage2_prior.fast_sampling import ROW_SCHEDULE_MAX_BATCH, _PositionStack, _RowStack, ScheduleClock, _weights_of
from stage2_prior.pixelcnn import GatedPixelCNN
from stage2_prior.sampling import sample_codes, sample_uniform_codes


def make_prior(height=5, width=6, num_classes=None, kernel_size=3, num_layers=6, seed=0, dilation_cycle=1) -> GatedPixelCNN:
    torch.manual_seed(seed)
    prior = GatedPixelCNN(
        num_embeddings=16,
        grid_height=height,
        grid_width=width,
        hidden_channels=12,
        num_layers=num_layers,
        kernel_size=kernel_size,
        dilation_cycle=dilation_cycle,
        num_classes=num_classes,
    )
    # Peaked logits and strong class biases, so that sampling depends on what the network computes rather
    # than on the Gumbel noise alone (a fast sampler that ignored a stack would then give different codes).
    with torch.no_grad():
        prior.head_output.weight.mul_(20.0)
        if prior.class_bias is not None:
            prior.class_bias.weight.normal_(0.0, 2.0)
    return prior.eval()


def dependencies(prior: GatedPixelCNN, labels=None) -> torch.Tensor:
    """(H, W, H, W) bool: [i, j, k, l] says whether the logits at (i, j) have a nonzero gradient with respect to
    the input at (k, l). One backward pass: batch element i * W + j carries the gradient of position (i, j)."""
    height, width = prior.grid_height, prior.grid_width
    captured = {}

    def keep_embedded(module, inputs, output):
        output.retain_grad()
        captured["embedded"] = output

    handle = prior.embedding.register_forward_hook(keep_embedded)
    try:
        codes = torch.randint(prior.num_embeddings, (1, height, width), generator=torch.Generator().manual_seed(1))
        codes = codes.expand(height * width, height, width)
        labels = None if labels is None else labels.expand(height * width)
        logits = prior(codes, labels).flatten(2)  # (H * W, K, H * W)
        positions = torch.arange(height * width)
        logits[positions, :, positions].pow(2).sum().backward()
    finally:
        handle.remove()
    return (captured["embedded"].grad.abs().sum(-1) > 0).reshape(height, width, height, width)


@pytest.mark.parametrize("kernel_size", [3, 5])
@pytest.mark.parametrize("num_classes", [None, 3])
def test_receptive_field_is_the_whole_causal_past(kernel_size, num_classes):
    # Enough layers that the receptive field covers the grid: every earlier position must count (no blind spot,
    # in particular up and to the right), and the position itself and every later one must not (causality).
    prior = make_prior(height=5, width=6, num_classes=num_classes, kernel_size=kernel_size, num_layers=6)
    labels = None if num_classes is None else torch.tensor([1])
    positions = torch.arange(5 * 6).reshape(5, 6)
    found_all = dependencies(prior, labels)
    for row in range(5):
        for column in range(6):
            expected = positions < row * 6 + column
            found = found_all[row, column]
            assert torch.equal(found, expected), (
                f"logits at ({row}, {column}) depend on\n{found.int()}\nbut the causal past is\n{expected.int()}"
            )


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_dilated_layers_cover_a_larger_grid_causally_with_no_hole(kernel_size):
    # Four layers with dilations 1, 2, 4, 1 reach as far as 8 (kernel 3) or 16 (kernel 5) undilated layers: on a
    # 9x9 grid every earlier position must still count (dilation must leave no hole), no later one.
    prior = make_prior(height=9, width=9, kernel_size=kernel_size, num_layers=4, dilation_cycle=3)
    assert [layer.dilation for layer in prior.layers] == [1, 2, 4, 1]
    rows_above, columns_aside = prior.receptive_field
    assert rows_above >= 8 and columns_aside >= 8
    positions = torch.arange(9 * 9).reshape(9, 9)
    found_all = dependencies(prior)
    for row in range(9):
        for column in range(9):
            expected = positions < row * 9 + column
            assert torch.equal(found_all[row, column], expected), f"({row}, {column}) depends on\n{found_all[row, column].int()}"
    # Undilated, the same four layers leave the top of the grid out of reach of the bottom row.
    assert not dependencies(make_prior(height=9, width=9, num_layers=4))[8, 8].all()


@pytest.mark.parametrize("dilation_cycle", [0, 5, True, 2.0])
def test_dilation_cycle_is_checked_against_the_grid(dilation_cycle):
    # 5: the largest dilation 16 would exceed the 9x9 grid (and pad buffers for nothing).
    with pytest.raises(ValueError, match="dilation_cycle"):
        GatedPixelCNN(grid_height=9, grid_width=9, dilation_cycle=dilation_cycle)


def test_receptive_field_of_two_layers_includes_up_and_right():
    # Two layers of kernel 3, logits at (5, 3). The vertical stack of layer l sees l rows up and l columns each
    # side of the row it works on; the horizontal stack gets it from the row above. A plain masked PixelCNN would
    # miss the positions up and to the right (its blind spot).
    prior = make_prior(height=7, width=8, num_layers=2)
    expected = torch.zeros(7, 8, dtype=torch.bool)
    expected[2:5, 1:6] = True  # rows 5-3 .. 5-1, columns 3-2 .. 3+2
    expected[5, 0:3] = True  # the current row, up to three columns to the left
    assert prior.receptive_field == (3, 2)
    found = dependencies(prior)[5, 3]
    assert found[4, 4] and found[4, 5] and found[3, 5], "no blind spot: the rows above count to the right too"
    assert torch.equal(found, expected), f"depends on\n{found.int()}\nexpected\n{expected.int()}"


def test_codes_enter_through_the_embedding_not_as_values():
    prior = make_prior()
    codes = torch.randint(16, (4, 5, 6), generator=torch.Generator().manual_seed(2))
    codes[codes == 3] = 5
    with torch.no_grad():
        prior.embedding.weight[3] = prior.embedding.weight[5]
        relabelled = codes.clone()
        relabelled[:, ::2] = torch.where(codes[:, ::2] == 5, 3, codes[:, ::2])
        # Two codes with one embedding vector are the same input, however far apart their index values are.
        torch.testing.assert_close(prior(codes), prior(relabelled), rtol=0, atol=0)
        assert not torch.equal(prior(codes), prior((codes + 1) % 16))
    with pytest.raises(ValueError, match="LongTensor"):
        prior(codes.float())
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        prior(codes + 16)


def test_nll_is_log2_k_bits_under_uniform_logits_and_lower_when_peaked():
    prior = make_prior()
    codes = torch.randint(16, (3, 5, 6), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        prior.head_output.weight.zero_()
        prior.head_output.bias.zero_()
        torch.testing.assert_close(prior.nll_bits_per_code(codes), torch.full((3,), math.log2(16)))
        # A prior that puts its mass on code 7 scores grids of code 7 far below log2(K).
        prior.head_output.bias[7] = 10.0
        assert prior.nll_bits_per_code(torch.full((3, 5, 6), 7)).max() < 0.01


@pytest.mark.parametrize("batch_size", [ROW_SCHEDULE_MAX_BATCH, ROW_SCHEDULE_MAX_BATCH + 2])
@pytest.mark.parametrize("num_classes, kernel_size, dilation_cycle", [(None, 3, 1), (4, 3, 1), (None, 5, 3), (4, 3, 3)])
def test_fast_sampling_gives_exactly_the_naive_codes(num_classes, kernel_size, dilation_cycle, batch_size):
    """Both schedules of the fast sampler: a larger batch than ROW_SCHEDULE_MAX_BATCH goes position by position, a
    smaller one whole rows to their fixed point in its first call (the schedules then take turns while they are
    timed). 9 samples: the last batch is smaller (a small batch after the larger batch size)."""
    prior = make_prior(height=4, width=5, num_classes=num_classes, kernel_size=kernel_size, num_layers=3,
                       dilation_cycle=dilation_cycle)
    labels = None if num_classes is None else torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0])
    naive = sample_codes(prior, 9, seed=11, temperature=0.8, labels=labels, batch_size=batch_size, method="naive")
    fast = sample_codes(prior, 9, seed=11, temperature=0.8, labels=labels, batch_size=batch_size, method="fast")
    assert naive.shape == (9, 4, 5) and naive.dtype == torch.long
    assert torch.equal(fast, naive)
    # The codes depend on the seed (and are not all one value), so the equality above says something.
    assert not torch.equal(sample_codes(prior, 9, seed=12, labels=labels, batch_size=batch_size), fast)
    assert len(fast.unique()) > 3


@pytest.mark.parametrize("schedule", [_RowStack, _PositionStack])
def test_a_small_batch_gives_the_naive_codes_by_either_schedule(schedule, monkeypatch):
    """A batch of up to ROW_SCHEDULE_MAX_BATCH samples takes whichever schedule was measured faster: both must give
    the naive codes (here forced, as the choice depends on the machine), and the calls are counted by schedule."""
    prior = make_prior(height=6, width=5, num_classes=3, kernel_size=3, num_layers=4, dilation_cycle=2)
    labels = torch.tensor([2, 0, 1])
    naive = sample_codes(prior, 3, seed=8, labels=labels, batch_size=3, method="naive")
    monkeypatch.setattr(ScheduleClock, "pick", lambda self: schedule)
    assert torch.equal(sample_codes(prior, 3, seed=8, labels=labels, batch_size=3), naive)
    assert torch.equal(sample_codes(prior, 3, seed=8, labels=labels, batch_size=1), sample_codes(
        prior, 3, seed=8, labels=labels, batch_size=1, method="naive"))
    assert fast_sampling.calls_taken(prior) == Counter({"rows" if schedule is _RowStack else "positions": 4})


def test_schedule_clock_tries_both_then_takes_the_faster_and_times_the_slower_again_now_and_then():
    """Rows and positions take turns until each has TRIAL_CALLS calls timed past its first (a first use is slow
    whichever schedule it is: its time is not counted), then the faster by its mean seconds per call; every
    RETIME_EVERY-th call the slower, so that a mean made on a few calls can change."""
    clock, picked = ScheduleClock(), []
    cost = {_RowStack: 2.0, _PositionStack: 1.0}

    def sample(first_use_seconds=100.0):
        picked.append(clock.pick())
        clock.record(picked[-1], first_use_seconds if clock.calls[picked[-1]] == 0 else cost[picked[-1]])

    trial = 2 * (1 + ScheduleClock.TRIAL_CALLS)
    for _ in range(3 * ScheduleClock.RETIME_EVERY):
        sample()
    assert picked[:trial] == [_RowStack, _PositionStack] * (trial // 2)
    assert clock.seconds == {_RowStack: 2.0, _PositionStack: 1.0}  # the first uses' 100 s are not counted
    retimed = [call for call, schedule in enumerate(picked) if schedule is _RowStack and call >= trial]
    assert retimed == [ScheduleClock.RETIME_EVERY * k - 1 for k in (1, 2, 3)]
    # Rows became cheaper: their mean falls as they are timed again, and they take over once below positions'.
    cost[_RowStack] = 0.5
    while picked[-1] is _PositionStack or clock.seconds[_RowStack] > 1.0:
        sample()
    assert clock.pick() is _RowStack and clock.seconds[_RowStack] < clock.seconds[_PositionStack] == 1.0


def test_schedule_timings_are_dropped_with_the_weights_they_timed_and_with_the_prior():
    """Passes a row depend on the weights: changed weights are timed again. A clock must not keep its prior alive."""
    import gc
    import weakref

    prior = make_prior(seed=0)
    sample_codes(prior, 2, seed=1, batch_size=2)
    assert fast_sampling.calls_taken(prior) == Counter(rows=1)
    prior.head_output.bias.data += 1.0
    sample_codes(prior, 2, seed=1, batch_size=2)
    assert fast_sampling.calls_taken(prior) == Counter(rows=1)  # a new clock: its first call, by rows
    alive = weakref.ref(prior)
    del prior
    gc.collect()
    assert alive() is None


@pytest.mark.parametrize("height, width, num_layers", [(1, 1, 1), (1, 6, 2), (6, 1, 2), (3, 9, 1)])
def test_fast_sampling_edge_grids(height, width, num_layers):
    """One row, one column, one layer (first and last at once): the buffers' edge cases, both schedules."""
    prior = make_prior(height=height, width=width, num_layers=num_layers)
    for batch_size in (1, ROW_SCHEDULE_MAX_BATCH + 1):
        naive = sample_codes(prior, batch_size, seed=5, batch_size=batch_size, method="naive")
        assert torch.equal(sample_codes(prior, batch_size, seed=5, batch_size=batch_size), naive)


def test_fast_sampling_follows_weights_changed_in_place():
    """The fast sampler keeps each prior's weight matrices between calls: changes made in place must be seen,
    through `.data` (diffusers' EMAModel.copy_to writes so, bumping no version counter) and load_state_dict too."""
    prior, other = make_prior(seed=0), make_prior(seed=1)
    before = sample_codes(prior, 3, seed=4, batch_size=3)
    for parameter, replacement in zip(prior.parameters(), other.parameters()):
        parameter.data.copy_(replacement.data)
    after = sample_codes(prior, 3, seed=4, batch_size=3)
    assert not torch.equal(after, before)
    assert torch.equal(after, sample_codes(other, 3, seed=4, batch_size=3, method="naive"))
    prior.load_state_dict(make_prior(seed=0).state_dict())
    assert torch.equal(sample_codes(prior, 3, seed=4, batch_size=3), before)
    kept = _weights_of(prior)
    assert _weights_of(prior) is kept  # unchanged parameters: the weights made before
    prior.layers[-1].horizontal_conv.weight.data[0, 0, 0, 0] += 5.0  # one element of one deep layer
    assert _weights_of(prior) is not kept
    assert torch.equal(sample_codes(prior, 3, seed=4, batch_size=3),
                       sample_codes(prior, 3, seed=4, batch_size=3, method="naive"))


def test_row_fixed_point_needs_fewer_passes_than_positions_and_at_most_one_per_position(monkeypatch):
    """The row schedule's passes: at least one a row, each starting past the positions already final, and far
    fewer than one a position (10-14 for this prior's 48 positions, over seeds)."""
    monkeypatch.setattr(ScheduleClock, "pick", lambda self: _RowStack)
    prior = make_prior(height=6, width=8, num_layers=4)
    passes = []
    original = _RowStack.logits

    def counted(self, codes, start):
        passes.append(start)
        return original(self, codes, start)

    _RowStack.logits = counted
    try:
        codes = sample_codes(prior, 1, seed=2, batch_size=1)
    finally:
        _RowStack.logits = original
    assert torch.equal(codes, sample_codes(prior, 1, seed=2, batch_size=1, method="naive"))
    assert 6 <= len(passes) <= 6 * 8 // 2
    # Each pass starts past the positions already final, so within a row the starts only grow.
    rows = [[]]
    for start in passes:
        if start == 0 and rows[-1]:
            rows.append([])
        rows[-1].append(start)
    assert len(rows) == 6 and all(row == sorted(set(row)) for row in rows)


def test_conditional_sampling_follows_the_class():
    prior = make_prior(height=4, width=4, num_classes=4, num_layers=3)
    one_class = sample_codes(prior, 5, seed=0, labels=2, batch_size=2)
    per_sample = sample_codes(prior, 5, seed=0, labels=torch.full((5,), 2), batch_size=2)
    assert torch.equal(one_class, per_sample)
    assert not torch.equal(sample_codes(prior, 5, seed=0, labels=3, batch_size=2), one_class)
    with pytest.raises(ValueError, match="class-conditional"):
        sample_codes(prior, 2)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        sample_codes(prior, 2, labels=4)
    with pytest.raises(ValueError, match="unconditional"):
        sample_codes(make_prior(), 2, labels=1)


def test_sampling_any_number_with_any_batch_size():
    prior = make_prior(height=3, width=3, num_layers=2)
    for num_samples, batch_size in [(0, 4), (1, 4), (5, 5), (5, 2), (9, 4)]:
        codes = sample_codes(prior, num_samples, seed=1, batch_size=batch_size)
        assert codes.shape == (num_samples, 3, 3)
    with pytest.raises(ValueError, match="temperature"):
        sample_codes(prior, 2, temperature=0.0)


def test_uniform_baseline_is_seeded_and_in_range():
    codes = sample_uniform_codes(16, (5, 6), 50, seed=4)
    assert codes.shape == (50, 5, 6) and codes.min() >= 0 and codes.max() < 16
    assert torch.equal(codes, sample_uniform_codes(16, (5, 6), 50, seed=4))
    assert len(codes.unique()) == 16


def test_round_trips_through_save_and_load(tmp_path):
    prior = GatedPixelCNN(num_embeddings=8, grid_height=3, grid_width=4, hidden_channels=8, num_layers=2,
                          num_classes=2, vqvae_id="someone/vqvae-mnist", vqvae_revision="abc123")
    prior.save_pretrained(tmp_path)
    config = (tmp_path / "config.json").read_text()
    assert "someone/vqvae-mnist" in config and "abc123" in config
    loaded = GatedPixelCNN.from_pretrained(tmp_path)
    assert loaded.vqvae_id == "someone/vqvae-mnist" and loaded.num_classes == 2
    codes, labels = torch.randint(8, (2, 3, 4)), torch.tensor([0, 1])
    with torch.no_grad():
        torch.testing.assert_close(loaded(codes, labels), prior.eval()(codes, labels))
