"""FCOS target assignment and loss terms."""

from __future__ import annotations

import torch

from boxloop.local.detector.coding import make_points
from boxloop.local.detector.losses import assign_targets, detection_loss, giou_loss
from boxloop.local.detector.model import HeadOutput

LEVELS = [(32, 32), (16, 16), (8, 8)]
STRIDES = [8, 16, 32]


def _points() -> tuple[torch.Tensor, torch.Tensor]:
    return make_points(LEVELS, STRIDES)


def test_assign_targets_marks_everything_background_when_image_has_no_boxes() -> None:
    points, strides = _points()

    targets = assign_targets(points, strides, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))

    assert bool((targets.labels == -1).all())


def test_assign_targets_puts_positives_inside_the_box_near_its_centre() -> None:
    points, strides = _points()
    box = torch.tensor([[40.0, 40.0, 80.0, 90.0]])

    targets = assign_targets(points, strides, box, torch.tensor([2]))

    positive = targets.labels >= 0
    assert int(positive.sum()) > 0
    assert set(targets.labels[positive].tolist()) == {2}
    inside = points[positive]
    assert bool(((inside >= box[0, :2]) & (inside <= box[0, 2:])).all())
    assert set(strides[positive].tolist()) == {8.0}  # a 50 px box belongs to the finest level


def test_assign_targets_sends_large_boxes_to_coarse_levels() -> None:
    points, strides = _points()

    targets = assign_targets(
        points, strides, torch.tensor([[0.0, 0.0, 250.0, 250.0]]), torch.tensor([0])
    )

    assert set(strides[targets.labels >= 0].tolist()) == {32.0}


def test_assign_targets_gives_a_box_smaller_than_a_stride_one_point() -> None:
    points, strides = _points()

    targets = assign_targets(
        points, strides, torch.tensor([[9.0, 9.0, 11.0, 11.0]]), torch.tensor([1])
    )

    positive = torch.nonzero(targets.labels >= 0).squeeze(1)
    assert positive.tolist() == [33]  # the stride-8 point at (12, 12), nearest the centre (10, 10)


def test_assign_targets_prefers_the_smaller_of_two_overlapping_boxes() -> None:
    points, strides = _points()
    boxes = torch.tensor([[20.0, 20.0, 100.0, 100.0], [50.0, 50.0, 70.0, 70.0]])

    targets = assign_targets(points, strides, boxes, torch.tensor([0, 1]))

    centre = torch.nonzero((points == torch.tensor([60.0, 60.0])).all(dim=1)).item()
    assert targets.labels[centre].item() == 1


def test_giou_loss_is_zero_for_identical_boxes_and_above_one_for_disjoint_ones() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    others = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]])

    loss = giou_loss(boxes, others)

    assert loss[0].item() == 0.0
    assert loss[1].item() > 1.0


def _head_output(batch: int, num_classes: int) -> HeadOutput:
    points, strides = _points()
    count = points.shape[0]
    return HeadOutput(
        torch.zeros(batch, count, num_classes, requires_grad=True),
        torch.zeros(batch, count, 4, requires_grad=True),
        torch.zeros(batch, count, requires_grad=True),
        points,
        strides,
    )


def test_detection_loss_is_finite_and_differentiable_for_a_batch_without_boxes() -> None:
    output = _head_output(2, 3)

    loss = detection_loss(output, [torch.zeros(0, 4)] * 2, [torch.zeros(0, dtype=torch.int64)] * 2)
    loss.total.backward()

    assert loss.num_positive == 0
    assert bool(torch.isfinite(loss.total))
    assert output.class_logits.grad is not None
    assert bool(torch.isfinite(output.class_logits.grad).all())


def test_detection_loss_counts_positives_across_the_batch() -> None:
    output = _head_output(2, 3)
    boxes = [torch.tensor([[40.0, 40.0, 80.0, 90.0]]), torch.zeros(0, 4)]
    labels = [torch.tensor([0]), torch.zeros(0, dtype=torch.int64)]

    loss = detection_loss(output, boxes, labels)

    single = assign_targets(output.points, output.point_strides, boxes[0], labels[0])
    assert loss.num_positive == int((single.labels >= 0).sum())
    assert bool(torch.isfinite(loss.total))
    assert loss.box.item() > 0
