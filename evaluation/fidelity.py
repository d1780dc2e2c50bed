"""IS, FID, KID and precision/recall of image tensors, computed by torch-fidelity.

Two feature extractors:
- "twostage-classifier" (the default, offline): the project's classifier of the dataset itself
  (evaluation/classifier.py), registered with torch-fidelity here. IS reads its logits, FID/KID/precision-recall
  its penultimate features. `feature_extractor_weights_path` names the classifier: a folder or a Hub id.
- "inception-v3-compat": torch-fidelity's Inception-v3. Without `feature_extractor_weights_path` it downloads the
  weights; with it, we read that file (torch-fidelity's .pth format) once, with torch.load(weights_only=True), and
  torch-fidelity gets the module built from it (torch-fidelity's own loader unpickles with weights_only=False).
  Grayscale images are repeated to RGB.

Images go in as uint8 tensors (N, C, H, W) wrapped in a Dataset, the form torch-fidelity takes without copying.
"""

from __future__ import annotations

import functools
import os
import pickle

import torch
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity import feature_extractor_inceptionv3 as inception_layers
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.helpers import text_to_dtype
from torch_fidelity.metric_fid import fid_featuresdict_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_featuresdict_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset, resolve_feature_layer_for_metric

from evaluation.classifier import Classifier
from evaluation.kid import SUBSET_SIZE, kernel_inception_distance
from evaluation.precision_recall import NEIGHBOURHOOD, neighbourhood_radii, precision_recall

CLASSIFIER = "twostage-classifier"
INCEPTION = "inception-v3-compat"
INCEPTION_FROM_FILE = "twostage-inception-v3"  # INCEPTION with weights we loaded; registered below
FEATURE_EXTRACTORS = (CLASSIFIER, INCEPTION)
METRICS = ("isc", "fid", "kid", "prc")
# IS is a mean over splits of this many samples wherever it is computed (report, app, benchmarks), so that it does not
# depend on how many samples are scored: at a fixed count of 10 splits a perfect generator of 10 classes scored about
# 1.0 at N = 10, 6 at N = 100 and 9.5 at N = 1,000. 100 holds each of 10 classes about 10 times.
IS_SPLIT_SIZE = 100
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
        self.classifier = Classifier.from_pretrained(classifier_weights(feature_extractor_weights_path))
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


class Features:
    """The features a feature extractor gave for a set of uint8 images (torch-fidelity's featuresdict: layer name ->
    (N, D)), computed once and reused by every score of that set."""

    def __init__(self, featuresdict: dict[str, torch.Tensor], count: int):
        self.featuresdict, self.count = featuresdict, count
        self._radii = {}

    def radii(self, layer: str) -> torch.Tensor:
        """Each sample's k-nearest-neighbour radius in `layer`'s features (precision and recall), computed once."""
        if layer not in self._radii:
            self._radii[layer] = neighbourhood_radii(self.featuresdict[layer])
        return self._radii[layer]

    def first(self, count: int) -> Features:
        """The features of the first `count` images."""
        return Features({layer: values[:count] for layer, values in self.featuresdict.items()}, min(count, self.count))


