"""Checking a config.json and a model.safetensors header before anything is built from them.

A model's files are data written by whoever pushed it. Before one byte of a module is allocated:
- every setting has the type its constructor argument declares (a JSON list for a tuple, no string for a number);
- every number lies in its range: the model class's `config_ranges`, else DEFAULT_INT_RANGE, and lists are short;
- a setting may be missing only if it was added after the version that wrote the file (the class's
  `config_added_in`: setting -> the first version that wrote it); otherwise a lost setting would silently default;
- the model is built on the meta device (shapes, no memory): its size must stay under `max_parameters`, and its
  tensors' names and shapes must be those the safetensors header lists (read from the header alone, no tensor data).
"""

from __future__ import annotations

import inspect
import json
import math
import struct
import types
import typing

import torch
from torch.overrides import TorchFunctionMode

# Settings with no range of their own: sizes and counts no model of this project comes near.
DEFAULT_INT_RANGE = (0, 65536)
MAX_LIST_LENGTH = 16
MAX_STRING_LENGTH = 1024
# The safetensors header is JSON naming every tensor; a few hundred tensors take tens of kilobytes.
MAX_HEADER_BYTES = 4 * 2**20


class ConfigError(ValueError):
    """A config.json or a weights header that is refused; the message names the file, the setting and the fix."""


def check_settings(model_class: type, settings: dict, source: str) -> None:
    """Types and ranges of constructor arguments, against the class's signature and `config_ranges`."""
    hints = typing.get_type_hints(model_class.__init__)
    ranges = getattr(model_class, "config_ranges", {})
    for name, value in settings.items():
        expected = hints.get(name)
        where = f"{source}: config.json {name}={_shown(value)}"
        if expected is not None and not _has_type(value, expected):
            raise ConfigError(f"{where} is not {_type_name(expected)}. Fix the value in config.json "
                              f"(or save the model again with save_pretrained).")
        low, high = ranges.get(name, DEFAULT_INT_RANGE)
        for number in _numbers(value, where):
            if isinstance(number, float) and not math.isfinite(number):
                raise ConfigError(f"{where} is not a finite number.")
            if name in ranges or isinstance(number, int):
                if not low <= number <= high:
                    raise ConfigError(f"{where} is out of range: {model_class.__name__} takes {low} to {high}.")


def check_missing_settings(model_class: type, config: dict, source: str, version_of_file: str | None) -> None:
    """A constructor argument absent from config.json takes its default only if the file predates that argument."""
    parameters = dict(inspect.signature(model_class.__init__).parameters)
    parameters.pop("self")
    added_in = getattr(model_class, "config_added_in", {})
    lost = [
        name for name in parameters
        if name not in config and not (name in added_in and _older(version_of_file, added_in[name]))
    ]
    if lost:
        written_by = f"twostage {version_of_file}" if version_of_file else "an unknown version"
        raise ConfigError(
            f"{source}: config.json lacks {lost}, which {model_class.__name__} takes and which {written_by} always "
            f"wrote: the file was edited or cut, and a default in their place could build a different model. "
            f"Restore them (or save the model again with save_pretrained)."
        )


def check_size_and_shapes(model_class: type, settings: dict, header_shapes: dict, source: str):
    """Builds the model on the meta device (no memory), checks its size and that its tensors are the header's."""
    try:
        with _NoRandomFills(), torch.device("meta"):  # the device mode, inner, adds device="meta" first
            skeleton = model_class(**settings)
    except Exception as error:  # the constructor's own checks (a likelihood it does not know, too small an image, ...)
        raise ConfigError(f"{source}: config.json describes no valid {model_class.__name__}: "
                          f"{type(error).__name__}: {error}") from None
    expected = {name: tuple(tensor.shape) for name, tensor in skeleton.state_dict().items()}
    size = sum(math.prod(shape) for shape in expected.values())
    limit = getattr(model_class, "max_parameters", 2**27)
    if size > limit:
        raise ConfigError(f"{source}: config.json describes a {model_class.__name__} of {size:,} numbers, more than the "
                          f"{limit:,} a {model_class.__name__} may have. Check the sizes in config.json.")
    wrong = [f"{name}: file {header_shapes[name]}, config {expected[name]}"
             for name in sorted(expected.keys() & header_shapes.keys()) if header_shapes[name] != expected[name]]
    # Tied weights are stored once, so a name the file lacks is only missing if no name tied to it is stored.
    missing = sorted(set(expected) - set(header_shapes) - _tied_names(skeleton, header_shapes))
    unexpected = sorted(set(header_shapes) - set(expected))
    if wrong or missing or unexpected:
        problems = [f"{label} {items[:5]}{' ...' if len(items) > 5 else ''}"
                    for label, items in (("shape mismatches", wrong), ("missing", missing), ("unexpected", unexpected)) if items]
        raise ConfigError(
            f"{source}: model.safetensors does not match the {model_class.__name__} that config.json describes "
            f"({'; '.join(problems)}). The weights and the config come from different models: save them together "
            f"with save_pretrained."
        )


