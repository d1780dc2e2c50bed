"""`from_pretrained` for any of the project's models, as diffusers' and transformers' Auto classes do: read
config.json's `model_type`, import that class (lazily, so loading a VQ-VAE never imports the evaluation code), and
load. A prior comes back with the stage-1 model it was trained on, as one ready `TwoStageGenerator`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from hub.files import read_config
from hub.generator import TwoStageGenerator
from hub.mixin import HubModel


@dataclass(frozen=True)
class ModelEntry:
    model_class: str  # "module:Class"
    # Priors only: the config key prefix that names the stage-1 model decoding the prior's samples ("vqvae" ->
    # vqvae_id, vqvae_revision), and "module:function"(prior, decoder, num_samples, **options) -> images.
    decoder: str | None = None
    sampler: str | None = None


MODELS = {
    "ae": ModelEntry("stage1_autoencoders.autoencoder:AE"),
    "vae": ModelEntry("stage1_autoencoders.vae:VAE"),
    "beta_vae": ModelEntry("stage1_autoencoders.beta_vae:BetaVAE"),
    "vqvae": ModelEntry("stage1_autoencoders.vqvae:VQVAE"),
    "vamp_vae": ModelEntry("stage1_autoencoders.vamp_vae:VampPriorVAE"),
    "gated_pixelcnn": ModelEntry("stage2_prior.pixelcnn:GatedPixelCNN", "vqvae", "stage2_prior.sampling:sample_images"),
    "gaussian_mixture_prior": ModelEntry(
        "stage2_prior.mixture_prior:MixturePrior", "autoencoder", "stage2_prior.mixture_prior:sample_images"
    ),
    "flow_prior": ModelEntry("stage2_prior.flow_prior:FlowPrior", "autoencoder", "stage2_prior.flow_prior:sample_images"),
    "two_stage_vae_prior": ModelEntry(
        "stage2_prior.two_stage_vae:TwoStageVAEPrior", "autoencoder", "stage2_prior.flow_prior:sample_images"
    ),
    "classifier": ModelEntry("evaluation.classifier:Classifier"),
}


def import_object(reference: str):
    module, name = reference.split(":")
    return getattr(importlib.import_module(module), name)


def model_entry(model_type: str | None, source: str = "") -> ModelEntry:
    if model_type is None:
        raise ValueError(
            f"{source}: config.json has no model_type (it was saved before twostage recorded one), so the model "
            f"class cannot be chosen for you. Load it with the class itself, e.g. VQVAE.from_pretrained({source!r})."
        )
    if model_type not in MODELS:
        raise ValueError(f"{source}: unknown model_type {model_type!r} in config.json; twostage knows {sorted(MODELS)}.")
    return MODELS[model_type]


def model_class(model_type: str) -> type[HubModel]:
    return import_object(model_entry(model_type).model_class)


def from_pretrained(
    name_or_path: str | Path, revision: str | None = None, **options
) -> HubModel | TwoStageGenerator:
    """Any twostage model from a folder or a Hub repo id.

    A prior also loads the stage-1 model its config names (a PixelCNN's `vqvae_id` at `vqvae_revision`, a mixture's
    `autoencoder_id` at `autoencoder_revision`) and returns both as a TwoStageGenerator:
    `from_pretrained("user/mnist-vqvae-pixelcnn").sample(16, seed=0)`.
    `options` go to every from_pretrained call (token, cache_dir, local_files_only, map_location, ...).
    """
    source = str(name_or_path)
    download_options = {k: options[k] for k in ("token", "cache_dir", "force_download", "local_files_only") if k in options}
    entry = model_entry(read_config(source, revision, **download_options).get("model_type"), source)
    model = import_object(entry.model_class).from_pretrained(source, revision=revision, **options)
    if entry.decoder is None:
        return model
    decoder_id = getattr(model, f"{entry.decoder}_id")
    if decoder_id is None:
        raise ValueError(
            f"{source}: this prior's config names no {entry.decoder} ({entry.decoder}_id is empty), so it cannot be "
            f"turned into images. Load it with its class and pair it yourself: TwoStageGenerator(prior, {entry.decoder})."
        )
    decoder = from_pretrained(decoder_id, revision=getattr(model, f"{entry.decoder}_revision"), **options)
    return TwoStageGenerator(model, decoder, import_object(entry.sampler))
