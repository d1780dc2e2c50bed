"""Our stage-2 training step, stage2_prior/train.py's own train_step (a gated PixelCNN over code grids), timed.

The same prior (train.py's defaults: 64 channels, 8 layers, kernel 3), AdamW, a constant schedule (or another
over total_steps), the uint8-cache-style batches of training/batches.py over the code grids, and train.py's
train_step itself (Accelerate's accumulate / backward / clipping, the loss in bits per code, the NaN guard). Left out, as in
stage1_loop.py: checkpoints, per-epoch evaluation and sample grids.
"""

from __future__ import annotations

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from stage2_prior.pixelcnn import GatedPixelCNN
from stage2_prior.train import train_step
from step_clock import StepClock
from training.batches import make_dataloader
from training.schedules import get_scheduler


class PriorLoop:
    def __init__(self, prior: GatedPixelCNN, train_codes: torch.Tensor, accelerator: Accelerator, batch_size: int,
                 learning_rate: float, seed: int, output_dir: str, max_grad_norm: float = 1.0, warmup_steps: int = 5,
                 compile: bool = False, lr_scheduler: str = "constant", total_steps: int = 1):
        set_seed(seed)
        optimizer = torch.optim.AdamW(prior.parameters(), lr=learning_rate, betas=(0.9, 0.999), weight_decay=0.0)
        no_labels = torch.zeros(len(train_codes), dtype=torch.long)
        loader = make_dataloader(train_codes, no_labels, batch_size=batch_size, seed=seed)
        # constant: a loop of any length; another schedule decays over total_steps, as train.py's over its epochs.
        scheduler = get_scheduler(lr_scheduler, optimizer, warmup_steps=0, total_steps=total_steps)
        self.prior, self.optimizer, self.loader, self.scheduler = accelerator.prepare(prior, optimizer, loader, scheduler)
        self.model = torch.compile(self.prior, backend="inductor") if compile else self.prior
        self.accelerator, self.max_grad_norm, self.output_dir = accelerator, max_grad_norm, output_dir
        self.clock = StepClock(warmup_steps)
        self.global_step = 0
        self._batches = self._endless_batches()

    def _endless_batches(self):
        epoch = 0
        while True:
            self.loader.set_epoch(epoch)
            self.clock.restart()
            for grids, _labels in self.loader:
                yield grids
            epoch += 1

    @property
    def steps_per_epoch(self) -> int:
        return len(self.loader)

    def train_epochs(self, epochs: int) -> None:
        self.train_steps(epochs * self.steps_per_epoch)

    def train_steps(self, steps: int) -> None:
        """Runs `steps` optimizer steps, going on across epochs."""
        for _ in range(steps):
            self._step(next(self._batches))

    def _step(self, grids: torch.Tensor) -> None:
        loss, _ = train_step(self.accelerator, self.model, self.optimizer, self.scheduler, grids, None, self.max_grad_norm,
                             self.global_step, self.output_dir)
        self.global_step += 1
        loss.item()  # train.py logs it every step; reading it waits for the device
        self.clock.step_done(grids.numel())  # codes per step
