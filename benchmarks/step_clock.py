"""Throughput from per-step timestamps, and peak memory: the two measurements every benchmark here shares.

A training loop calls `clock.restart()` before the first batch of every epoch (and whenever it was paused) and
`clock.step_done(items)` after each optimizer step, after something that waits for the device such as
`loss.item()`. A step is timed as the gap between its end and the previous step's end, so the first step after a
restart is never counted (it would also pay for the previous epoch's evaluation and bookkeeping, the loader's
start, or whatever ran during a pause), nor are the first `warmup_steps` steps of the run (allocator, oneDNN's
kernel choice, torch.compile).
"""

from __future__ import annotations

import resource
import time

import torch


class StepClock:
    def __init__(self, warmup_steps: int):
        self.warmup_steps = warmup_steps
        self.steps = 0
        self.items = 0
        self.seconds = 0.0
        self._last: float | None = None

    def restart(self) -> None:
        self._last = None

    def step_done(self, items: int) -> None:
        now = time.perf_counter()
        self.steps += 1
        if self._last is not None and self.steps > self.warmup_steps:
            self.items += items
            self.seconds += now - self._last
        self._last = now

    @property
    def per_second(self) -> float:
        if self.items == 0:
            raise RuntimeError(
                f"No step was timed: {self.steps} steps ran, the first {self.warmup_steps} are warm-up and the first "
                f"after each restart is never timed. Train for more steps (more data, epochs or --steps)."
            )
        return self.items / self.seconds


def batch_sizes(num_items: int, batch_size: int) -> list[int]:
    """The size of every batch of an epoch over num_items, the last one possibly smaller (no drop_last)."""
    full, rest = divmod(num_items, batch_size)
    return [batch_size] * full + ([rest] if rest else [])


def synchronize(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def reset_peak_memory(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mib(device: str | torch.device) -> float:
    """Peak GPU memory allocated by torch on CUDA; otherwise this process's peak resident set size (Linux: KiB)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(device: str | torch.device, function):
    """(seconds, result) of function(), the device's queued work included."""
    synchronize(device)
    started = time.perf_counter()
    result = function()
    synchronize(device)
    return time.perf_counter() - started, result
