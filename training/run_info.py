"""training_info.json: what a run was (data, steps, batch, devices, time, final metrics), read by the model card."""

from __future__ import annotations

import json
import os


def write_training_info(args, accelerator, steps: int, seconds: float, metrics: dict, **details) -> None:
    """`details` are the run's own facts (which model, which dataset, how many images) placed first."""
    info = {
        **details,
        "steps": steps,
        "train_batch_size_per_device": args.train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "num_processes": accelerator.num_processes,
        "device": str(accelerator.device),
        "mixed_precision": accelerator.mixed_precision,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        "wall_time_seconds": round(seconds, 1),
        "final_metrics": metrics,
    }
    with open(os.path.join(args.output_dir, "training_info.json"), "w") as f:
        json.dump(info, f, indent=2)
