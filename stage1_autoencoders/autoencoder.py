"""The plain autoencoder: a deterministic latent and a reconstruction loss, nothing else.

It reconstructs well but its latent space has no distribution to sample from: decoding N(0, I) gives noise.
It is the baseline that a learned prior (stage 2's mixture) turns into a generator.
"""

from __future__ import annotations

import torch
from torch import nn

from hub import HubModel
from stage1_autoencoders.likelihoods import check_likelihood, decoder_channels, reconstruction_mean, reconstruction_nll
from stage1_autoencoders.networks import ConvDecoder, ConvEncoder, latent_grid_side
from stage1_autoencoders.outputs import AutoencoderOutput


class AE(HubModel):
    model_type = "ae"
    # What a config.json may hold (hub/validation.py checks it before anything is built).
    config_ranges = {"image_size": (4, 1024), "in_channels": (1, 4), "hidden_channels": (1, 4096),
                     "latent_dim": (1, 4096), "observation_std": (1e-6, 1e6)}
    # Settings a file written before their version lacks, and which then take their defaults (the old layout).
    config_added_in = {"downsampling_factor": "0.2.0", "num_res_blocks": "0.2.0"}

    def __init__(
        self,
        image_size: int = 28,
        in_channels: int = 1,
        hidden_channels: tuple[int, ...] = (32, 64),
        latent_dim: int = 16,
        likelihood: str = "bernoulli",
        observation_std: float = 0.1,
        downsampling_factor: int | None = None,
        num_res_blocks: int = 1,
    ):
        super().__init__()
        self.image_size, self.in_channels, self.latent_dim = image_size, in_channels, latent_dim
        self.likelihood, self.observation_std = check_likelihood(likelihood), observation_std
        hidden_channels = tuple(hidden_channels)
        side = latent_grid_side(image_size, hidden_channels, downsampling_factor)
        self.feature_shape = (hidden_channels[-1], side, side)
        features = hidden_channels[-1] * side * side
        self.encoder = ConvEncoder(in_channels, hidden_channels, downsampling_factor, num_res_blocks)
        self.to_latent = nn.Linear(features, self.latent_head_size())
        self.from_latent = nn.Linear(latent_dim, features)
        self.decoder = ConvDecoder(decoder_channels(likelihood, in_channels), hidden_channels, downsampling_factor, num_res_blocks)

    def latent_head_size(self) -> int:
        return self.latent_dim

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.encoder(x).flatten(1))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic latent vector of each image (for t-SNE and for fitting a learned prior)."""
        return self.encode(x)

    def sample_posterior(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A draw from q(z | x) for each image: for the plain AE, its one deterministic latent."""
        return self.embed(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.from_latent(z).view(-1, *self.feature_shape))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return reconstruction_mean(self.decode_logits(z), self.likelihood)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.embed(x))

    def forward(self, x: torch.Tensor, step: int | None = None) -> AutoencoderOutput:
        z = self.encode(x)
        logits = self.decode_logits(z)
        reconstruction = reconstruction_nll(logits, x, self.likelihood, self.observation_std).mean()
        return AutoencoderOutput(reconstruction, {"reconstruction": reconstruction}, logits, z)
