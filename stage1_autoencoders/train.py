"""Trains an autoencoder (stage 1) with Accelerate, unchanged on CPU, one or many GPUs and machines.

    accelerate launch stage1_autoencoders/train.py --model vqvae --dataset_name ylecun/mnist --output_dir runs/vqvae

Every epoch: test loss, reconstructions (and for VAEs samples from N(0, I)) as PNG. Every --checkpointing_steps:
the full training state. At the end: the model as config.json + model.safetensors, loadable with from_pretrained.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # runnable as a script

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, set_seed
from torchvision.utils import save_image
from tqdm.auto import tqdm

from stage1_autoencoders import MODELS
from stage1_autoencoders.data import load_image_data, to_float
from training.arguments import add_data_arguments, add_training_arguments, check_training_arguments
from training.batches import make_dataloader
from training.checkpoints import resolve_checkpoint, save_checkpoint
from training.guards import check_finite
from training.run_info import write_training_info
from training.schedules import get_scheduler

logger = get_logger(__name__)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=sorted(MODELS), help="Which autoencoder to train.")
    model = parser.add_argument_group("model")
    model.add_argument("--hidden_channels", type=int, nargs="+", default=[32, 64],
                       help="Channels per encoder level; each level halves the image side.")
    model.add_argument("--latent_dim", type=int, default=16, help="AE / VAE / β-VAE latent size.")
    model.add_argument("--likelihood", default="bernoulli", choices=["bernoulli", "gaussian"],
                       help="Reconstruction likelihood: Bernoulli for images in [0, 1], or Gaussian (MSE).")
    model.add_argument("--beta", type=float, default=4.0, help="β-VAE: weight of the KL term.")
    model.add_argument("--kl_warmup_steps", type=int, default=0, help="β-VAE: ramp β up linearly over N steps.")
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
    args = parser.parse_args(argv)
    check_training_arguments(args)
    return args


def build_model(args, image_size: int, channels: int):
    common = dict(image_size=image_size, in_channels=channels, hidden_channels=tuple(args.hidden_channels),
                  likelihood=args.likelihood)
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


@torch.no_grad()
def evaluate(model, test_loader, accelerator) -> dict[str, float]:
    """Mean loss terms over the test split, and for the VQ-VAE codebook usage and perplexity, over all ranks."""
    model.eval()
    sums, count, code_counts = {}, torch.zeros((), device=accelerator.device), None
    for (images, _labels) in test_loader:
        x = to_float(images)
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
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=args.report_to,
        project_config=ProjectConfiguration(project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, args.logging_dir)),
    )
    set_seed(args.seed)

    data = load_image_data(args.dataset_name, args.train_data_dir, args.image_column, args.label_column,
                           args.resolution, seed=args.seed, max_train_samples=args.max_train_samples,
                           max_test_samples=args.max_eval_samples)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = build_model(args, data.resolution, data.channels).to(memory_format=memory_format)
    labels_or_index = data.train_labels if data.train_labels is not None else torch.zeros(len(data.train_images), dtype=torch.long)
    train_loader = make_dataloader(data.train_images, labels_or_index, batch_size=args.train_batch_size, seed=args.seed)
    test_labels = data.test_labels if data.test_labels is not None else torch.zeros(len(data.test_images), dtype=torch.long)
    test_loader = make_dataloader(data.test_images, test_labels, batch_size=args.eval_batch_size, shuffle=False)

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  weight_decay=args.adam_weight_decay)
    steps_per_epoch = math.ceil(len(train_loader) / accelerator.num_processes / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    scheduler = get_scheduler(args.lr_scheduler, optimizer, args.lr_warmup_steps, max_train_steps)
    model, optimizer, train_loader, test_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, test_loader, scheduler)

    if accelerator.is_main_process:
        os.makedirs(os.path.join(args.output_dir, "samples"), exist_ok=True)
        accelerator.init_trackers("twostage-stage1", config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))})

    global_step, first_epoch, batches_to_skip = 0, 0, 0
    resume = resolve_checkpoint(args.output_dir, args.resume_from_checkpoint)
    if resume is not None:
        path, global_step = resume
        accelerator.print(f"Resuming from {path} (step {global_step})")
        accelerator.load_state(path)
        first_epoch = global_step // steps_per_epoch
        batches_to_skip = (global_step % steps_per_epoch) * args.gradient_accumulation_steps

    logger.info(f"{args.model}: {sum(p.numel() for p in model.parameters()):,} parameters, {len(data.train_images):,} "
                f"training images, {max_train_steps} steps, {accelerator.num_processes} process(es)", main_process_only=True)
    progress = tqdm(total=max_train_steps, initial=global_step, disable=not accelerator.is_local_main_process, desc=args.model)
    started = time.time()
    metrics: dict[str, float] = {}
    for epoch in range(first_epoch, num_epochs):
        epoch_loader = train_loader
        if epoch == first_epoch and batches_to_skip:
            epoch_loader = accelerator.skip_first_batches(train_loader, batches_to_skip)
        epoch_loader.set_epoch(epoch)  # the data order of this epoch, the same in a resumed run
        code_counts = None
        for images, _labels in epoch_loader:
            with accelerator.accumulate(model):
                out = model(to_float(images).contiguous(memory_format=memory_format), step=global_step)
                loss = accelerator.reduce(out.loss.detach().float(), "mean")
                check_finite(loss, global_step, args.output_dir)
                accelerator.backward(out.loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            if out.code_counts is not None:
                code_counts = out.code_counts if code_counts is None else code_counts + out.code_counts
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            progress.update(1)
            logs = {"train/loss": loss.item(), "lr": scheduler.get_last_lr()[0]}
            logs.update({f"train/{k}": v.item() for k, v in out.terms.items()})
            progress.set_postfix(loss=f"{logs['train/loss']:.3f}")
            accelerator.log(logs, step=global_step)
            if global_step % args.checkpointing_steps == 0:
                save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
                if args.push_checkpoints_to_hub and accelerator.is_main_process:
                    from hub.push import push_checkpoint
                    push_checkpoint(os.path.join(args.output_dir, "checkpoints", f"checkpoint-{global_step}"), args.hub_model_id, private=args.hub_private)
            if global_step >= max_train_steps:
                break

        metrics = evaluate(model, test_loader, accelerator)
        if code_counts is not None:
            metrics.update(codebook_statistics(accelerator.reduce(code_counts, "sum"), prefix="train/"))
        metrics["epoch"] = epoch
        accelerator.log(metrics, step=global_step)
        if accelerator.is_main_process:
            progress.write(f"epoch {epoch}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        if accelerator.is_main_process:
            save_epoch_images(accelerator.unwrap_model(model), data.test_images, os.path.join(args.output_dir, "samples"), epoch, args.seed)
        if global_step >= max_train_steps:
            break

    progress.close()
    checksums = accelerator.gather(weights_checksum(accelerator.unwrap_model(model), accelerator.device)).tolist()
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(model)
        final.save_pretrained(args.output_dir)
        save_final_samples(final, data.test_images, args.output_dir, args.seed)
        metrics["weights_checksum_per_rank"] = checksums
        write_training_info(args, accelerator, global_step, time.time() - started, metrics, model=args.model,
                            dataset=data.info, num_train_images=len(data.train_images), num_test_images=len(data.test_images))
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
