"""Trains the evaluation classifier on a dataset's train split and reports its test accuracy.

    python -m evaluation.train_classifier --dataset_name ../shared/data/mnist --output_dir outputs/classifier-mnist

Two recipes, chosen by the images' channels. Grey digits: the small CNN, AdamW with a one-cycle learning rate,
>= 99% on MNIST in 3 epochs. Colour (CIFAR-10): a small ResNet (evaluation/classifier.py), random 32x32 crops of
the 4-pixel-padded images and horizontal flips, AdamW with a one-cycle (cosine) learning rate. Flags override
either recipe. The model is saved with save_pretrained
into OUTPUT_DIR (config.json, model.safetensors) beside training_info.json. It keeps one
trained classifier per dataset in a cache folder (`trained_classifier_folder`), so tests and reports train it at most
once per machine.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
import os
import re
import shutil
import tempfile
import time

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from evaluation.classifier import Classifier
from stage1_autoencoders.data import ImageData, load_image_data, to_float
from stage1_autoencoders.cache import cache_root

# min_train_steps: small sets (sklearn's 1,617 digits are 6 batches an epoch) get more epochs, not a weak classifier.
TRAINING_DEFAULTS = {
    "num_epochs": 3, "min_train_steps": 500, "train_batch_size": 256, "learning_rate": 5e-3, "weight_decay": 1e-4, "seed": 0
}
# Photographs need a deeper network, augmentation and many more epochs than digits.
COLOUR_TRAINING_DEFAULTS = {
    **TRAINING_DEFAULTS, "num_epochs": 40, "train_batch_size": 128, "learning_rate": 4e-3, "weight_decay": 5e-2,
}
COLOUR_ARCHITECTURE = {"hidden_channels": [32, 64, 128], "residual_blocks": 2, "feature_dim": 256, "dropout": 0.0}
RECIPES = {
    "grey": {"training": TRAINING_DEFAULTS, "architecture": {}, "augment": False},
    "colour": {"training": COLOUR_TRAINING_DEFAULTS, "architecture": COLOUR_ARCHITECTURE, "augment": True},
}


def recipe_for(data: ImageData) -> dict:
    return RECIPES["colour" if data.channels == 3 else "grey"]


def random_crop_and_flip(images: torch.Tensor, padding: int = 4) -> torch.Tensor:
    """Per image, a random crop of the reflect-padded batch at the original size, mirrored left-right half the time."""
    count, channels, height, width = images.shape
    padded = F.pad(images, (padding,) * 4, mode="reflect")
    top = torch.randint(0, 2 * padding + 1, (count, 1), device=images.device) + torch.arange(height, device=images.device)
    left = torch.randint(0, 2 * padding + 1, (count, 1), device=images.device) + torch.arange(width, device=images.device)
    flip = torch.rand(count, device=images.device) < 0.5
    left = torch.where(flip[:, None], left.flip(1), left)
    batch = torch.arange(count, device=images.device)[:, None, None, None]
    channel = torch.arange(channels, device=images.device)[None, :, None, None]
    return padded[batch, channel, top[:, None, :, None], left[:, None, None, :]]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset_name", default="digits", help="Hub id, local dataset folder, or 'digits'.")
    parser.add_argument("--train_data_dir", default=None, help="Local image folder with class subfolders.")
    parser.add_argument("--image_column", default=None)
    parser.add_argument("--label_column", default=None)
    parser.add_argument("--resolution", type=int, default=None, help="Resize images to this size (square).")
    parser.add_argument("--max_train_samples", type=int, default=None)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_epochs", type=int, default=None, help="Default: the recipe's (3 grey, 40 colour).")
    parser.add_argument("--min_train_steps", type=int, default=None,
                        help="Train more epochs than --num_epochs where needed to reach this many steps.")
    parser.add_argument("--train_batch_size", type=int, default=None)
    parser.add_argument("--learning_rate", type=float, default=None, help="Peak of the one-cycle schedule.")
    parser.add_argument("--weight_decay", type=float, default=None)
    parser.add_argument("--seed", type=int, default=TRAINING_DEFAULTS["seed"])
    return parser.parse_args(argv)


def train_classifier(
    data: ImageData,
    num_epochs: int = TRAINING_DEFAULTS["num_epochs"],
    min_train_steps: int = TRAINING_DEFAULTS["min_train_steps"],
    train_batch_size: int = TRAINING_DEFAULTS["train_batch_size"],
    learning_rate: float = TRAINING_DEFAULTS["learning_rate"],
    weight_decay: float = TRAINING_DEFAULTS["weight_decay"],
    seed: int = TRAINING_DEFAULTS["seed"],
    accelerator: Accelerator | None = None,
    architecture: dict | None = None,
    augment: bool = False,
) -> tuple[Classifier, dict]:
    """Trains a Classifier (`architecture`: its constructor's settings beyond the data's shape) on data's train
    split, with random crops and flips if `augment`; returns it (eval mode, unwrapped) and its metrics."""
    if data.train_labels is None or data.num_classes is None:
        raise ValueError(
            f"{data.info.get('source')}: the dataset has no labels, and the evaluation classifier needs them; "
            f"name the label column with --label_column, or pass a trained classifier instead."
        )
    accelerator = accelerator or Accelerator()
    set_seed(seed)
    model = Classifier(image_size=data.resolution, in_channels=data.channels, num_classes=data.num_classes,
                       **(architecture or {}))
    loader = DataLoader(
        TensorDataset(to_float(data.train_images), data.train_labels),
        batch_size=train_batch_size,
        shuffle=True,
        drop_last=len(data.train_images) > train_batch_size,  # BatchNorm cannot train on a last batch of one
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    num_epochs = max(num_epochs, math.ceil(min_train_steps / len(loader)))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=num_epochs * len(loader))

    start = time.perf_counter()
    progress = tqdm(total=num_epochs * len(loader), desc="classifier",
                    disable=None if accelerator.is_local_main_process else True)
    model.train()
    for epoch in range(num_epochs):
        for images, labels in loader:
            loss = F.cross_entropy(model(random_crop_and_flip(images) if augment else images), labels)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            progress.update()
            progress.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}")
    progress.close()

    model = accelerator.unwrap_model(model).eval()
    metrics = {
        "test_accuracy": test_accuracy(model, data, accelerator),
        "train_seconds": round(time.perf_counter() - start, 1),
        "steps": num_epochs * len(loader),
    }
    return model, metrics


@torch.no_grad()
def test_accuracy(model: Classifier, data: ImageData, accelerator: Accelerator, batch_size: int = 1000) -> float:
    """Accuracy on the test split, each rank taking its share and the counts summed across ranks."""
    if data.test_labels is None:
        raise ValueError(f"{data.info.get('source')}: the test split has no labels to measure accuracy against.")
    model.eval()
    device = accelerator.device
    mine = torch.arange(accelerator.process_index, len(data.test_images), accelerator.num_processes)
    correct = torch.zeros((), device=device)
    for batch in mine.split(batch_size):
        predictions = model(data.test_images[batch].to(device)).argmax(dim=1)
        correct += (predictions == data.test_labels[batch].to(device)).sum()
    return accelerator.reduce(correct, reduction="sum").item() / len(data.test_images)


def save_classifier(model: Classifier, metrics: dict, data: ImageData, settings: dict, output_dir: str) -> None:
    os.makedirs(output_dir, exist_ok=True)
    model.save_pretrained(output_dir)
    info = {"dataset": data.info, "num_train": len(data.train_images), "num_test": len(data.test_images), **settings, **metrics}
    with open(os.path.join(output_dir, "training_info.json"), "w") as file:
        json.dump(info, file, indent=2)


def default_cache_dir() -> str:
    return cache_root()


def classifier_cache_name(dataset_name: str, resolution: int | None = None) -> tuple[str, str]:
    """(folder name, key) of a dataset's classifier in the cache. The key is the dataset (a local folder by its real
    path, so that a link to it or a relative path names the same data), the resolution, the training recipes and
    the classifier's default architecture, so a change of any of them trains a new one."""
    expanded = os.path.expanduser(dataset_name)
    source = os.path.realpath(expanded) if os.path.isdir(expanded) else dataset_name
    architecture = {
        name: parameter.default
        for name, parameter in inspect.signature(Classifier.__init__).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    key = json.dumps({"dataset": source, "resolution": resolution, "recipes": RECIPES, **architecture}, sort_keys=True)
    readable = source
    if source.lstrip().startswith("{"):  # a run's recorded data (another split, say): named by its dataset, the hash tells them apart
        try:
            recorded = json.loads(source)
        except json.JSONDecodeError:  # a folder whose name only starts like JSON
            recorded = source
        readable = str(recorded.get("dataset_name") or recorded.get("train_data_dir") or "dataset") if isinstance(recorded, dict) else source
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(readable.rstrip("/")))[:64].lstrip(".") or "dataset"
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:12]}", key


