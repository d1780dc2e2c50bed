"""Image datasets for both stages: a Hub id, a local folder, or scikit-learn's bundled digits.

Every source ends as the same thing: uint8 tensors (N, C, H, W) decoded once, so that training never
decodes a PNG with PIL per step. Images become floats in [0, 1] only inside the training loop.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np
import safetensors.torch
import torch

DIGITS = "digits"


@dataclass
class ImageData:
    """Decoded train and test splits as uint8 tensors, with labels where the dataset has them."""

    train_images: torch.Tensor  # (N, C, H, W) uint8
    test_images: torch.Tensor
    train_labels: torch.Tensor | None
    test_labels: torch.Tensor | None
    num_classes: int | None
    info: dict = field(default_factory=dict)  # where the data came from, how the test split was made

    @property
    def channels(self) -> int:
        return self.train_images.shape[1]

    @property
    def resolution(self) -> int:
        return self.train_images.shape[-1]


def load_image_data(
    dataset_name: str | None = DIGITS,
    train_data_dir: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    resolution: int | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
    max_train_samples: int | None = None,
    max_test_samples: int | None = None,
) -> ImageData:
    """Loads and decodes a dataset. `dataset_name` is a Hub id, a local folder or `digits`;
    `train_data_dir` is a local image folder (class subfolders), as in diffusers' scripts."""
    if train_data_dir is not None:
        splits = _load_with_datasets("imagefolder", data_dir=_existing_folder(train_data_dir, "--train_data_dir"))
        source = f"imagefolder:{train_data_dir}"
    elif dataset_name in (None, DIGITS):
        return _limit(_load_digits(resolution, test_fraction, seed), max_train_samples, max_test_samples)
    else:
        if _looks_like_path(dataset_name):
            _existing_folder(dataset_name, "--dataset_name")
        splits = _load_with_datasets(dataset_name)
        source = dataset_name

    train_split, test_split, split_note = _train_and_test(splits, test_fraction, seed)
    image_column = image_column or _find_column(train_split, "image", source)
    if label_column is None:
        label_column = _find_column(train_split, "label", source, required=False)
    num_classes = _num_classes(train_split, label_column)
    if max_train_samples:
        train_split = train_split.select(range(min(max_train_samples, len(train_split))))
    if max_test_samples:
        test_split = test_split.select(range(min(max_test_samples, len(test_split))))

    cache_file = _decoded_cache_file(train_split, test_split, image_column, resolution)
    if os.path.isfile(cache_file):
        cached = safetensors.torch.load_file(cache_file)
        train_images, test_images = cached["train"], cached["test"]
    else:
        train_images = _decode_images(train_split, image_column, resolution, source, "train")
        test_images = _decode_images(test_split, image_column, resolution, source, "test")
        _save_atomically({"train": train_images, "test": test_images}, cache_file)
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(
            f"{source}: train images are {tuple(train_images.shape[1:])} but test images are "
            f"{tuple(test_images.shape[1:])}; pass --resolution to resize both to one size."
        )
    info = {"source": source, "image_column": image_column, "label_column": label_column, "test_split": split_note}
    return ImageData(
        train_images,
        test_images,
        _labels(train_split, label_column),
        _labels(test_split, label_column),
        num_classes,
        info,
    )


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) in [0, 255] -> float in [0, 1]."""
    return images.float().div_(255.0)


def cache_root() -> str:
    return os.environ.get("TWOSTAGE_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "twostage"))


def _decoded_cache_file(train_split, test_split, image_column: str, resolution: int | None) -> str:
    """Decoded images are cached on disk, keyed by the datasets' own fingerprints of both splits (which change
    with the files' content) and by how they were decoded, so a second run skips decoding."""
    key = f"{train_split._fingerprint}-{test_split._fingerprint}-{image_column}-{resolution}"
    name = hashlib.sha256(key.encode()).hexdigest()[:24]
    return os.path.join(cache_root(), "decoded", f"{name}.safetensors")


def _save_atomically(tensors: dict, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.{os.getpid()}.partial"
    safetensors.torch.save_file(tensors, partial)
    os.replace(partial, path)


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name and os.path.exists(name.split(os.sep)[0] or os.sep)


def _existing_folder(path: str, flag: str) -> str:
    path = os.path.expanduser(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"{flag} {path!r}: no such folder. Give an existing local folder (Hub parquet layout or class "
            f"subfolders of images), a Hub dataset id such as 'ylecun/mnist', or 'digits' for the bundled set."
        )
    return path


def _load_with_datasets(path: str, **kwargs):
    import datasets

    try:
        return datasets.load_dataset(path, **kwargs)
    except ValueError as error:
        if "corresponds to no data" not in str(error):
            raise
        raise ValueError(f"{path!r}: a split of this dataset is empty ({error}); give a dataset with images in every split.") from error
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"Could not load dataset {path!r}: {error}. Check the Hub id or the folder's path; without internet, "
            f"use a local copy (for example ../shared/data/mnist) or --dataset_name digits."
        ) from error


