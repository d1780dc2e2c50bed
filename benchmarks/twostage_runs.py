"""The twostage side of benchmarks/vs_pythae.py: each function is one run in a process of its own, so that its
peak memory is its own. Each returns its figures and saves its samples (uint8) in the run folder.

- vae:   train the VAE (train.py's step), time 1,000 samples from N(0, I), fit the Gaussian mixture prior to the
         training latents (stage2_prior) and sample it;
- vqvae: train the VQ-VAE, save it, and measure how well it reconstructs test images and how many codes they use;
- prior: encode the training set into codes, train the gated PixelCNN (stage2_prior/train.py's step), time
         1,000 samples through the fast sampler (stage2_prior/sampling.py);
- latent_priors: fit the MAF, the neural spline flow and the two-stage VAE to the latents of the VAE that "vae"
         saved, with stage2_prior/fit_latent_prior.py itself (constant learning rate), and sample each;
- vamp:  train the VampPrior VAE and sample its own prior.
"""

from __future__ import annotations

import os

import torch
from accelerate import Accelerator

from prior_loop import PriorLoop
from stage1_autoencoders import VAE, VQVAE
from stage1_autoencoders.data import ImageData, to_float
from stage1_loop import Stage1Loop, stage1_arguments
from stage2_prior.codes import extract_codes
from stage2_prior import fit_latent_prior
from stage2_prior.fit_mixture import latents_of
from stage2_prior.flow_prior import FlowPrior
from stage2_prior.flow_prior import sample_images as sample_latent_prior_images
from stage2_prior.mixture_prior import MixturePrior
from stage2_prior.mixture_prior import sample_images as sample_mixture_images
from stage2_prior.pixelcnn import GatedPixelCNN
from stage2_prior.sampling import sample_images as sample_pixelcnn_images
from stage2_prior.two_stage_vae import TwoStageVAEPrior
from step_clock import timed


def model_arguments(settings: dict, model: str):
    """train.py's arguments for the benchmark's matched settings."""
    flags = ["--hidden_channels", *map(str, settings["hidden_channels"]), "--latent_dim", str(settings["latent_dim"]),
             "--num_embeddings", str(settings["num_embeddings"]), "--embedding_dim", str(settings["embedding_dim"]),
             "--ema_decay", str(settings["ema_decay"]), "--channels_last" if settings["channels_last"] else "--no-channels_last"]
    if model == "vamp_vae":
        flags += ["--num_pseudo_inputs", str(settings["pseudo_inputs"])]
    return stage1_arguments(model, settings["batch_size"], settings["learning_rate"], settings["seed"], *flags)


def _stage1(settings: dict, data: ImageData, model: str, workdir: str) -> Stage1Loop:
    accelerator = Accelerator(cpu=settings["device"] == "cpu")
    args = model_arguments(settings, model)
    args.output_dir = workdir  # where the NaN guard looks for checkpoints: none in a benchmark
    loop = Stage1Loop(args, data, accelerator, compile=settings["compile"], warmup_steps=settings["warmup_steps"])
    loop.train_steps(settings["epochs"] * loop.steps_per_epoch)
    loop.trained_model.eval()
    return loop


def _sample_own_prior(settings: dict, model) -> tuple[float, torch.Tensor]:
    """Seconds to sample --num_samples images from the model's own prior, in pythae's samplers' batches, and them."""
    model.sample(2)  # warm-up
    generator = torch.Generator().manual_seed(settings["seed"])
    batches = [len(batch) for batch in torch.arange(settings["num_samples"]).split(settings["sample_batch_size"])]
    return timed(settings["device"], lambda: torch.cat([model.sample(size, generator=generator) for size in batches]))


def vae(settings: dict, data: ImageData, workdir: str) -> dict:
    loop = _stage1(settings, data, "vae", workdir)
    model, seed, n = loop.trained_model, settings["seed"], settings["num_samples"]
    model.save_pretrained(os.path.join(workdir, "twostage-vae"))  # for latent_priors
    seconds, normal = _sample_own_prior(settings, model)
    latents = latents_of(model, data.train_images, 256, "encoding the training set", seed=seed)
    mixture = MixturePrior.fit(latents, settings["mixture_components"], "full", seed=seed)
    mixture_samples = sample_mixture_images(mixture, model, n, seed=seed)
    return {
        "train_per_second": loop.clock.per_second,
        "sample_seconds": seconds,
        "samples": {"vae_normal": normal, "vae_mixture": mixture_samples},
    }


