"""Our stage-1 training step, train.py's own train_step, a given number of steps at a time, timed.

The same model construction (train.py's own parse_args and build_model, so every default is train.py's), AdamW,
the learning-rate schedule, the data path of training/batches.py (one indexing op per batch of the uint8 cache),
train.py's train_step itself (Accelerate's accumulate / backward / gradient clipping, the NaN guard), the VQ-VAE's
code counts and the per-step reads of the loss terms that train.py logs, in the memory order train.py's
--channels_last picks. Left out:
checkpoints, the per-epoch evaluation and sample grids, which are not part of a training step.

One option that train.py does not take as a flag: compile, torch.compile with the inductor backend, which is what
`accelerate launch --dynamo_backend inductor` makes Accelerator.prepare do to train.py's model.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project, for scripts in benchmarks/

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from stage1_autoencoders.data import ImageData
from stage1_autoencoders.train import build_model, parse_args, train_step
from step_clock import StepClock
from training.batches import make_dataloader
from training.schedules import get_scheduler


def stage1_arguments(model: str, batch_size: int, learning_rate: float, seed: int, *flags: str):
    """train.py's arguments for `model`; the schedule is constant, the only schedule pythae's trainer shares."""
    return parse_args([
        "--model", model, "--train_batch_size", str(batch_size), "--learning_rate", str(learning_rate),
        "--lr_scheduler", "constant", "--seed", str(seed), *flags,
    ])


class Stage1Loop:
    def __init__(self, args, data: ImageData, accelerator: Accelerator, compile: bool = False, warmup_steps: int = 5,
                 total_steps: int | None = None):
        set_seed(args.seed)
        model = build_model(args, data)
        self.memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
        model = model.to(memory_format=self.memory_format)
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                      weight_decay=args.adam_weight_decay)
        labels = data.train_labels if data.train_labels is not None else torch.zeros(len(data.train_images), dtype=torch.long)
        loader = make_dataloader(data.train_images, labels, batch_size=args.train_batch_size, seed=args.seed)
        if args.lr_scheduler != "constant" and total_steps is None:
            raise ValueError(f"--lr_scheduler {args.lr_scheduler} decays over the run: give the Stage1Loop its total_steps "
                             f"(or the constant schedule, which stage1_arguments sets, for a loop of any length).")
        scheduler = get_scheduler(args.lr_scheduler, optimizer, args.lr_warmup_steps, total_steps=total_steps or 1)
        self.model, self.optimizer, self.loader, self.scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
        self.trained_model = self.model  # the module itself, for sampling and saving after training
        if compile:
            self.model = torch.compile(self.model, backend="inductor")
        self.args, self.accelerator = args, accelerator
        self.clock = StepClock(warmup_steps)
        self.global_step, self.epoch = 0, 0
        self.code_counts = None
        self._batches = self._endless_batches()

    def _endless_batches(self):
        while True:
            self.loader.set_epoch(self.epoch)
            self.clock.restart()
            for images, _labels in self.loader:
                yield images
            self.epoch += 1

    @property
    def steps_per_epoch(self) -> int:
        return len(self.loader)

    def train_steps(self, steps: int, paused: bool = False) -> None:
        """Runs `steps` optimizer steps, going on across epochs. paused=True: time ran on since the last call
        (another loop ran in between), so the first step of this call is not timed."""
        if paused:
            self.clock.restart()
        for _ in range(steps):
            self._step(next(self._batches))

    def _step(self, images: torch.Tensor) -> None:
        args = self.args
        loss, out = train_step(self.accelerator, self.model, self.optimizer, self.scheduler, images, self.memory_format,
                               args.max_grad_norm, self.global_step, args.output_dir)
        if out.code_counts is not None:
            self.code_counts = out.code_counts if self.code_counts is None else self.code_counts + out.code_counts
        self.global_step += 1
        # train.py logs the loss and its terms every step; reading them waits for the device, so the clock
        # reads a finished step.
        loss.item()
        for value in out.terms.values():
            value.item()
        self.clock.step_done(len(images))
