"""Learning-rate schedules by name, as diffusers' and transformers' get_scheduler offer them (neither is a dependency).

The scheduler goes through accelerator.prepare, and Accelerate then steps it num_processes times per optimizer step
(and not at all on the micro-batches of gradient accumulation). So, as in diffusers' training scripts, it is built
for warm-up and total steps times num_processes; the factors depend only on the fraction of warm-up or training
done, so N processes see at optimizer step s exactly the learning rate one process sees there.
"""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR

SCHEDULES = ("constant", "linear", "cosine")


def get_scheduler(name: str, optimizer, warmup_steps: int, total_steps: int) -> LambdaLR:
    """warmup_steps and total_steps count scheduler steps (optimizer steps times num_processes under Accelerate)."""
    if name not in SCHEDULES:
        raise ValueError(f"--lr_scheduler {name!r} is not one of {SCHEDULES}.")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps  # transformers' linear warm-up
        if name == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 1.0 - progress if name == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def get_training_scheduler(args, optimizer, max_train_steps: int, num_processes: int) -> LambdaLR:
    """The run's schedule, counted as the AcceleratedScheduler that accelerator.prepare wraps it in steps it."""
    return get_scheduler(args.lr_scheduler, optimizer, args.lr_warmup_steps * num_processes, max_train_steps * num_processes)


def set_schedule_position(scheduler, optimizer, learning_rate: float, global_step: int, num_processes: int) -> None:
    """After resuming: the schedule at `global_step` from this run's --learning_rate and step counts, not from the
    checkpoint's (a LambdaLR saves its base learning rates and position, never its function)."""
    inner = getattr(scheduler, "scheduler", scheduler)  # under Accelerate's wrapper
    inner.base_lrs = [learning_rate for _ in optimizer.param_groups]
    inner.last_epoch = global_step * num_processes
    learning_rates = [base * factor(inner.last_epoch) for factor, base in zip(inner.lr_lambdas, inner.base_lrs)]
    for group, lr in zip(optimizer.param_groups, learning_rates):
        group["initial_lr"], group["lr"] = learning_rate, lr
    inner._last_lr = [group["lr"] for group in optimizer.param_groups]
