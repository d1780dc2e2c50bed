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

from stage1_autoencoders import VAE, VQVAE, VampPriorVAE


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


def pythae_vae(ours: VAE, reconstruction_loss: str = "bce"):
    """pythae's VAE; "bce" by default, our VAE's Bernoulli likelihood (pythae's MNIST config uses "mse")."""
    from pythae.models import VAE as PythaeVAE, VAEConfig

    config = VAEConfig(input_dim=(ours.in_channels, ours.image_size, ours.image_size), latent_dim=ours.latent_dim,
                       reconstruction_loss=reconstruction_loss)
    return PythaeVAE(config, encoder=VAEEncoder(ours), decoder=VAEDecoder(ours))


def pythae_vamp(ours: VampPriorVAE, reconstruction_loss: str = "bce"):
    """pythae's VampPrior VAE (VAMP) on our VampPrior VAE's encoder and decoder, with as many pseudo-inputs; the
    pseudo-inputs themselves are pythae's own (a linear layer on one-hot inputs), as is its loss."""
    from pythae.models import VAMP, VAMPConfig

    config = VAMPConfig(input_dim=(ours.in_channels, ours.image_size, ours.image_size), latent_dim=ours.latent_dim,
                        reconstruction_loss=reconstruction_loss, number_components=ours.num_pseudo_inputs)
    return VAMP(config, encoder=VAEEncoder(ours), decoder=VAEDecoder(ours))


def pythae_vqvae(ours: VQVAE, use_ema: bool | None = None):
    """pythae's VQ-VAE; its loss is its own (MSE reconstruction). The codebook follows ours (EMA updates at our
    decay when > 0) unless use_ema says otherwise (then at pythae's default decay, 0.99)."""
    from pythae.models import VQVAE as PythaeVQVAE, VQVAEConfig

    quantizer = ours.quantizer
    ema = quantizer.ema_decay > 0 if use_ema is None else use_ema
    config = VQVAEConfig(
        input_dim=(ours.in_channels, ours.image_size, ours.image_size), latent_dim=ours.embedding_dim,
        num_embeddings=ours.num_embeddings, commitment_loss_factor=quantizer.commitment_cost,
        use_ema=ema, decay=quantizer.ema_decay if quantizer.ema_decay > 0 else 0.99,
    )
    return PythaeVQVAE(config, encoder=VQVAEEncoder(ours), decoder=VQVAEDecoder(ours))


def make_ema_codebook_samplable(model) -> None:
    """pythae 0.1.2's PixelCNNSampler.sample looks codes up with `model.quantizer.embeddings(indices)`, a call that
    only the plain quantizer's nn.Embedding answers; the EMA quantizer keeps its codebook as a tensor. This puts
    that same codebook, unchanged, in an nn.Embedding under the same name, so that the sampler decodes the codes
    it drew with the codebook the model was trained with. Call it after training and fitting, before sampling."""
    quantizer = model.quantizer
    if isinstance(quantizer.embeddings, torch.nn.Embedding):
        return
    codebook = quantizer.embeddings.detach().clone()
    del quantizer.embeddings  # the buffer
    quantizer.embeddings = torch.nn.Embedding.from_pretrained(codebook)
