"""The pythae 0.1.2 side of benchmarks/vs_pythae.py, the same three runs as twostage_runs.py, each through
pythae's own user-facing path: TrainingPipeline for the autoencoders, NormalSampler, GaussianMixtureSampler, and
PixelCNNSampler (whose fit trains pythae's PixelCNN with its BaseTrainer).

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
    NormalSampler,
    PixelCNNSampler,
    PixelCNNSamplerConfig,
)
from pythae.trainers import BaseTrainer, BaseTrainerConfig
from pythae.trainers.training_callbacks import TrainingCallback

from pythae_models import pythae_vae, pythae_vqvae
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


def trainer_config(settings: dict, epochs: int, output_dir: str) -> BaseTrainerConfig:
    return BaseTrainerConfig(
        output_dir=output_dir, per_device_train_batch_size=settings["batch_size"], num_epochs=epochs,
        optimizer_cls="AdamW", learning_rate=settings["learning_rate"], no_cuda=settings["device"] == "cpu",
        seed=settings["seed"],
    )


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


def vae(settings: dict, data: ImageData, workdir: str) -> dict:
    model, clock = _train(settings, data, pythae_vae(_our_networks(settings, data, "vae")), workdir)
    n, device = settings["num_samples"], settings["device"]
    normal_sampler = NormalSampler(model)
    normal_sampler.sample(2)  # warm-up
    torch.manual_seed(settings["seed"])
    seconds, normal = timed(device, lambda: normal_sampler.sample(n, batch_size=settings["sample_batch_size"]))
    mixture_sampler = GaussianMixtureSampler(model, GaussianMixtureSamplerConfig(n_components=settings["mixture_components"]))
    mixture_sampler.fit(to_float(data.train_images))
    mixture = mixture_sampler.sample(n, batch_size=settings["sample_batch_size"])
    return {"train_per_second": clock.per_second, "sample_seconds": seconds,
            "samples": {"vae_normal": normal, "vae_mixture": mixture}}


def vqvae(settings: dict, data: ImageData, workdir: str) -> dict:
    model, clock = _train(settings, data, pythae_vqvae(_our_networks(settings, data, "vqvae")), workdir)
    torch.save(model.state_dict(), os.path.join(workdir, "pythae-vqvae.pt"))
    test = test_images(settings, data, model)
    with torch.no_grad():
        output = model({"data": test})
    return {"train_per_second": clock.per_second, "reconstruction_error": squared_error_per_image(output.recon_x, test),
            "codes_used": output.quantized_indices.unique().numel()}


def prior(settings: dict, data: ImageData, workdir: str) -> dict:
    n, device = settings["num_samples"], settings["device"]
    model = pythae_vqvae(_our_networks(settings, data, "vqvae"))
    model.load_state_dict(torch.load(os.path.join(workdir, "pythae-vqvae.pt"), weights_only=True))
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
    sampler.sample(2)  # warm-up
    torch.manual_seed(settings["seed"])
    seconds, samples = timed(device, lambda: sampler.sample(n, batch_size=settings["sample_batch_size"]))
    return {"train_per_second": clock.per_second, "sample_seconds": seconds, "samples": {"vqvae_pixelcnn": samples}}


RUNS = {"vae": vae, "vqvae": vqvae, "prior": prior}
