"""Fits a Gaussian mixture prior to the latents of a trained AE, VAE or β-VAE, and saves it as a model folder.

    python -m stage2_prior.fit_mixture --autoencoder runs/vae --n_components 10 --output_dir runs/vae-gmm

Writes config.json (naming the autoencoder) + model.safetensors, loadable with MixturePrior.from_pretrained or
hub.from_pretrained; samples.png (mixture samples, decoded) beside samples_standard_normal.png (N(0, I), the
baseline); training_info.json with the mean log-likelihood of the test latents under both priors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # runnable as a script

import torch
from torchvision.utils import save_image
from tqdm.auto import tqdm

from stage1_autoencoders.data import to_float
from stage2_prior.mixture_prior import COVARIANCE_TYPES, MixturePrior, sample_images
from stage2_prior.stage1_runs import load_data_for, load_stage1_model
from training.arguments import add_data_arguments

NUM_SAMPLES_SHOWN = 64
CONTINUOUS_TYPES = ("ae", "vae", "beta_vae")
FIT_TO = ("posterior_samples", "means")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--autoencoder", required=True, help="The trained AE, VAE or β-VAE: a run folder or a Hub id.")
    parser.add_argument("--autoencoder_revision", default=None, help="Hub revision of --autoencoder.")
    parser.add_argument("--n_components", type=int, default=10, help="Gaussians in the mixture.")
    parser.add_argument("--covariance_type", default="full", choices=COVARIANCE_TYPES, help="scikit-learn's covariance_type.")
    parser.add_argument("--fit_to", default="posterior_samples", choices=FIT_TO,
                        help="Fit a (β-)VAE's mixture to one draw from q(z | x) per image, the aggregate posterior "
                             "that the decoder was trained on (default), or to the posterior means. The means "
                             "shrink toward 0 where the posterior is wide (large β), so a mixture fitted to them "
                             "samples latents the decoder rarely saw; for a plain AE both are its deterministic latents.")
    parser.add_argument("--max_iter", type=int, default=200, help="EM iterations at most.")
    parser.add_argument("--output_dir", default="runs/mixture_prior")
    parser.add_argument("--batch_size", type=int, default=256, help="Batch size for embedding the images.")
    parser.add_argument("--seed", type=int, default=0, help="Seeds EM's initialisation and the samples.")
    parser.add_argument("--push_to_hub", action="store_true", help="Push the fitted prior to --hub_model_id.")
    parser.add_argument("--hub_model_id", default=None)
    parser.add_argument("--hub_private", action="store_true")
    add_data_arguments(parser, from_stage1_run=True)
    # By default, the dataset the autoencoder was trained on (its training_info.json names it).
    parser.set_defaults(dataset_name=None)
    args = parser.parse_args(argv)
    if args.push_to_hub and not args.hub_model_id:
        raise SystemExit("--push_to_hub needs --hub_model_id (for example --hub_model_id your-name/mnist-vae-gmm).")
    return args


@torch.no_grad()
def latents_of(model, images: torch.Tensor, batch_size: int, description: str, fit_to: str = "posterior_samples",
               seed: int = 0) -> torch.Tensor:
    """uint8 images -> latents (N, D) on the CPU: one seeded draw from q(z | x) per image ("posterior_samples"),
    or the posterior means ("means"). For a plain AE the two are the same deterministic latents."""
    if fit_to not in FIT_TO:
        raise ValueError(f"fit_to={fit_to!r}: choose one of {FIT_TO}.")
    device = next(model.parameters()).device
    if fit_to == "means":
        encode = model.embed
    else:
        generator = torch.Generator(device).manual_seed(seed)
        encode = lambda x: model.sample_posterior(x, generator)  # noqa: E731  (one generator across the batches)
    batches = tqdm(images.split(batch_size), desc=description, disable=None)
    return torch.cat([encode(to_float(batch).to(device)).cpu() for batch in batches])


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    autoencoder, (autoencoder_id, autoencoder_revision) = load_stage1_model(
        args.autoencoder, args.autoencoder_revision, CONTINUOUS_TYPES, "--autoencoder",
        "A VQ-VAE's prior is a gated PixelCNN: accelerate launch stage2_prior/train.py --vqvae ...",
    )
    autoencoder.to(device)
    data = load_data_for(autoencoder, args, args.autoencoder, args.autoencoder_revision)
    started = time.time()
    train_latents = latents_of(autoencoder, data.train_images, args.batch_size, "encoding train split", args.fit_to, args.seed)
    test_latents = latents_of(autoencoder, data.test_images, args.batch_size, "encoding test split", args.fit_to, args.seed + 1)
    print(f"fitting {args.n_components} Gaussians ({args.covariance_type} covariances) to {len(train_latents):,} latents")
    prior = MixturePrior.fit(train_latents, args.n_components, args.covariance_type, seed=args.seed, max_iter=args.max_iter,
                             autoencoder_id=autoencoder_id, autoencoder_revision=autoencoder_revision)

    standard_normal = torch.distributions.Normal(0.0, 1.0)
    metrics = {
        "test/latent_log_likelihood_mixture": prior.log_prob(test_latents).mean().item(),
        "test/latent_log_likelihood_standard_normal": standard_normal.log_prob(test_latents).sum(-1).mean().item(),
        "train/latent_log_likelihood_mixture": prior.log_prob(train_latents).mean().item(),
    }
    print("mean log-likelihood of the test latents (nats): "
          f"mixture {metrics['test/latent_log_likelihood_mixture']:.3f}, "
          f"N(0, I) {metrics['test/latent_log_likelihood_standard_normal']:.3f}")

    os.makedirs(args.output_dir, exist_ok=True)
    prior.save_pretrained(args.output_dir)
    with torch.no_grad():
        save_image(sample_images(prior.to(device), autoencoder, NUM_SAMPLES_SHOWN, seed=args.seed),
                   os.path.join(args.output_dir, "samples.png"), nrow=8)
        z = torch.randn(NUM_SAMPLES_SHOWN, autoencoder.latent_dim, generator=torch.Generator().manual_seed(args.seed))
        save_image(autoencoder.decode(z.to(device)), os.path.join(args.output_dir, "samples_standard_normal.png"), nrow=8)
    info = {
        "model": MixturePrior.model_type,
        "autoencoder": args.autoencoder,
        "dataset": data.info,
        "num_train_images": len(train_latents),
        "num_test_images": len(test_latents),
        "n_components": args.n_components,
        "covariance_type": args.covariance_type,
        "fit_to": args.fit_to,
        "device": device,
        "seed": args.seed,
        "wall_time_seconds": round(time.time() - started, 1),
        "final_metrics": metrics,
    }
    with open(os.path.join(args.output_dir, "training_info.json"), "w") as f:
        json.dump(info, f, indent=2)
    if args.push_to_hub:
        from hub.push import push_run_folder
        push_run_folder(args.output_dir, args.hub_model_id, private=args.hub_private)


if __name__ == "__main__":
    main()