def trained_classifier_folder(
    dataset_name: str = "digits", resolution: int | None = None, cache_dir: str | None = None, data: ImageData | None = None
) -> str:
    """The folder of the classifier for a dataset in the cache, trained there with TRAINING_DEFAULTS on first use.
    `data` spares reloading the dataset when the caller has it already."""
    name, key = classifier_cache_name(dataset_name, resolution)
    folder = os.path.join(cache_dir or default_cache_dir(), "classifiers", name)
    if not os.path.isfile(os.path.join(folder, "model.safetensors")):
        data = data or load_image_data(dataset_name, resolution=resolution)
        recipe = recipe_for(data)
        model, metrics = train_classifier(data, architecture=recipe["architecture"], augment=recipe["augment"],
                                          **recipe["training"])
        print(f"Trained the evaluation classifier for {dataset_name}: test accuracy {metrics['test_accuracy']:.4f}")
        # Written beside the final folder and moved in one step, so an interrupted run never leaves half a model.
        os.makedirs(os.path.dirname(folder), exist_ok=True)
        staging = tempfile.mkdtemp(dir=os.path.dirname(folder), prefix=f".{name}-")
        save_classifier(model, metrics, data, {"cache_key": json.loads(key)}, staging)
        try:
            os.rename(staging, folder)
        except OSError:  # another process finished first; its classifier is the same one
            shutil.rmtree(staging)
    return folder


def main(argv=None) -> None:
    args = parse_args(argv)
    accelerator = Accelerator()
    data = load_image_data(
        args.dataset_name,
        train_data_dir=args.train_data_dir,
        image_column=args.image_column,
        label_column=args.label_column,
        resolution=args.resolution,
        seed=args.seed,
        max_train_samples=args.max_train_samples,
    )
    recipe = recipe_for(data)
    settings = {name: recipe["training"][name] if getattr(args, name) is None else getattr(args, name)
                for name in TRAINING_DEFAULTS}
    model, metrics = train_classifier(data, accelerator=accelerator, architecture=recipe["architecture"],
                                      augment=recipe["augment"], **settings)
    accelerator.print(f"{data.info.get('source')}: test accuracy {metrics['test_accuracy']:.4f} after "
                      f"{metrics['train_seconds']} s ({metrics['steps']} steps)")
    if accelerator.is_main_process:
        save_classifier(model, metrics, data, {**settings, "augment": recipe["augment"]}, args.output_dir)


if __name__ == "__main__":
    main()
