"""Checkpoints that a crash can never leave half-written: Accelerate writes the state into a temporary folder,
which is renamed into place only when complete. Old checkpoints are pruned only after a new one is complete."""

from __future__ import annotations

import os
import re
import shutil

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoints_dir(output_dir: str) -> str:
    return os.path.join(output_dir, "checkpoints")


def list_checkpoints(output_dir: str) -> list[tuple[int, str]]:
    """Complete checkpoints as (step, path), oldest first."""
    folder = checkpoints_dir(output_dir)
    if not os.path.isdir(folder):
        return []
    found = [(int(m.group(1)), os.path.join(folder, name)) for name in os.listdir(folder) if (m := CHECKPOINT.match(name))]
    return sorted(found)


def save_checkpoint(accelerator, output_dir: str, step: int, total_limit: int | None) -> str:
    folder = checkpoints_dir(output_dir)
    final = os.path.join(folder, f"checkpoint-{step}")
    partial = os.path.join(folder, f".partial-checkpoint-{step}")
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(partial)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with open(os.path.join(partial, "step.txt"), "w") as f:
            f.write(str(step))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        if total_limit:
            for _, old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def resolve_checkpoint(output_dir: str, resume_from_checkpoint: str | None) -> tuple[str, int] | None:
    """(path, step) of the checkpoint to resume, or None to start fresh. "latest" with none saved starts fresh."""
    if resume_from_checkpoint is None:
        return None
    if resume_from_checkpoint == "latest":
        found = list_checkpoints(output_dir)
        return (found[-1][1], found[-1][0]) if found else None
    path = resume_from_checkpoint.rstrip("/")
    if not os.path.isfile(os.path.join(path, "step.txt")):
        raise FileNotFoundError(
            f"--resume_from_checkpoint {path!r} is not a complete checkpoint (no step.txt). "
            f"Give a folder from {checkpoints_dir(output_dir)} or 'latest'."
        )
    with open(os.path.join(path, "step.txt")) as f:
        return path, int(f.read())
