"""Image datasets for both stages: a Hub id, a local folder, image folders, or scikit-learn's bundled digits.

Every source ends as the same thing: uint8 tensors (N, C, H, W) decoded once, so that training never
decodes a PNG with PIL per step. Images become floats in [0, 1] only inside the training loop.

What was loaded is recorded (ImageData.info, written to a run's training_info.json) in a form that loads the same
images and the same test split back: dataset_reference() gives it to every later step (stage 2, the evaluation,
the app), and load_image_data() reads it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import safetensors.torch
import torch

from stage1_autoencoders.cache import cache_dir

DIGITS = "digits"
IMAGE_MODES = ("L", "RGB")
GREY_MODES = ("L", "1", "I", "I;16", "F", "LA", "La")
# The recorded settings that decide which images and which test split a run saw.
RECORDED_KEYS = {
    "dataset_name": (str, type(None)),
    "train_data_dir": (str, type(None)),
    "test_data_dir": (str, type(None)),
    "image_column": (str, type(None)),
    "label_column": (str, type(None)),
    "resolution": (int, type(None)),
    "center_crop": (bool,),
    "image_mode": (str, type(None)),
    "test_fraction": (float, int),
    "seed": (int,),
    "max_train_samples": (int, type(None)),
    "max_test_samples": (int, type(None)),
}


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
    *,
    test_data_dir: str | None = None,
    center_crop: bool = False,
    image_mode: str | None = None,
) -> ImageData:
    """Loads and decodes a dataset. `dataset_name` is a Hub id, a local folder, `digits`, or a run's recorded data
    (dataset_reference()); `train_data_dir` and `test_data_dir` are local image folders (one subfolder per class),
    as in diffusers' scripts. `seed` and `test_fraction` split a dataset that has no test split."""
    if isinstance(dataset_name, str) and dataset_name.lstrip().startswith("{"):
        return load_recorded_data(dataset_name, resolution, max_train_samples, max_test_samples)
    if image_mode is not None and image_mode not in IMAGE_MODES:
        raise ValueError(f"--image_mode {image_mode!r}: give one of {IMAGE_MODES} (or leave it out: the majority's mode).")
    if center_crop and resolution is None:
        raise ValueError("--center_crop needs --resolution (the side of the square cut from the middle).")
    if test_data_dir is not None and train_data_dir is None:
        raise ValueError("--test_data_dir needs --train_data_dir (the training images' folder).")
    recorded = {
        "dataset_name": dataset_name, "train_data_dir": None, "test_data_dir": None, "resolution": resolution,
        "center_crop": center_crop, "image_mode": image_mode, "test_fraction": test_fraction, "seed": seed,
        "max_train_samples": max_train_samples, "max_test_samples": max_test_samples,
    }
    if train_data_dir is not None:
        train_dir = os.path.abspath(_existing_folder(train_data_dir, "--train_data_dir"))
        recorded.update(dataset_name=None, train_data_dir=train_dir)
        source = f"image folder {train_dir}"
        if test_data_dir is not None:
            test_dir = os.path.abspath(_existing_folder(test_data_dir, "--test_data_dir"))
            recorded["test_data_dir"] = test_dir
            source += f" (test: {test_dir})"
            # One load for both folders, so that the class names (subfolders) get one numbering.
            splits = _load_with_datasets("imagefolder", data_files={"train": os.path.join(train_dir, "**"),
                                                                    "test": os.path.join(test_dir, "**")})
        else:
            splits = _load_with_datasets("imagefolder", data_dir=train_dir)
    elif dataset_name in (None, DIGITS):
        data = _limit(_load_digits(resolution, test_fraction, seed), max_train_samples, max_test_samples)
        data.info.update({**recorded, "dataset_name": DIGITS})
        return data
    else:
        if _looks_like_path(dataset_name):
            dataset_name = os.path.abspath(_existing_folder(dataset_name, "--dataset_name"))
            recorded["dataset_name"] = dataset_name
        splits = _load_with_datasets(dataset_name)
        source = dataset_name

    train_split, test_split, split_note, own_test_split = _train_and_test(splits, test_fraction, seed)
    image_column = image_column or _find_column(train_split, "image", source)
    if label_column is None:
        label_column = _find_column(train_split, "label", source, required=False)
    num_classes = _num_classes(train_split, label_column)
    if max_train_samples:
        train_split = train_split.select(range(min(max_train_samples, len(train_split))))
    if max_test_samples:
        test_split = test_split.select(range(min(max_test_samples, len(test_split))))

    train_images, test_images, decoding = _decoded_images(train_split, test_split, image_column, resolution,
                                                          center_crop, image_mode, source)
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(
            f"{source}: train images are {tuple(train_images.shape[1:])} but test images are "
            f"{tuple(test_images.shape[1:])}; pass --resolution to resize both to one size."
        )
    info = {"source": source, **recorded, "image_column": image_column, "label_column": label_column,
            "test_split": split_note, "own_test_split": own_test_split, **decoding}
    return ImageData(
        train_images,
        test_images,
        _labels(train_split, label_column),
        _labels(test_split, label_column),
        num_classes,
        info,
    )


