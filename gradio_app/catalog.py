"""Which models the app serves, and loading them.

The list of models comes from the first of: the --models flag; the TWOSTAGE_MODELS environment variable (a Space sets
it as a variable); a models file (--models_file, default app_models.txt: one run folder or Hub id a line, # comments);
the run folders under runs/ that `bash run_pipeline.sh` writes. They are loaded as the evaluation report loads them
(evaluation.models), so a folder and a Hub id work alike; an entry that fails to load is reported in the page with
its reason instead of stopping the app.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch

from evaluation.models import ListedClassifier, ModelGroup, load_models
from hub.files import CONFIG_NAME

MODELS_ENV = "TWOSTAGE_MODELS"
DEFAULT_MODELS_FILE = "app_models.txt"
DEFAULT_RUNS_DIR = "runs"


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


ServedModel = ModelGroup  # what the app serves is what the report scores


@dataclass
class Catalog:
    models: dict[str, ServedModel]
    classifiers: list[ListedClassifier]
    problems: list[str]  # "source: why it did not load", shown in the page
    origin: str


def load_catalog(sources: ModelSources, device: torch.device | str = "cpu") -> Catalog:
    loaded = load_models(sources.sources, device, keep_going=True)
    return Catalog(loaded.groups, loaded.classifiers, loaded.problems, sources.origin)
