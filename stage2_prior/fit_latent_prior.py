"""Trains a learned prior over the latents of an AE, VAE or β-VAE with Accelerate: a normalizing flow (MAF or
neural spline flow, on zuko) or the second VAE of the two-stage VAE (Dai & Wipf 2019).

    accelerate launch stage2_prior/fit_latent_prior.py --autoencoder runs/vae --prior maf --output_dir runs/vae-maf

The prior is fitted to the aggregate posterior: the training images are encoded once into the means and standard
deviations of q(z | x), and every batch draws fresh latents from them (a plain AE's latents are deterministic).
Checkpoints, resuming, progress and the NaN guard are train.py's. At the end: config.json (naming the autoencoder)
+ model.safetensors, loadable with from_pretrained; samples.png beside samples_standard_normal.png;
training_info.json with the test latents' mean log-likelihood under the prior (flows) and under N(0, I).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # runnable as a script

import torch
from accelerate.logging import get_logger
from torchvision.utils import save_image

from stage1_autoencoders.data import to_float
from stage2_prior.flow_prior import FlowPrior, sample_images
from stage2_prior.stage1_runs import load_data_for, load_stage1_model, stage1_weights
from stage2_prior.two_stage_vae import TwoStageVAEPrior
from training.arguments import HelpFormatter, add_data_arguments, add_training_arguments, parse_training_arguments
from training.batches import make_dataloader
from training.checkpoints import save_checkpoint
from training.ema import EMA_FLAGS, WeightAverage, averaged
from training.runs import epoch_batches, resume_run, start_run
from training.progress import Progress
from training.run_info import write_training_info
from training.schedules import get_training_scheduler
from training.step import training_step

logger = get_logger(__name__)
NUM_SAMPLES_SHOWN = 64
CONTINUOUS_TYPES = ("ae", "vae", "beta_vae", "vamp_vae")
PRIORS = ("maf", "nsf", "two_stage_vae")
# A resumed run must have the checkpoint's values of these; the others (learning rate, steps, ...) may change.
# The autoencoder is compared by its weights (stage1_weights), under STAGE1_WEIGHTS, not by the spelling of the flag.
STAGE1_WEIGHTS = "autoencoder (its weights)"
RUN_DEFINING_FLAGS = ("prior", "hidden_features", "transforms", "bins",
                      "dataset_name", "train_data_dir", "split_seed", "seed", *EMA_FLAGS)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--autoencoder", required=True, help="The trained AE, VAE or β-VAE: a run folder or a Hub id.")
    parser.add_argument("--autoencoder_revision", default=None, help="Hub revision of --autoencoder.")
    model = parser.add_argument_group("prior")
    model.add_argument("--prior", default="maf", choices=PRIORS,
                       help="maf: masked autoregressive flow; nsf: neural spline flow; two_stage_vae: a second VAE.")
    model.add_argument("--hidden_features", type=int, nargs="+", default=[128, 128],
                       help="Hidden layer widths (of each flow transform's network, or of the second VAE's MLPs).")
    model.add_argument("--transforms", type=int, default=3, help="Flows: number of autoregressive transforms.")
    model.add_argument("--bins", type=int, default=8, help="Neural spline flow: spline bins per dimension.")
    model.add_argument("--encode_batch_size", type=int, default=256, help="Batch size for encoding the images.")
    add_data_arguments(parser, from_stage1_run=True)
    add_training_arguments(parser, default_output_dir="runs/latent_prior")
    parser.set_defaults(train_batch_size=256, num_train_epochs=20)
    args = parse_training_arguments(parser, argv)
    return args


def build_prior(args, latent_dim: int, autoencoder_id: str, autoencoder_revision: str | None):
    reference = dict(autoencoder_id=autoencoder_id, autoencoder_revision=autoencoder_revision)
    if args.prior == "two_stage_vae":
        return TwoStageVAEPrior(latent_dim, tuple(args.hidden_features), **reference)
    return FlowPrior(latent_dim, args.prior, args.transforms, tuple(args.hidden_features), args.bins, **reference)


@torch.no_grad()
def posterior_parameters(model, images: torch.Tensor, batch_size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images -> the means and standard deviations of q(z | x), (N, D) each on the CPU (std 0 for an AE)."""
    means, stds = [], []
    for batch in images.split(batch_size):
        encoded = model.encode(to_float(batch).to(device))
        mean, logvar = encoded if isinstance(encoded, tuple) else (encoded, None)
        means.append(mean.float().cpu())
        stds.append(torch.zeros_like(means[-1]) if logvar is None else (0.5 * logvar.float()).exp().cpu())
    return torch.cat(means), torch.cat(stds)


