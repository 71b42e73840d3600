"""NMS against a brute-force reference."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import torch

from boxloop.core.boxes import iou_xyxy
from boxloop.local.detector.nms import batched_nms, box_iou, nms

if TYPE_CHECKING:
    from collections.abc import Callable


def _reference_nms(boxes: list[list[float]], scores: list[float], threshold: float) -> list[int]:
    """Textbook greedy NMS in plain Python, ties kept in input order."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept: list[int] = []
    for i in order:
        if all(iou_xyxy(tuple(boxes[i]), tuple(boxes[k])) <= threshold for k in kept):
            kept.append(i)
    return kept


def _random_boxes(generator: torch.Generator, count: int) -> torch.Tensor:
    corners = torch.rand(count, 2, generator=generator) * 100
    sizes = torch.rand(count, 2, generator=generator) * 40
    return torch.cat([corners, corners + sizes], dim=1)


@pytest.mark.parametrize("seed", range(20))
def test_nms_matches_brute_force_reference(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    count = int(torch.randint(1, 120, (1,), generator=generator))
    boxes = _random_boxes(generator, count)
    scores = torch.rand(count, generator=generator)
    threshold = [0.3, 0.45, 0.5, 0.7][seed % 4]

    kept = nms(boxes, scores, threshold)

    assert kept.tolist() == _reference_nms(boxes.tolist(), scores.tolist(), threshold)


@pytest.mark.parametrize("seed", range(10))
def test_batched_nms_equals_nms_run_per_class(seed: int) -> None:
    generator = torch.Generator().manual_seed(100 + seed)
    boxes = _random_boxes(generator, 80)
    scores = torch.rand(80, generator=generator)
    class_ids = torch.randint(0, 3, (80,), generator=generator)

    kept = set(batched_nms(boxes, scores, class_ids, 0.5).tolist())

    expected: set[int] = set()
    for class_id in range(3):
        members = torch.nonzero(class_ids == class_id).squeeze(1)
        expected |= {int(members[i]) for i in nms(boxes[members], scores[members], 0.5)}
    assert kept == expected


def test_batched_nms_keeps_identical_boxes_of_different_classes() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    scores = torch.tensor([0.9, 0.8, 0.7])

    kept = batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5)

    assert kept.tolist() == [0, 1]


def test_nms_returns_indices_by_decreasing_score() -> None:
    boxes = torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60], [100, 100, 110, 110]])

    kept = nms(boxes, torch.tensor([0.2, 0.9, 0.5]), 0.5)

    assert kept.tolist() == [1, 2, 0]


@pytest.mark.parametrize(
    "function",
    [
        lambda b, s: nms(b, s, 0.5),  # plain
        lambda b, s: batched_nms(b, s, torch.zeros(0, dtype=torch.int64), 0.5),  # class-aware
    ],
)
def test_nms_returns_empty_for_no_boxes(
    function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> None:
    kept = function(torch.zeros(0, 4), torch.zeros(0))

    assert kept.dtype == torch.int64
    assert kept.numel() == 0


def test_box_iou_is_zero_not_nan_for_degenerate_boxes() -> None:
    degenerate = torch.tensor([[5.0, 5.0, 5.0, 5.0]])

    assert box_iou(degenerate, degenerate).item() == 0.0


def test_box_iou_matches_core_iou() -> None:
    generator = torch.Generator().manual_seed(7)
    a, b = _random_boxes(generator, 15), _random_boxes(generator, 9)

    matrix = box_iou(a, b)

    expected = [[iou_xyxy(tuple(x), tuple(y)) for y in b.tolist()] for x in a.tolist()]
    assert torch.allclose(matrix, torch.tensor(expected), atol=1e-5)
