"""Finding a model's files, in a local folder or a Hub repo, with errors that say what is missing and what to do.

A model is a folder (or repo) with config.json (the constructor arguments, plus `model_type` and
`twostage_version`) and model.safetensors. Nothing else is ever read to build a model: no pickle, no code.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from importlib import metadata
from pathlib import Path

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import RemoteEntryNotFoundError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# Keys of config.json that describe the file rather than the model; they are not constructor arguments.
METADATA_KEYS = ("model_type", "twostage_version")
MAX_CONFIG_BYTES = 2**20


def twostage_version() -> str:
    """The installed package's version, or pyproject.toml's when running from a source checkout."""
    try:
        return metadata.version("twostage")
    except metadata.PackageNotFoundError:
        pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
        return re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE).group(1)  # [project]'s, the only one


def looks_like_path(name: str) -> bool:
    """A local path rather than a Hub repo id (which is 'name' or 'namespace/name')."""
    return os.path.isdir(name) or name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name


def is_local(name_or_path: str) -> bool:
    """A folder on disk; otherwise a Hub repo id. A path-like name that doesn't exist is an error, not a repo id."""
    if os.path.isdir(name_or_path):
        return True
    if looks_like_path(name_or_path):
        raise FileNotFoundError(
            f"{name_or_path!r}: no such folder. Give a folder written by save_pretrained (config.json and "
            f"model.safetensors) or a Hub repo id such as 'user/mnist-vqvae'."
        )
    return False


def model_file(name_or_path: str, filename: str, revision: str | None = None, **download_options) -> str:
    """The local path of one of a model's files, downloaded from the Hub (and cached) when given a repo id."""
    name_or_path = str(name_or_path)
    where = name_or_path if revision is None else f"{name_or_path} (revision {revision})"
    if is_local(name_or_path):
        path = os.path.join(name_or_path, filename)
        if not os.path.isfile(path):
            raise FileNotFoundError(_missing_message(where, filename, local=True))
        return path
    try:
        return hf_hub_download(repo_id=name_or_path, filename=filename, revision=revision, **download_options)
    except RemoteEntryNotFoundError as error:  # the repo and revision exist, the file does not
        raise FileNotFoundError(_missing_message(where, filename, local=False)) from error


def read_config(name_or_path: str, revision: str | None = None, **download_options) -> dict:
    path = model_file(name_or_path, CONFIG_NAME, revision, **download_options)
    if os.path.getsize(path) > MAX_CONFIG_BYTES:  # settings take a few hundred bytes; parsing more costs memory
        raise ValueError(f"{name_or_path}: {CONFIG_NAME} is {os.path.getsize(path):,} bytes, more than the "
                         f"{MAX_CONFIG_BYTES:,} a config may take. It is not a twostage config.")
    with open(path, encoding="utf-8") as file:
        try:
            config = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{name_or_path}: {CONFIG_NAME} is not valid JSON ({error}).") from error
    if not isinstance(config, dict):
        raise ValueError(f"{name_or_path}: {CONFIG_NAME} holds a {type(config).__name__}, not a JSON object of settings.")
    return config


def _missing_message(where: str, filename: str, local: bool) -> str:
    kind = "folder" if local else "repo"
    if filename == WEIGHTS_NAME:
        return (
            f"{where}: the {kind} has no {WEIGHTS_NAME}, so there are no weights to load (twostage reads safetensors "
            f"only, never pickle files). Save the model with save_pretrained and push the whole folder "
            f"(python -m hub.push RUN_DIR --hub_model_id REPO)."
        )
    if filename == CONFIG_NAME:
        return (
            f"{where}: the {kind} has no {CONFIG_NAME}, so it is not a twostage model. Save models with "
            f"save_pretrained, which writes {CONFIG_NAME} beside {WEIGHTS_NAME}."
        )
    return f"{where}: the {kind} has no {filename}."


def pinned_reference(name_or_path: str, revision: str | None = None, token: str | bool | None = None) -> tuple[str, str | None]:
    """How to record, in a model's config, the model it was trained on (a prior's VQ-VAE): a Hub repo id with the
    commit that `revision` points to now, so later pushes cannot change it; a local folder as its absolute path with
    the fingerprint of its weights ("sha256:..."), so that another model put in its place is refused."""
    from huggingface_hub import HfApi

    if is_local(name_or_path):
        return os.path.abspath(name_or_path), weights_fingerprint(model_file(name_or_path, WEIGHTS_NAME))
    return name_or_path, HfApi(token=token).model_info(name_or_path, revision=revision).sha


FINGERPRINT_PREFIX = "sha256:"


def weights_fingerprint(weights_file: str) -> str:
    """sha256 of a model.safetensors file's bytes (what the Hub's LFS records for it too), as "sha256:<hex>"."""
    digest = hashlib.sha256()
    with open(weights_file, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return FINGERPRINT_PREFIX + digest.hexdigest()