class Judge:
    """One protocol's feature extractor, built once, and the scores of sample sets from their features.

    torch-fidelity's calculate_metrics builds the extractor and extracts the real images' features again on every
    call, and a sample set's twice when IS (over whole splits) and FID are asked for apart. A Judge extracts each
    set's features once, so a report of R rows costs R + 1 passes of the extractor instead of 3R; the scores are
    torch-fidelity's own functions of those features, the numbers calculate_metrics gives. KID
    (evaluation/kid.py) and precision/recall (evaluation/precision_recall.py) are ours, its definitions and numbers
    computed with less work: the kernels of the whole sets once, the real set's neighbourhoods once per Judge's
    real Features."""

    def __init__(self, feature_extractor: str = CLASSIFIER, feature_extractor_weights_path: str | None = None,
                 batch_size: int = 256, is_split_size: int = IS_SPLIT_SIZE, verbose: bool = False):
        if feature_extractor not in FEATURE_EXTRACTORS:
            raise ValueError(f"feature_extractor={feature_extractor!r}: choose one of {FEATURE_EXTRACTORS}.")
        if is_split_size < 1:
            raise ValueError(f"is_split_size={is_split_size}: give a positive number of samples per IS split (default {IS_SPLIT_SIZE}).")
        self.num_classes, self.feature_dims = extractor_dimensions(feature_extractor, feature_extractor_weights_path)
        self.rgb = feature_extractor == INCEPTION
        if feature_extractor == INCEPTION and feature_extractor_weights_path is not None:
            inception_weights(os.path.realpath(feature_extractor_weights_path))  # refused here, with its reason, if unsafe
            feature_extractor = INCEPTION_FROM_FILE
        self.is_split_size, self.batch_size, self.verbose = is_split_size, batch_size, verbose
        self.cuda = torch.cuda.is_available()
        self.options = dict(
            verbose=verbose, cuda=self.cuda,
            save_cpu_ram=True,  # in-memory images: no DataLoader workers
        )
        self.layers = {metric: resolve_feature_layer_for_metric(metric, feature_extractor=feature_extractor)
                       for metric in METRICS}
        self.extractor = create_feature_extractor(
            feature_extractor, sorted(set(self.layers.values())), cuda=self.cuda,
            feature_extractor_weights_path=feature_extractor_weights_path, verbose=verbose)

    def features(self, images: torch.Tensor) -> Features:
        """Features of uint8 images (N, C, H, W)."""
        dataset = ImageTensorDataset(images, self.rgb)
        if not len(dataset):
            return Features({}, 0)
        return Features(get_featuresdict_from_dataset(dataset, self.extractor, self.batch_size, self.cuda,
                                                      save_cpu_ram=True, verbose=self.verbose), len(dataset))

    def scores(self, generated: torch.Tensor | Features, real: torch.Tensor | Features | None = None,
               metrics: tuple[str, ...] = METRICS, seed: int = 0) -> dict:
        """Scores of `generated` (uint8 images or their Features); FID, KID and precision/recall against `real`.

        metrics: any of "isc" (IS), "fid", "kid", "prc" (precision and recall). Returns the keys of RESULT_NAMES that
        the chosen metrics produce, None where a score is withheld, with "withheld" ({key: the reason}) and the
        protocol: "num_samples", "is_split_size", "is_splits". IS is the mean over splits of `is_split_size` samples
        (the last N mod is_split_size samples are left out of IS), so that it does not depend on N. `seed` fixes
        IS's split order and KID's subsets."""
        unknown = set(metrics) - set(METRICS)
        if unknown or not metrics:
            raise ValueError(f"metrics={metrics}: choose one or more of {METRICS}.")
        needs_real = bool({"fid", "kid", "prc"} & set(metrics))
        if needs_real and real is None:
            raise ValueError("FID, KID and precision/recall compare with real images: pass `real` (the test split).")
        generated = generated if isinstance(generated, Features) else self.features(generated)
        real = real if real is None or isinstance(real, Features) else self.features(real)
        withheld = withheld_scores(metrics, generated.count, real.count if needs_real else None, self.is_split_size,
                                   self.num_classes, self.feature_dims)
        is_splits = generated.count // self.is_split_size
        options = dict(self.options, rng_seed=seed)
        results = {}
        if "isc" in metrics and "is" not in withheld:
            # Over whole splits only: torch-fidelity cuts N samples into a count of splits, not a size.
            results.update(isc_featuresdict_to_metric(generated.first(is_splits * self.is_split_size).featuresdict, self.layers["isc"],
                                                      isc_splits=is_splits, **options))
        if "fid" in metrics and "fid" not in withheld:
            layer = self.layers["fid"]
            results.update(fid_statistics_to_metric(fid_featuresdict_to_statistics(generated.featuresdict, layer),
                                                    fid_featuresdict_to_statistics(real.featuresdict, layer), self.verbose))
        if "kid" in metrics and "kid" not in withheld:
            layer = self.layers["kid"]
            kid = kernel_inception_distance(generated.featuresdict[layer], real.featuresdict[layer],
                                            subset_size=min(SUBSET_SIZE, generated.count, real.count), seed=seed)
            results.update(kernel_inception_distance_mean=kid["kid"], kernel_inception_distance_std=kid["kid_std"])
        if "prc" in metrics and "precision" not in withheld:
            layer = self.layers["prc"]
            results["precision"], results["recall"] = precision_recall(
                generated.featuresdict[layer], real.featuresdict[layer], generated.radii(layer), real.radii(layer))
        produced = {"isc": ("is", "is_std"), "fid": ("fid",), "kid": ("kid", "kid_std"), "prc": ("precision", "recall")}
        scores = {key: None for metric in metrics for key in produced[metric]}
        scores.update({ours: float(results[theirs]) for theirs, ours in RESULT_NAMES.items() if theirs in results})
        scores.update(withheld=withheld, num_samples=generated.count, is_split_size=self.is_split_size,
                      is_splits=is_splits if "isc" in metrics else None)
        return scores


