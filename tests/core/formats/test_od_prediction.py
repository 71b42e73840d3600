"""Batch-transform output (normalized rows) -> pixel Detections, with and without a score floor."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boxloop.core.boxes import Box
from boxloop.core.detections import Detections
from boxloop.core.errors import ManifestError
from boxloop.core.formats.od_prediction import (
    detections_to_od_prediction,
    od_prediction_to_detections,
    parse_od_prediction,
)

from ._helpers import assert_same_boxes, pixel_detections

WH = (1000, 200)  # non-square: normalized x and y scale differently


def box(x0: float, y0: float, x1: float, y1: float, c: int, s: float) -> Box:
    return Box(x_min=x0, y_min=y0, x_max=x1, y_max=y1, class_id=c, score=s)


@pytest.mark.parametrize(
    ("rows", "score_floor", "expected"),
    [
        # empty image
        ([], 0.0, ()),
        # normalized -> pixels on a non-square image
        ([[1, 0.9, 0.1, 0.5, 0.2, 1.0]], 0.0, (box(100, 100, 200, 200, 1, 0.9),)),
        # a box on the edge, with ints where floats are usual
        ([[0, 1, 0, 0, 1, 1]], 0.0, (box(0, 0, 1000, 200, 0, 1.0),)),
        # overshoot clipped to the image
        ([[2, 0.5, -0.1, 0.9, 0.5, 1.2]], 0.0, (box(0, 180, 500, 200, 2, 0.5),)),
        # zero-size after clipping: dropped
        ([[2, 0.5, 1.1, 0.1, 1.3, 0.2]], 0.0, ()),
        # padding row (class -1): dropped, even with a score out of range
        ([[-1, -1, -1, -1, -1, -1]], 0.0, ()),
        # non-contiguous class ids, many boxes, kept in row order
        (
            [[7, 0.3, 0, 0, 0.1, 0.1], [3, 0.6, 0.5, 0.5, 0.6, 0.6]],
            0.0,
            (box(0, 0, 100, 20, 7, 0.3), box(500, 100, 600, 120, 3, 0.6)),
        ),
        # under the floor: dropped; at the floor: kept
        (
            [[0, 0.04, 0, 0, 0.1, 0.1], [0, 0.05, 0, 0, 0.1, 0.1]],
            0.05,
            (box(0, 0, 100, 20, 0, 0.05),),
        ),
    ],
)
def test_od_prediction_to_detections_reads_rows(rows, score_floor, expected):
    detections = od_prediction_to_detections(
        {"prediction": rows}, "img", WH, score_floor=score_floor
    )
    assert_same_boxes(detections, Detections("img", WH, expected))


@pytest.mark.parametrize("score_floor", [0.0, 0.5])
@pytest.mark.parametrize(
    ("row", "match"),
    [
        # not a list
        ({"class": 0}, r"prediction\[0\] must be \[class_id, score"),
        # five numbers
        ([0, 0.01, 0, 0, 1], r"prediction\[0\] must be \[class_id, score"),
        # a string coordinate
        ([0, 0.01, "0", 0, 1, 1], "must hold six finite numbers"),
        # a bool is no coordinate
        ([0, 0.01, True, 0, 1, 1], "must hold six finite numbers"),
        # NaN and infinity (Python's json reads both)
        ([0, 0.01, float("nan"), 0, 1, 1], "must hold six finite numbers"),
        ([0, 0.01, 0, 0, float("inf"), 1], "must hold six finite numbers"),
        # a score under 0 is malformed, not merely under the floor
        ([0, -0.01, 0, 0, 1, 1], r"score must be in \[0, 1\]"),
        # a score above 1
        ([0, 1.5, 0, 0, 1, 1], r"score must be in \[0, 1\]"),
    ],
)
def test_od_prediction_to_detections_raises_for_a_bad_row_even_under_the_floor(
    row, match, score_floor
):
    with pytest.raises(ManifestError, match=match) as caught:
        od_prediction_to_detections(
            {"prediction": [row]}, "img", WH, source="x.jpg.out", score_floor=score_floor
        )
    assert caught.value.source == "x.jpg.out"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        # not JSON
        (b'{"prediction": [', "is not valid JSON"),
        # the wrong document
        (b'{"predictions": []}', 'must be {"prediction"'),
    ],
)
def test_parse_od_prediction_raises_naming_the_file(text, match):
    with pytest.raises(ManifestError, match=match):
        parse_od_prediction(text, "img", WH, source="x.jpg.out")


@given(
    pixel_detections("img", [0, 3, 90]),
    st.lists(st.floats(0, 1), max_size=20),
    st.floats(0, 1),
)
def test_score_floor_drops_what_above_would_drop(detections, scores, score_floor):
    # GIVEN a transform output with scored boxes
    boxes = [b.with_score(s) for b, s in zip(detections.boxes, scores, strict=False)]
    document = json.loads(json.dumps(detections_to_od_prediction(detections.with_boxes(boxes))))
    # WHEN it is read with a floor, and without one and then filtered
    floored = od_prediction_to_detections(
        document, "img", detections.image_wh, score_floor=score_floor
    )
    unfloored = od_prediction_to_detections(document, "img", detections.image_wh)
    # THEN both give the same boxes
    assert floored == unfloored.above(score_floor)
