"""Naive vs fast sampling from the gated PixelCNN, side by side, for the MNIST grid (7x7) and a 32x32 grid.

    python benchmarks/pixelcnn_sampling.py                    # random weights: time does not depend on them
    python benchmarks/pixelcnn_sampling.py --prior runs/prior  # a trained prior (its grid replaces 7x7)

Naive sampling runs the whole network once per position (H*W full passes); fast sampling caches each layer's
inputs and computes one row of the vertical stack and one position of the horizontal stack at a time. Both use
the same Gumbel noise, so the benchmark also checks that they return the same codes. "fast / 1 pass" compares
fast sampling with a single forward pass over the whole batch: close to 1 is the goal, in arithmetic; per-position
kernel launches add overhead on top.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # runnable as a script

import torch

from stage2_prior.pixelcnn import GatedPixelCNN
from stage2_prior.sampling import sample_codes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", default=None, help="A trained GatedPixelCNN (folder or Hub id) for the first row.")
    parser.add_argument("--prior_samples", type=int, default=64, help="Samples for the --prior row.")
    parser.add_argument("--grids", type=int, nargs="+", default=[7, 32], help="Square grid sides (random weights).")
    parser.add_argument("--num_samples", type=int, nargs="+", default=[64, 1],
                        help="Samples per grid, one per --grids entry (naive 32x32 sampling takes minutes on a CPU).")
    parser.add_argument("--hidden_channels", type=int, default=64)
    parser.add_argument("--num_layers", type=int, default=8)
    parser.add_argument("--num_embeddings", type=int, default=64)
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


def main() -> None:
    args = parse_args()
    if len(args.num_samples) != len(args.grids):
        raise SystemExit(f"--num_samples needs one count per --grids entry ({len(args.grids)}).")
    cases = []
    if args.prior:
        cases.append((GatedPixelCNN.from_pretrained(args.prior), args.prior_samples, f"trained {args.prior}"))
    for side, num_samples in zip(args.grids, args.num_samples):
        torch.manual_seed(0)
        prior = GatedPixelCNN(num_embeddings=args.num_embeddings, grid_height=side, grid_width=side,
                              hidden_channels=args.hidden_channels, num_layers=args.num_layers)
        cases.append((prior, num_samples, "random weights"))

    print(f"device {args.device}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}")
    header = f"{'grid':>6} {'K':>4} {'C':>4} {'L':>3} {'n':>4} | {'1 pass s':>9} {'naive s':>9} {'fast s':>8} " \
             f"{'naive/fast':>10} {'fast/1 pass':>11} | {'naive samples/s':>15} {'fast samples/s':>14} | same codes  prior"
    print(header)
    print("-" * len(header))
    for prior, num_samples, what in cases:
        prior = prior.to(args.device).eval()
        labels = 0 if prior.conditional else None
        options = dict(seed=0, labels=labels, batch_size=num_samples)
        sample_codes(prior, 1, **options, method="fast")  # warm-up: allocator, kernels
        codes = torch.zeros((num_samples, prior.grid_height, prior.grid_width), dtype=torch.long, device=args.device)
        one_pass_labels = None if labels is None else torch.zeros(num_samples, dtype=torch.long, device=args.device)
        with torch.inference_mode():
            one_pass = min(timed(lambda: prior(codes, one_pass_labels))[0] for _ in range(3))
        naive_s, naive = timed(lambda: sample_codes(prior, num_samples, **options, method="naive"))
        fast_s, fast = timed(lambda: sample_codes(prior, num_samples, **options, method="fast"))
        grid = f"{prior.grid_height}x{prior.grid_width}"
        layers = len(prior.layers)
        print(f"{grid:>6} {prior.num_embeddings:>4} {prior.hidden_channels:>4} {layers:>3} {num_samples:>4} | "
              f"{one_pass:>9.4f} {naive_s:>9.2f} {fast_s:>8.3f} {naive_s / fast_s:>9.1f}x {fast_s / one_pass:>10.1f}x | "
              f"{num_samples / naive_s:>15.3g} {num_samples / fast_s:>14.3g} | {str(torch.equal(naive, fast)):>10}  {what}")


if __name__ == "__main__":
    main()
