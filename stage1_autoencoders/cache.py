"""The one cache root of the project: decoded datasets, stage 2's code grids and evaluation classifiers live
under it ($TWOSTAGE_CACHE, or ~/.cache/twostage)."""

from __future__ import annotations

import os


def cache_root() -> str:
    return os.environ.get("TWOSTAGE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "twostage")


def cache_dir(kind: str) -> str:
    """The folder of one kind of cached thing: "decoded", "codes", "classifiers"."""
    return os.path.join(cache_root(), kind)
