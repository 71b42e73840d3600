"""The detector network: EfficientNet-Lite0 taps, a light FPN and a shared FCOS head."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from boxloop.local.detector.backbone import TAP_CHANNELS, TAP_STRIDES, EfficientLiteBackbone
from boxloop.local.detector.coding import make_points

PRIOR_PROBABILITY = 0.01
"""Initial foreground probability of every class logit (RetinaNet's focal-loss prior)."""


class HeadOutput(NamedTuple):
    """Raw head outputs, levels concatenated (strides 8, 16, 32), each level row-major.

    Attributes:
        class_logits: ``(B, P, C)`` per-class logits (sigmoid, one per class, no background).
        box_regression: ``(B, P, 4)`` predicted ``log(ltrb / stride)``.
        centerness_logits: ``(B, P)`` centre-ness logits.
        points: ``(P, 2)`` xy pixel centres of the feature cells.
        point_strides: ``(P,)`` stride of each point.
    """

    class_logits: torch.Tensor
    box_regression: torch.Tensor
    centerness_logits: torch.Tensor
    points: torch.Tensor
    point_strides: torch.Tensor


class FeaturePyramid(nn.Module):
    """Top-down FPN: 1x1 laterals to a common width, nearest upsampling, 3x3 smoothing."""

    def __init__(self, in_channels: tuple[int, ...], channels: int) -> None:
        """Build one lateral and one output conv per input level (finest level first)."""
        super().__init__()
        self.laterals = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.outputs = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels
        )
        for conv in [*self.laterals, *self.outputs]:
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Merged maps, finest first, each with ``channels`` channels and its input's size."""
        merged = self.laterals[-1](features[-1])
        results = [self.outputs[-1](merged)]
        for index in range(len(features) - 2, -1, -1):
            lateral = self.laterals[index](features[index])
            merged = lateral + F.interpolate(merged, size=lateral.shape[-2:], mode="nearest")
            results.insert(0, self.outputs[index](merged))
        return results


def _tower(channels: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        conv = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.normal_(conv.weight, std=0.01)
        nn.init.zeros_(conv.bias)
        layers += [
            conv,
            nn.GroupNorm(16 if channels % 16 == 0 else 1, channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class FCOSHead(nn.Module):
    """FCOS head shared by every level: a class tower and a box tower of ``depth`` convs.

    Group norm, not batch norm, because training batches hold 4-8 images. Each level has a
    learnable scale on its regression output, since one set of weights serves three strides.
    """

    def __init__(
        self, channels: int, num_classes: int, *, depth: int = 2, num_levels: int = 3
    ) -> None:
        """Build the towers and the three predictors (class, box, centre-ness)."""
        super().__init__()
        self.class_tower = _tower(channels, depth)
        self.box_tower = _tower(channels, depth)
        self.class_logits = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.box_regression = nn.Conv2d(channels, 4, 3, padding=1)
        self.centerness = nn.Conv2d(channels, 1, 3, padding=1)
        for conv in (self.class_logits, self.box_regression, self.centerness):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        nn.init.constant_(
            self.class_logits.bias, -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)
        )
        self.scales = nn.Parameter(torch.ones(num_levels))

    def forward(
        self, features: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flattened ``(B, P, C)`` logits, ``(B, P, 4)`` regression and ``(B, P)`` centre-ness."""
        logits, boxes, centers = [], [], []
        for level, feature in enumerate(features):
            class_feature = self.class_tower(feature)
            box_feature = self.box_tower(feature)
            logits.append(self.class_logits(class_feature).flatten(2).transpose(1, 2))
            regression = self.box_regression(box_feature) * self.scales[level]
            boxes.append(regression.flatten(2).transpose(1, 2))
            centers.append(self.centerness(box_feature).flatten(1))
        return torch.cat(logits, 1), torch.cat(boxes, 1), torch.cat(centers, 1)


class Detector(nn.Module):
    """EfficientNet-Lite0 + FPN + FCOS head; takes ``(B, 3, S, S)`` images with values in [0, 1].

    ``S`` must be a multiple of 32. Normalization to the backbone's ``[-1, 1]`` happens inside,
    so training and inference cannot disagree about it. Weights and activations are kept
    channels-last, which oneDNN runs about a third faster than NCHW on CPU for this network.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        fpn_channels: int = 64,
        head_depth: int = 2,
        frozen_blocks: int = 3,
        pretrained_backbone: bool = True,
    ) -> None:
        """Build the network.

        Args:
            num_classes: Number of object classes (ids ``0..num_classes-1``; no background class).
            fpn_channels: Width of the FPN and the head.
            head_depth: Convs per head tower.
            frozen_blocks: Leading backbone blocks without gradient (see the backbone).
            pretrained_backbone: Load the ImageNet weights (``False`` before loading a saved model).
        """
        super().__init__()
        self.num_classes = num_classes
        self.backbone = EfficientLiteBackbone(
            pretrained=pretrained_backbone, frozen_blocks=frozen_blocks
        )
        self.fpn = FeaturePyramid(TAP_CHANNELS, fpn_channels)
        self.head = FCOSHead(
            fpn_channels, num_classes, depth=head_depth, num_levels=len(TAP_STRIDES)
        )
        self._points_cache: dict[
            tuple[tuple[int, int], ...], tuple[torch.Tensor, torch.Tensor]
        ] = {}
        self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> HeadOutput:
        """Run the network on a ``(B, 3, S, S)`` batch in [0, 1]."""
        normalized = (images * 2.0 - 1.0).contiguous(memory_format=torch.channels_last)
        features = self.fpn(self.backbone(normalized))
        logits, regression, centers = self.head(features)
        sizes = tuple((int(f.shape[-2]), int(f.shape[-1])) for f in features)
        if sizes not in self._points_cache:
            self._points_cache[sizes] = make_points(sizes, TAP_STRIDES)
        points, point_strides = self._points_cache[sizes]
        return HeadOutput(logits, regression, centers, points, point_strides)
