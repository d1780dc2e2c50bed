"""Stage-1 training throughput (images/s) of every autoencoder on MNIST, through train.py's own training step.

    python benchmarks/stage1_throughput.py                       # ae, vae, beta_vae, vqvae on the CPU
    python benchmarks/stage1_throughput.py --threads 2 --device cuda --batch_size 256

Each model trains as stage1_autoencoders/train.py trains it (benchmarks/stage1_loop.py): the same model
construction and defaults, AdamW, the uint8 batches of training/batches.py, Accelerate's step. Three variants of
the step side by side:
  eager           NCHW tensors, no compilation (train.py --no-channels_last);
  channels_last   weights and batches in NHWC order, oneDNN's preferred layout (train.py's default);
  compiled        channels_last and torch.compile (inductor), as `accelerate launch --dynamo_backend inductor` does.
The variants take turns in short rounds, so a change in the machine's load hits all of them alike; the first
--warmup_steps steps of each (compilation included) and the first step of each round are not timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # runnable as a script

import torch
from accelerate import Accelerator

from stage1_autoencoders import MODELS
from stage1_autoencoders.data import load_image_data
from stage1_loop import Stage1Loop, stage1_arguments

MNIST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data", "mnist")
VARIANTS = {  # name: (train.py flags, torch.compile)
    "eager": (["--no-channels_last"], False), "channels_last": (["--channels_last"], False), "compiled": (["--channels_last"], True),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_name", default=os.path.normpath(MNIST), help="MNIST in the Hub's parquet layout.")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--batch_size", type=int, default=64, help="train.py's --train_batch_size (its default: 64).")
    parser.add_argument("--steps", type=int, default=40, help="Timed steps per model and variant, over all rounds.")
    parser.add_argument("--rounds", type=int, default=4, help="The variants take turns this many times.")
    parser.add_argument("--warmup_steps", type=int, default=5, help="Untimed steps first (compilation happens here).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not os.path.isdir(args.dataset_name):
        raise SystemExit(
            f"MNIST is not at {args.dataset_name}. This benchmark measures MNIST throughput; give a local copy in the "
            f"Hub's parquet layout with --dataset_name (the project keeps one at ../shared/data/mnist)."
        )
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no CUDA device; run with --device cpu.")
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_image_data(args.dataset_name)
    accelerator = Accelerator(cpu=args.device == "cpu")
    per_round = max(1, args.steps // args.rounds)
    print(f"MNIST {len(data.train_images):,} training images, batch {args.batch_size}, {per_round * args.rounds} timed "
          f"steps per variant in {args.rounds} rounds after {args.warmup_steps} warm-up steps; device {accelerator.device}, "
          f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
    header = f"{'model':<9}" + "".join(f"{name + ' img/s':>21}" for name in args.variants)
    header += "".join(f"{name + ' / eager':>22}" for name in args.variants if name != "eager")
    print(header)
    print("-" * len(header))
    for model in args.models:
        loops = {}
        for name in args.variants:
            flags, compile = VARIANTS[name]
            train_args = stage1_arguments(model, args.batch_size, 1e-3, args.seed, *flags)
            loops[name] = Stage1Loop(train_args, data, accelerator, compile=compile, warmup_steps=args.warmup_steps)
        for loop in loops.values():
            loop.train_steps(args.warmup_steps + 1)
        rates = {name: [] for name in loops}
        for _ in range(args.rounds):
            for name, loop in loops.items():
                before = (loop.clock.items, loop.clock.seconds)
                loop.train_steps(per_round + 1, paused=True)  # +1: the first step after a pause is not timed
                rates[name].append((loop.clock.items - before[0]) / (loop.clock.seconds - before[1]))
        rate = {name: statistics.median(values) for name, values in rates.items()}
        line = f"{model:<9}" + "".join(f"{rate[name]:>21.0f}" for name in args.variants)
        if "eager" in rate:
            line += "".join(f"{rate[name] / rate['eager']:>21.2f}x" for name in args.variants if name != "eager")
        print(line, flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}; each figure is the median of the rounds.")


if __name__ == "__main__":
    main()
