"""--use_ema: an exponential moving average of the model's parameters (Polyak averaging), as diffusers' training
scripts keep it. The average is what the run evaluates and saves; the optimizer goes on training the live weights.

The decay warms up as diffusers' EMAModel's does, 1 - (1 + step / inv_gamma) ** -power, capped at --ema_max_decay:
early on the average follows the weights closely (no average of the random initialisation), later it spans about
1 / (1 - decay) steps (power 3/4: ~60 steps at step 200, ~300 at step 2,000). Parameters only: buffers (a VQ-VAE's
EMA codebook and its counts, normalisation statistics) are the live model's, as they are running statistics already.
"""

from __future__ import annotations

import argparse
import contextlib
import os

import safetensors.torch
import torch

EMA_FILE = "ema.safetensors"  # in a checkpoint folder, beside Accelerate's state
EMA_FLAGS = ("use_ema", "ema_max_decay", "ema_inv_gamma", "ema_power")  # they define a run: resume keeps them


def add_ema_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("weight average (diffusers' --use_ema)")
    group.add_argument("--use_ema", action="store_true",
                       help="Keep an exponential moving average of the weights, and evaluate and save it instead of "
                            "the last weights.")
    group.add_argument("--ema_max_decay", type=float, default=0.9999, help="The largest decay the warm-up reaches.")
    group.add_argument("--ema_inv_gamma", type=float, default=1.0, help="Warm-up: decay = 1 - (1 + step / inv_gamma) ** -power.")
    group.add_argument("--ema_power", type=float, default=0.75, help="Warm-up power (3/4 for runs of up to ~100k steps).")


def check_ema_arguments(args: argparse.Namespace) -> None:
    if not 0.0 <= args.ema_max_decay < 1.0:
        raise SystemExit(f"--ema_max_decay {args.ema_max_decay}: must be in [0, 1), e.g. 0.9999.")
    if not args.ema_inv_gamma > 0 or not args.ema_power > 0:
        raise SystemExit(f"--ema_inv_gamma {args.ema_inv_gamma} and --ema_power {args.ema_power}: both must be positive.")


class WeightAverage:
    """The moving average of `model`'s parameters, in float32 whatever the training precision."""

    def __init__(self, model: torch.nn.Module, max_decay: float = 0.9999, inv_gamma: float = 1.0, power: float = 0.75):
        self.max_decay, self.inv_gamma, self.power = max_decay, inv_gamma, power
        self.averages = [parameter.detach().float().clone() for parameter in model.parameters()]
        self.updates = 0

    @classmethod
    def from_args(cls, args: argparse.Namespace, model: torch.nn.Module) -> WeightAverage | None:
        return cls(model, args.ema_max_decay, args.ema_inv_gamma, args.ema_power) if args.use_ema else None

    def decay(self) -> float:
        """The decay of the next update: 0 at the first (the average starts at the weights after one step)."""
        step = self.updates
        return 0.0 if step == 0 else min(self.max_decay, 1.0 - (1.0 + step / self.inv_gamma) ** -self.power)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """After an optimizer step: average ← decay · average + (1 − decay) · weights."""
        weight = 1.0 - self.decay()
        for average, parameter in zip(self.averages, model.parameters()):
            average.lerp_(parameter.detach().float(), weight)
        self.updates += 1

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        """The model's parameters become the average (at the end of a run, before it is saved)."""
        for parameter, average in zip(model.parameters(), self.averages):
            parameter.copy_(average)

    @contextlib.contextmanager
    def applied_to(self, model: torch.nn.Module):
        """Inside, the model's parameters are the average (to evaluate it); the weights come back after."""
        parameters = list(model.parameters())
        kept = [parameter.detach().clone() for parameter in parameters]
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for parameter, weights in zip(parameters, kept):
                    parameter.copy_(weights)

    def save(self, folder: str) -> None:
        tensors = {f"average.{index}": average.contiguous() for index, average in enumerate(self.averages)}
        tensors["updates"] = torch.tensor(self.updates, dtype=torch.long)
        safetensors.torch.save_file(tensors, os.path.join(folder, EMA_FILE))

    def load(self, folder: str) -> None:
        """The average a checkpoint holds; a checkpoint written without --use_ema, or of another model, is refused."""
        path = os.path.join(folder, EMA_FILE)
        if not os.path.isfile(path):
            raise ValueError(f"{path} is missing: the run was checkpointed without --use_ema; resume it without --use_ema")
        tensors = safetensors.torch.load_file(path)
        averages = [tensors.get(f"average.{index}") for index in range(len(self.averages))]
        if len(tensors) != len(self.averages) + 1 or any(
                loaded is None or loaded.shape != average.shape for loaded, average in zip(averages, self.averages)):
            raise ValueError(f"{path} holds the average of another model's parameters")
        self.averages = [loaded.to(average.device) for loaded, average in zip(averages, self.averages)]
        self.updates = int(tensors["updates"])


def averaged(average: WeightAverage | None, model: torch.nn.Module):
    """A context in which `model` holds the weight average, when the run keeps one."""
    return contextlib.nullcontext(model) if average is None else average.applied_to(model)
