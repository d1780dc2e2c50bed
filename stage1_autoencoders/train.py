"""Trains an autoencoder (stage 1) with Accelerate, unchanged on CPU, one or many GPUs and machines.

    accelerate launch stage1_autoencoders/train.py --model vqvae --dataset_name ylecun/mnist --output_dir runs/vqvae

Every epoch: test loss, reconstructions (and for VAEs samples from N(0, I)) as PNG. Every --checkpointing_steps:
the full training state. At the end: the model as config.json + model.safetensors, loadable with from_pretrained.
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
from accelerate.logging import get_logger
from torchvision.utils import save_image

from stage1_autoencoders import MODELS
from stage1_autoencoders.data import images_from_every_class, load_image_data, random_flip, to_float
from stage1_autoencoders.likelihoods import LIKELIHOODS, bits_per_dim, choose_likelihood
from training.arguments import HelpFormatter, add_data_arguments, add_training_arguments, parse_training_arguments
from training.batches import make_dataloader, rank_slice
from training.checkpoints import save_checkpoint
from training.ema import EMA_FLAGS, WeightAverage, averaged
from training.runs import epoch_batches, resume_run, start_run
from training.progress import Progress
from training.run_info import write_training_info
from training.schedules import get_training_scheduler
from training.step import training_step

logger = get_logger(__name__)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--model", required=True, choices=sorted(MODELS), help="Which autoencoder to train.")
    model = parser.add_argument_group("model")
    model.add_argument("--hidden_channels", type=int, nargs="+", default=[32, 64],
                       help="Channels per encoder level (a conv and --num_res_blocks residual blocks each).")
    model.add_argument("--downsampling_factor", type=int, default=None,
                       help="How much the encoder shrinks the image side (a power of two; 32x32 with 4 gives an 8x8 "
                            "code grid). Default: 2 per --hidden_channels level.")
    model.add_argument("--num_res_blocks", type=int, default=1, help="Residual blocks per level.")
    model.add_argument("--latent_dim", type=int, default=16, help="AE / VAE / β-VAE latent size.")
    model.add_argument("--likelihood", default="auto", choices=["auto", *LIKELIHOODS],
                       help="Reconstruction likelihood: Bernoulli (near-binary grey images), Gaussian with std "
                            "--observation_std (MSE), or PixelCNN++'s discretized logistic (bits/dim as the literature's "
                            "for 8-bit images). auto: Bernoulli for near-binary grey images, Gaussian otherwise "
                            "(printed, and recorded in config.json).")
    model.add_argument("--observation_std", type=float, default=0.1,
                       help="Gaussian likelihood: the std of each pixel value, on the [0, 1] scale.")
    model.add_argument("--beta", type=float, default=4.0, help="β-VAE: weight of the KL term.")
    model.add_argument("--kl_warmup_steps", type=int, default=0, help="β-VAE and VampPrior VAE: ramp the KL weight up linearly over N steps.")
    model.add_argument("--capacity_max", type=float, default=0.0,
                       help="β-VAE: Burgess et al. 2018 capacity C (nats); loss uses β·|KL − C|. 0 turns it off.")
    model.add_argument("--capacity_steps", type=int, default=0, help="β-VAE: steps over which C grows to its max.")
    model.add_argument("--num_pseudo_inputs", type=int, default=100, help="VampPrior VAE: learned pseudo-inputs K.")
    model.add_argument("--num_embeddings", type=int, default=64, help="VQ-VAE: codebook size K.")
    model.add_argument("--embedding_dim", type=int, default=16, help="VQ-VAE: code vector size D.")
    model.add_argument("--commitment_cost", type=float, default=0.25, help="VQ-VAE: β of the commitment loss.")
    model.add_argument("--ema_decay", type=float, default=0.99,
                       help="VQ-VAE: EMA codebook updates when > 0; 0 learns the codebook from the codebook loss instead.")
    model.add_argument("--kmeans_init", action=argparse.BooleanOptionalAction, default=True,
                       help="VQ-VAE: initialise the codebook by k-means on the first batch.")
    model.add_argument("--dead_code_threshold", type=float, default=1.0,
                       help="VQ-VAE: restart codes used less than this (EMA count) on encoder outputs.")
    model.add_argument("--rotation_trick", action="store_true",
                       help="VQ-VAE: pass gradients to the encoder by the rotation trick (Fifty et al. 2025), not straight-through.")
    model.add_argument("--codebook_dim", type=int, default=None,
                       help="VQ-VAE: look codes up in a projection to this many dimensions (ViT-VQGAN's factorized codes).")
    model.add_argument("--cosine_codes", action="store_true",
                       help="VQ-VAE: look codes up by cosine similarity of l2-normalised vectors (ViT-VQGAN).")
    model.add_argument("--fsq_levels", type=int, nargs="+", default=None,
                       help="VQ-VAE: finite scalar quantisation (Mentzer et al. 2023) with these levels per dimension "
                            "instead of a learned codebook, e.g. 8 5 5 5 for 1,000 codes; --num_embeddings is then ignored.")
    add_data_arguments(parser)
    add_training_arguments(parser, default_output_dir="runs/stage1")
    args = parse_training_arguments(parser, argv)
    args.split_seed = args.seed if args.split_seed is None else args.split_seed  # recorded as used, for resuming
    if args.latent_dim < 1:
        raise SystemExit(f"--latent_dim {args.latent_dim}: must be at least 1.")
    if args.num_embeddings < 2 or args.embedding_dim < 1:
        raise SystemExit(f"--num_embeddings {args.num_embeddings} --embedding_dim {args.embedding_dim}: a codebook needs "
                         f"at least 2 codes of at least 1 dimension.")
    if any(channels < 1 for channels in args.hidden_channels):
        raise SystemExit(f"--hidden_channels {' '.join(map(str, args.hidden_channels))}: every level needs at least 1 channel.")
    return args


# A resumed run must have the checkpoint's values of the flags that define its model and objective (those the
# model's config holds, the likelihood and β among them), its data and its seed. The others (learning rate, steps,
# checkpointing, evaluation) may change, and are honoured.
DATA_FLAGS = ("dataset_name", "train_data_dir", "test_data_dir", "image_column", "label_column", "resolution",
              "center_crop", "image_mode", "max_train_samples")


def run_defining_flags(args, model) -> dict:
    """The model's own values where it holds them (the likelihood that "auto" chose, say), as JSON reads them back."""
    config = model.config_dict()
    flags = {"model": args.model, **{name: config[name] for name in config if hasattr(args, name)},
             # split_seed after seed: a changed --seed, which moves the default split too, is named as --seed
             **{name: getattr(args, name) for name in (*DATA_FLAGS, *EMA_FLAGS, "seed", "split_seed")}}
    return json.loads(json.dumps(flags))


