from __future__ import annotations

import torch

from training.checkpoints import list_checkpoints


class NonFiniteLossError(RuntimeError):
    pass


def check_finite(loss: torch.Tensor, step: int, output_dir: str) -> None:
    """Stops the run at a NaN or infinite loss, before the optimizer step spreads it into the weights."""
    if torch.isfinite(loss).all():
        return
    saved = list_checkpoints(output_dir)
    kept = f"The last good checkpoint, {saved[-1][1]}, is untouched." if saved else "No checkpoint had been written yet."
    raise NonFiniteLossError(
        f"The loss became {loss.item()} at step {step}. {kept} Lower --learning_rate, train in full precision "
        f"(--mixed_precision no), or keep --max_grad_norm on, then continue with --resume_from_checkpoint latest."
    )
