"""CIFAR-10 with the README's colour recipe: a VQ-VAE with an 8x8 grid of K=512 codes, then the gated PixelCNN
over its codes, both by the project's own train scripts. Prints the test reconstruction PSNR and MSE, the
codebook use, the prior's test bits/code beside uniform's log2 K, and the wall time of each step.

    python benchmarks/cifar10.py                                   # ../shared/data/cifar10, the recipe
    python benchmarks/cifar10.py --max_train_steps 300 --prior_epochs 1   # a shorter run

PSNR is 10 log10(1 / MSE) per test image (pixels in [0, 1]), averaged over the first --num_test_images test images.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # runnable as a script

import torch

from stage1_autoencoders import VQVAE
from stage1_autoencoders.data import load_image_data, to_float
from stage1_autoencoders.train import main as train_stage1
from stage2_prior.train import main as train_prior

CIFAR10 = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data", "cifar10")
# The README's CIFAR-10 recipe (section "Colour images"): 32x32 -> 8x8 codes, K=512.
VQVAE_RECIPE = ["--downsampling_factor", "4", "--num_embeddings", "512", "--likelihood", "gaussian", "--random_flip"]
PRIOR_RECIPE = ["--hidden_channels", "128", "--num_layers", "12"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_name", default=os.path.normpath(CIFAR10), help="CIFAR-10 in the Hub's layout (uoft-cs/cifar10).")
    parser.add_argument("--output_dir", default="runs/cifar10", help="Where both runs go (vqvae/, pixelcnn/).")
    parser.add_argument("--max_train_steps", type=int, default=600, help="VQ-VAE optimizer steps.")
    parser.add_argument("--train_batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--hidden_channels", type=int, nargs="+", default=[64, 128], help="VQ-VAE widths per level.")
    parser.add_argument("--num_res_blocks", type=int, default=2, help="VQ-VAE residual blocks per level.")
    parser.add_argument("--embedding_dim", type=int, default=64, help="VQ-VAE code vector size.")
    parser.add_argument("--prior_epochs", type=int, default=2, help="PixelCNN epochs over the training codes (0: none).")
    parser.add_argument("--num_test_images", type=int, default=2000, help="Test images the PSNR is measured on.")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


@torch.no_grad()
def reconstruction_scores(vqvae: VQVAE, images: torch.Tensor, batch_size: int = 250) -> dict:
    """Per-image MSE and PSNR (pixels in [0, 1]) and the share of the K codes the test images use."""
    mse, used = [], torch.zeros(vqvae.num_embeddings, dtype=torch.bool)
    for batch in images.split(batch_size):
        x = to_float(batch)
        codes = vqvae.encode_to_indices(x)
        used[codes.unique()] = True
        mse.append((vqvae.decode_indices(codes) - x).pow(2).flatten(1).mean(1))
    mse = torch.cat(mse)
    return {"psnr_db": (10 * torch.log10(1 / mse.clamp(min=1e-10))).mean().item(), "mse": mse.mean().item(),
            "codebook_usage": used.float().mean().item()}


def main(argv=None) -> None:
    args = parse_args(argv)
    vqvae_dir, prior_dir = os.path.join(args.output_dir, "vqvae"), os.path.join(args.output_dir, "pixelcnn")
    common = ["--seed", str(args.seed), "--checkpointing_steps", "100000", "--eval_batch_size", "500"]

    started = time.time()
    train_stage1(["--model", "vqvae", "--dataset_name", args.dataset_name, *VQVAE_RECIPE, *common,
                  "--hidden_channels", *map(str, args.hidden_channels), "--num_res_blocks", str(args.num_res_blocks),
                  "--embedding_dim", str(args.embedding_dim),
                  "--max_eval_samples", str(args.num_test_images), "--max_train_steps", str(args.max_train_steps),
                  "--train_batch_size", str(args.train_batch_size), "--learning_rate", str(args.learning_rate),
                  "--output_dir", vqvae_dir])
    stage1_seconds = time.time() - started
    vqvae = VQVAE.from_pretrained(vqvae_dir).eval()
    test = load_image_data(args.dataset_name, max_train_samples=1, max_test_samples=args.num_test_images).test_images
    scores = reconstruction_scores(vqvae, test)

    prior_bits, prior_seconds = None, 0.0
    if args.prior_epochs > 0:
        started = time.time()
        train_prior(["--vqvae", vqvae_dir, *PRIOR_RECIPE, *common, "--num_train_epochs", str(args.prior_epochs),
                     "--output_dir", prior_dir])  # the data: the VQ-VAE run's own, as it recorded
        prior_seconds = time.time() - started
        with open(os.path.join(prior_dir, "training_info.json")) as file:
            prior_bits = json.load(file)["final_metrics"]["test/nll_bits_per_code"]

    with open(os.path.join(vqvae_dir, "training_info.json")) as file:
        steps = json.load(file)["steps"]
    side = vqvae.latent_grid_size[0]
    print(f"\nCIFAR-10 ({args.dataset_name}), VQ-VAE {side}x{side} codes, K={vqvae.num_embeddings}, {steps} steps of "
          f"{args.train_batch_size}, seed {args.seed}; test: first {len(test)} test images")
    print(f"{'step':<34} {'result':>34} {'wall time':>10}")
    print(f"{'VQ-VAE reconstruction':<34} {scores['psnr_db']:>20.2f} dB PSNR   {stage1_seconds / 60:>7.1f} min")
    print(f"{'  MSE per pixel / codes used':<34} {scores['mse']:>20.5f} / {scores['codebook_usage']:>6.1%}")
    if prior_bits is not None:
        uniform = math.log2(vqvae.num_embeddings)
        print(f"{'PixelCNN test NLL (uniform: log2 K)':<34} {prior_bits:>14.3f} ({uniform:.3f}) bits/code "
              f"{prior_seconds / 60:>5.1f} min")
    print(f"total {(stage1_seconds + prior_seconds) / 60:.1f} min; command: python benchmarks/cifar10.py "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}")


if __name__ == "__main__":
    main()