def chosen_likelihood(args, data) -> tuple[str, str]:
    """--likelihood, or for "auto" the one the training images call for, and why."""
    if args.likelihood != "auto":
        return args.likelihood, "--likelihood"
    likelihood, reason = choose_likelihood(data.train_images[:10000])
    return likelihood, f"{reason}; --likelihood sets it"


def build_model(args, data):
    common = dict(image_size=data.resolution, in_channels=data.channels, hidden_channels=tuple(args.hidden_channels),
                  likelihood=chosen_likelihood(args, data)[0], observation_std=args.observation_std,
                  downsampling_factor=args.downsampling_factor, num_res_blocks=args.num_res_blocks)
    if args.model == "vqvae":
        # With FSQ the codebook size is the product of the levels; config.json records that size.
        num_embeddings = math.prod(args.fsq_levels) if args.fsq_levels else args.num_embeddings
        return MODELS["vqvae"](**common, num_embeddings=num_embeddings, embedding_dim=args.embedding_dim,
                               commitment_cost=args.commitment_cost, ema_decay=args.ema_decay,
                               kmeans_init=args.kmeans_init, dead_code_threshold=args.dead_code_threshold,
                               rotation_trick=args.rotation_trick, codebook_dim=args.codebook_dim,
                               cosine_codes=args.cosine_codes, fsq_levels=args.fsq_levels)
    if args.model == "beta_vae":
        return MODELS["beta_vae"](**common, latent_dim=args.latent_dim, beta=args.beta, kl_warmup_steps=args.kl_warmup_steps,
                                  capacity_max=args.capacity_max, capacity_steps=args.capacity_steps)
    if args.model == "vamp_vae":
        return MODELS["vamp_vae"](**common, latent_dim=args.latent_dim, num_pseudo_inputs=args.num_pseudo_inputs,
                                  kl_warmup_steps=args.kl_warmup_steps)
    return MODELS[args.model](**common, latent_dim=args.latent_dim)


def train_step(accelerator, model, optimizer, scheduler, images: torch.Tensor, memory_format, max_grad_norm: float,
                step: int, output_dir: str, flip: bool = False):
    """One micro-batch of stage-1 training: (loss mean over ranks, the model's output)."""
    def forward():
        x = random_flip(to_float(images)) if flip else to_float(images)
        out = model(x.contiguous(memory_format=memory_format), step=step)
        return out.loss, out
    return training_step(accelerator, model, optimizer, scheduler, forward, max_grad_norm, step, output_dir)


