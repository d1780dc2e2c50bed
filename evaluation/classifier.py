"""A small CNN classifier of the dataset itself: the offline feature extractor behind IS, FID, KID and precision/recall.

Two conv blocks of 16 and 32 channels are enough for MNIST-like data (99.2% test accuracy on MNIST after 3 epochs),
and small enough that the project trains one per dataset in about a minute on 2 CPU cores instead of depending on
Inception-v3 weights. (32, 64) channels reach 99.3% at twice the cost.

Colour images (CIFAR-10) need more: with `residual_blocks` > 0 each stage is that many ResNet basic blocks (the
first of a stage halving the size with a stride-2 convolution) and the features are globally average-pooled, a
small ResNet (evaluation.train_classifier trains it with random crops, flips and a cosine learning rate).
"""

from __future__ import annotations

import json
import math

import torch
from torch import nn

from hub import HubModel
from hub.files import model_file
from hub.model_card import TRAINING_INFO_NAME


class ResidualBlock(nn.Module):
    """ResNet's basic block: two 3x3 conv-BN, added to the input (a strided 1x1 conv where the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Identity() if stride == 1 and in_channels == out_channels else nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class Classifier(HubModel):
    """conv-BN-ReLU-pool per stage (or residual blocks), then a hidden layer whose activations are the "penultimate"
    features.

    Takes uint8 or float images; uint8 are scaled to [0, 1] here so that torch-fidelity can feed it raw samples.
    """

    model_type = "classifier"
    # What a config.json may hold (hub/validation.py checks it before anything is built).
    config_ranges = {"image_size": (4, 1024), "in_channels": (1, 4), "num_classes": (2, 65536),
                     "hidden_channels": (1, 4096), "feature_dim": (1, 65536), "dropout": (0, 1)}
    config_added_in = {"residual_blocks": "0.2.0"}  # older files lack it, and take the plain CNN default

    def __init__(
        self,
        image_size: int = 28,
        in_channels: int = 1,
        num_classes: int = 10,
        hidden_channels: tuple[int, ...] | list[int] = (16, 32),
        feature_dim: int = 128,
        dropout: float = 0.25,
        residual_blocks: int = 0,
    ):
        super().__init__()
        if image_size < 2 ** len(hidden_channels):
            raise ValueError(
                f"image_size={image_size} is too small for {len(hidden_channels)} pooling blocks "
                f"(needs at least {2 ** len(hidden_channels)}); use fewer hidden_channels or a larger --resolution."
            )
        self.image_size = image_size
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        if residual_blocks < 0:
            raise ValueError(f"residual_blocks={residual_blocks}: give 0 (plain conv blocks) or a positive count.")
        self.residual_blocks = residual_blocks
        if residual_blocks:
            blocks = [nn.Conv2d(in_channels, hidden_channels[0], 3, padding=1, bias=False),
                      nn.BatchNorm2d(hidden_channels[0]), nn.ReLU(inplace=True)]
            channels = hidden_channels[0]
            for stage, width in enumerate(hidden_channels):
                for index in range(residual_blocks):
                    blocks.append(ResidualBlock(channels, width, stride=2 if stage > 0 and index == 0 else 1))
                    channels = width
            blocks.append(nn.AdaptiveAvgPool2d(1))
            pooled_size = 1
        else:
            blocks, channels = [], in_channels
            for width in hidden_channels:
                blocks += [
                    nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(2),
                ]
                channels = width
            pooled_size = image_size // 2 ** len(hidden_channels)
        self.conv = nn.Sequential(*blocks)
        self.hidden = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * pooled_size * pooled_size, feature_dim, bias=False),
            nn.BatchNorm1d(feature_dim),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(dropout)
        # No bias in the head: the logits IS reads ("logits_unbiased", Inception's name for logits before the bias)
        # are then exactly the classifier's own predictions.
        self.head = nn.Linear(feature_dim, num_classes, bias=False)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, feature_dim) penultimate activations."""
        if images.dim() != 4 or images.shape[1:] != (self.in_channels, self.image_size, self.image_size):
            raise ValueError(
                f"The classifier takes images of shape (B, {self.in_channels}, {self.image_size}, {self.image_size}), "
                f"got {tuple(images.shape)}; evaluate with a classifier trained on this dataset at this resolution."
            )
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        return self.hidden(self.conv(images))

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(features))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(self.features(images))


def classifier_test_accuracy(name_or_path: str) -> float | None:
    """The test accuracy a classifier's training_info.json records (what the report states beside the ceiling), or
    None where it records none."""
    try:
        with open(model_file(name_or_path, TRAINING_INFO_NAME)) as file:
            accuracy = json.load(file)["test_accuracy"]
    except (FileNotFoundError, KeyError, TypeError, json.JSONDecodeError):
        return None
    if not isinstance(accuracy, (int, float)) or not math.isfinite(accuracy) or not 0 <= accuracy <= 1:
        raise ValueError(f"{name_or_path}: {TRAINING_INFO_NAME} records test_accuracy {accuracy!r}; expected a number in [0, 1].")
    return float(accuracy)
