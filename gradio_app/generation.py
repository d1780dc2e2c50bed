"""Samples of a served model from one of its priors, drawn exactly as the evaluation report draws them, so the
app's grids and scores match the report's for the same seed."""

from __future__ import annotations

import torch

from evaluation.models import is_conditional as prior_is_conditional
from evaluation.models import sample_prior
from gradio_app.catalog import ServedModel


def is_conditional(served: ServedModel, prior: str) -> bool:
    generator = served.learned_priors.get(prior)
    return generator is not None and prior_is_conditional(generator)


def takes_temperature(served: ServedModel, prior: str) -> bool:
    generator = served.learned_priors.get(prior)
    return generator is not None and generator.prior.model_type == "gated_pixelcnn"


def sample(served: ServedModel, prior: str, num_samples: int, seed: int, temperature: float = 1.0,
           label: int | None = None, progress: bool = False) -> torch.Tensor:
    """Float images (N, C, H, W) in [0, 1], drawn by the report's own sampler (evaluation.models.sample_prior)."""
    return sample_prior(served, prior, num_samples, seed, temperature, label, progress)
