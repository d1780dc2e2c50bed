"""The importance-weighted likelihood of a VAE (evaluation.likelihood.vae_likelihoods, k = 32), as the report
computes it now and as its first version did, in one run, on the same model, images and draws: the first version
decoded every batch's k * 64 posterior samples in one call with the weights in their contiguous order and the
decoder's last layer as a conv; the report now decodes them channels last, in chunks of a few MB
(evaluation.likelihood._decoder_chunk), and the last layer as a sum of taps (stage1_autoencoders.networks.
OutputConv2d). Prints both times, the speed-up and the largest difference between the two paths' numbers (float
rounding).

    python benchmarks/likelihood.py                       # a VAE trained here (train.py's defaults) on MNIST
    python benchmarks/likelihood.py --vae runs/mnist-vae --num_images 10000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project, for scripts in benchmarks/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the benchmarks' own modules

import torch
from accelerate import Accelerator

from evaluation import likelihood
from hub.auto import from_pretrained
from stage1_autoencoders.data import load_image_data
from stage1_autoencoders.networks import OutputConv2d
from stage1_loop import Stage1Loop, stage1_arguments

MNIST = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist"))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vae", default=None, help="A trained VAE's run folder (default: train one here).")
    parser.add_argument("--dataset_name", default=MNIST, help="Images to score (default: MNIST, local copy).")
    parser.add_argument("--train_steps", type=int, default=200, help="Steps of the VAE trained here, batch 64.")
    parser.add_argument("--num_images", type=int, default=1000, help="Test images scored.")
    parser.add_argument("--num_importance_samples", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    return parser.parse_args(argv)


@contextlib.contextmanager
def first_version(model):
    """vae_likelihoods as first written: the decoder in the weights' own memory order, all samples in one call,
    its output layer run as the conv it is (OutputConv2d's sum of taps came later)."""
    kept = likelihood._channels_last, likelihood._decoder_chunk
    output_layers = [layer for layer in model.modules() if isinstance(layer, OutputConv2d) and layer.sums_taps]
    likelihood._channels_last = contextlib.nullcontext
    likelihood._decoder_chunk = lambda model: 2**31
    for layer in output_layers:
        layer.sums_taps = False
    try:
        yield
    finally:
        likelihood._channels_last, likelihood._decoder_chunk = kept
        for layer in output_layers:
            layer.sums_taps = True


def trained_vae(args, data):
    if args.vae:
        return from_pretrained(args.vae)
    loop = Stage1Loop(stage1_arguments("vae", 64, 1e-3, 0), data, Accelerator(cpu=True))
    loop.train_steps(args.train_steps)
    return loop.trained_model.to(memory_format=torch.contiguous_format)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_image_data(args.dataset_name, max_train_samples=None if args.vae else args.train_steps * 64,
                           max_test_samples=args.num_images)
    started = time.perf_counter()
    model = trained_vae(args, data).eval()
    trained = f"{args.vae}" if args.vae else f"trained here, {args.train_steps} steps ({time.perf_counter() - started:.0f} s)"
    k = args.num_importance_samples

    timings, numbers = {}, {}
    for path, context in (("first version: contiguous, one call per batch", first_version), ("report", contextlib.nullcontext)):
        with context(model):
            started = time.perf_counter()
            numbers[path] = likelihood.vae_likelihoods(model, data.test_images, num_importance_samples=k)["N(0,I)"]
            timings[path] = time.perf_counter() - started

    before, after = numbers.values()
    difference = max(abs(before[key] - after[key]) for key in ("elbo_nats", "log_px_nats"))
    print(f"command: python benchmarks/likelihood.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"VAE: {trained}; {len(data.test_images):,} test images of {args.dataset_name}, k = {k}, batches of 64 "
          f"images; {args.threads} torch thread(s); torch {torch.__version__}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'path':<50}{'seconds':>10}{'NLL (nats)':>14}{'ELBO (nats)':>14}")
    for path in timings:
        print(f"{path:<50}{timings[path]:>10.1f}{-numbers[path]['log_px_nats']:>14.4f}{numbers[path]['elbo_nats']:>14.4f}")
    print(f"speed-up {timings[list(timings)[0]] / timings['report']:.2f}x; largest difference between the two paths "
          f"{difference:.1e} nats")


if __name__ == "__main__":
    main()
