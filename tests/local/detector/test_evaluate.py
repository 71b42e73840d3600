"""The simple VOC mAP used as validation:mAP."""

from __future__ import annotations

import pytest

from boxloop.core.boxes import Box
from boxloop.core.detections import Detections
from boxloop.local.detector.evaluate import average_precision, mean_average_precision


@pytest.mark.parametrize(
    ("hits", "num_references", "expected"),
    [
        ([(0.9, True), (0.8, True)], 2, 1.0),  # everything found, nothing extra
        ([(0.9, True), (0.8, False)], 2, 0.5),  # half the references found first
        ([(0.9, False), (0.8, True)], 1, 0.5),  # the hit ranks below a false positive
        ([(0.9, False)], 3, 0.0),  # only false positives
        ([], 2, 0.0),  # no prediction at all
        ([(0.5, True), (0.9, False), (0.7, True)], 2, pytest.approx(2 / 3)),  # unsorted input
    ],
)
def test_average_precision(
    hits: list[tuple[float, bool]], num_references: int, expected: float
) -> None:
    assert average_precision(hits, num_references) == expected


def _image(boxes: list[Box]) -> Detections:
    return Detections(image_id="x", image_wh=(100, 100), boxes=tuple(boxes))


def test_mean_average_precision_averages_classes_that_have_references() -> None:
    references = [_image([Box.from_xyxy((0, 0, 10, 10), 0), Box.from_xyxy((50, 50, 70, 70), 1)])]
    predictions = [
        _image(
            [
                Box.from_xyxy((0, 0, 10, 10), 0, 0.9),  # exact hit of class 0
                Box.from_xyxy((50, 50, 70, 70), 0, 0.8),  # right place, wrong class
                Box.from_xyxy(
                    (80, 80, 90, 90), 2, 0.7
                ),  # class 2 has no reference: left out of the mean
            ]
        )
    ]

    assert mean_average_precision(predictions, references) == pytest.approx(0.5)


def test_mean_average_precision_is_zero_without_references() -> None:
    predictions = [_image([Box.from_xyxy((0, 0, 10, 10), 0, 0.9)])]

    assert mean_average_precision(predictions, [_image([])]) == 0.0


def test_mean_average_precision_uses_the_iou_threshold() -> None:
    references = [_image([Box.from_xyxy((0, 0, 10, 10), 0)])]
    predictions = [_image([Box.from_xyxy((0, 0, 10, 16), 0, 0.9)])]  # IoU 0.625

    assert mean_average_precision(predictions, references, iou_threshold=0.5) == 1.0
    assert mean_average_precision(predictions, references, iou_threshold=0.75) == 0.0
