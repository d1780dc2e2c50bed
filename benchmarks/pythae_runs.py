"""The pythae 0.1.2 side of benchmarks/vs_pythae.py, the same runs as twostage_runs.py, each through pythae's own
user-facing path: TrainingPipeline for the autoencoders (VAE, VQVAE, VAMP), NormalSampler, GaussianMixtureSampler,
PixelCNNSampler (whose fit trains pythae's PixelCNN with its BaseTrainer), MAFSampler, IAFSampler,
TwoStageVAESampler and VAMPSampler.

Each run goes at the benchmark's matched settings, or, with with_pythae_knobs(settings, own=True), at pythae's own
(OWN_SETTINGS): the same networks, data and epochs, pythae's documented training knobs.

The networks are ours (benchmarks/pythae_models.py), built from the same seed, so both libraries start from the
same weights. pythae's trainer is timed by a TrainingCallback (pythae calls on_train_step_end after each
optimizer step and its loss.item()). PixelCNNSampler.fit builds its BaseTrainer itself with no callbacks, so
for the timing alone the module's name BaseTrainer is pointed at a subclass that adds ours; nothing else changes
(pythae imports unpatched with torch 2.14).
"""

from __future__ import annotations

import os
import tempfile

import pythae.samplers.pixelcnn_sampler.pixelcnn_sampler as pixelcnn_sampler_module
import torch
from accelerate.utils import set_seed
from pythae.pipelines import TrainingPipeline
from pythae.samplers import (
    GaussianMixtureSampler,
    GaussianMixtureSamplerConfig,
    IAFSampler,
    IAFSamplerConfig,
    MAFSampler,
    MAFSamplerConfig,
    NormalSampler,
    PixelCNNSampler,
    PixelCNNSamplerConfig,
    TwoStageVAESampler,
    TwoStageVAESamplerConfig,
    VAMPSampler,
)
from pythae.trainers import BaseTrainer, BaseTrainerConfig
from pythae.trainers.training_callbacks import TrainingCallback

from pythae_models import make_ema_codebook_samplable, pythae_vae, pythae_vamp, pythae_vqvae
from stage1_autoencoders.data import ImageData, to_float
from stage1_autoencoders.train import build_model
from step_clock import StepClock, batch_sizes, timed
from twostage_runs import model_arguments, squared_error_per_image, test_images


class StepTimer(TrainingCallback):
    """Feeds pythae's training steps to a StepClock: on_epoch_begin comes before an epoch's first batch."""

    def __init__(self, clock: StepClock, num_items: int, batch_size: int, items_per_example: int = 1):
        self.clock, self.sizes, self.items_per_example = clock, batch_sizes(num_items, batch_size), items_per_example
        self.batch = 0

    def on_epoch_begin(self, training_config, **kwargs):
        self.clock.restart()
        self.batch = 0

    def on_train_step_end(self, training_config, **kwargs):
        self.clock.step_done(self.sizes[self.batch] * self.items_per_example)
        self.batch += 1


# pythae's knobs at the benchmark's matched settings: AdamW as ours, our VAE's Bernoulli likelihood, the codebook
# update ours has (EMA only when --ema_decay > 0); "name" prefixes the run's files.
MATCHED_SETTINGS = {"name": "pythae", "optimizer": "AdamW", "reconstruction_loss": "bce", "use_ema": None}
# pythae's own, from its MNIST scripts (github.com/clementchadebec/benchmark_VAE, examples/scripts/configs/mnist/):
# base_training_config.json: batch 100, learning rate 1e-3 with BaseTrainerConfig's default optimizer, Adam;
# vae_config.json and vamp_config.json: "mse" reconstruction loss; vqvae_config.json: commitment 0.25 and
# quantization 1 (both as matched). Plus VQVAEConfig's EMA codebook (use_ema, decay 0.99), pythae's remedy for a
# collapsing codebook, which its config leaves off. Kept as matched: the networks, latent size, codebook size
# (vqvae_config.json's 256 would be another model, not another way to train it) and the number of epochs.
OWN_SETTINGS = {"name": "pythae_own", "batch_size": 100, "optimizer": "Adam", "reconstruction_loss": "mse", "use_ema": True}
# pythae's latent samplers sized as ours (fit_latent_prior.py's defaults): 3 transforms of two 128-wide hidden
# layers for the flows, a second VAE of two 128-wide layers.
FLOW_SIZE = {"n_made_blocks": 3, "n_hidden_in_made": 2, "hidden_size": 128}
SECOND_VAE_SIZE = {"second_stage_depth": 2, "second_layers_dim": 128}


def with_pythae_knobs(settings: dict, own: bool) -> dict:
    """The benchmark's settings with pythae's knobs set: matched, or its own (OWN_SETTINGS)."""
    return settings | MATCHED_SETTINGS | (OWN_SETTINGS if own else {})


def _knob(settings: dict, name: str):
    return settings.get(name, MATCHED_SETTINGS[name])  # settings from elsewhere (another benchmark) are matched


def trainer_config(settings: dict, epochs: int, output_dir: str) -> BaseTrainerConfig:
    return BaseTrainerConfig(
        output_dir=output_dir, per_device_train_batch_size=settings["batch_size"], num_epochs=epochs,
        optimizer_cls=_knob(settings, "optimizer"), learning_rate=settings["learning_rate"],
        no_cuda=settings["device"] == "cpu", seed=settings["seed"],
    )


def _saved(settings: dict, workdir: str, model: str) -> str:
    return os.path.join(workdir, f"{_knob(settings, 'name')}-{model}.pt")


def _our_networks(settings: dict, data: ImageData, model: str):
    """Our model, built exactly as Stage1Loop builds it (same seed, same constructor), for pythae to wrap."""
    args = model_arguments(settings, model)
    set_seed(args.seed)
    return build_model(args, data)