class _NoRandomFills(TorchFunctionMode):
    """Filling a meta tensor stores nothing, but torch runs a few meta ops (random fills, eye) through Python
    decompositions whose first use imports its compiler (seconds, 150 MB); a skeleton built only for its shapes skips
    the fills and makes eye's and repeat's results empty tensors of their shapes."""

    RANDOM_FILLS = {"normal_", "uniform_", "exponential_", "bernoulli_", "geometric_", "cauchy_", "log_normal_"}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.eye and kwargs.get("device") is not None and torch.device(kwargs["device"]).type == "meta":
            rows = args[0]
            columns = args[1] if len(args) > 1 and isinstance(args[1], int) else kwargs.get("m", rows)
            return torch.empty(rows, columns, dtype=kwargs.get("dtype"), device="meta")
        if getattr(func, "__name__", None) == "repeat" and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            sizes = tuple(args[1]) if len(args) == 2 and not isinstance(args[1], int) else args[1:]
            shape = (1,) * (len(sizes) - args[0].dim()) + tuple(args[0].shape)
            return torch.empty([size * times for size, times in zip(shape, sizes)], dtype=args[0].dtype, device="meta")
        if getattr(func, "__name__", None) in self.RANDOM_FILLS:
            target = args[0] if args else kwargs.get("tensor")  # torch.nn.init's fills take it as `tensor=`
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        return func(*args, **kwargs)


def read_header_shapes(weights_file: str, source: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, from the safetensors header alone (8 bytes of length, then JSON); no tensor is read."""
    unreadable = f"{source}: model.safetensors is not a readable safetensors file"
    with open(weights_file, "rb") as file:
        length_bytes = file.read(8)
        if len(length_bytes) < 8:
            raise ConfigError(f"{unreadable} (it is {len(length_bytes)} bytes long).")
        (length,) = struct.unpack("<Q", length_bytes)
        if length > MAX_HEADER_BYTES:
            raise ConfigError(f"{unreadable} (its header claims {length:,} bytes; twostage reads at most {MAX_HEADER_BYTES:,}).")
        header_bytes = file.read(length)
    try:
        header = json.loads(header_bytes)
        shapes = {name: tuple(entry["shape"]) for name, entry in header.items() if name != "__metadata__"}
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ConfigError(f"{unreadable} ({type(error).__name__}: {error}).") from None
    if not all(isinstance(size, int) and not isinstance(size, bool) and size >= 0 for shape in shapes.values() for size in shape):
        raise ConfigError(f"{unreadable} (its header lists a shape that is not a list of sizes).")
    return shapes


def _tied_names(model: torch.nn.Module, stored: dict) -> set[str]:
    """Names in the state dict that alias a stored tensor (same parameter object under two names)."""
    by_object: dict[int, list[str]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        by_object.setdefault(id(tensor), []).append(name)
    return {name for names in by_object.values() if any(n in stored for n in names) for name in names}


def _older(version_of_file: str | None, version: str) -> bool:
    """Whether the file was written before `version` (a file with no version predates versions being recorded)."""
    if version_of_file is None:
        return True
    return _version_key(version_of_file) < _version_key(version)


def _version_key(version: str) -> tuple:
    return tuple(int(part) if part.isdigit() else 0 for part in str(version).split(".")[:3])


def _has_type(value, expected) -> bool:
    origin, arguments = typing.get_origin(expected), typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, argument) for argument in arguments)
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is str:
        return isinstance(value, str) and len(value) <= MAX_STRING_LENGTH
    if origin in (tuple, list):  # JSON has lists only; a tuple[int, ...] is a list of ints
        item = arguments[0] if arguments else typing.Any
        return isinstance(value, list) and 0 < len(value) <= MAX_LIST_LENGTH and all(_has_type(v, item) for v in value)
    if expected is typing.Any:
        return isinstance(value, (bool, int, float, str, type(None)))
    return False  # an annotation a config cannot hold


def _type_name(expected) -> str:
    origin, arguments = typing.get_origin(expected), typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(argument) for argument in arguments)
    if origin in (tuple, list):
        return f"a list of 1 to {MAX_LIST_LENGTH} values, each {_type_name(arguments[0]) if arguments else 'a number'}"
    return {int: "an integer", float: "a number", bool: "true or false", str: f"a string (at most {MAX_STRING_LENGTH} "
            f"characters)", type(None): "null"}.get(expected, str(expected))


def _numbers(value, where: str) -> list:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, list):
        if len(value) > MAX_LIST_LENGTH:
            raise ConfigError(f"{where} has more than {MAX_LIST_LENGTH} entries.")
        return [number for item in value for number in _numbers(item, where)]
    return []


def _shown(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
