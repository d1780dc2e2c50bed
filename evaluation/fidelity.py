"""IS, FID, KID and precision/recall of image tensors, computed by torch-fidelity.

Two feature extractors:
- "twostage-classifier" (the default, offline): the project's classifier of the dataset itself
  (evaluation/classifier.py), registered with torch-fidelity here. IS reads its logits, FID/KID/precision-recall
  its penultimate features. `feature_extractor_weights_path` names the classifier: a folder or a Hub id.
- "inception-v3-compat": torch-fidelity's Inception-v3. Without `feature_extractor_weights_path` it downloads the
  weights; with it, it reads that file (torch-fidelity's .pth format). Grayscale images are repeated to RGB.

Images go in as uint8 tensors (N, C, H, W) wrapped in a Dataset, the form torch-fidelity takes without copying.
"""

from __future__ import annotations

import os
import pickle

import torch
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from evaluation.classifier import Classifier

CLASSIFIER = "twostage-classifier"
INCEPTION = "inception-v3-compat"
FEATURE_EXTRACTORS = (CLASSIFIER, INCEPTION)
METRICS = ("isc", "fid", "kid", "prc")
# torch-fidelity's result keys -> ours (the report's columns).
RESULT_NAMES = {
    "inception_score_mean": "is",
    "inception_score_std": "is_std",
    "frechet_inception_distance": "fid",
    "kernel_inception_distance_mean": "kid",
    "kernel_inception_distance_std": "kid_std",
    "precision": "precision",
    "recall": "recall",
}


class ClassifierFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity's view of the project's Classifier, loaded from `feature_extractor_weights_path`."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise ValueError(
                f"The {CLASSIFIER!r} feature extractor needs feature_extractor_weights_path: a trained classifier's "
                f"folder or Hub id (python -m evaluation.train_classifier --dataset_name ... --output_dir ...)."
            )
        self.classifier = Classifier.from_pretrained(feature_extractor_weights_path)
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def get_provided_features_list():
        return "penultimate", "logits_unbiased"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits_unbiased", "fid": "penultimate", "kid": "penultimate", "prc": "penultimate"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    def forward(self, images: torch.Tensor):
        penultimate = self.classifier.features(images)
        features = {"penultimate": penultimate, "logits_unbiased": self.classifier.logits_from_features(penultimate)}
        return tuple(features[name].float() for name in self.features_list)


if CLASSIFIER not in FEATURE_EXTRACTORS_REGISTRY:  # importing twice (e.g. reloads in a notebook) must not fail
    torch_fidelity.register_feature_extractor(CLASSIFIER, ClassifierFeatureExtractor)


class ImageTensorDataset(Dataset):
    """uint8 images (N, C, H, W) as the Dataset torch-fidelity reads; `rgb` repeats one channel to three."""

    def __init__(self, images: torch.Tensor, rgb: bool = False):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"Expected uint8 images (N, C, H, W), got {images.dtype} of shape {tuple(images.shape)}; "
                f"convert floats in [0, 1] with evaluation.fidelity.to_uint8."
            )
        if rgb and images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] -> uint8 in [0, 255], as a PNG would store them."""
    return images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()


def fidelity_metrics(
    generated: torch.Tensor,
    real: torch.Tensor | None = None,
    metrics: tuple[str, ...] = METRICS,
    feature_extractor: str = CLASSIFIER,
    feature_extractor_weights_path: str | None = None,
    batch_size: int = 256,
    seed: int = 0,
    verbose: bool = False,
) -> dict[str, float]:
    """Scores uint8 `generated` images (N, C, H, W); FID, KID and precision/recall against `real`.

    metrics: any of "isc" (IS), "fid", "kid", "prc" (precision and recall). Returns the keys of RESULT_NAMES that
    the chosen metrics produce. `seed` fixes IS's split order and KID's subsets.
    """
    unknown = set(metrics) - set(METRICS)
    if unknown or not metrics:
        raise ValueError(f"metrics={metrics}: choose one or more of {METRICS}.")
    if feature_extractor not in FEATURE_EXTRACTORS:
        raise ValueError(f"feature_extractor={feature_extractor!r}: choose one of {FEATURE_EXTRACTORS}.")
    needs_real = bool({"fid", "kid", "prc"} & set(metrics))
    if needs_real and real is None:
        raise ValueError("FID, KID and precision/recall compare with real images: pass `real` (the test split).")
    if feature_extractor == INCEPTION and feature_extractor_weights_path is not None:
        check_inception_weights(feature_extractor_weights_path)
    rgb = feature_extractor == INCEPTION
    sizes = [len(generated)] + ([len(real)] if needs_real else [])
    options = dict(
        input1=ImageTensorDataset(generated, rgb),
        input2=ImageTensorDataset(real, rgb) if needs_real else None,
        **{metric: metric in metrics for metric in METRICS},
        feature_extractor=feature_extractor,
        feature_extractor_weights_path=feature_extractor_weights_path,
        cuda=torch.cuda.is_available(),
        batch_size=batch_size,
        kid_subset_size=min(1000, *sizes),
        isc_splits=min(10, len(generated)),
        rng_seed=seed,
        # The images are in memory already: no DataLoader workers (save_cpu_ram's other effect), and nothing cached
        # on disk under names that would not change when the images do.
        save_cpu_ram=True,
        prc_batch_size=2048,
        cache=False,
        verbose=verbose,
    )
    results = torch_fidelity.calculate_metrics(**options)
    return {ours: float(results[theirs]) for theirs, ours in RESULT_NAMES.items() if theirs in results}


def inception_score(images: torch.Tensor, **options) -> tuple[float, float]:
    """IS of uint8 images, mean and std over torch-fidelity's 10 splits; of the real test split, the ceiling."""
    scores = fidelity_metrics(images, metrics=("isc",), **options)
    return scores["is"], scores["is_std"]


def check_inception_weights(path: str) -> None:
    """torch-fidelity reads the weights file with torch.load(weights_only=False), which can run code stored in it.
    We open it first with weights_only=True, which cannot, and refuse files holding anything but tensors."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"feature_extractor_weights_path {path!r}: no such file. Give torch-fidelity's Inception-v3 weights "
            f"(weights-inception-2015-12-05-6726825d.pth) or leave it out to download them."
        )
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} holds more than tensors, and loading it would run code from the file; use a plain state dict "
            f"of tensors (torch.save(model.state_dict(), path)). ({error})"
        ) from error
