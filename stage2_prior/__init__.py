"""Stage 2: learned priors over stage-1 latents (a gated PixelCNN over VQ-VAE codes, a Gaussian mixture over
continuous latents), fast sampling, and code extraction."""

from stage2_prior.mixture_prior import MixturePrior
from stage2_prior.pixelcnn import GatedPixelCNN

__all__ = ["GatedPixelCNN", "MixturePrior"]
