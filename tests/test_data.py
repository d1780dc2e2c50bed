"""Data loading from every source the training scripts accept, and a clear error for each kind of bad data."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stage1_autoencoders.data import (
    dataset_reference,
    load_image_data,
    random_flip,
    spread_over_classes,
    images_from_every_class,
)

CIFAR10 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10"


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
    with pytest.raises(ValueError, match="cat/2.png: image of size.*differs from the first.*--resolution"):
        load_image_data(None, train_data_dir=str(tmp_path / "images"), test_fraction=0.25)
    fixed = load_image_data(None, train_data_dir=str(tmp_path / "images"), test_fraction=0.25, resolution=8)
    assert fixed.train_images.shape[1:] == (1, 8, 8)


def test_images_of_mixed_modes_are_converted_to_the_majoritys(tmp_path, capsys):
    # As in ImageNet-style photo folders: a few grayscale and CMYK images among RGB ones.
    write_imagefolder(tmp_path / "images", [(16, "RGB"), (16, "L"), (16, "RGB"), (16, "RGB"), (16, "RGB")])
    photo = np.random.default_rng(9).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    Image.fromarray(photo).convert("CMYK").save(tmp_path / "images" / "dog" / "9.jpg")
    data = load_image_data(None, train_data_dir=str(tmp_path / "images"), test_fraction=0.5, seed=0)
    assert data.channels == 3 and data.info["mode"] == "RGB" and data.info["converted_images"] == 2
    assert "converted 2 of 6 images to RGB" in capsys.readouterr().out
    grey = load_image_data(None, train_data_dir=str(tmp_path / "images"), test_fraction=0.5, image_mode="L")
    assert grey.channels == 1 and grey.info["converted_images"] == 5
    with pytest.raises(ValueError, match="--image_mode 'CMYK'"):
        load_image_data(None, train_data_dir=str(tmp_path / "images"), image_mode="CMYK")


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


def test_a_test_folder_is_used_and_the_run_loads_its_data_back(tmp_path):
    write_imagefolder(tmp_path / "train", [(12, "RGB")] * 6, classes=("cat", "dog", "eel"))
    write_imagefolder(tmp_path / "test", [(12, "RGB")] * 3, classes=("cat", "dog", "eel"))
    data = load_image_data(None, train_data_dir=str(tmp_path / "train"), test_data_dir=str(tmp_path / "test"))
    assert data.train_images.shape == (6, 3, 12, 12) and data.test_images.shape == (3, 3, 12, 12)
    assert data.num_classes == 3 and data.test_labels.tolist() == [0, 1, 2]  # one numbering of the class folders
    assert data.info["test_data_dir"] == str(tmp_path / "test") and "own 'test' split" in data.info["test_split"]
    # What a run records (training_info.json's "dataset", through JSON) loads the same images back, from anywhere.
    again = load_image_data(dataset_reference(json.loads(json.dumps(data.info))))
    assert torch.equal(again.train_images, data.train_images) and torch.equal(again.test_images, data.test_images)
    with pytest.raises(ValueError, match="--test_data_dir needs --train_data_dir"):
        load_image_data("digits", test_data_dir=str(tmp_path / "test"))


def test_a_seeded_split_is_reloaded_with_its_own_seed_whatever_the_caller_passes(tmp_path):
    # Issue 11's train/test leak: a later step with another seed must still get the run's own test split.
    write_imagefolder(tmp_path / "images", [(8, "L")] * 20)
    data = load_image_data(None, train_data_dir=str(tmp_path / "images"), test_fraction=0.25, seed=7)
    reference = dataset_reference(data.info)
    again = load_image_data(reference, seed=0)
    assert torch.equal(again.test_images, data.test_images) and "seed=7" in again.info["test_split"]
    assert dataset_reference(load_image_data("digits", seed=0).info) == "digits"  # a plain name where it suffices
    digits_seed_3 = load_image_data("digits", seed=3)
    assert torch.equal(load_image_data(dataset_reference(digits_seed_3.info)).test_labels, digits_seed_3.test_labels)


def test_a_folder_run_recorded_before_the_settings_were_loads_back(tmp_path):
    # Such runs recorded {"source": "imagefolder:PATH"}, which no later step could load (issue 13).
    write_imagefolder(tmp_path / "images", [(8, "L")] * 20)
    data = load_image_data(None, train_data_dir=str(tmp_path / "images"), test_fraction=0.2, seed=4)
    old_record = {"source": f"imagefolder:{tmp_path / 'images'}", "image_column": "image", "label_column": "label",
                  "test_split": "seeded split of 'train': test_size=0.2, seed=4"}
    assert torch.equal(load_image_data(dataset_reference(old_record)).test_images, data.test_images)


def test_a_recorded_dataset_is_checked_before_anything_is_read():
    with pytest.raises(ValueError, match="seed is 'x'"):
        load_image_data(json.dumps({"dataset_name": "digits", "seed": "x"}))
    with pytest.raises(ValueError, match="train_data_dir is 3"):
        load_image_data(json.dumps({"train_data_dir": 3}))
    with pytest.raises(ValueError, match="not valid JSON"):
        load_image_data("{digits")


def test_a_truncated_image_is_named_in_one_line(tmp_path):
    write_imagefolder(tmp_path / "images", [(16, "RGB")] * 4)
    broken = tmp_path / "images" / "dog" / "3.png"
    broken.write_bytes(broken.read_bytes()[:60])
    with pytest.raises(ValueError, match=r"dog/3.png: .*remove or replace the file") as error:
        load_image_data(None, train_data_dir=str(tmp_path / "images"), test_fraction=0.25)
    assert "\n" not in str(error.value)


def test_a_damaged_cache_is_rebuilt_and_stale_partial_writes_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("TWOSTAGE_CACHE", str(tmp_path / "cache"))
    write_imagefolder(tmp_path / "images", [(8, "RGB")] * 8)
    first = load_image_data(None, train_data_dir=str(tmp_path / "images"), test_fraction=0.25)
    decoded = tmp_path / "cache" / "decoded"
    (cache_file,) = decoded.glob("*.safetensors")
    cache_file.write_bytes(cache_file.read_bytes()[:100])  # a disk filled up, a copy cut short
    # The half-written file of a killed process (its pid no longer runs).
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = decoded / f"{cache_file.name}.{gone.pid}.partial"
    stale.write_bytes(b"half")
    with pytest.warns(UserWarning, match="cache .* is damaged"):
        again = load_image_data(None, train_data_dir=str(tmp_path / "images"), test_fraction=0.25)
    assert torch.equal(again.train_images, first.train_images) and not stale.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt cache is read without complaint
        load_image_data(None, train_data_dir=str(tmp_path / "images"), test_fraction=0.25)


def test_center_crop_keeps_the_aspect_ratio(tmp_path):
    folder = tmp_path / "images" / "wide"
    folder.mkdir(parents=True)
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, 10:30] = 255  # a white middle square between black sides
    for index in range(4):
        Image.fromarray(pixels).save(folder / f"{index}.png")
    cropped = load_image_data(None, train_data_dir=str(tmp_path / "images"), resolution=10, center_crop=True, test_fraction=0.25)
    assert cropped.train_images.shape[1:] == (3, 10, 10) and cropped.train_images.float().mean() > 240
    squashed = load_image_data(None, train_data_dir=str(tmp_path / "images"), resolution=10, test_fraction=0.25)
    assert squashed.train_images.float().mean() < 180
    with pytest.raises(ValueError, match="--center_crop needs --resolution"):
        load_image_data(None, train_data_dir=str(tmp_path / "images"), center_crop=True)


def test_random_flip_mirrors_about_half_the_images_reproducibly():
    images = torch.arange(16.0).view(1, 1, 4, 4).repeat(200, 1, 1, 1)
    torch.manual_seed(0)
    flipped = random_flip(images)
    mirrored = (flipped == images.flip(-1)).flatten(1).all(1)
    assert torch.equal(mirrored | (flipped == images).flatten(1).all(1), torch.ones(200, dtype=torch.bool))
    assert 70 < mirrored.sum() < 130
    torch.manual_seed(0)
    assert torch.equal(random_flip(images), flipped)


def test_figures_take_images_from_every_class():
    labels = torch.tensor([0] * 5 + [1] * 3 + [2] * 4)  # a class-sorted folder
    assert spread_over_classes(labels, 7).tolist() == [0, 5, 8, 1, 6, 9, 2]
    data = load_image_data("digits")
    picked = images_from_every_class(data, 30)
    index = spread_over_classes(data.test_labels, 30)
    assert torch.equal(picked, data.test_images[index]) and set(data.test_labels[index].tolist()) == set(range(10))


@pytest.mark.skipif(not CIFAR10.is_dir(), reason="CIFAR-10 is not at ../shared/data/cifar10")
def test_cifar10_in_the_hubs_layout():
    data = load_image_data(str(CIFAR10), max_train_samples=300, max_test_samples=100)
    assert data.train_images.shape == (300, 3, 32, 32) and data.test_images.shape == (100, 3, 32, 32)
    assert data.num_classes == 10 and data.info["image_column"] == "img" and data.info["mode"] == "RGB"
    assert dataset_reference(data.info) == os.path.abspath(CIFAR10)  # its own test split: the folder names it
    # CIFAR-10's per-channel means are about (0.49, 0.48, 0.45).
    means = data.train_images.float().mean((0, 2, 3)) / 255
    assert torch.allclose(means, torch.tensor([0.49, 0.48, 0.45]), atol=0.04)


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR10.is_dir(), reason="CIFAR-10 is not at ../shared/data/cifar10")
def test_cifar10_folders_run_end_to_end_and_later_steps_reuse_the_runs_data(tmp_path, monkeypatch):
    """CIFAR-10 images as PNG folders (train/ and test/, a subfolder per class), RGB through stage 1 (an 8x8 grid of
    codes) and stage 2 (class-conditional) with no data flag repeated, and the evaluation's loading of the test split."""
    from evaluation.evaluate import ModelGroup, load_test_split
    from stage1_autoencoders import VQVAE
    from stage1_autoencoders.train import main as train_stage1
    from stage2_prior.stage1_runs import training_dataset
    from stage2_prior.train import main as train_prior

    monkeypatch.setenv("TWOSTAGE_CACHE", str(tmp_path / "cache"))
    cifar = load_image_data(str(CIFAR10), max_train_samples=240, max_test_samples=60)
    for split, images, labels in (("train", cifar.train_images, cifar.train_labels), ("test", cifar.test_images, cifar.test_labels)):
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = tmp_path / split / f"class{label.item()}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{index}.png")

    run = tmp_path / "vqvae"
    train_stage1(["--model", "vqvae", "--train_data_dir", str(tmp_path / "train"), "--test_data_dir", str(tmp_path / "test"),
                  "--hidden_channels", "16", "32", "--downsampling_factor", "4", "--num_embeddings", "64", "--embedding_dim", "8",
                  "--random_flip", "--train_batch_size", "32", "--max_train_steps", "4", "--checkpointing_steps", "1000",
                  "--output_dir", str(run)])
    vqvae = VQVAE.from_pretrained(str(run))
    assert vqvae.in_channels == 3 and tuple(vqvae.latent_grid_size) == (8, 8) and vqvae.likelihood == "gaussian"
    recorded = json.loads((run / "training_info.json").read_text())["dataset"]
    assert recorded["test_data_dir"] == str(tmp_path / "test") and recorded["label_column"] == "label"

    prior = tmp_path / "pixelcnn"
    train_prior(["--vqvae", str(run), "--conditional", "--hidden_channels", "8", "--num_layers", "2", "--max_train_steps", "3",
                 "--checkpointing_steps", "1000", "--output_dir", str(prior)])
    info = json.loads((prior / "training_info.json").read_text())
    assert info["dataset"]["train_data_dir"] == str(tmp_path / "train") and info["dataset"]["test_data_dir"] == str(tmp_path / "test")
    assert info["num_train_images"] == 240 and info["num_test_images"] == 60
    assert info["codes_cache_file"].startswith(str(tmp_path / "cache"))  # the one cache root

    # The evaluation and the app name the data by training_dataset(run): the same test images, with no flag.
    test_split, resolution = load_test_split(training_dataset(str(run), None), [ModelGroup("vq", str(run), vqvae, training_dataset(str(run), None))], None)
    assert resolution is None and len(test_split.test_images) == 60
    assert torch.equal(test_split.test_images.sum(0), cifar.test_images.sum(0))  # the same images (folder order aside)