def fidelity_metrics(
    generated: torch.Tensor,
    real: torch.Tensor | None = None,
    metrics: tuple[str, ...] = METRICS,
    feature_extractor: str = CLASSIFIER,
    feature_extractor_weights_path: str | None = None,
    batch_size: int = 256,
    seed: int = 0,
    is_split_size: int = IS_SPLIT_SIZE,
    verbose: bool = False,
) -> dict:
    """Scores uint8 `generated` images (N, C, H, W), FID, KID and precision/recall against `real`, with a Judge of
    its own (see Judge.scores); scoring several sets against one real set, keep one Judge and the real Features."""
    judge = Judge(feature_extractor, feature_extractor_weights_path, batch_size, is_split_size, verbose)
    return judge.scores(generated, real, metrics, seed)


def withheld_scores(metrics, num_generated: int, num_real: int | None, is_split_size: int, num_classes: int,
                    feature_dims: int) -> dict[str, str]:
    """The scores that would mean nothing at these sizes, each with the reason (shown where the number would be)."""
    withheld = {}
    if "isc" in metrics:
        if is_split_size < num_classes:
            withheld["is"] = (f"IS splits of {is_split_size} samples are smaller than the classifier's {num_classes} "
                              f"classes, so a split cannot show every class; use splits of at least {num_classes}")
        elif num_generated < is_split_size:
            withheld["is"] = (f"{num_generated} samples are fewer than one IS split of {is_split_size}; "
                              f"score at least {is_split_size}")
    if "fid" in metrics and num_real is not None:
        fewest = min(num_generated, num_real)
        if fewest <= feature_dims:
            withheld["fid"] = (f"FID from {fewest} samples in {feature_dims} feature dimensions rests on a "
                               f"rank-deficient covariance; use more than {feature_dims} samples")
    if num_real is not None and min(num_generated, num_real) < 2 and "kid" in metrics:
        withheld["kid"] = "KID compares pairs of samples within each set; score at least 2 samples"
    if num_real is not None and min(num_generated, num_real) <= NEIGHBOURHOOD and "prc" in metrics:
        withheld["precision"] = withheld["recall"] = (
            f"precision and recall need each sample's {NEIGHBOURHOOD} nearest neighbours in its own set; score at "
            f"least {NEIGHBOURHOOD + 1} samples")
    return withheld


def extractor_dimensions(feature_extractor: str, weights_path: str | None) -> tuple[int, int]:
    """(classes IS reads, feature dimensions FID reads) of a feature extractor."""
    if feature_extractor == INCEPTION:
        return 1008, 2048  # torch-fidelity's Inception-v3: logits_unbiased and the 2048 pool features
    classifier = Classifier.from_pretrained(classifier_weights(weights_path))
    return classifier.num_classes, classifier.feature_dim