def dataset_reference(info: dict) -> str:
    """How later steps name the data a run recorded: its dataset name where that alone loads the same images and
    the same test split, else the recorded settings as JSON (which load_image_data reads back). A record written
    before the settings were recorded gives its source, as it always did."""
    if "seed" not in info:
        source = info["source"]
        split = re.search(r"test_size=([0-9.]+), seed=(\d+)", info.get("test_split", ""))
        if source.startswith("imagefolder:"):  # a folder run recorded before the settings were: its folder and seed
            return json.dumps({"train_data_dir": source[len("imagefolder:"):], "test_fraction": float(split[1]) if split else 0.1,
                               "seed": int(split[2]) if split else 0})
        if source == DIGITS and split and (int(split[2]), float(split[1])) != (0, 0.1):  # another split than the name's
            return json.dumps({"dataset_name": DIGITS, "test_fraction": float(split[1]), "seed": int(split[2])})
        return source
    by_name_alone = (
        info.get("train_data_dir") is None and not info.get("center_crop") and info.get("image_mode") is None
        and (info.get("own_test_split") or (info["seed"] == 0 and info.get("test_fraction") == 0.1))
    )
    if by_name_alone:
        return info["dataset_name"] or DIGITS
    # The limits on how many images were used are left out: they leave the split as it is, and later steps set their own.
    return json.dumps({key: info.get(key) for key in RECORDED_KEYS if not key.startswith("max_")}, sort_keys=True)


def load_recorded_data(
    recorded: str | dict,
    resolution: int | None = None,
    max_train_samples: int | None = None,
    max_test_samples: int | None = None,
) -> ImageData:
    """The images and split a run recorded (its training_info.json's "dataset", or dataset_reference()'s JSON),
    checked before anything is read. Arguments given here replace the recorded ones."""
    if isinstance(recorded, str):
        try:
            recorded = json.loads(recorded)
        except json.JSONDecodeError as error:
            raise ValueError(f"recorded dataset {recorded[:80]!r} is not valid JSON ({error}).") from error
    if not isinstance(recorded, dict):
        raise ValueError(f"recorded dataset is a {type(recorded).__name__}, not a JSON object of {sorted(RECORDED_KEYS)}.")
    settings = {}
    for key, types in RECORDED_KEYS.items():
        value = recorded.get(key)
        if key in ("center_crop",) and value is None:
            value = False
        if key in ("test_fraction",) and value is None:
            value = 0.1
        if key in ("seed",) and value is None:
            value = 0
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ValueError(f"recorded dataset: {key} is {value!r}; expected {' or '.join(t.__name__ for t in types)}.")
        settings[key] = value
    if not 0 < settings["test_fraction"] < 1:
        raise ValueError(f"recorded dataset: test_fraction {settings['test_fraction']!r} is not between 0 and 1.")
    for key, value in (("resolution", resolution), ("max_train_samples", max_train_samples), ("max_test_samples", max_test_samples)):
        if value is not None:
            settings[key] = value
    dataset_name = settings.pop("dataset_name")
    if dataset_name is not None and dataset_name.lstrip().startswith("{"):
        raise ValueError("recorded dataset: dataset_name is itself a recorded dataset; give a Hub id, a folder or 'digits'.")
    train_data_dir = settings.pop("train_data_dir")
    return load_image_data(dataset_name, train_data_dir, **settings)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) in [0, 255] -> float in [0, 1]."""
    return images.float().div_(255.0)


def random_flip(images: torch.Tensor) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2 (diffusers' --random_flip), drawn from torch's seeded
    generator so that a resumed run flips as the uninterrupted one."""
    flip = torch.rand(images.shape[0]) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1).to(images.device), images.flip(-1), images)