def draw_latents(means: torch.Tensor, stds: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    noise = torch.randn(means.shape, generator=generator, device=generator.device if generator else means.device)
    return means + stds * noise.to(means.device)


@torch.no_grad()
def mean_log_likelihood(prior, latents: torch.Tensor, batch_size: int = 1024) -> float | None:
    """The test latents' mean log p(z) in nats, for a prior with an exact density (None for the two-stage VAE)."""
    if not hasattr(prior, "log_prob"):
        return None
    return torch.cat([prior.log_prob(batch) for batch in latents.split(batch_size)]).mean().item()


def train_step(accelerator, prior, optimizer, scheduler, means: torch.Tensor, stds: torch.Tensor, max_grad_norm: float,
               step: int, output_dir: str):
    """One micro-batch: fresh latents from q(z | x), then -log p(z) (or the second VAE's negative ELBO) in nats."""
    def forward():
        return prior(draw_latents(means, stds)).mean(), None
    return training_step(accelerator, prior, optimizer, scheduler, forward, max_grad_norm, step, output_dir)


def main(argv=None) -> None:
    args = parse_args(argv)
    accelerator = start_run(args)
    autoencoder, (autoencoder_id, autoencoder_revision) = load_stage1_model(
        args.autoencoder, args.autoencoder_revision, CONTINUOUS_TYPES, "--autoencoder",
        "A VQ-VAE's prior is a gated PixelCNN: accelerate launch stage2_prior/train.py --vqvae ...",
    )
    autoencoder.to(accelerator.device)
    data = load_data_for(autoencoder, args, args.autoencoder, args.autoencoder_revision)
    train_means, train_stds = posterior_parameters(autoencoder, data.train_images, args.encode_batch_size, accelerator.device)
    test_means, test_stds = posterior_parameters(autoencoder, data.test_images, args.encode_batch_size, accelerator.device)
    # One seeded draw per test image: the same test latents for every prior fitted with this seed.
    test_latents = draw_latents(test_means, test_stds, torch.Generator().manual_seed(args.seed + 1))

    prior = build_prior(args, autoencoder.latent_dim, autoencoder_id, autoencoder_revision)
    prior.standardise_to(draw_latents(train_means, train_stds, torch.Generator().manual_seed(args.seed)))
    train_loader = make_dataloader(train_means, train_stds, batch_size=args.train_batch_size, seed=args.seed)
    optimizer = torch.optim.AdamW(prior.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  weight_decay=args.adam_weight_decay)
    steps_per_epoch = math.ceil(len(train_loader) / accelerator.num_processes / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    scheduler = get_training_scheduler(args, optimizer, max_train_steps, accelerator.num_processes)
    prior, optimizer, train_loader, scheduler = accelerator.prepare(prior, optimizer, train_loader, scheduler)

    run_flags = {name: getattr(args, name) for name in RUN_DEFINING_FLAGS}
    run_flags[STAGE1_WEIGHTS] = stage1_weights("--autoencoder", args.autoencoder, args.autoencoder_revision,
                                               (autoencoder_id, autoencoder_revision))
    unwrapped = accelerator.unwrap_model(prior)
    average = WeightAverage.from_args(args, unwrapped)
    resumed_from, global_step, first_epoch, batches_to_skip = resume_run(accelerator, args, run_flags, optimizer, scheduler,
                                                                         steps_per_epoch, average)
    if accelerator.is_main_process:  # after resuming: the learning rate the run goes on at
        accelerator.init_trackers("twostage-latent-prior", config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))})

    logger.info(f"{args.prior}: {sum(p.numel() for p in prior.parameters()):,} parameters, {len(train_means):,} "
                f"training latents of size {autoencoder.latent_dim}, {max_train_steps} steps", main_process_only=True)
    progress = Progress(max_train_steps, global_step, args.prior, enabled=accelerator.is_main_process)
    started = time.time()
    metrics: dict[str, float] = {}
    logs: dict[str, float] = {}
    for epoch in range(first_epoch, num_epochs):
        epoch_loader = epoch_batches(accelerator, train_loader, epoch, first_epoch, batches_to_skip)
        for means, stds in epoch_loader:
            if global_step >= max_train_steps:  # a run resumed from its final checkpoint trains no further
                break
            loss, _ = train_step(accelerator, prior, optimizer, scheduler, means, stds, args.max_grad_norm, global_step,
                                 args.output_dir)
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            if average is not None:
                average.update(unwrapped)
            logs = {"train/loss": loss.item(), "lr": scheduler.get_last_lr()[0]}
            progress.update(global_step, loss=f"{logs['train/loss']:.3f}")
            accelerator.log(logs, step=global_step)
            if global_step % args.checkpointing_steps == 0:
                save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit, run_flags,
                                args.save_on_each_node, average)
            if global_step >= max_train_steps:
                break
        unwrapped.eval()
        with averaged(average, unwrapped) as evaluated:  # the weight average, with --use_ema
            test_log_likelihood = mean_log_likelihood(evaluated, test_latents.to(accelerator.device))
        unwrapped.train()
        metrics = {"epoch": epoch, **{k: v for k, v in logs.items() if k == "train/loss"}}
        if test_log_likelihood is not None:
            metrics["test/latent_log_likelihood"] = test_log_likelihood
        accelerator.log(metrics, step=global_step)
        progress.write(f"epoch {epoch}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        if global_step >= max_train_steps:
            break

    progress.close()
    if average is not None:  # what the run saves: the weight average
        average.copy_to(unwrapped)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final = unwrapped.eval()
        final.save_pretrained(args.output_dir)
        standard_normal = torch.distributions.Normal(0.0, 1.0)
        metrics["test/latent_log_likelihood_standard_normal"] = standard_normal.log_prob(test_latents).sum(-1).mean().item()
        save_image(sample_images(final, autoencoder, NUM_SAMPLES_SHOWN, seed=args.seed),
                   os.path.join(args.output_dir, "samples.png"), nrow=8)
        z = torch.randn(NUM_SAMPLES_SHOWN, autoencoder.latent_dim, generator=torch.Generator().manual_seed(args.seed))
        save_image(autoencoder.decode(z.to(accelerator.device)), os.path.join(args.output_dir, "samples_standard_normal.png"), nrow=8)
        write_training_info(args, accelerator, global_step, time.time() - started, metrics, model=final.model_type,
                            prior=args.prior, autoencoder=args.autoencoder, dataset=data.info,
                            num_train_images=len(train_means), num_test_images=len(test_latents),
                            resumed_from_checkpoint=resumed_from)
        if args.push_to_hub:
            from hub.push import push_run_folder
            push_run_folder(args.output_dir, args.hub_model_id, private=args.hub_private)
    accelerator.end_training()


if __name__ == "__main__":
    main()
