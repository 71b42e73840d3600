from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boxloop.core.boxes import Box
from boxloop.core.detections import Detections
from boxloop.core.errors import ManifestError
from boxloop.core.formats.yolo import detections_to_yolo, yolo_to_detections

from ._helpers import assert_same_boxes

WIDE = (1000, 200)  # non-square: x fractions scale by 1000, y fractions by 200


def box(x0: float, y0: float, x1: float, y1: float, c: int = 0, s: float | None = None) -> Box:
    return Box(x_min=x0, y_min=y0, x_max=x1, y_max=y1, class_id=c, score=s)


MANY = tuple(box(i * 50, 10, i * 50 + 40, 190, c=(i % 4) * 7) for i in range(20))


@pytest.mark.parametrize(
    ("text", "expected_boxes"),
    [
        # empty file: an image without boxes
        ("", ()),
        # blank lines only
        ("\n  \n", ()),
        # non-square: x scales by the width, y by the height
        ("0 0.5 0.5 0.2 0.5\n", (box(400, 50, 600, 150),)),
        # the whole image, edges exactly on the border
        ("3 0.5 0.5 1 1", (box(0, 0, 1000, 200, 3),)),
        # zero-size box
        ("1 0.25 0.75 0 0", (box(250, 150, 250, 150, 1),)),
        # sixth column: a prediction's score
        ("2 0.5 0.5 0.2 0.5 0.875", (box(400, 50, 600, 150, 2, 0.875),)),
        # non-contiguous class ids, blank line in between
        (
            "7 0.1 0.5 0.2 1\n\n1000 0.9 0.5 0.2 1\n",
            (box(0, 0, 200, 200, 7), box(800, 0, 1000, 200, 1000)),
        ),
        # overshooting by rounding (< 0.5 px) is clipped onto the edge
        ("0 0.5 0.5 1.0004 1", (box(0, 0, 1000, 200),)),
    ],
)
def test_yolo_to_detections_reads_pixels(text, expected_boxes):
    detections = yolo_to_detections(text, WIDE, image_id="img")
    assert_same_boxes(detections, Detections("img", WIDE, expected_boxes))


def test_yolo_to_detections_reads_many_boxes_from_a_file_object():
    text = detections_to_yolo(Detections("img", WIDE, MANY))
    assert_same_boxes(
        yolo_to_detections(io.StringIO(text), WIDE, image_id="img"), Detections("img", WIDE, MANY)
    )


@pytest.mark.parametrize(
    ("bad_line", "match"),
    [
        # four fields
        ("0 0.5 0.5 0.1", "got 4 fields"),
        # seven fields
        ("0 0.5 0.5 0.1 0.1 0.9 1", "got 7 fields"),
        # class is a name
        ("dog 0.5 0.5 0.1 0.1", "class must be a non-negative integer"),
        # negative class
        ("-1 0.5 0.5 0.1 0.1", "class must be a non-negative integer"),
        # float class
        ("1.0 0.5 0.5 0.1 0.1", "class must be a non-negative integer"),
        # not a number
        ("0 0.5 abc 0.1 0.1", "cy must be a number"),
        # nan
        ("0 0.5 0.5 nan 0.1", "w must be a number"),
        # negative size
        ("0 0.5 0.5 -0.1 0.1", "must be >= 0"),
        # pixels where fractions belong
        ("0 320 100 50 40", "lies outside the image"),
        # fits the width but not the height of the wide image: y is a fraction of 200
        ("0 0.5 0.99 0.1 0.1", "lies outside the image"),
        # score above 1
        ("0 0.5 0.5 0.1 0.1 1.5", "score"),
    ],
)
def test_yolo_to_detections_raises_at_the_bad_line(bad_line, match):
    text = f"0 0.5 0.5 0.1 0.1\n\n{bad_line}\n1 0.5 0.5 0.1 0.1\n"
    with pytest.raises(ManifestError, match=match) as raised:
        yolo_to_detections(text, WIDE, image_id="img", source="labels/img.txt")
    assert raised.value.line == 3
    assert str(raised.value).startswith("labels/img.txt:3: ")


@pytest.mark.parametrize(
    ("boxes", "expected"),
    [
        # empty image: empty file
        ((), ""),
        # non-square image: x normalized by 1000, y by 200
        ((box(400, 50, 600, 150, 5),), "5 0.5 0.5 0.2 0.5\n"),
        # the whole image
        ((box(0, 0, 1000, 200, 0),), "0 0.5 0.5 1 1\n"),
        # zero-size box
        ((box(250, 150, 250, 150, 1),), "1 0.25 0.75 0 0\n"),
        # float noise is not written out (0.6 - 0.4 is 0.19999999999999996)
        ((box(0.4, 0, 0.6, 200, 0),), "0 0.0005 0.5 0.0002 1\n"),
        # a score becomes the sixth column
        ((box(400, 50, 600, 150, 2, 0.875),), "2 0.5 0.5 0.2 0.5 0.875\n"),
    ],
)
def test_detections_to_yolo_writes_normalized_lines(boxes, expected):
    assert detections_to_yolo(Detections("img", WIDE, boxes)) == expected


def test_detections_to_yolo_writes_one_line_per_box():
    assert len(detections_to_yolo(Detections("img", WIDE, MANY)).splitlines()) == 20


@st.composite
def detections(draw: st.DrawFn) -> Detections:
    width, height = draw(st.integers(1, 4000)), draw(st.integers(1, 4000))
    boxes = []
    for _ in range(draw(st.integers(0, 20))):
        x0, x1 = sorted(draw(st.floats(0, width)) for _ in range(2))
        y0, y1 = sorted(draw(st.floats(0, height)) for _ in range(2))
        class_id = draw(st.sampled_from([0, 3, 17, 1000]))
        score = draw(st.none() | st.floats(0, 1))
        boxes.append(box(x0, y0, x1, y1, class_id, score))
    return Detections("img", (width, height), tuple(boxes))


@settings(max_examples=200, deadline=None)
@given(detections())
def test_yolo_round_trip_keeps_boxes(original):
    text = detections_to_yolo(original)
    assert_same_boxes(yolo_to_detections(text, original.image_wh, image_id="img"), original)