@torch.no_grad()
def evaluate(model, test_loader, accelerator) -> dict[str, float]:
    """Mean loss terms over the test split, and for the VQ-VAE codebook usage and perplexity, over all ranks.
    `test_loader` holds this rank's slice of the test split (rank_slice), so every image counts once."""
    model.eval()
    sums, count, code_counts = {}, torch.zeros((), device=accelerator.device), None
    for (images, _labels) in test_loader:
        x = to_float(images).to(accelerator.device)
        out = model(x)
        n = torch.tensor(float(len(x)), device=accelerator.device)
        for name, value in {"loss": out.loss, **out.terms}.items():
            sums[name] = sums.get(name, 0.0) + value.detach().float() * n
        count += n
        if out.code_counts is not None:
            code_counts = out.code_counts if code_counts is None else code_counts + out.code_counts
    model.train()
    metrics = {f"test/{k}": (accelerator.reduce(v, "sum") / accelerator.reduce(count, "sum")).item() for k, v in sums.items()}
    if code_counts is not None:
        metrics.update(codebook_statistics(accelerator.reduce(code_counts, "sum"), prefix="test/"))
    return metrics


def codebook_statistics(code_counts: torch.Tensor, prefix: str) -> dict[str, float]:
    probabilities = code_counts / code_counts.sum().clamp(min=1)
    perplexity = torch.exp(-(probabilities * probabilities.clamp(min=1e-12).log()).sum())
    return {f"{prefix}codebook_usage": (code_counts > 0).float().mean().item(), f"{prefix}perplexity": perplexity.item()}


@torch.no_grad()
def save_epoch_images(model, test_images: torch.Tensor, folder: str, epoch: int, seed: int) -> None:
    """The seed's "samples generated during training": originals over reconstructions, and N(0, I) samples."""
    model.eval()
    device = next(model.parameters()).device
    originals = to_float(test_images[:32]).to(device)
    save_image(torch.cat([originals, model.reconstruct(originals)]), os.path.join(folder, f"reconstructions-epoch{epoch:03d}.png"), nrow=16)
    if hasattr(model, "sample"):
        samples = model.sample(64, generator=torch.Generator().manual_seed(seed))
        save_image(samples, os.path.join(folder, f"samples-epoch{epoch:03d}.png"), nrow=8)
    model.train()


