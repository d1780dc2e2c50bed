"""Loading the models that are compared, and drawing their samples: the one path behind the evaluation report and
the app, so that the app's number for a seed is the report's by construction.

Each source (a run folder or Hub id) is loaded with hub.from_pretrained. Priors are filed under the stage-1 model
they decode with (loaded with the prior when it is not among the sources); classifiers are kept for scoring.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import torch

from evaluation.likelihood import encode_codes
from hub import TwoStageGenerator, from_pretrained
from hub.auto import MODELS as HUB_MODELS
from stage2_prior.class_baselines import ClassCodeFrequencies, ClassMixtures
from stage2_prior.fit_mixture import latents_of
from stage2_prior.sampling import decode_codes, sample_uniform_codes
from stage2_prior.stage1_runs import training_dataset

STAGE1_TYPES = ("ae", "vae", "beta_vae", "vqvae", "vamp_vae")
STAGE1_NAMES = {"ae": "AE", "vae": "VAE", "beta_vae": "β-VAE", "vqvae": "VQ-VAE", "vamp_vae": "VampPrior VAE"}
# One name per prior, in the report's tables and the app's menus alike (a flow prior names its flow: display_name).
LEARNED_PRIOR_NAMES = {"gated_pixelcnn": "PixelCNN", "gaussian_mixture_prior": "Gaussian mixture",
                       "two_stage_vae_prior": "two-stage VAE"}
CONDITIONAL_SUFFIX = " (class-conditional)"
# The class-conditional baselines, fitted to the train split (stage2_prior/class_baselines.py).
CLASS_FREQUENCIES = "per-class code frequencies"
CLASS_MIXTURES = "Gaussian mixture per class"
CLASS_MIXTURE_COMPONENTS = 3  # per class: a digit's few styles, not the ten classes one mixture must cover
BATCH_SIZE = 256


@dataclass
class ModelGroup:
    """A stage-1 model, the dataset it was trained on (if its run says), and the learned priors that decode with it
    (name -> prior, name -> where it came from)."""

    name: str
    source: str
    model: torch.nn.Module
    dataset: str | None
    learned_priors: dict[str, TwoStageGenerator] = field(default_factory=dict)
    prior_sources: dict[str, str] = field(default_factory=dict)

    @property
    def model_type(self) -> str:
        return self.model.model_type

    @property
    def baseline_prior(self) -> str:
        """The unconditional prior every learned one replaces: the model's own where it was trained with one (the
        VampPrior VAE)."""
        return "uniform" if self.model_type == "vqvae" else getattr(self.model, "prior_name", "N(0,I)")

    @property
    def priors(self) -> list[str]:
        return [self.baseline_prior, *self.learned_priors]

    @property
    def label(self) -> str:
        size = f"{self.model.image_size}×{self.model.image_size}"
        trained_on = f", {os.path.basename(self.dataset.rstrip('/'))}" if self.dataset else ""
        return f"{self.name} ({STAGE1_NAMES[self.model_type]}, {size}{trained_on})"


@dataclass
class ListedClassifier:
    """An evaluation classifier listed with the models, for the IS and FID of models of its image shape."""

    source: str
    model: torch.nn.Module
    dataset: str | None  # what it was trained on, if its training_info.json says


@dataclass
class LoadedModels:
    groups: dict[str, ModelGroup]  # by name
    classifiers: list[ListedClassifier]
    problems: list[str]  # "source: why it did not load"


def is_conditional(generator: TwoStageGenerator) -> bool:
    return bool(getattr(generator.prior, "conditional", False))


def prior_name(generator: TwoStageGenerator) -> str:
    name = getattr(generator.prior, "display_name", None) or LEARNED_PRIOR_NAMES.get(generator.prior.model_type,
                                                                                     generator.prior.model_type)
    return name + CONDITIONAL_SUFFIX if is_conditional(generator) else name


def load_models(sources: list[str], device: torch.device | str = "cpu", keep_going: bool = False) -> LoadedModels:
    """Loads every source; with keep_going a source that fails is listed in `problems` (the app shows them) instead
    of stopping (the report)."""
    loaded_models = LoadedModels({}, [], [])
    by_source: dict[str, ModelGroup] = {}
    priors: list[tuple[str, TwoStageGenerator]] = []
    for source in sources:
        try:
            loaded = from_pretrained(source)
        except Exception as error:  # any failure of one entry (missing, corrupt, unreachable)
            if not keep_going:
                raise
            loaded_models.problems.append(f"{source}: {error}")
            continue
        if isinstance(loaded, TwoStageGenerator):
            priors.append((source, loaded))
        elif getattr(loaded, "model_type", None) == "classifier":
            loaded_models.classifiers.append(ListedClassifier(source, loaded, training_dataset(source, None)))
        elif getattr(loaded, "model_type", None) in STAGE1_TYPES:
            group = ModelGroup(unique_name(source, loaded_models.groups), source, loaded.to(device), training_dataset(source, None))
            loaded_models.groups[group.name] = by_source[source_key(source)] = group
        else:
            problem = (f"{source} is a {getattr(loaded, 'model_type', type(loaded).__name__)!r}, neither a stage-1 "
                       f"model ({', '.join(STAGE1_TYPES)}), a prior nor a classifier")
            if not keep_going:
                raise ValueError(problem)
            loaded_models.problems.append(problem)
    for source, generator in priors:
        decoder = HUB_MODELS[generator.prior.model_type].decoder  # "vqvae" -> the prior's vqvae_id, vqvae_revision
        decoder_source = getattr(generator.prior, f"{decoder}_id")
        group = by_source.get(source_key(decoder_source))
        if group is None:  # its stage-1 model was not listed: use the one loaded with the prior
            dataset = training_dataset(decoder_source, getattr(generator.prior, f"{decoder}_revision"))
            group = ModelGroup(unique_name(decoder_source, loaded_models.groups), decoder_source,
                               generator.decoder.to(device), dataset)
            loaded_models.groups[group.name] = by_source[source_key(decoder_source)] = group
        generator.decoder = group.model  # one copy of each stage-1 model
        generator.prior.to(device)
        name = prior_name(generator)
        if name in group.learned_priors:
            name = f"{name} ({short_name(source)})"
        group.learned_priors[name] = generator
        group.prior_sources[name] = source
    return loaded_models


def source_key(source: str) -> str:
    return os.path.realpath(source) if os.path.isdir(source) else source


def short_name(source: str) -> str:
    """A run folder's own name, or a Hub id as it is."""
    name = os.path.basename(source.rstrip("/")) if os.path.isdir(source) else source
    return re.sub(r"[^A-Za-z0-9_./-]+", "-", name)


