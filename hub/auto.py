"""`from_pretrained` for any of the project's models, as diffusers' and transformers' Auto classes do: read
config.json's `model_type`, import that class (lazily, so loading a VQ-VAE never imports the evaluation code), and
load. A prior comes back with the stage-1 model it was trained on, as one ready `TwoStageGenerator`.

This is the layer that knows every model; the base the models inherit (mixin.py, files.py, validation.py) does not
import it. A prior's reference to its stage-1 model is data too: it must name a model of a type that can decode the
prior's samples, at the commit (Hub) or with the weights' fingerprint (local folder) recorded when it was trained;
chains of references are at most MAX_REFERENCE_DEPTH long and never loop.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from hub.files import FINGERPRINT_PREFIX, WEIGHTS_NAME, looks_like_path, read_config, weights_fingerprint
from hub.generator import TwoStageGenerator
from hub.mixin import HubModel


@dataclass(frozen=True)
class ModelEntry:
    model_class: str  # "module:Class"
    # Priors only: the config key prefix that names the stage-1 model decoding the prior's samples ("vqvae" ->
    # vqvae_id, vqvae_revision), and "module:function"(prior, decoder, num_samples, **options) -> images.
    decoder: str | None = None
    sampler: str | None = None
    decoder_types: tuple[str, ...] = ()  # the model types that can decode its samples


# The stage-1 models with a continuous latent vector, which the mixture, flow and two-stage priors model.
CONTINUOUS_LATENT_TYPES = ("ae", "vae", "beta_vae", "vamp_vae")
# A prior names its stage-1 model, which names nothing: no legitimate chain is longer.
MAX_REFERENCE_DEPTH = 2


MODELS = {
    "ae": ModelEntry("stage1_autoencoders.autoencoder:AE"),
    "vae": ModelEntry("stage1_autoencoders.vae:VAE"),
    "beta_vae": ModelEntry("stage1_autoencoders.beta_vae:BetaVAE"),
    "vqvae": ModelEntry("stage1_autoencoders.vqvae:VQVAE"),
    "vamp_vae": ModelEntry("stage1_autoencoders.vamp_vae:VampPriorVAE"),
    "gated_pixelcnn": ModelEntry(
        "stage2_prior.pixelcnn:GatedPixelCNN", "vqvae", "stage2_prior.sampling:sample_images", ("vqvae",)
    ),
    "gaussian_mixture_prior": ModelEntry(
        "stage2_prior.mixture_prior:MixturePrior", "autoencoder", "stage2_prior.mixture_prior:sample_images",
        CONTINUOUS_LATENT_TYPES,
    ),
    "flow_prior": ModelEntry(
        "stage2_prior.flow_prior:FlowPrior", "autoencoder", "stage2_prior.flow_prior:sample_images", CONTINUOUS_LATENT_TYPES
    ),
    "two_stage_vae_prior": ModelEntry(
        "stage2_prior.two_stage_vae:TwoStageVAEPrior", "autoencoder", "stage2_prior.flow_prior:sample_images",
        CONTINUOUS_LATENT_TYPES,
    ),
    "classifier": ModelEntry("evaluation.classifier:Classifier"),
}


def import_object(reference: str):
    module, name = reference.split(":")
    return getattr(importlib.import_module(module), name)


def model_entry(model_type: str | None, source: str = "") -> ModelEntry:
    if model_type is not None and not isinstance(model_type, str):
        raise ValueError(f"{source}: config.json model_type is a {type(model_type).__name__}, not a string; twostage "
                         f"knows {sorted(MODELS)}.")
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
    name_or_path: str | Path, revision: str | None = None, *, _referenced_by: tuple[str, ...] = (), **options
) -> HubModel | TwoStageGenerator:
    """Any twostage model from a folder or a Hub repo id.

    A prior also loads the stage-1 model its config names (a PixelCNN's `vqvae_id` at `vqvae_revision`, a mixture's
    `autoencoder_id` at `autoencoder_revision`) and returns both as a TwoStageGenerator:
    `from_pretrained("user/mnist-vqvae-pixelcnn").sample(16, seed=0)`.
    `options` go to every from_pretrained call (token, cache_dir, local_files_only, map_location, ...).
    """
    source = str(name_or_path)
    chain = (*_referenced_by, _reference_key(source, revision))
    if chain[-1] in chain[:-1]:
        raise ValueError(f"{source}: its reference chain loops ({' -> '.join(chain)}); a prior must name a stage-1 "
                         f"model, never itself or a model that names it. Fix the *_id in config.json.")
    if len(chain) > MAX_REFERENCE_DEPTH:
        raise ValueError(f"{source}: reached through {' -> '.join(chain)}, longer than the {MAX_REFERENCE_DEPTH} "
                         f"models a prior and its stage-1 model make. Fix the *_id in {chain[-2]}'s config.json.")
    download_options = {k: options[k] for k in ("token", "cache_dir", "force_download", "local_files_only") if k in options}
    entry = model_entry(read_config(source, revision, **download_options).get("model_type"), source)
    model = import_object(entry.model_class).from_pretrained(source, revision=revision, **options)
    if entry.decoder is None:
        return model
    decoder_id, decoder_revision = getattr(model, f"{entry.decoder}_id"), getattr(model, f"{entry.decoder}_revision")
    if decoder_id is None:
        raise ValueError(
            f"{source}: this prior's config names no {entry.decoder} ({entry.decoder}_id is empty), so it cannot be "
            f"turned into images. Load it with its class and pair it yourself: TwoStageGenerator(prior, {entry.decoder})."
        )
    decoder_id = stage1_folder(decoder_id, decoder_revision, source, entry.decoder)
    # Where it was found: the report and the app group by it, and a prior saved again records it.
    setattr(model, f"{entry.decoder}_id", decoder_id)
    if model._hub_mixin_config is not None:
        model._hub_mixin_config[f"{entry.decoder}_id"] = decoder_id
    decoder_key = _reference_key(decoder_id, decoder_revision)
    if decoder_key in chain:
        raise ValueError(f"{source}: its reference chain loops ({' -> '.join((*chain, decoder_key))}); a prior must "
                         f"name a stage-1 model, never itself or a model that names it. Fix {entry.decoder}_id in "
                         f"its config.json.")
    decoder_type = read_config(decoder_id, _hub_revision(decoder_id, decoder_revision), **download_options).get("model_type")
    if decoder_type not in entry.decoder_types:
        raise ValueError(f"{source}: its {entry.decoder}_id {decoder_id!r} is a {decoder_type!r} model; its samples "
                         f"are decoded by one of {entry.decoder_types}. Fix {entry.decoder}_id in its config.json.")
    decoder = from_pretrained(decoder_id, revision=_hub_revision(decoder_id, decoder_revision), _referenced_by=chain, **options)
    return TwoStageGenerator(model, decoder, import_object(entry.sampler))


def stage1_folder(decoder_id: str, decoder_revision: str | None, source: str, decoder: str) -> str:
    """Where a prior's stage-1 model is. A Hub id stays as recorded (it is downloaded at the recorded commit). A local
    folder must hold the weights the prior was trained on (their recorded fingerprint): the recorded folder, or, where
    that is gone or holds other weights because the runs were moved or copied (`mv runs ...`, another machine), the
    folder of the same name beside the prior. Only those two are read."""
    if not (decoder_revision or "").startswith(FINGERPRINT_PREFIX) or not looks_like_path(decoder_id):
        return decoder_id
    name = os.path.basename(os.path.normpath(decoder_id))
    places = [decoder_id]
    if os.path.isdir(source) and name:
        beside = os.path.join(os.path.dirname(os.path.realpath(source)), name)
        if os.path.realpath(beside) != os.path.realpath(decoder_id):
            places.append(beside)
    problems, mismatched = [], False
    for place in places:
        weights = os.path.join(place, WEIGHTS_NAME)
        if not os.path.isfile(weights):
            problems.append(f"{place} {'has no ' + WEIGHTS_NAME if os.path.isdir(place) else 'does not exist'}")
            continue
        found = weights_fingerprint(weights)
        if found == decoder_revision:
            return place
        mismatched = True
        problems.append(f"{place} holds other weights than the ones it was trained on ({WEIGHTS_NAME} is "
                        f"{found[:19]}..., the prior recorded {decoder_revision[:19]}...)")
    error = ValueError if mismatched else FileNotFoundError
    raise error(f"{source}: its {decoder} is not found: {'; '.join(problems)}. Put the {decoder} it was trained on at "
                f"{decoder_id}{f' or beside the prior as {name}/' if len(places) > 1 else ''}, or point {decoder}_id in "
                f"its config.json at it{', or train the prior again on this one' if mismatched else ''}.")


def _hub_revision(decoder_id: str, decoder_revision: str | None) -> str | None:
    """The revision to download at: a Hub commit; a local folder's fingerprint is checked, not downloaded."""
    return None if (decoder_revision or "").startswith(FINGERPRINT_PREFIX) else decoder_revision


def _reference_key(source: str, revision: str | None) -> str:
    return os.path.realpath(source) if os.path.isdir(source) else f"{source}@{revision}" if revision else source