def classifier_weights(path: str | None) -> str:
    if path is None:
        raise ValueError(
            f"The {CLASSIFIER!r} feature extractor needs feature_extractor_weights_path: a trained classifier's "
            f"folder or Hub id (python -m evaluation.train_classifier --dataset_name ... --output_dir ...)."
        )
    return path


def inception_score(images: torch.Tensor, **options) -> tuple[float | None, float | None]:
    """IS of uint8 images, mean and std over splits of IS_SPLIT_SIZE; of the real test split, the ceiling."""
    scores = fidelity_metrics(images, metrics=("isc",), **options)
    return scores["is"], scores["is_std"]


def real_ceiling(judge: Judge, test_split: torch.Tensor | Features, num_samples: int, seed: int = 0) -> dict:
    """The IS of `num_samples` real test images (the first ones; uint8 images or their Features) under the protocol
    the samples were scored with: the ceiling shown beside them. Where the test split has fewer images it is scored
    whole, and "note" says so."""
    test_split = test_split if isinstance(test_split, Features) else judge.features(test_split)
    scores = judge.scores(test_split.first(num_samples), metrics=("isc",), seed=seed)
    scores["note"] = None if test_split.count >= num_samples else (
        f"the test split has only {test_split.count} images, fewer than the {num_samples} samples")
    return scores


@functools.lru_cache(maxsize=2)
def inception_weights(path: str) -> dict[str, torch.Tensor]:
    """The Inception-v3 state dict in `path`, read once per process with torch.load(weights_only=True), which cannot
    run code stored in the file; files holding anything but tensors are refused."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"feature_extractor_weights_path {path!r}: no such file. Give torch-fidelity's Inception-v3 weights "
            f"(weights-inception-2015-12-05-6726825d.pth) or leave it out to download them."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} holds more than tensors, and loading it would run code from the file; use a plain state dict "
            f"of tensors (torch.save(model.state_dict(), path)). ({error})"
        ) from error


class InceptionFromWeights(FeatureExtractorInceptionV3):
    """torch-fidelity's Inception-v3, its weights from inception_weights (never torch-fidelity's own torch.load).

    FeatureExtractorInceptionV3.__init__ builds the layers and loads the file in one go, so the layers are built
    here from its module attributes, in its order; forward and everything else are its own."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, feature_extractor_internal_dtype=None,
                 **kwargs):
        FeatureExtractorBase.__init__(self, name, features_list)
        self.feature_extractor_internal_dtype = text_to_dtype(feature_extractor_internal_dtype, "float32")
        layers, conv, nn = inception_layers, inception_layers.BasicConv2d, torch.nn
        self.Conv2d_1a_3x3 = conv(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = conv(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = conv(32, 64, kernel_size=3, padding=1)
        self.MaxPool_1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = conv(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = conv(80, 192, kernel_size=3)
        self.MaxPool_2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = layers.InceptionA(192, pool_features=32)
        self.Mixed_5c = layers.InceptionA(256, pool_features=64)
        self.Mixed_5d = layers.InceptionA(288, pool_features=64)
        self.Mixed_6a = layers.InceptionB(288)
        self.Mixed_6b = layers.InceptionC(768, channels_7x7=128)
        self.Mixed_6c = layers.InceptionC(768, channels_7x7=160)
        self.Mixed_6d = layers.InceptionC(768, channels_7x7=160)
        self.Mixed_6e = layers.InceptionC(768, channels_7x7=192)
        self.Mixed_7a = layers.InceptionD(768)
        self.Mixed_7b = layers.InceptionE_1(1280)
        self.Mixed_7c = layers.InceptionE_2(2048)
        self.AvgPool = nn.AdaptiveAvgPool2d(output_size=(1, 1))
        self.fc = nn.Linear(2048, 1008)
        self.load_state_dict(inception_weights(os.path.realpath(feature_extractor_weights_path)))
        self.to(self.feature_extractor_internal_dtype)
        self.requires_grad_(False)
        self.eval()


if INCEPTION_FROM_FILE not in FEATURE_EXTRACTORS_REGISTRY:
    torch_fidelity.register_feature_extractor(INCEPTION_FROM_FILE, InceptionFromWeights)
