"""The optimizer step both stages share, around each stage's forward pass (stage1_autoencoders/train.py's
train_step, stage2_prior/train.py's train_step); the benchmarks in benchmarks/ time those same functions."""

from __future__ import annotations

from typing import Callable

import torch

from training.guards import check_finite


def training_step(accelerator, model, optimizer, scheduler, forward: Callable[[], tuple[torch.Tensor, object]],
                  max_grad_norm: float, step: int, output_dir: str):
    """One micro-batch: forward() -> (loss, anything) -> NaN guard -> backward; clipping, the optimizer and the
    schedule step once the micro-batches of gradient accumulation are in. Returns (loss mean over ranks, anything).

    Under fp16 Accelerate's gradient scaler may skip an optimizer step whose gradients overflowed: the step is
    skipped, the scheduler waits for it, and the run goes on (only a non-finite loss stops it)."""
    with accelerator.accumulate(model):
        loss, output = forward()
        reduced = accelerator.reduce(loss.detach().float(), "mean")
        check_finite(reduced, step, output_dir)
        accelerator.backward(loss)
        if accelerator.sync_gradients and max_grad_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return reduced, output
