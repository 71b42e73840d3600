"""Assertions shared by the format round-trip tests."""

from __future__ import annotations

import pytest

from boxloop.core.detections import Detections


def assert_same_boxes(actual: Detections, expected: Detections) -> None:
    """Same image, same boxes in order: coordinates within 1e-6 px, classes and scores equal."""
    assert actual.image_id == expected.image_id
    assert actual.image_wh == expected.image_wh
    assert len(actual.boxes) == len(expected.boxes)
    for got, want in zip(actual.boxes, expected.boxes, strict=True):
        assert got.xyxy == pytest.approx(want.xyxy, abs=1e-6)
        assert (got.class_id, got.score) == (want.class_id, want.score)