def _train_and_test(splits, test_fraction: float, seed: int):
    names = list(splits.keys())
    for name in names:
        if len(splits[name]) == 0:
            raise ValueError(f"The dataset's split {name!r} is empty; give a dataset with images in every split.")
    train_name = "train" if "train" in splits else names[0]
    test_name = next((n for n in ("test", "validation", "valid") if n in splits), None)
    if test_name is not None:
        return splits[train_name], splits[test_name], f"the dataset's own '{test_name}' split"
    # No test split: make one, seeded, and record how, so evaluation is repeatable.
    divided = splits[train_name].train_test_split(test_size=test_fraction, seed=seed)
    return divided["train"], divided["test"], f"seeded split of '{train_name}': test_size={test_fraction}, seed={seed}"


def _find_column(split, kind: str, source: str, required: bool = True) -> str | None:
    import datasets

    wanted = datasets.Image if kind == "image" else datasets.ClassLabel
    for name, feature in split.features.items():
        if isinstance(feature, wanted):
            return name
    if kind == "label" and "label" in split.features:
        return "label"
    if required:
        raise ValueError(
            f"{source}: no {kind} column among {list(split.features)} (found by feature type "
            f"{wanted.__name__}); name it with --{kind}_column."
        )
    return None


def _num_classes(split, label_column: str | None) -> int | None:
    import datasets

    if label_column is None:
        return None
    feature = split.features[label_column]
    if isinstance(feature, datasets.ClassLabel):
        return feature.num_classes
    return int(max(split[label_column])) + 1


def _labels(split, label_column: str | None) -> torch.Tensor | None:
    if label_column is None:
        return None
    return torch.tensor(split[label_column], dtype=torch.long)


def _decode_images(split, image_column: str, resolution: int | None, source: str, split_name: str) -> torch.Tensor:
    """Decodes every image once. One mode and one size for all; --resolution resizes."""
    from PIL import Image

    if image_column not in split.features:
        raise ValueError(f"{source}: no column {image_column!r} in {list(split.features)}; check --image_column.")
    mode, size, arrays = None, None, []
    for index, image in enumerate(split[image_column]):
        if not isinstance(image, Image.Image):
            raise ValueError(f"{source}: column {image_column!r} does not hold images (row {index} is {type(image).__name__}).")
        if mode is None:
            mode = "L" if image.mode in ("L", "1", "I", "I;16", "F") else "RGB"
        elif _mode_group(image.mode) != mode:
            raise ValueError(
                f"{source} ({split_name} row {index}): image mode {image.mode!r} differs from the first image's "
                f"{mode!r}; convert the dataset to one mode (all grayscale or all RGB)."
            )
        image = image.convert(mode)
        if resolution is not None and image.size != (resolution, resolution):
            image = image.resize((resolution, resolution), Image.BILINEAR)
        if size is None:
            size = image.size
        elif image.size != size:
            raise ValueError(
                f"{source} ({split_name} row {index}): image of size {image.size} differs from the first "
                f"image's {size}; pass --resolution to resize all images to one size."
            )
        arrays.append(np.asarray(image, dtype=np.uint8))
    stacked = np.stack(arrays)
    if stacked.ndim == 3:
        stacked = stacked[:, None]
    else:
        stacked = stacked.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(stacked))


def _mode_group(mode: str) -> str:
    return "L" if mode in ("L", "1", "I", "I;16", "F") else "RGB"


def _load_digits(resolution: int | None, test_fraction: float, seed: int) -> ImageData:
    """scikit-learn's 1,797 real 8x8 digits (pixel values 0-16), scaled to uint8."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy((digits.images * (255.0 / 16.0)).round().astype(np.uint8))[:, None]
    if resolution is not None and resolution != 8:
        images = (
            torch.nn.functional.interpolate(images.float(), size=(resolution, resolution), mode="bilinear", align_corners=False)
            .round()
            .clamp(0, 255)
            .to(torch.uint8)
        )
    labels = torch.from_numpy(digits.target).long()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    num_test = int(round(len(images) * test_fraction))
    test_index, train_index = order[:num_test], order[num_test:]
    info = {
        "source": DIGITS,
        "image_column": "images",
        "label_column": "target",
        "test_split": f"seeded split of sklearn digits: test_size={test_fraction}, seed={seed}",
    }
    return ImageData(images[train_index], images[test_index], labels[train_index], labels[test_index], 10, info)


def _limit(data: ImageData, max_train: int | None, max_test: int | None) -> ImageData:
    if max_train:
        data.train_images, data.train_labels = data.train_images[:max_train], data.train_labels[:max_train]
    if max_test:
        data.test_images, data.test_labels = data.test_images[:max_test], data.test_labels[:max_test]
    return data
