"""Assertions shared by the format round-trip tests."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import strategies as st

from boxloop.core.boxes import Box
from boxloop.core.detections import Detections


def assert_same_boxes(actual: Detections, expected: Detections) -> None:
    """Same image, same boxes in order: coordinates within 1e-6 px, classes and scores equal."""
    assert actual.image_id == expected.image_id
    assert actual.image_wh == expected.image_wh
    assert len(actual.boxes) == len(expected.boxes)
    for got, want in zip(actual.boxes, expected.boxes, strict=True):
        assert got.xyxy == pytest.approx(want.xyxy, abs=1e-6)
        assert (got.class_id, got.score) == (want.class_id, want.score)


@st.composite
def pixel_detections(draw: st.DrawFn, image_id: str, class_ids: Sequence[int]) -> Detections:
    """Any image up to 4000 px a side with 0-20 boxes inside it, human or scored."""
    width, height = draw(st.integers(1, 4000)), draw(st.integers(1, 4000))
    boxes = []
    for _ in range(draw(st.integers(0, 20))):
        x0, x1 = sorted(draw(st.floats(0, width)) for _ in range(2))
        y0, y1 = sorted(draw(st.floats(0, height)) for _ in range(2))
        boxes.append(
            Box(
                x_min=x0,
                y_min=y0,
                x_max=x1,
                y_max=y1,
                class_id=draw(st.sampled_from(list(class_ids))),
                score=draw(st.none() | st.floats(0, 1)),
            )
        )
    return Detections(image_id, (width, height), tuple(boxes))
