"""Trains a gated PixelCNN prior over a VQ-VAE's codes (stage 2) with Accelerate, like stage1_autoencoders/train.py.

    accelerate launch stage2_prior/train.py --vqvae runs/vqvae --output_dir runs/pixelcnn [--conditional]

The dataset is encoded into code grids once (cached under --codes_cache_dir, keyed by the VQ-VAE's weights and the
images). Every epoch: the test NLL in bits per code beside the uniform prior's log2(K), and a grid of samples. At
the end: the prior as config.json (naming the VQ-VAE) + model.safetensors, loadable with from_pretrained;
samples.png (the prior's samples) beside samples_uniform.png (uniform codes, the baseline); training_info.json.
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
from accelerate.logging import get_logger
from torchvision.utils import save_image

from stage1_autoencoders.cache import cache_dir
from stage2_prior.codes import extract_codes, weights_fingerprint
from stage2_prior.pixelcnn import GatedPixelCNN
from stage2_prior.sampling import decode_codes, sample_codes, sample_uniform_codes
from stage2_prior.stage1_runs import load_data_for, load_stage1_model, stage1_weights
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


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--vqvae", required=True, help="The trained VQ-VAE: a run folder or a Hub id.")
    parser.add_argument("--vqvae_revision", default=None, help="Hub revision of --vqvae (recorded pinned to its commit).")
    model = parser.add_argument_group("prior")
    model.add_argument("--hidden_channels", type=int, default=64, help="Channels of both stacks (and the code embedding).")
    model.add_argument("--num_layers", type=int, default=8,
                       help="Gated layers; with kernel 3 each reaches one more row up and one more column each side.")
    model.add_argument("--kernel_size", type=int, default=3, help="Odd kernel width of the stacks.")
    model.add_argument("--dilation_cycle", type=int, default=1,
                       help="Layer i dilates by 2**(i mod N), as WaveNet: 1 is undilated; 3 lets 8 layers cover a 16x16 "
                            "grid, 4 most of 32x32 (the prior's receptive_field says how far it sees).")
    model.add_argument("--conditional", action="store_true", help="Condition on the dataset's class labels.")
    model.add_argument("--codes_cache_dir", default=cache_dir("codes"),
                       help="Where encoded code grids are cached ('' to encode without caching); default under $TWOSTAGE_CACHE or ~/.cache/twostage.")
    model.add_argument("--encode_batch_size", type=int, default=256, help="Batch size per device for encoding.")
    model.add_argument("--sampling_temperature", type=float, default=1.0, help="Temperature of the saved sample grids.")
    add_data_arguments(parser, from_stage1_run=True)
    add_training_arguments(parser, default_output_dir="runs/pixelcnn")
    # By default, the dataset the VQ-VAE was trained on (its training_info.json names it). The prior's learning rate
    # is 3x stage 1's: at 1e-3 it was what held the PixelCNN back on MNIST codes (README "Time to quality": pythae's
    # final sample FID 2.5x sooner than pythae at 3e-3, 1.2x at 1e-3; 2.67 against 3.05 bits/code at the end).
    parser.set_defaults(dataset_name=None, learning_rate=3e-3)
    args = parse_training_arguments(parser, argv)
    if args.hidden_channels < 1 or args.num_layers < 1 or args.kernel_size < 1 or args.kernel_size % 2 == 0:
        raise SystemExit(f"--hidden_channels {args.hidden_channels} --num_layers {args.num_layers} --kernel_size "
                         f"{args.kernel_size}: all must be at least 1, and the kernel size odd.")
    return args


# The flags that define the prior, its objective and its data: a resumed run must have the checkpoint's values.
# The VQ-VAE is compared by its weights (stage1_weights), under STAGE1_WEIGHTS, not by the spelling of --vqvae.
STAGE1_WEIGHTS = "vqvae (its weights)"
RUN_DEFINING_FLAGS = ("hidden_channels", "num_layers", "kernel_size", "dilation_cycle", "conditional",
                      "dataset_name", "train_data_dir", "image_column", "label_column", "resolution", "split_seed", "max_train_samples", "seed",
                      *EMA_FLAGS)


def train_step(accelerator, model, optimizer, scheduler, grids: torch.Tensor, labels: torch.Tensor | None,
               max_grad_norm: float, step: int, output_dir: str):
    """One micro-batch of stage-2 training: (NLL in bits per code, mean over ranks; None)."""
    def forward():
        return F.cross_entropy(model(grids, labels), grids) / math.log(2), None  # bits per code
    return training_step(accelerator, model, optimizer, scheduler, forward, max_grad_norm, step, output_dir)


@torch.no_grad()
def evaluate(model, test_loader, accelerator, conditional: bool) -> float:
    """Test NLL in bits per code, averaged over every test grid exactly once across ranks."""
    model.eval()
    nll = []
    for codes, labels in test_loader:
        nll.append(accelerator.gather_for_metrics(model.nll_bits_per_code(codes, labels if conditional else None)))
    model.train()
    return torch.cat(nll).mean().item()


@torch.no_grad()
def save_samples(prior, vqvae, path: str, seed: int, temperature: float) -> None:
    """NUM_SAMPLES_SHOWN samples decoded by the VQ-VAE; a conditional prior gets the classes in turn (one per column)."""
    labels = torch.arange(NUM_SAMPLES_SHOWN) % prior.num_classes if prior.conditional else None
    codes = sample_codes(prior, NUM_SAMPLES_SHOWN, seed=seed, temperature=temperature, labels=labels)
    nrow = prior.num_classes if prior.conditional else 8
    save_image(decode_codes(vqvae, codes), path, nrow=nrow)


def main(argv=None) -> None:
    args = parse_args(argv)
    accelerator = start_run(args)

    vqvae, (vqvae_id, vqvae_revision) = load_stage1_model(
        args.vqvae, args.vqvae_revision, ("vqvae",), "--vqvae",
        "A PixelCNN prior needs a VQ-VAE; fit a Gaussian mixture prior to an AE or VAE with python -m stage2_prior.fit_mixture.",
    )
    data = load_data_for(vqvae, args, args.vqvae, args.vqvae_revision)
    if args.conditional and data.train_labels is None:
        raise SystemExit(f"--conditional needs class labels, but {data.info['source']} has none; name them with --label_column.")
    codes = extract_codes(vqvae, data, accelerator, args.codes_cache_dir or None, args.encode_batch_size)
    accelerator.print(f"codes: {'read from' if codes.from_cache else 'encoded, cached in'} {codes.cache_file}")

    height, width = vqvae.latent_grid_size
    try:
        model = GatedPixelCNN(
            num_embeddings=vqvae.num_embeddings, grid_height=height, grid_width=width, hidden_channels=args.hidden_channels,
            num_layers=args.num_layers, kernel_size=args.kernel_size, dilation_cycle=args.dilation_cycle,
            num_classes=data.num_classes if args.conditional else None, vqvae_id=vqvae_id, vqvae_revision=vqvae_revision,
        )
    except ValueError as error:  # the constructor names the setting; as a flag, one line
        raise SystemExit(f"--{error}") from None
    if args.channels_last:  # its inputs, the permuted code embeddings, are NHWC already
        model = model.to(memory_format=torch.channels_last)
    no_labels = torch.zeros(len(codes.train_codes), dtype=torch.long)
    train_labels = codes.train_labels if codes.train_labels is not None else no_labels
    test_labels = codes.test_labels if codes.test_labels is not None else torch.zeros(len(codes.test_codes), dtype=torch.long)
    train_loader = make_dataloader(codes.train_codes, train_labels, batch_size=args.train_batch_size, seed=args.seed)
    test_loader = make_dataloader(codes.test_codes, test_labels, batch_size=args.eval_batch_size, shuffle=False)

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  weight_decay=args.adam_weight_decay)
    steps_per_epoch = math.ceil(len(train_loader) / accelerator.num_processes / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    scheduler = get_training_scheduler(args, optimizer, max_train_steps, accelerator.num_processes)
    model, optimizer, train_loader, test_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, test_loader, scheduler)

    uniform_bits = math.log2(vqvae.num_embeddings)
    if accelerator.is_main_process:
        os.makedirs(os.path.join(args.output_dir, "samples"), exist_ok=True)

    run_flags = {name: getattr(args, name) for name in RUN_DEFINING_FLAGS}
    run_flags[STAGE1_WEIGHTS] = stage1_weights("--vqvae", args.vqvae, args.vqvae_revision, (vqvae_id, vqvae_revision))
    average = WeightAverage.from_args(args, accelerator.unwrap_model(model))
    resumed_from, global_step, first_epoch, batches_to_skip = resume_run(accelerator, args, run_flags, optimizer, scheduler,
                                                                         steps_per_epoch, average)
    if accelerator.is_main_process:  # after resuming: the learning rate the run goes on at
        accelerator.init_trackers("twostage-stage2", config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))})

    logger.info(f"gated PixelCNN: {sum(p.numel() for p in model.parameters()):,} parameters, {len(codes.train_codes):,} "
                f"training grids of {height}x{width} codes (K={vqvae.num_embeddings}), {max_train_steps} steps, "
                f"{accelerator.num_processes} process(es)", main_process_only=True)
    progress = Progress(max_train_steps, global_step, "pixelcnn", enabled=accelerator.is_main_process)
    started = time.time()
    metrics: dict[str, float] = {}
    for epoch in range(first_epoch, num_epochs):
        epoch_loader = epoch_batches(accelerator, train_loader, epoch, first_epoch, batches_to_skip)
        for grids, labels in epoch_loader:
            if global_step >= max_train_steps:  # a run resumed from its final checkpoint trains no further
                break
            loss, _ = train_step(accelerator, model, optimizer, scheduler, grids, labels if args.conditional else None,
                                 args.max_grad_norm, global_step, args.output_dir)
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            if average is not None:
                average.update(accelerator.unwrap_model(model))
            logs = {"train/nll_bits_per_code": loss.item(), "lr": scheduler.get_last_lr()[0]}
            progress.update(global_step, bits=f"{logs['train/nll_bits_per_code']:.3f}")
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
            test_bits = evaluate(evaluated, test_loader, accelerator, args.conditional)
            if accelerator.is_main_process:
                save_samples(evaluated, vqvae, os.path.join(args.output_dir, "samples", f"samples-epoch{epoch:03d}.png"),
                             args.seed, args.sampling_temperature)
        metrics = {"test/nll_bits_per_code": test_bits, "uniform_prior_bits_per_code": uniform_bits, "epoch": epoch}
        accelerator.log(metrics, step=global_step)
        progress.write(f"epoch {epoch}: test NLL {test_bits:.4f} bits/code (uniform prior: log2(K) = {uniform_bits:.4f})")
        if global_step >= max_train_steps:
            break

    progress.close()
    final = accelerator.unwrap_model(model)
    if average is not None:  # what the run saves: the weight average
        average.copy_to(final)
    if not metrics:  # resumed from a checkpoint at the last step of the last epoch: nothing left to train
        metrics = {"test/nll_bits_per_code": evaluate(final, test_loader, accelerator, args.conditional),
                   "uniform_prior_bits_per_code": uniform_bits}
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final.save_pretrained(args.output_dir)
        save_samples(final, vqvae, os.path.join(args.output_dir, "samples.png"), args.seed, args.sampling_temperature)
        uniform = sample_uniform_codes(vqvae.num_embeddings, (height, width), NUM_SAMPLES_SHOWN, seed=args.seed)
        save_image(decode_codes(vqvae, uniform), os.path.join(args.output_dir, "samples_uniform.png"), nrow=8)
        write_training_info(args, accelerator, global_step, time.time() - started, metrics, model="gated_pixelcnn",
                            vqvae=args.vqvae, vqvae_weights_sha256=weights_fingerprint(vqvae), conditional=args.conditional,
                            dataset=data.info, num_train_images=len(codes.train_codes), num_test_images=len(codes.test_codes),
                            codes_cache_file=codes.cache_file, codes_from_cache=codes.from_cache,
                            resumed_from_checkpoint=resumed_from)
        if args.push_to_hub:
            from hub.push import push_run_folder
            push_run_folder(args.output_dir, args.hub_model_id, private=args.hub_private)
    accelerator.end_training()


if __name__ == "__main__":
    main()
