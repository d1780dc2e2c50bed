"""Our encoder and decoder networks (stage1_autoencoders/networks.py) as pythae 0.1.2 encoders and decoders, so
that pythae trains exactly the architecture we train, from the same initial weights.

pythae's contract: an encoder returns ModelOutput(embedding=..., log_covariance=... for a VAE), a decoder returns
ModelOutput(reconstruction=...) as images in [0, 1] (pythae's BCE and MSE losses read probabilities, not logits).
Each wrapper holds the submodules of one of our models, so `VAEEncoder(ours)` starts from ours' weights.
"""

from __future__ import annotations

import torch
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseEncoder

from stage1_autoencoders import VAE, VQVAE


class VAEEncoder(BaseEncoder):
    def __init__(self, ours: VAE):
        super().__init__()
        self.encoder, self.to_latent = ours.encoder, ours.to_latent

    def forward(self, x: torch.Tensor) -> ModelOutput:
        mean, logvar = self.to_latent(self.encoder(x).flatten(1)).chunk(2, dim=1)
        return ModelOutput(embedding=mean, log_covariance=logvar.clamp(-30.0, 20.0))  # VAE.encode's clamp


class VAEDecoder(BaseDecoder):
    def __init__(self, ours: VAE):
        super().__init__()
        self.from_latent, self.decoder, self.feature_shape = ours.from_latent, ours.decoder, ours.feature_shape

    def forward(self, z: torch.Tensor) -> ModelOutput:
        logits = self.decoder(self.from_latent(z).view(-1, *self.feature_shape))
        return ModelOutput(reconstruction=torch.sigmoid(logits))


class VQVAEEncoder(BaseEncoder):
    def __init__(self, ours: VQVAE):
        super().__init__()
        self.encoder, self.pre_quantization = ours.encoder, ours.pre_quantization

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return ModelOutput(embedding=self.pre_quantization(self.encoder(x)))


class VQVAEDecoder(BaseDecoder):
    def __init__(self, ours: VQVAE):
        super().__init__()
        self.post_quantization, self.decoder = ours.post_quantization, ours.decoder

    def forward(self, quantized: torch.Tensor) -> ModelOutput:
        return ModelOutput(reconstruction=torch.sigmoid(self.decoder(self.post_quantization(quantized))))


def pythae_vae(ours: VAE):
    from pythae.models import VAE as PythaeVAE, VAEConfig

    config = VAEConfig(input_dim=(ours.in_channels, ours.image_size, ours.image_size), latent_dim=ours.latent_dim,
                       reconstruction_loss="bce")  # our VAE's Bernoulli likelihood
    return PythaeVAE(config, encoder=VAEEncoder(ours), decoder=VAEDecoder(ours))


def pythae_vqvae(ours: VQVAE):
    """pythae's VQ-VAE with EMA codebook updates at our decay; its loss is its own (MSE reconstruction)."""
    from pythae.models import VQVAE as PythaeVQVAE, VQVAEConfig

    quantizer = ours.quantizer
    config = VQVAEConfig(
        input_dim=(ours.in_channels, ours.image_size, ours.image_size), latent_dim=ours.embedding_dim,
        num_embeddings=ours.num_embeddings, commitment_loss_factor=quantizer.commitment_cost,
        use_ema=quantizer.ema_decay > 0, decay=quantizer.ema_decay if quantizer.ema_decay > 0 else 0.99,
    )
    return PythaeVQVAE(config, encoder=VQVAEEncoder(ours), decoder=VQVAEDecoder(ours))
