"""Which models the app serves, and loading them.

The list of models comes from the first of: the --models flag; the TWOSTAGE_MODELS environment variable (a Space sets
it as a variable); a models file (--models_file, default app_models.txt: one run folder or Hub id a line, # comments);
the run folders under runs/ that `bash run_pipeline.sh` writes. Each entry is loaded with hub.from_pretrained, so a
folder and a Hub id work alike. Priors are filed under the stage-1 model they decode with (loaded with the prior
when it is not listed itself); classifiers are kept for scoring. An entry that fails to load is reported in the page
with its reason instead of stopping the app.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import torch

from hub import TwoStageGenerator, from_pretrained
from hub.auto import MODELS as HUB_MODELS
from hub.files import CONFIG_NAME
from stage2_prior.stage1_runs import training_dataset

MODELS_ENV = "TWOSTAGE_MODELS"
DEFAULT_MODELS_FILE = "app_models.txt"
DEFAULT_RUNS_DIR = "runs"
STAGE1_NAMES = {"ae": "AE", "vae": "VAE", "beta_vae": "β-VAE", "vqvae": "VQ-VAE", "vamp_vae": "VampPrior VAE"}
LEARNED_PRIOR_NAMES = {"gated_pixelcnn": "PixelCNN", "gaussian_mixture_prior": "Gaussian mixture",
                       "two_stage_vae_prior": "two-stage VAE"}


@dataclass
class ModelSources:
    sources: list[str]
    origin: str  # where the list came from, shown in the page


def model_sources(flag: list[str] | None, models_file: str | None = None, runs_dir: str = DEFAULT_RUNS_DIR,
                  environ: dict | None = None) -> ModelSources:
    """The models to serve, from the first place that names any (see the module docstring)."""
    environ = os.environ if environ is None else environ
    if flag:
        return ModelSources(split_entries(" ".join(flag)), "--models")
    if environ.get(MODELS_ENV, "").strip():
        return ModelSources(split_entries(environ[MODELS_ENV]), f"${MODELS_ENV}")
    path = models_file or DEFAULT_MODELS_FILE
    if models_file and not os.path.isfile(models_file):
        raise SystemExit(f"--models_file {models_file}: no such file. Write one run folder or Hub id a line.")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as file:
            lines = [line.split("#", 1)[0] for line in file]
        return ModelSources(split_entries(" ".join(lines)), path)
    return ModelSources(run_folders(runs_dir), f"{runs_dir}/")


def split_entries(text: str) -> list[str]:
    """Entries separated by whitespace or commas."""
    return [entry for entry in re.split(r"[\s,]+", text) if entry]


def run_folders(runs_dir: str) -> list[str]:
    """The immediate subfolders of runs_dir that hold a saved model (config.json), sorted."""
    if not os.path.isdir(runs_dir):
        return []
    folders = (os.path.join(runs_dir, name) for name in sorted(os.listdir(runs_dir)))
    return [folder for folder in folders if os.path.isfile(os.path.join(folder, CONFIG_NAME))]


@dataclass
class ServedModel:
    """A stage-1 model, the dataset it was trained on (if its run says), and the learned priors that decode with it."""

    name: str
    source: str
    model: torch.nn.Module
    dataset: str | None
    learned_priors: dict[str, TwoStageGenerator] = field(default_factory=dict)

    @property
    def model_type(self) -> str:
        return self.model.model_type

    @property
    def baseline_prior(self) -> str:
        """The prior it is compared against, named as in the evaluation report."""
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
class Catalog:
    models: dict[str, ServedModel]
    classifiers: list[ListedClassifier]
    problems: list[str]  # "source: why it did not load", shown in the page
    origin: str


def load_catalog(sources: ModelSources, device: torch.device | str = "cpu") -> Catalog:
    catalog = Catalog({}, [], [], sources.origin)
    by_source: dict[str, ServedModel] = {}
    priors: list[tuple[str, TwoStageGenerator]] = []
    for source in sources.sources:
        try:
            loaded = from_pretrained(source)
        except Exception as error:  # any failure of one entry (missing, corrupt, unreachable) must not stop the app
            catalog.problems.append(f"{source}: {error}")
            continue
        if isinstance(loaded, TwoStageGenerator):
            priors.append((source, loaded))
        elif loaded.model_type == "classifier":
            catalog.classifiers.append(ListedClassifier(source, loaded, training_dataset(source, None)))
        else:
            served = ServedModel(unique_name(source, catalog.models), source, loaded.to(device), training_dataset(source, None))
            catalog.models[served.name] = by_source[source_key(source)] = served
    for source, generator in priors:
        decoder = HUB_MODELS[generator.prior.model_type].decoder  # "vqvae" -> the prior's vqvae_id, vqvae_revision
        decoder_source = getattr(generator.prior, f"{decoder}_id")
        served = by_source.get(source_key(decoder_source))
        if served is None:  # its stage-1 model was not listed: serve the one loaded with the prior
            dataset = training_dataset(decoder_source, getattr(generator.prior, f"{decoder}_revision"))
            served = ServedModel(unique_name(decoder_source, catalog.models), decoder_source,
                                 generator.decoder.to(device), dataset)
            catalog.models[served.name] = by_source[source_key(decoder_source)] = served
        generator.decoder = served.model  # one copy of each stage-1 model
        generator.prior.to(device)
        prior_name = getattr(generator.prior, "display_name", None) or LEARNED_PRIOR_NAMES[generator.prior.model_type]
        if prior_name in served.learned_priors:
            prior_name = f"{prior_name} ({short_name(source)})"
        served.learned_priors[prior_name] = generator
    return catalog


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
