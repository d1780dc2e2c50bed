"""Stage 1: autoencoders whose latents stage 2 learns a prior over."""

from stage1_autoencoders.autoencoder import AE
from stage1_autoencoders.beta_vae import BetaVAE
from stage1_autoencoders.vae import VAE
from stage1_autoencoders.vamp_vae import VampPriorVAE
from stage1_autoencoders.vector_quantizer import VectorQuantizer
from stage1_autoencoders.vqvae import VQVAE

MODELS = {"ae": AE, "vae": VAE, "beta_vae": BetaVAE, "vqvae": VQVAE, "vamp_vae": VampPriorVAE}

__all__ = ["AE", "VAE", "BetaVAE", "VQVAE", "VectorQuantizer", "VampPriorVAE", "MODELS"]
