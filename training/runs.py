"""Starting and resuming a run, the same in every training script: the Accelerator from the shared flags, the
--output_dir guard, the seed; and, with --resume_from_checkpoint, the verified checkpoint, its flags compared with
this run's, the state loaded and the schedule placed at the resumed step."""

from __future__ import annotations

import json
import os

from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed

from training.checkpoints import check_output_dir, check_run_flags, load_checkpoint, resolve_checkpoint
from training.schedules import set_schedule_position


def start_run(args) -> Accelerator:
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=args.report_to,
        project_config=ProjectConfiguration(project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, args.logging_dir),
                                            save_on_each_node=args.save_on_each_node),
    )
    check_output_dir(accelerator, args.output_dir, args.resume_from_checkpoint, args.overwrite_output_dir, args.save_on_each_node)
    set_seed(args.seed)
    return accelerator


def resume_run(accelerator, args, run_flags: dict, optimizer, scheduler, steps_per_epoch: int, average=None):
    """(checkpoint resumed or None, global step, first epoch, batches of that epoch to skip). `run_flags` are the
    values that define the run (RunValue where one is no flag's own); they are compared as JSON reads them back from the
    checkpoint's run.json. `average`: the run's WeightAverage (--use_ema), restored too. The run's learning rate is
    kept, and written into args.learning_rate, unless --learning_rate was given."""
    resume = resolve_checkpoint(accelerator, args.output_dir, args.resume_from_checkpoint)
    if resume is None:
        return None, 0, 0, 0
    path, global_step = resume
    accelerator.print(f"Resuming from {path} (step {global_step})")
    check_run_flags(accelerator, path, run_flags)
    load_checkpoint(accelerator, path, average)
    keep_runs_learning_rate(accelerator, args, optimizer)
    set_schedule_position(scheduler, optimizer, args.learning_rate, global_step, accelerator.num_processes)
    batches_to_skip = (global_step % steps_per_epoch) * args.gradient_accumulation_steps
    return path, global_step, global_step // steps_per_epoch, batches_to_skip


def keep_runs_learning_rate(accelerator, args, optimizer) -> None:
    """The peak learning rate the resumed run trained at (its optimizer's "initial_lr", set by the schedule and saved
    with the optimizer's state), into args.learning_rate unless --learning_rate was given: then the new one is used."""
    recorded = optimizer.param_groups[0].get("initial_lr")
    if recorded is None or recorded == args.learning_rate:
        return
    if args.learning_rate_given:
        accelerator.print(f"--learning_rate {args.learning_rate:g} replaces the run's {recorded:g} from here on")
    else:
        accelerator.print(f"Continuing at the run's learning rate, {recorded:g} (this version's default is "
                          f"{args.learning_rate:g}; --learning_rate sets another)")
        args.learning_rate = recorded


def epoch_batches(accelerator, train_loader, epoch: int, first_epoch: int, batches_to_skip: int):
    """The loader of one epoch: in the epoch a run resumed in, past the batches it had trained on; its data order
    set for the epoch, so that a resumed run sees the batches of the uninterrupted one."""
    loader = train_loader
    if epoch == first_epoch and batches_to_skip:
        loader = accelerator.skip_first_batches(train_loader, batches_to_skip)
    loader.set_epoch(epoch)
    return loader