def unique_name(source: str, taken) -> str:
    name, candidate, index = short_name(source), short_name(source), 2
    while candidate in taken:
        candidate, index = f"{name}-{index}", index + 1
    return candidate


@torch.no_grad()
def baseline_samples(model, num_samples: int, seed: int, batch_size: int = BATCH_SIZE) -> tuple[str, torch.Tensor]:
    """The prior a stage-1 model is compared against: uniform codes (VQ-VAE), its own prior (VampPrior VAE) or
    N(0, I) latents (the rest)."""
    if model.model_type == "vqvae":
        codes = sample_uniform_codes(model.num_embeddings, tuple(model.latent_grid_size), num_samples, seed=seed)
        return "uniform", decode_codes(model, codes, batch_size)
    model.eval()
    if getattr(model, "prior_name", None):
        latents = model.sample_latents(num_samples, generator=torch.Generator().manual_seed(seed))
        return model.prior_name, torch.cat([model.decode(batch) for batch in latents.split(batch_size)])
    device = next(model.parameters()).device
    z = torch.randn(num_samples, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    return "N(0,I)", torch.cat([model.decode(batch.to(device)) for batch in z.split(batch_size)])


def balanced_labels(num_samples: int, num_classes: int) -> torch.Tensor:
    """Every class in turn (sample i has class i mod K): how class-conditional priors are sampled for scoring."""
    return torch.arange(num_samples) % num_classes


@torch.no_grad()
def sample_prior(group: ModelGroup, prior: str, num_samples: int, seed: int, temperature: float = 1.0,
                 label: int | None = None, progress: bool = False) -> torch.Tensor:
    """Float images (N, C, H, W) in [0, 1] of one of a group's priors. A conditional prior draws class `label`, or
    with None every class in turn. `progress` shows the PixelCNN's batches with tqdm."""
    if prior == group.baseline_prior:
        return baseline_samples(group.model, num_samples, seed)[1]
    generator = group.learned_priors[prior]
    options = {"seed": seed}
    if generator.prior.model_type == "gated_pixelcnn":
        options.update(temperature=temperature, progress=progress)
    if is_conditional(generator):
        options["labels"] = balanced_labels(num_samples, generator.prior.num_classes) if label is None else label
    return generator.sample(num_samples, **options)


@dataclass
class ClassBaseline:
    """A stage-1 model's class-conditional baseline: per-class code frequencies (VQ-VAE) or a mixture per class."""

    name: str
    model: torch.nn.Module
    fitted: ClassCodeFrequencies | ClassMixtures

    @torch.no_grad()
    def sample(self, num_samples: int, seed: int, batch_size: int = BATCH_SIZE) -> torch.Tensor:
        """Float images (N, C, H, W) in [0, 1], every class in turn, as class-conditional priors are sampled."""
        labels = balanced_labels(num_samples, self.fitted.num_classes)
        if self.model.model_type == "vqvae":
            return decode_codes(self.model, self.fitted.sample(labels, seed), batch_size)
        self.model.eval()
        z = self.fitted.sample(labels, seed).to(next(self.model.parameters()).device)
        return torch.cat([self.model.decode(batch) for batch in z.split(batch_size)])


def fit_class_baseline(model, train_images: torch.Tensor, train_labels: torch.Tensor, num_classes: int,
                       seed: int, batch_size: int = BATCH_SIZE) -> ClassBaseline:
    """Fits a model's class-conditional baseline to the train split's codes or latents (one posterior draw each)."""
    if model.model_type == "vqvae":
        codes = encode_codes(model, train_images, batch_size, progress=True)
        return ClassBaseline(CLASS_FREQUENCIES, model,
                             ClassCodeFrequencies(codes, train_labels, model.num_embeddings, num_classes))
    latents = latents_of(model, train_images, batch_size, "encoding train split", seed=seed)
    return ClassBaseline(CLASS_MIXTURES, model,
                         ClassMixtures(latents, train_labels, num_classes, CLASS_MIXTURE_COMPONENTS, seed=seed))
