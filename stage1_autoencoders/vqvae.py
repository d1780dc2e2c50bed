"""VQ-VAE (van den Oord et al. 2017): the encoder's feature grid is snapped to the nearest of K codebook
vectors; the decoder sees only codes. Loss = reconstruction + codebook loss + β·commitment. Its prior over the
grid of code indices is learned in stage 2 (a gated PixelCNN); the baseline prior draws codes uniformly."""

from __future__ import annotations

import torch
from torch import nn

from hub import HubModel
from stage1_autoencoders.likelihoods import check_likelihood, decoder_channels, reconstruction_mean, reconstruction_nll
from stage1_autoencoders.networks import ConvDecoder, ConvEncoder, latent_grid_side
from stage1_autoencoders.finite_scalar_quantizer import FiniteScalarQuantizer
from stage1_autoencoders.outputs import AutoencoderOutput
from stage1_autoencoders.vector_quantizer import VectorQuantizer


class VQVAE(HubModel):
    model_type = "vqvae"
    # What a config.json may hold (hub/validation.py checks it before anything is built).
    config_ranges = {"image_size": (4, 1024), "in_channels": (1, 4), "hidden_channels": (1, 4096),
                     "num_embeddings": (2, 65536), "embedding_dim": (1, 4096), "commitment_cost": (0, 1e3),
                     "ema_decay": (0, 1), "dead_code_threshold": (0, 1e6), "observation_std": (1e-6, 1e6)}
    # Settings a file written before their version lacks, and which then take their defaults (the old layout).
    config_added_in = {name: "0.2.0" for name in ("downsampling_factor", "num_res_blocks", "rotation_trick", "codebook_dim",
                                                  "cosine_codes", "fsq_levels")}

    def __init__(
        self,
        image_size: int = 28,
        in_channels: int = 1,
        hidden_channels: tuple[int, ...] = (32, 64),
        num_embeddings: int = 64,
        embedding_dim: int = 16,
        commitment_cost: float = 0.25,
        ema_decay: float = 0.99,
        kmeans_init: bool = True,
        dead_code_threshold: float = 1.0,
        likelihood: str = "bernoulli",
        observation_std: float = 0.1,
        downsampling_factor: int | None = None,
        num_res_blocks: int = 1,
        rotation_trick: bool = False,
        codebook_dim: int | None = None,
        cosine_codes: bool = False,
        fsq_levels: tuple[int, ...] | None = None,
    ):
        super().__init__()
        self.image_size, self.in_channels = image_size, in_channels
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.likelihood, self.observation_std = check_likelihood(likelihood), observation_std
        hidden_channels = tuple(hidden_channels)
        side = latent_grid_side(image_size, hidden_channels, downsampling_factor)
        self.latent_grid_size = (side, side)
        self.encoder = ConvEncoder(in_channels, hidden_channels, downsampling_factor, num_res_blocks)
        self.pre_quantization = nn.Conv2d(hidden_channels[-1], embedding_dim, 1)
        if fsq_levels:  # FSQ: the codebook is the grid of levels, num_embeddings is their product
            self.quantizer = FiniteScalarQuantizer(fsq_levels, embedding_dim)
            self.num_embeddings = self.quantizer.num_embeddings
        else:
            self.quantizer = VectorQuantizer(num_embeddings, embedding_dim, commitment_cost, ema_decay, kmeans_init,
                                             dead_code_threshold, rotation_trick=rotation_trick,
                                             codebook_dim=codebook_dim, cosine_codes=cosine_codes)
        self.post_quantization = nn.Conv2d(embedding_dim, hidden_channels[-1], 1)
        self.decoder = ConvDecoder(decoder_channels(likelihood, in_channels), hidden_channels, downsampling_factor, num_res_blocks)

    def encode_continuous(self, x: torch.Tensor) -> torch.Tensor:
        return self.pre_quantization(self.encoder(x))

    def encode_to_indices(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> code indices (B, h, w)."""
        z = self.encode_continuous(x)
        flat = z.permute(0, 2, 3, 1).reshape(-1, self.embedding_dim).float()
        return self.quantizer.nearest_codes(flat).view(z.shape[0], *z.shape[2:])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantizer.lookup(self.encode_to_indices(x)).flatten(1)

    def decode_logits(self, quantized: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quantization(quantized))

    def decode(self, quantized: torch.Tensor) -> torch.Tensor:
        return reconstruction_mean(self.decode_logits(quantized), self.likelihood)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (B, h, w) -> images in [0, 1]."""
        return self.decode(self.quantizer.lookup(indices))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_indices(self.encode_to_indices(x))

    @torch.no_grad()
    def sample_uniform(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The baseline prior: every code drawn independently and uniformly (the VQ-VAE's own training prior)."""
        device = self.decoder.layers[-1].weight.device
        indices = torch.randint(self.num_embeddings, (n, *self.latent_grid_size), generator=generator,
                                device=generator.device if generator else device)
        return self.decode_indices(indices.to(device))

    def forward(self, x: torch.Tensor, step: int | None = None) -> AutoencoderOutput:
        z = self.encode_continuous(x)
        quantized, codebook_loss, commitment_loss, indices, counts = self.quantizer(z)
        logits = self.decode_logits(quantized)
        reconstruction = reconstruction_nll(logits, x, self.likelihood, self.observation_std).mean()
        loss = reconstruction + codebook_loss + commitment_loss
        terms = {"reconstruction": reconstruction, "codebook": codebook_loss, "commitment": commitment_loss}
        return AutoencoderOutput(loss, terms, logits, quantized, indices, counts)
