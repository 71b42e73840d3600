"""FCOS training targets and losses: focal loss for classes, GIoU for boxes, BCE for centre-ness.

Coordinates are pixels of the network input, xyxy. Assignment follows FCOS with centre
sampling, as torchvision implements it: a point is positive for a box when it lies inside the
box, within ``1.5`` strides of the box centre, and the box's size suits the point's level;
overlapping candidates go to the smallest box. A box too small to contain any point of the
finest level still gets the one point nearest its centre, so tiny objects are not ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
from torch.nn import functional as F

from boxloop.local.detector.coding import centerness, decode, ltrb_distances, paired_ltrb

if TYPE_CHECKING:
    from collections.abc import Sequence

    from boxloop.local.detector.model import HeadOutput

CENTER_SAMPLING_RADIUS = 1.5
"""Positives lie within this many strides of the box centre (both axes)."""
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0


class Targets(NamedTuple):
    """Per-point targets of one image.

    Attributes:
        labels: ``(P,)`` class id of the assigned box, or -1 for background.
        boxes: ``(P, 4)`` xyxy pixels of the assigned box (undefined where ``labels == -1``).
    """

    labels: torch.Tensor
    boxes: torch.Tensor


class LossParts(NamedTuple):
    """The three loss terms (each already normalized by the positive count) and that count."""

    classification: torch.Tensor
    box: torch.Tensor
    centerness: torch.Tensor
    num_positive: int

    @property
    def total(self) -> torch.Tensor:
        """Unweighted sum of the three terms, the value that is back-propagated."""
        return self.classification + self.box + self.centerness


def assign_targets(
    points: torch.Tensor, point_strides: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor
) -> Targets:
    """Assign at most one reference box to every point.

    Args:
        points: ``(P, 2)`` xy pixels, levels finest first.
        point_strides: ``(P,)`` stride of each point.
        boxes: ``(M, 4)`` xyxy pixel reference boxes (``M`` may be 0).
        labels: ``(M,)`` their class ids.

    Returns:
        The targets; every point is background when ``M`` is 0.
    """
    num_points = points.shape[0]
    if boxes.shape[0] == 0:
        return Targets(torch.full((num_points,), -1, dtype=torch.int64), torch.zeros(num_points, 4))
    distances = ltrb_distances(points, boxes)
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    near_center = (points[:, None, :] - centers[None]).abs().amax(dim=2) < (
        CENTER_SAMPLING_RADIUS * point_strides[:, None]
    )
    inside = distances.amin(dim=2) > 0
    finest, coarsest = point_strides.min(), point_strides.max()
    lower = torch.where(point_strides == finest, torch.zeros_like(point_strides), 4 * point_strides)
    upper = torch.where(
        point_strides == coarsest, torch.full_like(point_strides, float("inf")), 8 * point_strides
    )
    reach = distances.amax(dim=2)
    candidate = near_center & inside & (reach > lower[:, None]) & (reach <= upper[:, None])

    missing = ~candidate.any(dim=0)
    if missing.any():
        finest_points = torch.nonzero(point_strides == finest).squeeze(1)
        gap = (points[finest_points, None, :] - centers[None, missing]).square().sum(dim=2)
        nearest = finest_points[gap.argmin(dim=0)]
        candidate[nearest, torch.nonzero(missing).squeeze(1)] = True

    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cost = torch.where(candidate, areas[None, :], torch.full_like(distances[..., 0], float("inf")))
    best_cost, best_box = cost.min(dim=1)
    assigned_labels = torch.where(torch.isfinite(best_cost), labels[best_box], -1)
    return Targets(assigned_labels, boxes[best_box])


def giou_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - GIoU`` of paired ``(N, 4)`` xyxy boxes, elementwise ``(N,)``; in ``[0, 2]``."""
    top_left = torch.maximum(predicted[:, :2], target[:, :2])
    bottom_right = torch.minimum(predicted[:, 2:], target[:, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=1)
    area_p = (predicted[:, 2:] - predicted[:, :2]).clamp(min=0).prod(dim=1)
    area_t = (target[:, 2:] - target[:, :2]).clamp(min=0).prod(dim=1)
    union = area_p + area_t - inter
    iou = inter / union.clamp(min=1e-7)
    hull = torch.maximum(predicted[:, 2:], target[:, 2:]) - torch.minimum(
        predicted[:, :2], target[:, :2]
    )
    hull_area = hull.clamp(min=0).prod(dim=1)
    return 1.0 - (iou - (hull_area - union) / hull_area.clamp(min=1e-7))


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """RetinaNet focal loss, summed over every element (normalize by the positive count)."""
    probability = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = probability * targets + (1 - probability) * (1 - targets)
    alpha_t = FOCAL_ALPHA * targets + (1 - FOCAL_ALPHA) * (1 - targets)
    return (alpha_t * bce * (1 - p_t) ** FOCAL_GAMMA).sum()


def detection_loss(
    output: HeadOutput, boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor]
) -> LossParts:
    """The FCOS loss of a batch.

    Args:
        output: The network's raw output for ``B`` images.
        boxes: Per image, ``(M_i, 4)`` xyxy reference boxes in input pixels (may be empty).
        labels: Per image, ``(M_i,)`` class ids.

    Returns:
        The loss parts. With no positive point in the batch, only the classification term
        (pushing everything to background) is non-zero and the divisor is 1, never 0.
    """
    targets = [
        assign_targets(output.points, output.point_strides, b, lab)
        for b, lab in zip(boxes, labels, strict=True)
    ]
    assigned = torch.stack([t.labels for t in targets])
    assigned_boxes = torch.stack([t.boxes for t in targets])
    positive = assigned >= 0
    num_positive = int(positive.sum())
    divisor = max(num_positive, 1)

    class_targets = torch.zeros_like(output.class_logits)
    batch_index, point_index = torch.nonzero(positive, as_tuple=True)
    class_targets[batch_index, point_index, assigned[positive]] = 1.0
    classification = sigmoid_focal_loss(output.class_logits, class_targets) / divisor

    if num_positive == 0:
        zero = output.box_regression.sum() * 0.0 + output.centerness_logits.sum() * 0.0
        return LossParts(classification, zero, zero, 0)
    decoded = decode(output.points, output.point_strides, output.box_regression)[positive]
    box = giou_loss(decoded, assigned_boxes[positive]).sum() / divisor
    target_ltrb = paired_ltrb(output.points[point_index], assigned_boxes[positive])
    center_target = centerness(target_ltrb.clamp(min=0))
    center = (
        F.binary_cross_entropy_with_logits(
            output.centerness_logits[positive], center_target, reduction="sum"
        )
        / divisor
    )
    return LossParts(classification, box, center, num_positive)
