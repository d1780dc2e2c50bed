"""Checkpoints that a crash can never leave half-written, and that are checked before they are used.

Accelerate writes the state into a temporary folder; run.json (the flags that define the run) and manifest.json
(every file's name and size) are written last, then the folder is renamed into place. Old checkpoints are pruned
only after a new one is complete. Resuming verifies the manifest first; "latest" falls back to the newest intact
checkpoint and says so. Without a shared filesystem (--save_on_each_node) every node writes, renames and prunes its
own copy, and the main process decides which checkpoint all of them resume.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field

from accelerate.utils import broadcast_object_list, load

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
MANIFEST = "manifest.json"
RUN_FLAGS = "run.json"


class CheckpointError(SystemExit):
    """A checkpoint that cannot be used, or flags that do not fit it: one line for the user, no traceback."""


@dataclass(frozen=True)
class RunValue:
    """A value that defines a run but is no flag's own (the weights of a stage-1 model): compared as `value`, with
    `fix` said where it differs; checkpoints written before it was recorded are compared on `older` instead, the
    flags they recorded in its place."""

    value: str
    fix: str
    older: dict = field(default_factory=dict)


def recorded_flags(run_flags: dict) -> dict:
    """run_flags as run.json holds them (JSON values; a RunValue as its value)."""
    return json.loads(json.dumps({name: value.value if isinstance(value, RunValue) else value
                                  for name, value in run_flags.items()}))


def checkpoints_dir(output_dir: str) -> str:
    return os.path.join(output_dir, "checkpoints")


def list_checkpoints(output_dir: str) -> list[tuple[int, str]]:
    """Checkpoint folders as (step, path), oldest first (verified only when used)."""
    folder = checkpoints_dir(output_dir)
    if not os.path.isdir(folder):
        return []
    found = [(int(m.group(1)), os.path.join(folder, name)) for name in os.listdir(folder) if (m := CHECKPOINT.match(name))]
    return sorted(found)


def _writes_here(accelerator, save_on_each_node: bool) -> bool:
    return accelerator.is_local_main_process if save_on_each_node else accelerator.is_main_process


def save_checkpoint(accelerator, output_dir: str, step: int, total_limit: int | None, run_flags: dict,
                    save_on_each_node: bool = False, average=None) -> str:
    """`average`: the run's WeightAverage (--use_ema), saved beside Accelerate's state."""
    folder = checkpoints_dir(output_dir)
    final = os.path.join(folder, f"checkpoint-{step}")
    partial = os.path.join(folder, f".partial-checkpoint-{step}")
    writer = _writes_here(accelerator, save_on_each_node)
    if writer:
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(partial)
        accelerator.wait_for_everyone()
        if writer:
            if average is not None:
                average.save(partial)
            with open(os.path.join(partial, RUN_FLAGS), "w") as f:
                json.dump({"step": step, "processes": accelerator.num_processes, "flags": recorded_flags(run_flags)}, f,
                          indent=2)
            files = {name: os.path.getsize(os.path.join(partial, name)) for name in sorted(os.listdir(partial))}
            with open(os.path.join(partial, MANIFEST), "w") as f:  # last: its presence means every file is complete
                json.dump({"step": step, "files": files}, f, indent=2)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(partial, final)
    except Exception as error:  # torch.save and safetensors report a full disk as their own errors, not OSError
        shutil.rmtree(partial, ignore_errors=True)
        free = shutil.disk_usage(folder).free if os.path.isdir(folder) else 0
        reason = str(error).strip().splitlines()[-1][:200] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"Could not write checkpoint {final} ({reason}); {free / 2**20:.0f} MiB free on its disk. "
            f"The earlier checkpoints are kept; free some space, then continue with --resume_from_checkpoint latest."
        ) from error
    if writer and total_limit:
        for _, old in list_checkpoints(output_dir)[:-total_limit]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def checkpoint_problem(path: str) -> str | None:
    """Why the checkpoint at `path` cannot be used, or None when its manifest's every file is there, whole."""
    manifest = os.path.join(path, MANIFEST)
    if not os.path.isfile(manifest):
        return f"{path} has no {MANIFEST} (it was never finished)"
    try:
        with open(manifest) as f:
            files = json.load(f)["files"]
        sizes = {str(name): int(size) for name, size in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"{manifest} is not a valid manifest"
    for name, size in sizes.items():
        file = os.path.join(path, os.path.basename(name))
        if not os.path.isfile(file):
            return f"{file} is missing"
        if os.path.getsize(file) != size:
            return f"{file} is {os.path.getsize(file)} bytes, the manifest says {size}"
    return None


def _resolve_on_this_process(output_dir: str, resume_from_checkpoint: str) -> tuple[str, int] | str | None:
    """(path, step), None to start fresh, or the error message."""
    if resume_from_checkpoint == "latest":
        for step, path in reversed(list_checkpoints(output_dir)):
            problem = checkpoint_problem(path)
            if problem is None:
                return path, step
            print(f"Skipping a damaged checkpoint: {problem}. Trying the one before it.", flush=True)
        return None
    path = resume_from_checkpoint.rstrip("/")
    problem = checkpoint_problem(path)
    if problem is not None:
        return (f"--resume_from_checkpoint {path!r} cannot be used: {problem}. "
                f"Give a complete folder from {checkpoints_dir(output_dir)}, or 'latest'.")
    with open(os.path.join(path, MANIFEST)) as f:
        return path, int(json.load(f)["step"])


def resolve_checkpoint(accelerator, output_dir: str, resume_from_checkpoint: str | None) -> tuple[str, int] | None:
    """(path, step) of the checkpoint to resume, or None to start fresh ("latest" with none saved starts fresh).
    The main process decides, so that every node resumes the same one; each process then checks its own copy."""
    if resume_from_checkpoint is None:
        return None
    decision = [_resolve_on_this_process(output_dir, resume_from_checkpoint) if accelerator.is_main_process else None]
    decision = broadcast_object_list(decision)[0] if accelerator.num_processes > 1 else decision[0]
    if isinstance(decision, str):
        raise CheckpointError(decision)
    if decision is not None:
        path = decision[0]
        problem = checkpoint_problem(path)
        if problem is not None:
            raise CheckpointError(f"Process {accelerator.process_index} cannot resume {path}: {problem}. Without a shared "
                                  f"filesystem, train with --save_on_each_node so that every node holds its checkpoints.")
    return decision


def check_run_flags(accelerator, path: str, run_flags: dict) -> None:
    """Refuses to resume on another number of processes than wrote the checkpoint, or with a flag that defines the
    model or its objective set otherwise than in the checkpoint's run. Every process reads run.json, so every one
    refuses alike."""
    with open(os.path.join(path, RUN_FLAGS)) as f:
        run = json.load(f)
    written_by = run.get("processes")
    if isinstance(written_by, bool) or not isinstance(written_by, int) or written_by < 1:  # older: no "processes"
        written_by = _processes_from_random_states(accelerator, path)
    if written_by is not None and written_by != accelerator.num_processes:
        raise CheckpointError(
            f"{path} was written by {written_by} process{'es' if written_by > 1 else ''} and this run has "
            f"{accelerator.num_processes}: each continues from its own random state. Resume with as many "
            f"(accelerate launch --num_processes {written_by}), or start a new run in another --output_dir."
        )
    recorded = run["flags"]
    compared = recorded_flags(run_flags)
    for name, value in run_flags.items():
        if isinstance(value, RunValue) and name not in recorded:  # a checkpoint from before it was recorded
            compared.update(recorded_flags(value.older))
    for name, value in compared.items():
        if name not in recorded or recorded[name] == value:
            continue
        if isinstance(run_flags.get(name), RunValue):
            raise CheckpointError(f"{run_flags[name].fix} (here {value[:26]}..., in the run of {path} "
                                  f"{str(recorded[name])[:26]}...).")
        raise CheckpointError(
            f"--{name} is {value!r} here but {recorded[name]!r} in the run of {path}. Resume with the flags the run "
            f"started with, or start a new --output_dir (or pass --overwrite_output_dir to replace the old run)."
        )


def _processes_from_random_states(accelerator, path: str) -> int | None:
    """The process count of a checkpoint whose run.json predates "processes", as far as its random states show: one
    file per process (with --save_on_each_node a machine's copy holds only its own, so a smaller count there is
    not seen)."""
    written = [int(found.group(1)) for name in os.listdir(path) if (found := re.fullmatch(r"random_states_(\d+)\.pkl", name))]
    if written and (accelerator.process_index > max(written) or max(written) >= accelerator.num_processes):
        return max(written) + 1
    return None


def check_output_dir(accelerator, output_dir: str, resume_from_checkpoint: str | None, overwrite_output_dir: bool,
                     save_on_each_node: bool = False) -> None:
    """A fresh run into a folder holding another run's checkpoints would mix with them (pruning, "latest"): refused,
    unless resuming or --overwrite_output_dir, which deletes them."""
    existing = list_checkpoints(output_dir)
    if resume_from_checkpoint is not None or not existing:
        return
    if not overwrite_output_dir:
        raise CheckpointError(
            f"{output_dir} already holds another run's checkpoints ({os.path.basename(existing[-1][1])}). Continue it "
            f"with --resume_from_checkpoint latest, start over with --overwrite_output_dir, or pick another --output_dir."
        )
    accelerator.wait_for_everyone()
    if _writes_here(accelerator, save_on_each_node):
        shutil.rmtree(checkpoints_dir(output_dir))
    accelerator.wait_for_everyone()


def load_checkpoint(accelerator, path: str, average=None) -> None:
    """accelerator.load_state, with this process's random state read first: Accelerate only logs one that fails to
    load, and a resumed run would then draw other noise and data than the uninterrupted one. `average`: the run's
    WeightAverage (--use_ema), loaded from the checkpoint too."""
    random_states = os.path.join(path, f"random_states_{accelerator.process_index}.pkl")
    try:
        states = load(random_states)
        problem = None if {"random_state", "numpy_random_seed", "torch_manual_seed"} <= set(states) else "it lacks the RNG states"
    except Exception as error:  # any reader error: the file is not a random state
        problem = f"it cannot be read ({type(error).__name__})"
    if problem:
        raise CheckpointError(f"{random_states} cannot be used: {problem}. Resume from another checkpoint with "
                              f"--resume_from_checkpoint PATH.")
    try:
        accelerator.load_state(path)
    except Exception as error:  # a reader error names no file; this line does
        raise CheckpointError(f"{path} could not be loaded ({type(error).__name__}: {str(error).splitlines()[0][:300]}). "
                              f"Resume from another checkpoint with --resume_from_checkpoint PATH.") from error
    if average is not None:
        try:
            average.load(path)
        except Exception as error:  # missing, another model's, or unreadable: one line naming the file
            raise CheckpointError(f"{error}.") from error
