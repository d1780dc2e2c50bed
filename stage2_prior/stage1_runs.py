"""Loading the stage-1 model a prior is trained for, and the data it was trained on, from a run folder or Hub id."""

from __future__ import annotations

import json
import os

from hub.auto import model_class
from hub.files import model_file, pinned_reference, read_config
from hub.model_card import TRAINING_INFO_NAME
from stage1_autoencoders.data import ImageData, load_image_data


def load_stage1_model(name_or_path: str, revision: str | None, allowed_types: tuple[str, ...], flag: str, hint: str):
    """The model, and (id, revision) pinned for the prior's config: an absolute folder, or the Hub commit."""
    model_type = read_config(name_or_path, revision).get("model_type")
    if model_type not in allowed_types:
        raise SystemExit(f"{flag} {name_or_path!r} is a {model_type!r} model; this needs one of {allowed_types}. {hint}")
    model = model_class(model_type).from_pretrained(name_or_path, revision=revision)
    return model.eval(), pinned_reference(name_or_path, revision)


def training_dataset(name_or_path: str, revision: str | None) -> str | None:
    """The dataset a stage-1 run was trained on, from its training_info.json, or None if it does not say."""
    try:
        path = model_file(name_or_path, TRAINING_INFO_NAME, revision)
        if os.path.getsize(path) > 2**20:  # a run's records take a few kilobytes; more is not a training_info.json
            return None
        with open(path) as file:
            source = json.load(file)["dataset"]["source"]
    except (FileNotFoundError, KeyError, TypeError, json.JSONDecodeError):
        return None
    return source if isinstance(source, str) else None  # the file is data: anything but a name is no answer


def load_data_for(model, args, stage1_source: str, revision: str | None) -> ImageData:
    """The dataset named by the flags (by default the stage-1 run's own), at the model's image size."""
    dataset_name = args.dataset_name or training_dataset(stage1_source, revision)
    if dataset_name is None and args.train_data_dir is None:
        raise SystemExit(
            f"{stage1_source} has no training_info.json naming its dataset; give it with --dataset_name "
            f"(a Hub id, a local folder, or 'digits') or --train_data_dir."
        )
    if args.resolution is not None and args.resolution != model.image_size:
        raise SystemExit(f"--resolution {args.resolution}, but the stage-1 model takes {model.image_size}x{model.image_size} images.")
    data = load_image_data(dataset_name, args.train_data_dir, args.image_column, args.label_column, model.image_size,
                           seed=args.seed, max_train_samples=args.max_train_samples, max_test_samples=args.max_eval_samples)
    if data.channels != model.in_channels:
        raise SystemExit(
            f"{data.info['source']} has {data.channels}-channel images but {stage1_source} takes {model.in_channels}; "
            f"give the dataset the stage-1 model was trained on (--dataset_name)."
        )
    return data
