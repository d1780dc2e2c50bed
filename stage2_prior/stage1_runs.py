"""Loading the stage-1 model a prior is trained for, and the data it was trained on, from a run folder or Hub id."""

from __future__ import annotations

import json
import os

from hub.auto import model_class
from hub.files import FINGERPRINT_PREFIX, model_file, pinned_reference, read_config
from hub.model_card import TRAINING_INFO_NAME
from stage1_autoencoders.data import ImageData, dataset_reference, load_image_data
from training.checkpoints import RunValue


def load_stage1_model(name_or_path: str, revision: str | None, allowed_types: tuple[str, ...], flag: str, hint: str):
    """The model, and (id, revision) pinned for the prior's config: an absolute folder, or the Hub commit."""
    model_type = read_config(name_or_path, revision).get("model_type")
    if model_type not in allowed_types:
        raise SystemExit(f"{flag} {name_or_path!r} is a {model_type!r} model; this needs one of {allowed_types}. {hint}")
    model = model_class(model_type).from_pretrained(name_or_path, revision=revision)
    return model.eval(), pinned_reference(name_or_path, revision)


def stage1_weights(flag: str, given: str, given_revision: str | None, pinned: tuple[str, str | None]) -> RunValue:
    """What a resumed run compares of its stage-1 model: the weights, not how the flag spelt their place (a relative
    path, a moved runs folder): a local folder's fingerprint; a Hub id at its pinned commit. Checkpoints from before
    this compared the flags as given."""
    name_or_path, revision = pinned
    local = (revision or "").startswith(FINGERPRINT_PREFIX)
    fix = (f"{flag} {given} {'holds other weights' if local else 'is at another commit'} than the run was trained on: "
           f"point {flag} at the model it started with{'' if local else f' ({flag}_revision at its commit)'}, or start "
           f"a new --output_dir")
    return RunValue(revision if local else f"{name_or_path}@{revision}", fix,
                    {flag[2:]: given, f"{flag[2:]}_revision": given_revision})


def stage2_split_seed(args, stage1_source: str, revision: str | None) -> int:
    """The test split's seed for data named by flags: --split_seed, else the stage-1 run's (so that a prior never
    trains on the stage-1 model's test images), else --seed."""
    if args.split_seed is not None:
        return args.split_seed
    recorded = recorded_data(stage1_source, revision)
    seed = None if recorded is None else recorded.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else args.seed


def training_dataset(name_or_path: str, revision: str | None) -> str | None:
    """The data a stage-1 run was trained on, named so that load_image_data loads the same images and test split
    (data.dataset_reference), from its training_info.json; None if it does not say."""
    recorded = recorded_data(name_or_path, revision)
    return None if recorded is None else dataset_reference(recorded)


def recorded_data(name_or_path: str, revision: str | None) -> dict | None:
    """training_info.json's "dataset" record of a stage-1 run, or None if there is none."""
    try:
        path = model_file(name_or_path, TRAINING_INFO_NAME, revision)
        if os.path.getsize(path) > 2**20:  # a run's records take a few kilobytes; more is not a training_info.json
            return None
        with open(path) as file:
            recorded = json.load(file)["dataset"]
    except (FileNotFoundError, KeyError, TypeError, json.JSONDecodeError):
        return None
    # The file is data: anything but a record naming its source is no answer.
    return recorded if isinstance(recorded, dict) and isinstance(recorded.get("source"), str) else None


def load_data_for(model, args, stage1_source: str, revision: str | None) -> ImageData:
    """The data named by the flags, or by default the stage-1 run's own: the same images and the same test split
    (seed included) as it recorded, at the model's image size."""
    if args.resolution is not None and args.resolution != model.image_size:
        raise SystemExit(f"--resolution {args.resolution}, but the stage-1 model takes {model.image_size}x{model.image_size} images.")
    if args.dataset_name is None and args.train_data_dir is None:
        if args.split_seed is not None:
            raise SystemExit(f"--split_seed {args.split_seed} needs --dataset_name or --train_data_dir: without them the "
                             f"data and test split are those {stage1_source} recorded. Drop --split_seed, or name the data.")
        recorded = recorded_data(stage1_source, revision)
        if recorded is None:
            raise SystemExit(
                f"{stage1_source} has no training_info.json naming its dataset; give it with --dataset_name "
                f"(a Hub id, a local folder, or 'digits') or --train_data_dir."
            )
        data = load_image_data(dataset_reference(recorded), max_train_samples=args.max_train_samples,
                               max_test_samples=args.max_eval_samples)
        if data.resolution != model.image_size:
            data = load_image_data(dataset_reference(recorded), resolution=model.image_size,
                                   max_train_samples=args.max_train_samples, max_test_samples=args.max_eval_samples)
    else:
        data = load_image_data(args.dataset_name, args.train_data_dir, args.image_column, args.label_column, model.image_size,
                               seed=stage2_split_seed(args, stage1_source, revision), max_train_samples=args.max_train_samples,
                               max_test_samples=args.max_eval_samples,
                               test_data_dir=args.test_data_dir, center_crop=args.center_crop, image_mode=args.image_mode)
    if data.channels != model.in_channels:
        raise SystemExit(
            f"{data.info['source']} has {data.channels}-channel images but {stage1_source} takes {model.in_channels}; "
            f"give the dataset the stage-1 model was trained on (--dataset_name)."
        )
    return data