def images_from_every_class(data: ImageData, count: int) -> torch.Tensor:
    """`count` test images (uint8) taking each class in turn, so that a figure of a class-sorted folder shows every
    class, not the first one only; the first `count` where there are no labels."""
    if data.test_labels is None:
        return data.test_images[:count]
    return data.test_images[spread_over_classes(data.test_labels, count)]


def spread_over_classes(labels: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of `count` items taking each class in turn: the first of every class, then the second, ..."""
    if len(labels) == 0:
        return torch.zeros(0, dtype=torch.long)
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    _, counts = torch.unique_consecutive(sorted_labels, return_counts=True)
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    rank_in_class = torch.arange(len(labels)) - starts
    turn = rank_in_class * (int(labels.max()) + 1) + sorted_labels
    return order[torch.argsort(turn, stable=True)][:count]


def _decoded_cache_file(train_split, test_split, image_column: str, resolution: int | None, center_crop: bool,
                        image_mode: str | None) -> str:
    """Decoded images are cached on disk, keyed by the datasets' own fingerprints of both splits (which change
    with the files' content) and by how they were decoded, so a second run skips decoding."""
    key = f"{train_split._fingerprint}-{test_split._fingerprint}-{image_column}-{resolution}"
    if center_crop or image_mode:
        key += f"-crop{center_crop}-{image_mode}"
    name = hashlib.sha256(key.encode()).hexdigest()[:24]
    return os.path.join(cache_dir("decoded"), f"{name}.safetensors")


def _decoded_images(train_split, test_split, image_column, resolution, center_crop, image_mode, source):
    """Both splits as uint8 tensors, from the cache when a valid one is there, and how they were decoded."""
    cache_file = _decoded_cache_file(train_split, test_split, image_column, resolution, center_crop, image_mode)
    _remove_stale_partials(os.path.dirname(cache_file))
    if os.path.isfile(cache_file):
        cached = _read_cache(cache_file, len(train_split), len(test_split))
        if cached is not None:
            return cached["train"], cached["test"], json.loads(cached.get("decoding", "{}"))
    raw_train = _raw_images(train_split, image_column, source, "train")
    raw_test = _raw_images(test_split, image_column, source, "test")
    modes = Counter(_mode_group(image.mode) for image, _ in raw_train)
    mode = image_mode or max(IMAGE_MODES, key=lambda m: (modes[m], m == "RGB"))
    converted = Counter(image.mode for image, _ in raw_train + raw_test if image.mode != mode)
    if converted:
        print(f"{source}: converted {sum(converted.values())} of {len(raw_train) + len(raw_test)} images to {mode} "
              f"(their modes: {dict(converted)}){'' if image_mode else '; --image_mode sets the mode'}.")
    train = _to_tensor(raw_train, mode, resolution, center_crop, source, "train")
    test = _to_tensor(raw_test, mode, resolution, center_crop, source, "test")
    decoding = {"mode": mode, "converted_images": sum(converted.values())}
    _save_atomically({"train": train, "test": test}, cache_file, {"decoding": json.dumps(decoding)})
    return train, test, decoding


def _read_cache(path: str, num_train: int, num_test: int) -> dict | None:
    """The cached tensors, or None (with a warning, the cache then rebuilt) when the file is damaged."""
    try:
        with safetensors.safe_open(path, "pt") as file:
            metadata = file.metadata() or {}
            tensors = {name: file.get_tensor(name) for name in ("train", "test")}
        for name, expected in (("train", num_train), ("test", num_test)):
            tensor = tensors[name]
            if tensor.dtype != torch.uint8 or tensor.ndim != 4 or len(tensor) != expected:
                raise ValueError(f"{name} is {tuple(tensor.shape)} {tensor.dtype}, expected {expected} uint8 images")
        return {**tensors, **metadata}
    except Exception as error:  # any damage (truncated, not safetensors, wrong content) means: decode again
        warnings.warn(f"The decoded-data cache {path} is damaged ({error}); decoding the images again.", stacklevel=3)
        try:
            os.remove(path)
        except FileNotFoundError:  # another process removed it first
            pass
        return None


def _save_atomically(tensors: dict, path: str, metadata: dict | None = None) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.{os.getpid()}.partial"
    safetensors.torch.save_file(tensors, partial, metadata=metadata)
    os.replace(partial, path)


def _remove_stale_partials(folder: str) -> None:
    """Deletes the half-written files of cache writes whose process is gone (killed mid-write)."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if not name.endswith(".partial"):
            continue
        pid = name.rsplit(".", 2)[-2]
        if pid.isdigit() and _process_alive(int(pid)):
            continue  # another process is writing it now
        try:
            os.remove(os.path.join(folder, name))
        except FileNotFoundError:
            pass


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        return splits[train_name], splits[test_name], f"the dataset's own '{test_name}' split", True
    # No test split: make one, seeded, and record how, so every later step makes the same one.
    divided = splits[train_name].train_test_split(test_size=test_fraction, seed=seed)
    note = f"seeded split of '{train_name}': test_size={test_fraction}, seed={seed}"
    return divided["train"], divided["test"], note, False


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


def _raw_images(split, image_column: str, source: str, split_name: str) -> list:
    """Every image opened (header read, pixels not yet decoded) with where it came from, for error messages."""
    import datasets
    from PIL import Image

    if image_column not in split.features:
        raise ValueError(f"{source}: no column {image_column!r} in {list(split.features)}; check --image_column.")
    if not isinstance(split.features[image_column], datasets.Image):
        raise ValueError(f"{source}: column {image_column!r} does not hold images (it is {split.features[image_column]}).")
    opened = []
    for index, item in enumerate(split.cast_column(image_column, datasets.Image(decode=False))[image_column]):
        where = item.get("path") or f"{source} ({split_name} row {index})"
        try:
            data = item["bytes"] if item.get("bytes") is not None else open(item["path"], "rb").read()
            opened.append((Image.open(io.BytesIO(data)), where))
        except (OSError, SyntaxError, ValueError, TypeError) as error:
            raise ValueError(f"{where}: not a readable image ({error}); remove or replace the file.") from None
    return opened


def _to_tensor(opened: list, mode: str, resolution: int | None, center_crop: bool, source: str, split_name: str) -> torch.Tensor:
    """Decodes every image into one mode and one size; --resolution resizes (--center_crop: shorter side, then the
    middle square)."""
    from PIL import Image

    size, arrays = None, []
    for image, where in opened:
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt pixel data
            raise ValueError(f"{where}: the image cannot be decoded ({error}); remove or replace the file.") from None
        image = image.convert(mode)
        if resolution is not None and center_crop:
            scale = resolution / min(image.size)
            width, height = max(resolution, round(image.width * scale)), max(resolution, round(image.height * scale))
            image = image.resize((width, height), Image.BILINEAR)
            left, top = (width - resolution) // 2, (height - resolution) // 2
            image = image.crop((left, top, left + resolution, top + resolution))
        elif resolution is not None and image.size != (resolution, resolution):
            image = image.resize((resolution, resolution), Image.BILINEAR)
        if size is None:
            size = image.size
        elif image.size != size:
            raise ValueError(
                f"{where}: image of size {image.size} differs from the first {split_name} image's {size}; "
                f"pass --resolution to resize all images to one size."
            )
        arrays.append(np.asarray(image, dtype=np.uint8))
    stacked = np.stack(arrays)
    if stacked.ndim == 3:
        stacked = stacked[:, None]
    else:
        stacked = stacked.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(stacked))


def _mode_group(mode: str) -> str:
    return "L" if mode in GREY_MODES else "RGB"


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
        "own_test_split": False,
    }
    return ImageData(images[train_index], images[test_index], labels[train_index], labels[test_index], 10, info)


def _limit(data: ImageData, max_train: int | None, max_test: int | None) -> ImageData:
    if max_train:
        data.train_images, data.train_labels = data.train_images[:max_train], data.train_labels[:max_train]
    if max_test:
        data.test_images, data.test_labels = data.test_images[:max_test], data.test_labels[:max_test]
    return data
