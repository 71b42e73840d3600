"""FCOS box coding: feature-map points and the ltrb distances between a point and a box's edges.

All coordinates here are pixels of the network input (the letterboxed square), xyxy order.
A point is the centre of a feature cell: cell ``(i, j)`` of a stride-``s`` map sits at
``((j + 0.5) * s, (i + 0.5) * s)``. The network regresses ``log(distance / stride)`` for each of
left, top, right and bottom, so one output scale serves every pyramid level.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from collections.abc import Sequence

MAX_LOG_DISTANCE = math.log(1000.0)
"""Clamp for predicted log-distances (1000 strides), so exp() cannot overflow early in training."""
MIN_DISTANCE = 1e-3
"""Floor for target distances (in strides) before taking their log."""


def make_points(
    feature_hw: Sequence[tuple[int, int]], strides: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres of every feature cell, level after level, each row-major.

    Args:
        feature_hw: ``(height, width)`` of each pyramid level's feature map.
        strides: Stride of each level in input pixels, same order.

    Returns:
        ``points`` as a float ``(P, 2)`` tensor of ``(x, y)`` pixels and ``point_strides`` as a
        float ``(P,)`` tensor, where ``P`` sums ``height * width`` over the levels.
    """
    points: list[torch.Tensor] = []
    point_strides: list[torch.Tensor] = []
    for (height, width), stride in zip(feature_hw, strides, strict=True):
        ys = (torch.arange(height, dtype=torch.float32) + 0.5) * stride
        xs = (torch.arange(width, dtype=torch.float32) + 0.5) * stride
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1))
        point_strides.append(torch.full((height * width,), float(stride)))
    return torch.cat(points), torch.cat(point_strides)


def ltrb_distances(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Pairwise distances from points to box edges.

    Args:
        points: ``(P, 2)`` xy pixels.
        boxes: ``(M, 4)`` xyxy pixels.

    Returns:
        ``(P, M, 4)`` distances ``(left, top, right, bottom)`` in pixels; all four are positive
        exactly when the point lies strictly inside the box.
    """
    x = points[:, 0, None]
    y = points[:, 1, None]
    return torch.stack(
        [
            x - boxes[None, :, 0],
            y - boxes[None, :, 1],
            boxes[None, :, 2] - x,
            boxes[None, :, 3] - y,
        ],
        dim=2,
    )


def paired_ltrb(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Pixel distances ``(left, top, right, bottom)`` from ``(N, 2)`` points to ``(N, 4)`` boxes."""
    x, y = points[:, 0], points[:, 1]
    return torch.stack([x - boxes[:, 0], y - boxes[:, 1], boxes[:, 2] - x, boxes[:, 3] - y], dim=1)


def encode(points: torch.Tensor, point_strides: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Regression targets ``log(ltrb / stride)`` for boxes assigned one per point.

    Args:
        points: ``(P, 2)`` xy pixels.
        point_strides: ``(P,)`` stride of each point's level.
        boxes: ``(P, 4)`` xyxy pixels, the box each point must predict (the point should lie
            inside it; distances are floored at ``MIN_DISTANCE`` strides otherwise).

    Returns:
        ``(P, 4)`` log-distances in units of the point's stride.
    """
    ltrb = paired_ltrb(points, boxes)
    return torch.log((ltrb / point_strides[:, None]).clamp(min=MIN_DISTANCE))


def decode(
    points: torch.Tensor, point_strides: torch.Tensor, log_ltrb: torch.Tensor
) -> torch.Tensor:
    """Boxes from predicted log-distances; the inverse of :func:`encode`.

    Args:
        points: ``(P, 2)`` xy pixels.
        point_strides: ``(P,)`` stride of each point's level.
        log_ltrb: ``(..., P, 4)`` log-distances in strides (a leading batch dimension is fine).

    Returns:
        ``(..., P, 4)`` xyxy pixels, always with ``x_max >= x_min`` and ``y_max >= y_min``.
    """
    ltrb = torch.exp(log_ltrb.clamp(max=MAX_LOG_DISTANCE)) * point_strides[:, None]
    x, y = points[:, 0], points[:, 1]
    return torch.stack(
        [x - ltrb[..., 0], y - ltrb[..., 1], x + ltrb[..., 2], y + ltrb[..., 3]], dim=-1
    )


def centerness(ltrb: torch.Tensor) -> torch.Tensor:
    """FCOS centre-ness ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` of positive ltrb.

    It is 1 at a box's centre and falls to 0 at its edges; used as the centre-ness target and
    to weight the box loss, so that points near the centre dominate.

    Args:
        ltrb: ``(..., 4)`` positive distances (any unit).

    Returns:
        ``(...)`` values in ``[0, 1]``.
    """
    left_right = ltrb[..., [0, 2]]
    top_bottom = ltrb[..., [1, 3]]
    ratio = (left_right.min(dim=-1).values / left_right.max(dim=-1).values.clamp(min=1e-6)) * (
        top_bottom.min(dim=-1).values / top_bottom.max(dim=-1).values.clamp(min=1e-6)
    )
    return ratio.clamp(min=0.0).sqrt()
