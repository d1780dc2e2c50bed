"""What the app scores samples against: the test split of a model's dataset (FID, and the real images' IS, the
ceiling) and the classifier whose logits and features IS and FID read, as the evaluation report does.

Prepared once, when the app starts (References.prepare), per dataset and image shape: loading a test split or training
a classifier (cached on disk by evaluation.train_classifier) never happens inside a request. What cannot be prepared
comes with the reason, which the page shows in place of the number.

A served model's training_info.json names its dataset, and that file is the uploader's data, not the operator's
settings: a Hub id (or the bundled 'digits') is used, a local folder only when it lies under one of the folders the
operator allowed (launch.py's --data_roots). Anything else is refused before it is listed or read.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from evaluation.fidelity import Features, Judge, to_uint8
from evaluation.train_classifier import trained_classifier_folder
from gradio_app.catalog import ListedClassifier, ServedModel
from stage1_autoencoders.data import load_image_data

# A Hub dataset id: "name" or "namespace/name". Anything else (a URL, "imagefolder:/path", ...) is no Hub id.
HUB_DATASET_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


class ScoringUnavailable(Exception):
    """No classifier for this model's images; the message says why and how to give one."""


@dataclass
class Reference:
    test_images: torch.Tensor | None  # uint8 (N, C, H, W) at the model's size
    test_split_note: str  # what the test split is, or why there is none
    classifier: str | None  # a classifier's folder or Hub id, as evaluation.fidelity takes it
    classifier_note: str
    judge: Judge | None = None  # the classifier's feature extractor, built when the app starts
    test_features: Features | None = None  # the test split's features, extracted once for every request


