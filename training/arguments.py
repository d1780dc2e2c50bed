"""Flags named as in the Hugging Face example training scripts (diffusers' train_unconditional.py and siblings)."""

from __future__ import annotations

import argparse

from training.ema import add_ema_arguments, check_ema_arguments
from training.schedules import SCHEDULES


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the script's docstring as written and shows every flag's default."""


MAX_RESOLUTION = 1024  # far above any dataset here; a typo like 100000 would otherwise try to allocate terabytes


def add_data_arguments(parser: argparse.ArgumentParser, from_stage1_run: bool = False) -> None:
    """The data flags. `from_stage1_run`: a stage-2 script, whose data is by default the stage-1 run's own (the
    images and test split its training_info.json records), so no data flag needs repeating."""
    group = parser.add_argument_group("data")
    default = "the stage-1 run's own data, as its training_info.json records it" if from_stage1_run else "digits"
    group.add_argument("--dataset_name", default=None if from_stage1_run else "digits",
                       help="A Hub dataset id (ylecun/mnist, zalando-datasets/fashion_mnist, uoft-cs/cifar10), a local "
                            "folder in the Hub's parquet layout (../shared/data/mnist), or 'digits' (scikit-learn's "
                            f"bundled 8x8 digits, offline). Default: {default}.")
    group.add_argument("--train_data_dir", default=None,
                       help="A local folder of training images (one subfolder per class), read with datasets' "
                            "imagefolder. Takes precedence over --dataset_name. Without --test_data_dir, a test split "
                            "is cut from it (seeded by --split_seed), or taken from its train/ and test/ subfolders if it has them.")
    group.add_argument("--test_data_dir", default=None,
                       help="A local folder of test images, laid out as --train_data_dir (the same class subfolders).")
    group.add_argument("--image_column", default=None, help="Image column; found by its feature type when not given.")
    group.add_argument("--label_column", default=None, help="Label column; found by its feature type when not given.")
    group.add_argument("--resolution", type=int, default=None,
                       help="Resize every image to this square size (default: the dataset's own size).")
    group.add_argument("--center_crop", action="store_true",
                       help="With --resolution: resize the shorter side to it and cut the middle square (keeps the "
                            "aspect ratio); without, images are squashed to the square.")
    if not from_stage1_run:  # stage 2 learns from codes encoded once, without augmentation
        group.add_argument("--random_flip", action="store_true",
                           help="Mirror training images left-right at random (photos; not for digits or text).")
    group.add_argument("--image_mode", default=None, choices=["L", "RGB"],
                       help="Convert every image to this mode (default: the mode of most training images; the "
                            "number converted is printed).")
    group.add_argument("--split_seed", type=int, default=None,
                       help="Seeds the test split cut from a dataset without one (the digits, an image folder without "
                            "test/). Default: " + ("with data flags, the stage-1 run's split seed (else --seed)."
                            if from_stage1_run else "--seed. Fix it (e.g. 0) to score several training seeds on the "
                            "same test images, as benchmarks/compare_priors.py does."))
    group.add_argument("--max_train_samples", type=int, default=None, help="Use only the first N training images.")
    group.add_argument("--max_eval_samples", type=int, default=None, help="Use only the first N test images.")


def add_training_arguments(parser: argparse.ArgumentParser, default_output_dir: str) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--output_dir", default=default_output_dir,
                       help="Where checkpoints, sample grids and the final model (config.json + model.safetensors) go.")
    group.add_argument("--train_batch_size", type=int, default=64, help="Batch size per device.")
    group.add_argument("--eval_batch_size", type=int, default=256, help="Batch size per device for the test split.")
    group.add_argument("--num_train_epochs", type=int, default=10, help="Passes over the training split.")
    group.add_argument("--max_train_steps", type=int, default=None,
                       help="Total optimizer steps; overrides --num_train_epochs when given.")
    group.add_argument("--learning_rate", type=float, default=1e-3,
                       help="Peak learning rate of AdamW. A resumed run keeps its own unless this flag is given.")
    group.add_argument("--lr_scheduler", default="cosine", choices=SCHEDULES,
                       help="Learning-rate schedule after the warm-up, counted in optimizer steps of the whole run.")
    group.add_argument("--lr_warmup_steps", type=int, default=0, help="Optimizer steps of linear warm-up from 0.")
    group.add_argument("--adam_beta1", type=float, default=0.9, help="AdamW β1.")
    group.add_argument("--adam_beta2", type=float, default=0.999, help="AdamW β2.")
    group.add_argument("--adam_weight_decay", type=float, default=0.0, help="AdamW decoupled weight decay.")
    group.add_argument("--max_grad_norm", type=float, default=1.0, help="Gradient clipping (0 turns it off).")
    group.add_argument("--gradient_accumulation_steps", type=int, default=1,
                       help="Micro-batches per optimizer step (the global batch is this x batch size x processes).")
    group.add_argument("--mixed_precision", default=None, choices=["no", "fp16", "bf16"],
                       help="Overrides the Accelerate config. bf16 works on recent CPUs and GPUs; fp16 needs a GPU.")
    group.add_argument("--channels_last", action=argparse.BooleanOptionalAction, default=True,
                       help="Keep weights and batches in NHWC memory order, the layout oneDNN's CPU convolutions and "
                            "cuDNN's mixed-precision ones run fastest in (1.04-1.17x per CPU step here, benchmarks/stage1_throughput.py).")
    group.add_argument("--checkpointing_steps", type=int, default=500,
                       help="Save the full training state (model, optimizer, scheduler, RNG, data position) every N steps.")
    group.add_argument("--save_on_each_node", action="store_true",
                       help="Write checkpoints on every machine, for machines that do not share a filesystem.")
    group.add_argument("--overwrite_output_dir", action="store_true",
                       help="Start a fresh run in an --output_dir that holds another run's checkpoints, deleting them.")
    group.add_argument("--checkpoints_total_limit", type=int, default=None, help="Keep at most this many checkpoints.")
    group.add_argument("--resume_from_checkpoint", default=None,
                       help='A checkpoint folder, or "latest" to continue from the newest one in --output_dir.')
    group.add_argument("--report_to", default=None,
                       help='Tracker for Accelerate ("tensorboard", "wandb", "all"); none by default.')
    group.add_argument("--logging_dir", default="logs", help="Tracker logs, relative to --output_dir.")
    group.add_argument("--seed", type=int, default=0, help="Seeds weights, data order and sampling.")
    group.add_argument("--push_to_hub", action="store_true", help="Push the final model to --hub_model_id.")
    group.add_argument("--hub_model_id", default=None, help="Repository on the Hub, e.g. user/mnist-vqvae.")
    group.add_argument("--hub_private", action="store_true", help="Create the Hub repository as private.")
    group.add_argument("--push_checkpoints_to_hub", action="store_true",
                       help="Also push each checkpoint as it is written (needs --push_to_hub).")
    add_ema_arguments(parser)


def parse_training_arguments(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """The flags, checked, and whether --learning_rate was given: a resumed run keeps the learning rate it started
    with otherwise, so that a default changed since (stage 2's, 1e-3 to 3e-3) does not change a run half-way."""
    args = parser.parse_args(argv)
    default = parser.get_default("learning_rate")
    parser.set_defaults(learning_rate=None)  # parsed again with a default no float equals
    args.learning_rate_given = parser.parse_args(argv).learning_rate is not None
    parser.set_defaults(learning_rate=default)
    check_training_arguments(args)
    return args


def check_training_arguments(args: argparse.Namespace) -> None:
    if args.push_to_hub and not args.hub_model_id:
        raise SystemExit("--push_to_hub needs --hub_model_id (for example --hub_model_id your-name/mnist-vae).")
    if args.push_checkpoints_to_hub and not args.push_to_hub:
        raise SystemExit("--push_checkpoints_to_hub needs --push_to_hub and --hub_model_id.")
    for flag in ("train_batch_size", "eval_batch_size", "gradient_accumulation_steps", "checkpointing_steps", "num_train_epochs"):
        if getattr(args, flag) < 1:
            raise SystemExit(f"--{flag} {getattr(args, flag)}: must be at least 1.")
    if args.max_train_steps is not None and args.max_train_steps < 1:
        raise SystemExit(f"--max_train_steps {args.max_train_steps}: must be at least 1 (or left out to train --num_train_epochs).")
    if not args.learning_rate > 0:
        raise SystemExit(f"--learning_rate {args.learning_rate}: must be a positive number, e.g. 1e-3.")
    if args.lr_warmup_steps < 0:
        raise SystemExit(f"--lr_warmup_steps {args.lr_warmup_steps}: must be 0 or more.")
    if args.checkpoints_total_limit is not None and args.checkpoints_total_limit < 1:
        raise SystemExit(f"--checkpoints_total_limit {args.checkpoints_total_limit}: must be at least 1 (or left out to keep all).")
    check_ema_arguments(args)
    if args.resolution is not None and not 1 <= args.resolution <= MAX_RESOLUTION:
        raise SystemExit(f"--resolution {args.resolution}: must be between 1 and {MAX_RESOLUTION} pixels.")
