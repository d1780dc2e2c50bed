"""The base class of every model: save_pretrained / from_pretrained / push_to_hub, safetensors and JSON only.

huggingface_hub's PyTorchModelHubMixin records the constructor arguments as config.json and handles the Hub
side. We keep that, and change what it gets wrong for us:
- it loads with strict=False (missing weights silently stay random) and falls back to pickle files; here loading
  reads model.safetensors alone and refuses any mismatch with the config, naming the tensors;
- a repo without config.json silently builds a default model; here it is an error;
- config.json also records `model_type` (so `hub.from_pretrained` can pick the class) and `twostage_version`.
  A config missing constructor arguments loads with their defaults only where the version that wrote it predates
  them; everything is checked (hub/validation.py) before any module is built.

This module, files.py, validation.py, model_card.py and generator.py are the base every model inherits: they know
no model and no evaluation. auto.py (the registry of every model), push.py and run_card.py (a run's card with its
evaluation report) sit on top of them; nothing here imports those.
"""

from __future__ import annotations

import inspect
import json
import warnings
from pathlib import Path

import safetensors.torch
import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin
from safetensors import SafetensorError, safe_open

from hub.files import CONFIG_NAME, METADATA_KEYS, WEIGHTS_NAME, model_file, read_config, twostage_version
from hub.model_card import build_model_card
from hub.validation import check_missing_settings, check_settings, check_size_and_shapes, read_header_shapes


class HubModel(
    torch.nn.Module,
    PyTorchModelHubMixin,
    library_name="twostage",
    license="apache-2.0",
    pipeline_tag="unconditional-image-generation",
    tags=["twostage"],
):
    """Subclasses set `model_type` and take their whole configuration as plain constructor arguments."""

    model_type: str = ""
    # What config.json may hold, beyond the constructor's annotations (see hub/validation.py): setting -> (lowest,
    # highest) allowed; setting -> the first twostage version that wrote it; the most numbers the model may hold.
    config_ranges: dict[str, tuple[float, float]] = {}
    config_added_in: dict[str, str] = {}
    max_parameters: int = 2**27

    def config_dict(self) -> dict:
        """config.json's content: the constructor arguments, the model type and the version that wrote it."""
        return {**(self._hub_mixin_config or {}), "model_type": self.model_type, "twostage_version": twostage_version()}

    def _save_pretrained(self, save_directory: Path) -> None:
        safetensors.torch.save_model(self, str(save_directory / WEIGHTS_NAME))
        (save_directory / CONFIG_NAME).write_text(json.dumps(self.config_dict(), sort_keys=True, indent=2))

    def save_pretrained(self, save_directory: str | Path, *, model_card_kwargs: dict | None = None, **options):
        """Writes config.json, model.safetensors and (if absent) README.md; push_to_hub=True also pushes.
        The card names the folder by its own name: it may be pushed, and must not tell where this machine keeps it."""
        model_card_kwargs = {"name_or_path": Path(save_directory).name, **(model_card_kwargs or {})}
        return super().save_pretrained(save_directory, model_card_kwargs=model_card_kwargs, **options)

    def push_to_hub(self, repo_id: str, *, model_card_kwargs: dict | None = None, **options) -> str:
        model_card_kwargs = {"name_or_path": repo_id, **(model_card_kwargs or {})}
        return super().push_to_hub(repo_id, model_card_kwargs=model_card_kwargs, **options)

    def generate_model_card(self, name_or_path: str | None = None) -> ModelCard:
        """The card save_pretrained writes: what the model is, from its config. hub.push adds how it was trained."""
        return build_model_card(self.config_dict(), name_or_path=name_or_path)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        revision: str | None = None,
        token: str | bool | None = None,
        cache_dir: str | Path | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        map_location: str = "cpu",
        **overrides,
    ):
        """A folder written by save_pretrained, or a Hub repo id (at `revision`). `overrides` replace config values."""
        source = str(pretrained_model_name_or_path)
        download = dict(token=token, cache_dir=cache_dir, force_download=force_download, local_files_only=local_files_only)
        config = read_config(source, revision, **download)
        settings = {**cls.constructor_arguments(config, source), **overrides}
        check_settings(cls, settings, source)
        weights_file = model_file(source, WEIGHTS_NAME, revision, **download)
        check_size_and_shapes(cls, settings, read_header_shapes(weights_file, source), source)
        model = cls(**settings)  # only now is memory taken, for a model the checks above have sized
        load_weights(model, weights_file, source, map_location)
        return model.eval()

    @classmethod
    def constructor_arguments(cls, config: dict, source: str) -> dict:
        """The constructor arguments in a config.json, checked against this class."""
        model_type, version = config.get("model_type"), config.get("twostage_version")
        for key, value in (("model_type", model_type), ("twostage_version", version)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{source}: config.json {key}={json.dumps(value)[:60]} is not a string.")
        if model_type is not None and model_type != cls.model_type:
            raise ValueError(
                f"{source} holds a {model_type!r} model (config.json model_type), not a {cls.model_type!r} "
                f"({cls.__name__}). Load it with hub.from_pretrained, which picks the class from model_type."
            )
        parameters = dict(inspect.signature(cls.__init__).parameters)
        parameters.pop("self")
        check_missing_settings(cls, config, source, version)
        unknown = sorted(set(config) - set(parameters) - set(METADATA_KEYS))
        if unknown:
            warnings.warn(
                f"{source}: config.json has settings {cls.__name__} does not take: {unknown}; they are ignored. "
                f"It was written by twostage {config.get('twostage_version', '(unknown version)')}, this is "
                f"{twostage_version()}: upgrade twostage if that is newer.",
                stacklevel=3,
            )
        return {name: config[name] for name in parameters if name in config}


def load_weights(model: torch.nn.Module, weights_file: str, source: str, map_location: str = "cpu") -> None:
    """Loads model.safetensors into `model`, which must match it exactly: same tensor names and shapes."""
    try:
        with safe_open(weights_file, framework="pt") as file:
            shapes = {name: tuple(file.get_slice(name).get_shape()) for name in file.keys()}
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{source}: {WEIGHTS_NAME} is not a readable safetensors file ({error}).") from error
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    wrong_shapes = [
        f"{name}: file {shapes[name]}, config {expected[name]}" for name in sorted(expected.keys() & shapes.keys())
        if shapes[name] != expected[name]
    ]
    missing, unexpected = [], []
    if not wrong_shapes:  # load_model reports names itself, tied weights (stored once) taken into account
        try:
            missing, unexpected = safetensors.torch.load_model(model, weights_file, strict=False, device=map_location)
        except (SafetensorError, OSError) as error:  # a header whose offsets overrun a truncated file, ...
            raise ValueError(f"{source}: {WEIGHTS_NAME} is not a readable safetensors file ({error}).") from error
    if wrong_shapes or missing or unexpected:
        problems = [
            f"{label} {items[:5]}{' ...' if len(items) > 5 else ''}"
            for label, items in (("shape mismatches", wrong_shapes), ("missing", sorted(missing)), ("unexpected", sorted(unexpected)))
            if items
        ]
        raise ValueError(
            f"{source}: {WEIGHTS_NAME} does not match the {type(model).__name__} that config.json describes "
            f"({'; '.join(problems)}). The weights and the config come from different models: save them together "
            f"with save_pretrained."
        )
    if map_location != "cpu":
        model.to(map_location)
