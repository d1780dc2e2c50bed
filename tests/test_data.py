"""Data loading from every source the training scripts accept, and a clear error for each kind of bad data."""

import numpy as np
import pytest
import torch
from PIL import Image

from stage1_autoencoders.data import load_image_data


def write_imagefolder(root, sizes_and_modes, classes=("cat", "dog")):
    for index, (size, mode) in enumerate(sizes_and_modes):
        folder = root / classes[index % len(classes)]
        folder.mkdir(parents=True, exist_ok=True)
        channels = 3 if mode == "RGB" else 1
        pixels = np.random.default_rng(index).integers(0, 256, size=(size, size, channels), dtype=np.uint8)
        Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(folder / f"{index}.png")
    return root


def test_real_mnist_from_a_local_hub_layout_folder(mnist_path):
    data = load_image_data(mnist_path, max_train_samples=500, max_test_samples=100)
    assert data.train_images.dtype == torch.uint8 and data.train_images.shape == (500, 1, 28, 28)
    assert data.test_images.shape == (100, 1, 28, 28)
    assert data.num_classes == 10 and data.train_labels.shape == (500,)
    assert data.info["image_column"] == "image" and data.info["label_column"] == "label"
    assert "own 'test' split" in data.info["test_split"]
    # The pixel mean of MNIST's training set is 0.1307 (33.3 of 255); 500 images land close to it.
    assert abs(data.train_images.float().mean().item() / 255 - 0.1307) < 0.02


def test_resolution_resizes(mnist_path):
    data = load_image_data(mnist_path, max_train_samples=50, max_test_samples=10, resolution=32)
    assert data.train_images.shape == (50, 1, 32, 32)


def test_digits_is_an_offline_default_with_a_recorded_seeded_split():
    first, again = load_image_data("digits", seed=1), load_image_data("digits", seed=1)
    assert first.train_images.shape[1:] == (1, 8, 8) and len(first.train_images) + len(first.test_images) == 1797
    assert torch.equal(first.test_labels, again.test_labels)
    assert "seed=1" in first.info["test_split"]
    assert not torch.equal(load_image_data("digits", seed=2).test_labels, first.test_labels)


def test_an_rgb_imagefolder_without_a_test_split_gets_a_seeded_one(tmp_path):
    write_imagefolder(tmp_path / "images", [(16, "RGB")] * 20)
    data = load_image_data(None, train_data_dir=str(tmp_path / "images"), test_fraction=0.25, seed=3)
    assert data.train_images.shape == (15, 3, 16, 16) and data.test_images.shape == (5, 3, 16, 16)
    assert data.num_classes == 2
    assert "seeded split" in data.info["test_split"] and "seed=3" in data.info["test_split"]


def test_a_missing_folder_names_the_path_and_the_alternatives(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder.*ylecun/mnist"):
        load_image_data(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="--train_data_dir"):
        load_image_data(None, train_data_dir=str(tmp_path / "nowhere"))


def test_images_of_mixed_sizes_ask_for_resolution(tmp_path):
    write_imagefolder(tmp_path / "images", [(16, "L"), (16, "L"), (20, "L"), (16, "L")])
    with pytest.raises(ValueError, match="differs from the first image's.*--resolution"):
        load_image_data(None, train_data_dir=str(tmp_path / "images"), test_fraction=0.25)
    fixed = load_image_data(None, train_data_dir=str(tmp_path / "images"), test_fraction=0.25, resolution=8)
    assert fixed.train_images.shape[1:] == (1, 8, 8)


def test_images_of_mixed_modes_are_refused(tmp_path):
    write_imagefolder(tmp_path / "images", [(16, "L"), (16, "RGB"), (16, "L"), (16, "RGB")])
    with pytest.raises(ValueError, match="image mode .* differs"):
        load_image_data(None, train_data_dir=str(tmp_path / "images"), test_fraction=0.25)


def test_a_dataset_without_an_image_column_says_which_flag_to_use(tmp_path):
    import datasets

    folder = tmp_path / "table"
    folder.mkdir()
    datasets.Dataset.from_dict({"text": ["a", "b", "c", "d"], "label": [0, 1, 0, 1]}).to_parquet(str(folder / "train.parquet"))
    with pytest.raises(ValueError, match="no image column.*--image_column"):
        load_image_data(str(folder))


def test_an_empty_split_is_refused(tmp_path):
    import datasets

    folder = tmp_path / "empty"
    folder.mkdir()
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    datasets.Dataset.from_dict({"image": [], "label": []}, features=features).to_parquet(str(folder / "train.parquet"))
    with pytest.raises(ValueError, match="empty"):
        load_image_data(str(folder))
