"""Saving, pushing and loading the project's models on the Hugging Face Hub."""

from hub.auto import from_pretrained
from hub.generator import TwoStageGenerator
from hub.mixin import HubModel

__all__ = ["HubModel", "TwoStageGenerator", "from_pretrained"]