def _train(settings: dict, data: ImageData, model, workdir: str):
    clock = StepClock(settings["warmup_steps"])
    timer = StepTimer(clock, len(data.train_images), settings["batch_size"])
    pipeline = TrainingPipeline(training_config=trainer_config(settings, settings["epochs"], workdir), model=model)
    pipeline(train_data=to_float(data.train_images), callbacks=[timer])
    return pipeline.trainer._best_model.eval(), clock  # what pythae saves as its final model


def _sample(settings: dict, sampler) -> tuple[float, torch.Tensor]:
    """Seconds to draw --num_samples images from a fitted sampler, after a warm-up, and them."""
    sampler.sample(2)
    torch.manual_seed(settings["seed"])
    return timed(settings["device"], lambda: sampler.sample(settings["num_samples"], batch_size=settings["sample_batch_size"]))


def vae(settings: dict, data: ImageData, workdir: str) -> dict:
    model = pythae_vae(_our_networks(settings, data, "vae"), _knob(settings, "reconstruction_loss"))
    model, clock = _train(settings, data, model, workdir)
    torch.save(model.state_dict(), _saved(settings, workdir, "vae"))  # for latent_priors
    n = settings["num_samples"]
    seconds, normal = _sample(settings, NormalSampler(model))
    mixture_sampler = GaussianMixtureSampler(model, GaussianMixtureSamplerConfig(n_components=settings["mixture_components"]))
    mixture_sampler.fit(to_float(data.train_images))
    mixture = mixture_sampler.sample(n, batch_size=settings["sample_batch_size"])
    return {"train_per_second": clock.per_second, "sample_seconds": seconds,
            "samples": {"vae_normal": normal, "vae_mixture": mixture}}


def vqvae(settings: dict, data: ImageData, workdir: str) -> dict:
    model = pythae_vqvae(_our_networks(settings, data, "vqvae"), _knob(settings, "use_ema"))
    model, clock = _train(settings, data, model, workdir)
    torch.save(model.state_dict(), _saved(settings, workdir, "vqvae"))
    test = test_images(settings, data, model)
    with torch.no_grad():
        output = model({"data": test})
    return {"train_per_second": clock.per_second, "reconstruction_error": squared_error_per_image(output.recon_x, test),
            "codes_used": output.quantized_indices.unique().numel()}


def prior(settings: dict, data: ImageData, workdir: str) -> dict:
    model = pythae_vqvae(_our_networks(settings, data, "vqvae"), _knob(settings, "use_ema"))
    model.load_state_dict(torch.load(_saved(settings, workdir, "vqvae"), weights_only=True))
    sampler = PixelCNNSampler(model.eval(), PixelCNNSamplerConfig())  # pythae's defaults: 10 layers, kernel 5
    codes_per_grid = int(torch.tensor(sampler.pixelcnn_model.model_config.input_dim).prod())
    clock = StepClock(settings["warmup_steps"])
    timer = StepTimer(clock, len(data.train_images), settings["batch_size"], codes_per_grid)

    class TimedTrainer(BaseTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, callbacks=[timer], **kwargs)

    pixelcnn_sampler_module.BaseTrainer = TimedTrainer
    try:
        with tempfile.TemporaryDirectory(dir=workdir) as output_dir:
            sampler.fit(to_float(data.train_images), training_config=trainer_config(settings, settings["prior_epochs"], output_dir))
    finally:
        pixelcnn_sampler_module.BaseTrainer = BaseTrainer
    make_ema_codebook_samplable(sampler.model)
    seconds, samples = _sample(settings, sampler)
    return {"train_per_second": clock.per_second, "sample_seconds": seconds, "samples": {"vqvae_pixelcnn": samples}}


def latent_priors(settings: dict, data: ImageData, workdir: str) -> dict:
    """pythae's MAF, IAF and two-stage VAE samplers fitted to the latents of the VAE that "vae" saved, each for
    --latent_prior_epochs at the matched batch size and learning rate."""
    model = pythae_vae(_our_networks(settings, data, "vae"), _knob(settings, "reconstruction_loss"))
    model.load_state_dict(torch.load(_saved(settings, workdir, "vae"), weights_only=True))
    model.eval()
    train_images = to_float(data.train_images)
    samplers = {
        "vae_maf": MAFSampler(model, MAFSamplerConfig(**FLOW_SIZE)),
        "vae_iaf": IAFSampler(model, IAFSamplerConfig(**FLOW_SIZE)),
        # its second VAE's likelihood as ours: a Gaussian, "mse"
        "vae_two_stage_vae": TwoStageVAESampler(model, TwoStageVAESamplerConfig(reconstruction_loss="mse", **SECOND_VAE_SIZE)),
    }
    samples = {}
    for name, sampler in samplers.items():
        with tempfile.TemporaryDirectory(dir=workdir) as output_dir:
            sampler.fit(train_images, training_config=trainer_config(settings, settings["latent_prior_epochs"], output_dir))
        samples[name] = _sample(settings, sampler)[1]
    return {"samples": samples}


def vamp(settings: dict, data: ImageData, workdir: str) -> dict:
    model = pythae_vamp(_our_networks(settings, data, "vamp_vae"), _knob(settings, "reconstruction_loss"))
    model, clock = _train(settings, data, model, workdir)
    seconds, samples = _sample(settings, VAMPSampler(model))
    return {"train_per_second": clock.per_second, "sample_seconds": seconds, "samples": {"vamp": samples}}


RUNS = {"vae": vae, "vqvae": vqvae, "prior": prior, "latent_priors": latent_priors, "vamp": vamp}