def main(argv=None) -> None:
    args = parse_args(argv)
    accelerator = start_run(args)

    data = load_image_data(args.dataset_name, args.train_data_dir, args.image_column, args.label_column,
                           args.resolution, seed=args.split_seed, max_train_samples=args.max_train_samples,
                           max_test_samples=args.max_eval_samples, test_data_dir=args.test_data_dir,
                           center_crop=args.center_crop, image_mode=args.image_mode)
    accelerator.print("likelihood: {} ({})".format(*chosen_likelihood(args, data)))
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = build_model(args, data).to(memory_format=memory_format)
    labels_or_index = data.train_labels if data.train_labels is not None else torch.zeros(len(data.train_images), dtype=torch.long)
    train_loader = make_dataloader(data.train_images, labels_or_index, batch_size=args.train_batch_size, seed=args.seed)
    test_labels = data.test_labels if data.test_labels is not None else torch.zeros(len(data.test_images), dtype=torch.long)
    test_loader = make_dataloader(rank_slice(data.test_images, accelerator), rank_slice(test_labels, accelerator),
                                  batch_size=args.eval_batch_size, shuffle=False)

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  weight_decay=args.adam_weight_decay)
    steps_per_epoch = math.ceil(len(train_loader) / accelerator.num_processes / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    scheduler = get_training_scheduler(args, optimizer, max_train_steps, accelerator.num_processes)
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)

    if accelerator.is_main_process:
        os.makedirs(os.path.join(args.output_dir, "samples"), exist_ok=True)

    run_flags = run_defining_flags(args, accelerator.unwrap_model(model))
    average = WeightAverage.from_args(args, accelerator.unwrap_model(model))
    resumed_from, global_step, first_epoch, batches_to_skip = resume_run(accelerator, args, run_flags, optimizer, scheduler,
                                                                         steps_per_epoch, average)
    if accelerator.is_main_process:  # after resuming: the learning rate the run goes on at
        accelerator.init_trackers("twostage-stage1", config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))})

    logger.info(f"{args.model}: {sum(p.numel() for p in model.parameters()):,} parameters, {len(data.train_images):,} "
                f"training images, {max_train_steps} steps, {accelerator.num_processes} process(es)", main_process_only=True)
    progress = Progress(max_train_steps, global_step, args.model, enabled=accelerator.is_main_process)
    started = time.time()
    metrics: dict[str, float] = {}
    for epoch in range(first_epoch, num_epochs):
        epoch_loader = epoch_batches(accelerator, train_loader, epoch, first_epoch, batches_to_skip)
        code_counts = None
        for images, _labels in epoch_loader:
            if global_step >= max_train_steps:  # a run resumed from its final checkpoint trains no further
                break
            loss, out = train_step(accelerator, model, optimizer, scheduler, images, memory_format, args.max_grad_norm,
                                   global_step, args.output_dir, args.random_flip)
            if out.code_counts is not None:
                code_counts = out.code_counts if code_counts is None else code_counts + out.code_counts
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            if average is not None:
                average.update(accelerator.unwrap_model(model))
            logs = {"train/loss": loss.item(), "lr": scheduler.get_last_lr()[0]}
            logs.update({f"train/{k}": v.item() for k, v in out.terms.items()})
            progress.update(global_step, loss=f"{logs['train/loss']:.3f}")
            accelerator.log(logs, step=global_step)
            if global_step % args.checkpointing_steps == 0:
                save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit, run_flags,
                                args.save_on_each_node, average)
                if args.push_checkpoints_to_hub and accelerator.is_main_process:
                    from hub.push import push_checkpoint
                    push_checkpoint(os.path.join(args.output_dir, "checkpoints", f"checkpoint-{global_step}"), args.hub_model_id, private=args.hub_private)
            if global_step >= max_train_steps:
                break

        with averaged(average, accelerator.unwrap_model(model)) as evaluated:  # the weight average, with --use_ema
            metrics = evaluate(evaluated, test_loader, accelerator)
            if accelerator.is_main_process:
                save_epoch_images(evaluated, images_from_every_class(data, 32), os.path.join(args.output_dir, "samples"), epoch, args.seed)
        bits = bits_per_dim(metrics["test/reconstruction"], data.test_images[0].numel(), accelerator.unwrap_model(model).likelihood)
        metrics.update({} if bits is None else {"test/reconstruction_bits_per_dim": bits})  # -log2 p(x|z) per 8-bit value
        if code_counts is not None:
            metrics.update(codebook_statistics(accelerator.reduce(code_counts, "sum"), prefix="train/"))
        metrics["epoch"] = epoch
        accelerator.log(metrics, step=global_step)
        progress.write(f"epoch {epoch}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        if global_step >= max_train_steps:
            break

    progress.close()
    final = accelerator.unwrap_model(model)
    if average is not None:  # what the run saves: the weight average
        average.copy_to(final)
    if not metrics:  # resumed from a checkpoint at the last step of the last epoch: nothing left to train
        metrics = evaluate(final, test_loader, accelerator)
    checksums = accelerator.gather(weights_checksum(final, accelerator.device)).tolist()
    if accelerator.is_main_process:
        final.save_pretrained(args.output_dir)
        save_final_samples(final, images_from_every_class(data, 64), args.output_dir, args.seed)
        metrics["weights_checksum_per_rank"] = checksums
        write_training_info(args, accelerator, global_step, time.time() - started, metrics, model=args.model,
                            dataset=data.info, num_train_images=len(data.train_images), num_test_images=len(data.test_images),
                            resumed_from_checkpoint=resumed_from)
        if args.push_to_hub:
            from hub.push import push_run_folder
            push_run_folder(args.output_dir, args.hub_model_id, private=args.hub_private)
    accelerator.end_training()


def weights_checksum(model, device) -> torch.Tensor:
    """A position-weighted sum of every parameter and buffer: equal on all ranks when DDP kept them in step."""
    total = torch.zeros((), dtype=torch.float64)
    for tensor in model.state_dict().values():
        flat = tensor.detach().double().flatten().cpu()
        total += (flat * torch.linspace(1.0, 2.0, len(flat), dtype=torch.float64)).sum()
    return total.reshape(1).to(device)


def save_final_samples(model, test_images, output_dir: str, seed: int) -> None:
    """samples.png, the picture shown beside the model card: N(0, I) samples for VAEs, reconstructions otherwise."""
    model.eval()
    with torch.no_grad():
        if hasattr(model, "sample"):
            images = model.sample(64, generator=torch.Generator().manual_seed(seed))
        else:
            images = model.reconstruct(to_float(test_images[:64]).to(next(model.parameters()).device))
    save_image(images, os.path.join(output_dir, "samples.png"), nrow=8)


if __name__ == "__main__":
    main()
