"""Samples of a served model from one of its priors, drawn exactly as the evaluation report draws them, so the
app's grids and scores match the report's for the same seed."""

from __future__ import annotations

import torch

from evaluation.evaluate import baseline_samples
from gradio_app.catalog import ServedModel

BATCH_SIZE = 256


def is_conditional(served: ServedModel, prior: str) -> bool:
    generator = served.learned_priors.get(prior)
    return generator is not None and getattr(generator.prior, "conditional", False)


def takes_temperature(served: ServedModel, prior: str) -> bool:
    generator = served.learned_priors.get(prior)
    return generator is not None and generator.prior.model_type == "gated_pixelcnn"


@torch.no_grad()
def sample(served: ServedModel, prior: str, num_samples: int, seed: int, temperature: float = 1.0,
           label: int | None = None, progress: bool = False) -> torch.Tensor:
    """Float images (N, C, H, W) in [0, 1]. A conditional prior draws class `label`, or with None every class in
    turn (sample i has class i mod K), as the report does. `progress` shows the PixelCNN's batches with tqdm."""
    if prior == served.baseline_prior:
        return baseline_samples(served.model, num_samples, seed, BATCH_SIZE)[1]
    generator = served.learned_priors[prior]
    options = {"seed": seed}
    if takes_temperature(served, prior):
        options.update(temperature=temperature, progress=progress)
    if is_conditional(served, prior):
        options["labels"] = torch.arange(num_samples) % generator.prior.num_classes if label is None else label
    return generator.sample(num_samples, **options)
