from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class AutoencoderOutput:
    """What every autoencoder's forward returns. `loss` is what training minimises; `terms` are its parts
    (per image, averaged over the batch) for logging."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    reconstruction_logits: torch.Tensor
    latent: torch.Tensor
    indices: torch.Tensor | None = None  # VQ-VAE: code index per latent position
    code_counts: torch.Tensor | None = field(default=None, repr=False)  # VQ-VAE: how often each code was chosen
