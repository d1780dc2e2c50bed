"""Learning-rate schedules by name, as diffusers' and transformers' get_scheduler offer them (neither is a dependency)."""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR

SCHEDULES = ("constant", "linear", "cosine")


def get_scheduler(name: str, optimizer, warmup_steps: int, total_steps: int) -> LambdaLR:
    if name not in SCHEDULES:
        raise ValueError(f"--lr_scheduler {name!r} is not one of {SCHEDULES}.")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if name == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 1.0 - progress if name == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