def test_images(settings: dict, data: ImageData, model: torch.nn.Module) -> torch.Tensor:
    """The first --num_samples test images, as floats on the model's device: what both libraries' VQ-VAEs are
    scored on."""
    return to_float(data.test_images[: settings["num_samples"]]).to(next(model.parameters()).device)


def squared_error_per_image(reconstructions: torch.Tensor, images: torch.Tensor) -> float:
    return (reconstructions - images).pow(2).flatten(1).sum(1).mean().item()


def vqvae(settings: dict, data: ImageData, workdir: str) -> dict:
    loop = _stage1(settings, data, "vqvae", workdir)
    model = loop.trained_model
    model.save_pretrained(os.path.join(workdir, "twostage-vqvae"))
    test = test_images(settings, data, model)
    with torch.no_grad():
        error = squared_error_per_image(model.reconstruct(test), test)
        codes_used = model.encode_to_indices(test).unique().numel()
    return {"train_per_second": loop.clock.per_second, "reconstruction_error": error, "codes_used": codes_used}


def prior(settings: dict, data: ImageData, workdir: str) -> dict:
    device, seed, n = settings["device"], settings["seed"], settings["num_samples"]
    accelerator = Accelerator(cpu=device == "cpu")
    vqvae_model = VQVAE.from_pretrained(os.path.join(workdir, "twostage-vqvae")).to(accelerator.device).eval()
    codes = extract_codes(vqvae_model, data, accelerator, cache_dir=None).train_codes
    height, width = vqvae_model.latent_grid_size
    torch.manual_seed(seed)
    pixelcnn = GatedPixelCNN(num_embeddings=vqvae_model.num_embeddings, grid_height=height, grid_width=width)
    loop = PriorLoop(pixelcnn, codes, accelerator, settings["batch_size"], settings["learning_rate"], seed, workdir,
                     warmup_steps=settings["warmup_steps"], compile=settings["compile"])
    loop.train_epochs(settings["prior_epochs"])
    pixelcnn = loop.prior.eval()
    batch_size = settings["sample_batch_size"]
    sample_pixelcnn_images(pixelcnn, vqvae_model, 2, batch_size=batch_size, seed=seed)  # warm-up
    seconds, samples = timed(device, lambda: sample_pixelcnn_images(pixelcnn, vqvae_model, n, batch_size=batch_size, seed=seed))
    return {"train_per_second": loop.clock.per_second, "sample_seconds": seconds, "samples": {"vqvae_pixelcnn": samples}}


def latent_priors(settings: dict, data: ImageData, workdir: str) -> dict:
    vae_folder = os.path.join(workdir, "twostage-vae")
    model = VAE.from_pretrained(vae_folder).eval()
    samples = {}
    for prior_name, prior_class in (("maf", FlowPrior), ("nsf", FlowPrior), ("two_stage_vae", TwoStageVAEPrior)):
        output_dir = os.path.join(workdir, f"twostage-vae-{prior_name}")
        flags = ["--autoencoder", vae_folder, "--prior", prior_name, "--output_dir", output_dir,
                 "--dataset_name", settings["dataset_name"], "--max_eval_samples", str(settings["num_samples"]),
                 "--train_batch_size", str(settings["batch_size"]), "--learning_rate", str(settings["learning_rate"]),
                 "--lr_scheduler", "constant", "--num_train_epochs", str(settings["latent_prior_epochs"]),
                 "--seed", str(settings["seed"]), "--checkpointing_steps", "1000000"]  # no checkpoints in a benchmark
        if settings["max_train_samples"]:
            flags += ["--max_train_samples", str(settings["max_train_samples"])]
        fit_latent_prior.main(flags)
        prior = prior_class.from_pretrained(output_dir)
        samples[f"vae_{prior_name}"] = sample_latent_prior_images(prior, model, settings["num_samples"], seed=settings["seed"])
    return {"samples": samples}


def vamp(settings: dict, data: ImageData, workdir: str) -> dict:
    loop = _stage1(settings, data, "vamp_vae", workdir)
    seconds, samples = _sample_own_prior(settings, loop.trained_model)
    return {"train_per_second": loop.clock.per_second, "sample_seconds": seconds, "samples": {"vamp": samples}}


RUNS = {"vae": vae, "vqvae": vqvae, "prior": prior, "latent_priors": latent_priors, "vamp": vamp}
