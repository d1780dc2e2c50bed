"""Our stage-2 training step as stage2_prior/train.py runs it (a gated PixelCNN over code grids), timed.

The same prior (train.py's defaults: 64 channels, 8 layers, kernel 3), AdamW, the uint8-cache-style batches of
training/batches.py over the code grids, Accelerate's prepare / backward / clipping, the loss in bits per code and
the NaN guard. Left out, as in stage1_loop.py: checkpoints, per-epoch evaluation and sample grids.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed

from stage2_prior.pixelcnn import GatedPixelCNN
from step_clock import StepClock
from training.batches import make_dataloader
from training.guards import check_finite


class PriorLoop:
    def __init__(self, prior: GatedPixelCNN, train_codes: torch.Tensor, accelerator: Accelerator, batch_size: int,
                 learning_rate: float, seed: int, output_dir: str, max_grad_norm: float = 1.0, warmup_steps: int = 5,
                 compile: bool = False):
        set_seed(seed)
        optimizer = torch.optim.AdamW(prior.parameters(), lr=learning_rate, betas=(0.9, 0.999), weight_decay=0.0)
        no_labels = torch.zeros(len(train_codes), dtype=torch.long)
        loader = make_dataloader(train_codes, no_labels, batch_size=batch_size, seed=seed)
        self.prior, self.optimizer, self.loader = accelerator.prepare(prior, optimizer, loader)
        self.model = torch.compile(self.prior, backend="inductor") if compile else self.prior
        self.accelerator, self.max_grad_norm, self.output_dir = accelerator, max_grad_norm, output_dir
        self.clock = StepClock(warmup_steps)
        self.global_step = 0

    def train_epochs(self, epochs: int) -> None:
        for epoch in range(epochs):
            self.loader.set_epoch(epoch)
            self.clock.restart()
            for grids, _labels in self.loader:
                self._step(grids)

    def _step(self, grids: torch.Tensor) -> None:
        model, accelerator = self.model, self.accelerator
        with accelerator.accumulate(model):
            bits = F.cross_entropy(model(grids), grids) / math.log(2)  # bits per code
            loss = accelerator.reduce(bits.detach().float(), "mean")
            check_finite(loss, self.global_step, self.output_dir)
            accelerator.backward(bits)
            if accelerator.sync_gradients and self.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), self.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        loss.item()  # train.py logs it every step; reading it waits for the device
        self.clock.step_done(grids.numel())  # codes per step
