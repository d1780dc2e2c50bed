"""Naive vs fast sampling from trained gated PixelCNNs at 7x7, 16x16 and 32x32 grids, batches 1, 4, 64 and 1000.

    python benchmarks/pixelcnn_sampling.py                        # trains (once, cached) and times all cases
    python benchmarks/pixelcnn_sampling.py --grids 7 --batches 1 64

The priors are trained here on real data, so that the "same codes" check means something (with random weights
the logits are nearly flat and most of a code is the Gumbel noise): MNIST images resized to the grid and their
grey levels quantized to K codes (K = 64 at 7x7 as the MNIST VQ-VAE, 512 at 16x16 as a colour VQ-VAE, 256 at
32x32), tens to hundreds of steps each, cached under --cache_dir. Their test NLL is printed next to log2(K).

"1 pass" is one forward pass of the prior over the whole batch: the arithmetic that a sampler which never
recomputes anything needs. "fast / 1 pass" is the figure of merit (the goal is <= 2). Naive sampling (H*W full
passes) is timed where its estimate, H*W times one pass, fits --naive_budget_s; elsewhere it says "skipped" and
the fast codes are compared on the first samples with the largest naive run of that grid (the Gumbel noise of
the first m samples of a batch is the same whatever the batch size, so those codes must agree). "schedule" says
how the fast sampler ran the horizontal stack in the timed runs: whole rows to their fixed point, position by
position, or "r/t rows" where r of the t timed calls went by rows (a batch of up to ROW_SCHEDULE_MAX_BATCH samples
takes the schedule measured faster so far, after trial calls of both, made here before the timed ones; see
fast_sampling.ScheduleClock).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # runnable as a script

import torch
import torch.nn.functional as F

from stage1_autoencoders.data import load_image_data, to_float
from stage2_prior.fast_sampling import ROW_SCHEDULE_MAX_BATCH, ScheduleClock, calls_taken
from stage2_prior.pixelcnn import GatedPixelCNN
from stage2_prior.sampling import sample_codes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = os.path.join(REPO, "..", "shared", "data", "mnist")
# Per grid side: codebook size, dilation cycle that makes 8 layers cover the grid, training steps and batch.
PRIORS = {7: dict(K=64, dilation_cycle=1, steps=300, batch=64),
          16: dict(K=512, dilation_cycle=3, steps=80, batch=16),
          32: dict(K=256, dilation_cycle=4, steps=40, batch=8)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grids", type=int, nargs="+", default=[7, 16, 32], choices=sorted(PRIORS))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 64, 1000])
    parser.add_argument("--dataset_name", default=MNIST if os.path.isdir(MNIST) else "digits",
                        help="Images whose quantized grey levels train the priors (default: MNIST, else digits).")
    parser.add_argument("--cache_dir", default=os.path.join(REPO, "runs", "benchmark_priors"))
    parser.add_argument("--naive_budget_s", type=float, default=120.0,
                        help="Run naive sampling only where H*W full passes are estimated to fit this.")
    parser.add_argument("--hidden_channels", type=int, default=64)
    parser.add_argument("--num_layers", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args()


def timed(function) -> tuple[float, object]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = function()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started, result


def quantized_codes(images: torch.Tensor, side: int, num_codes: int) -> torch.Tensor:
    """uint8 images (N, 1, H, W) -> their grey levels at side x side, quantized to num_codes codes (N, side, side)."""
    resized = F.interpolate(to_float(images[:, :1]), size=(side, side), mode="area" if side <= images.shape[-1] else "bilinear")
    return (resized[:, 0] * (num_codes - 1)).round().long().clamp_(0, num_codes - 1)


def trained_prior(side: int, args, data) -> tuple[GatedPixelCNN, str]:
    """The cached prior for this grid, trained first if absent; and a line saying how good it is."""
    setting = PRIORS[side]
    folder = os.path.join(args.cache_dir, f"grid{side}_K{setting['K']}_C{args.hidden_channels}_L{args.num_layers}")
    train_codes = quantized_codes(data.train_images, side, setting["K"])
    test_codes = quantized_codes(data.test_images, side, setting["K"])
    if os.path.isfile(os.path.join(folder, "config.json")):
        prior = GatedPixelCNN.from_pretrained(folder)
        trained = "cached"
    else:
        torch.manual_seed(0)
        prior = GatedPixelCNN(num_embeddings=setting["K"], grid_height=side, grid_width=side,
                              hidden_channels=args.hidden_channels, num_layers=args.num_layers,
                              dilation_cycle=setting["dilation_cycle"])
        optimizer = torch.optim.Adam(prior.parameters(), lr=2e-3)
        generator = torch.Generator().manual_seed(0)
        started = time.perf_counter()
        for _ in range(setting["steps"]):
            batch = train_codes[torch.randint(len(train_codes), (setting["batch"],), generator=generator)]
            loss = prior.nll_bits_per_code(batch).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        prior.save_pretrained(folder)
        trained = f"trained now in {time.perf_counter() - started:.0f} s"
        prior.eval()
    with torch.inference_mode():
        test_nll = prior.nll_bits_per_code(test_codes[:256]).mean().item()
    rows, columns = prior.receptive_field
    return prior, (f"{side}x{side} prior: K={setting['K']}, {setting['steps']} steps of {setting['batch']} "
                   f"({trained}), test NLL {test_nll:.3f} bits/code vs uniform {math.log2(setting['K']):.0f}; "
                   f"sees {rows} rows up, {columns} columns aside")


def one_pass_seconds(prior: GatedPixelCNN, num_samples: int, device: str) -> float:
    codes = torch.zeros((num_samples, prior.grid_height, prior.grid_width), dtype=torch.long, device=device)
    with torch.inference_mode():
        first, _ = timed(lambda: prior(codes))
        if first > 5:  # large cases barely vary, and one more would cost as much as the fast sampler itself
            return first
        return min([first] + [timed(lambda: prior(codes))[0] for _ in range(3)])


def main() -> None:
    args = parse_args()
    data = load_image_data(args.dataset_name, max_train_samples=8192, max_test_samples=256)
    print(f"device {args.device}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}, "
          f"data {os.path.relpath(args.dataset_name) if os.path.isdir(args.dataset_name) else args.dataset_name}")
    header = (f"{'grid':>6} {'K':>4} {'n':>5} | {'1 pass s':>9} {'fast s':>8} {'fast/1 pass':>11} {'schedule':>9} | "
              f"{'naive s':>8} {'naive/fast':>10} | same codes as naive")
    lines = []
    for side in args.grids:
        prior, description = trained_prior(side, args, data)
        prior = prior.to(args.device).eval()
        print(description, flush=True)
        sample_codes(prior, 1, batch_size=1)  # warm-up: allocator, kernels
        naive_reference = None  # the largest naive run of this grid: its codes check the fast codes beyond it
        for num_samples in sorted(args.batches):
            options = dict(seed=0, batch_size=num_samples)
            one_pass = one_pass_seconds(prior, num_samples, args.device)
            if num_samples <= ROW_SCHEDULE_MAX_BATCH:  # past the trial calls: the timed calls take the schedule chosen
                for _ in range(2 * (1 + ScheduleClock.TRIAL_CALLS)):
                    sample_codes(prior, num_samples, **options)
            taken_before = calls_taken(prior)
            fast_s, fast = timed(lambda: sample_codes(prior, num_samples, **options, method="fast"))
            if fast_s < 5:  # short runs vary with the machine's load: best of three, as for the one pass
                fast_s = min([fast_s] + [timed(lambda: sample_codes(prior, num_samples, **options))[0] for _ in range(2)])
            naive_text = f"{'skipped':>8} {'':>10}"
            if side * side * one_pass <= args.naive_budget_s:
                naive_s, naive_reference = timed(lambda: sample_codes(prior, num_samples, **options, method="naive"))
                naive_text = f"{naive_s:>8.2f} {naive_s / fast_s:>9.1f}x"
            if naive_reference is None:
                same = "not checked (no naive run fits the budget)"
            else:
                checked = min(num_samples, len(naive_reference))
                equal = (fast[:checked] == naive_reference[:checked]).flatten(1).all(1).sum().item()
                same = f"{equal}/{checked} samples" + (f" (the first {checked})" if checked < num_samples else "")
            taken = calls_taken(prior) - taken_before
            by_rows, total = taken["rows"], taken.total()
            schedule = "positions" if by_rows == 0 else "rows" if by_rows == total else f"{by_rows}/{total} rows"
            line = (f"{side}x{side:<3} {prior.num_embeddings:>4} {num_samples:>5} | {one_pass:>9.4f} {fast_s:>8.3f} "
                    f"{fast_s / one_pass:>10.2f}x {schedule:>9} | {naive_text} | {same}")
            lines.append(line)
            print(line, flush=True)
    print()
    print(header)
    print("-" * len(header))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
