"""Running the training scripts as users do (a Python process, or `accelerate launch` on several CPU processes) and
reading what they logged with --report_to tensorboard."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE1 = str(REPO / "stage1_autoencoders" / "train.py")
STAGE2 = str(REPO / "stage2_prior" / "train.py")


def launch(script: str, *args, processes: int = 1, env_extra: dict | None = None, **popen) -> subprocess.CompletedProcess:
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", **(env_extra or {})}
    if processes == 1:
        command = [sys.executable, script, *map(str, args)]
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
                   script, *map(str, args)]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600, **popen)


def logged(output_dir, tag: str) -> dict[int, float]:
    """{step: value} of a scalar that a run with --report_to tensorboard logged."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values = {}
    for events in sorted(glob.glob(os.path.join(str(output_dir), "logs", "*", "events.out.tfevents.*"))):
        accumulator = EventAccumulator(events, size_guidance={"scalars": 0})
        accumulator.Reload()
        if tag in accumulator.Tags()["scalars"]:
            values.update({event.step: event.value for event in accumulator.Scalars(tag)})
    return values