class References:
    def __init__(self, classifiers: list[ListedClassifier], data_roots: Sequence[str] = ()):
        self.classifiers = classifiers
        self.data_roots = [os.path.realpath(root) for root in data_roots]
        self._references: dict[tuple, Reference] = {}

    def prepare(self, models: Iterable[ServedModel]) -> None:
        """At startup: every model's test split and classifier (training one, cached on disk, where none is listed)."""
        for served in models:
            key = reference_key(served)
            if key not in self._references:
                self._references[key] = self._with_judge(self._find(served))

    def for_model(self, served: ServedModel) -> Reference:
        reference = self._references.get(reference_key(served))
        if reference is None:  # requests only read what prepare found
            note = f"{served.name} was not prepared for scoring when the app started"
            return Reference(None, note, None, f"{note}; restart the app to score it.")
        return reference

    def score(self, served: ServedModel, images: torch.Tensor, seed: int, with_fid: bool) -> dict[str, float]:
        """IS (and FID against the test split, where there is one) of float images in [0, 1]."""
        reference = self.for_model(served)
        if reference.classifier is None:
            raise ScoringUnavailable(reference.classifier_note)
        fid = with_fid and reference.test_features is not None
        return reference.judge.scores(to_uint8(images), reference.test_features if fid else None,
                                      metrics=("isc", "fid") if fid else ("isc",), seed=seed)

    @staticmethod
    def _with_judge(reference: Reference) -> Reference:
        """The reference with its classifier loaded as a Judge and the test split's features, or with the reason
        the classifier could not be loaded in place of it."""
        if reference.classifier is None:
            return reference
        try:
            reference.judge = Judge(feature_extractor_weights_path=reference.classifier)
            if reference.test_images is not None:
                reference.test_features = reference.judge.features(reference.test_images)
        except Exception as error:  # a listed classifier that fails validation, a Hub id out of reach, ...
            return Reference(reference.test_images, reference.test_split_note, None,
                             f"The classifier {reference.classifier} could not be loaded: {error}")
        return reference

    def _find(self, served: ServedModel) -> Reference:
        channels, size = served.model.in_channels, served.model.image_size
        test_images, test_note, resolution = self._test_split(served)
        # A listed classifier of the model's image shape, one trained on the model's own dataset first.
        listed = sorted((classifier for classifier in self.classifiers
                         if (classifier.model.in_channels, classifier.model.image_size) == (channels, size)),
                        key=lambda classifier: classifier.dataset != served.dataset)
        if listed:
            return Reference(test_images, test_note, listed[0].source, f"the classifier {listed[0].source}")
        if served.dataset is None or test_images is None:
            why = "its run names no dataset" if served.dataset is None else f"its dataset is not available ({test_note})"
            return Reference(test_images, test_note, None,
                             f"No classifier for {channels}-channel {size}×{size} images, and none can be trained: "
                             f"{why}. List a trained classifier with the models (python -m "
                             f"evaluation.train_classifier --dataset_name DATASET --output_dir DIR).")
        try:  # trained once per dataset on first use and cached on disk, as the evaluation report does
            folder = trained_classifier_folder(served.dataset, resolution=resolution)
        except Exception as error:
            return Reference(test_images, test_note, None, f"The classifier for {served.dataset} could not be trained: {error}")
        return Reference(test_images, test_note, folder, f"the classifier trained on {served.dataset}")

    def _test_split(self, served: ServedModel) -> tuple[torch.Tensor | None, str, int | None]:
        """The test split at the model's image size, what it is, and the resolution it was resized to (None: native)."""
        if served.dataset is None:
            return None, f"{served.source} has no training_info.json naming its dataset", None
        refused = self.refusal(served.dataset)
        if refused:
            return None, refused, None
        channels, size = served.model.in_channels, served.model.image_size
        try:  # only the test split is needed: the train split is cut to one image
            data = load_image_data(served.dataset, max_train_samples=1)
            resolution = None
            if data.resolution != size:
                resolution = size
                data = load_image_data(served.dataset, resolution=size, max_train_samples=1)
        except Exception as error:  # a folder that is not on this machine, a Hub dataset out of reach, ...
            return None, f"the test split of {served.dataset} could not be loaded: {error}", None
        if data.channels != channels:
            return None, f"{served.dataset} has {data.channels}-channel images but the model takes {channels}", None
        return data.test_images, f"{len(data.test_images):,} test images of {served.dataset}", resolution

    def refusal(self, dataset: str) -> str | None:
        """Why the dataset a model's metadata names may not be read here, or None: a Hub id or 'digits' may, a local
        folder only under --data_roots. The folder is not named back: it is whatever the uploader wrote. A run's
        recorded settings (stage1_autoencoders.data.dataset_reference's JSON) are checked name by name."""
        if dataset.lstrip().startswith("{"):
            try:
                recorded = json.loads(dataset)
                named = [recorded[key] for key in ("dataset_name", "train_data_dir", "test_data_dir") if recorded.get(key) is not None]
            except (ValueError, TypeError, AttributeError):
                return "its training_info.json records its dataset in a form this app does not read"
            if not named or not all(isinstance(name, str) and not name.lstrip().startswith("{") for name in named):
                return "its training_info.json records its dataset in a form this app does not read"
            return next((refused for refused in map(self.refusal, named) if refused), None)
        expanded = os.path.expanduser(dataset)
        local = dataset.startswith(("/", ".", "~")) or os.path.exists(expanded)  # a Hub id may shadow a folder
        if not local:
            from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES  # "csv", "imagefolder": read local files

            if HUB_DATASET_ID.fullmatch(dataset) and dataset not in _PACKAGED_DATASETS_MODULES:
                return None
            return ("its training_info.json names a dataset that is neither a Hub id nor a folder; the app reads "
                    "Hub ids, and folders under --data_roots FOLDER")
        real = os.path.realpath(expanded)
        if any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in self.data_roots):
            return None
        return ("its training_info.json names a local dataset folder outside the folders this app may read; the "
                "operator allows folders with --data_roots FOLDER")


def reference_key(served: ServedModel) -> tuple:
    """Models of one dataset and image shape share their test split, classifier and real IS."""
    return served.dataset, served.model.in_channels, served.model.image_size
