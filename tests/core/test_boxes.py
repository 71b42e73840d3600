from __future__ import annotations

import math
from contextlib import ExitStack as DoesNotRaise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boxloop.core.boxes import (
    Box,
    clip_box,
    clip_xyxy,
    cxcywh_to_xyxy,
    iou,
    iou_matrix,
    iou_xyxy,
    is_inside,
    normalized_to_pixel,
    pixel_to_normalized,
    xywh_to_xyxy,
    xyxy_to_cxcywh,
    xyxy_to_xywh,
)
from boxloop.core.errors import BoxError, BoxloopError

NAN = float("nan")
INF = float("inf")

# Coordinates within +-1e5 px: far beyond any real image, small enough that areas stay finite.
coord = st.floats(min_value=-1e5, max_value=1e5, allow_nan=False, allow_infinity=False)
extent = st.floats(min_value=0.0, max_value=1e5, allow_nan=False, allow_infinity=False)
image_side = st.integers(min_value=1, max_value=10_000)


@st.composite
def xyxy_boxes(draw: st.DrawFn) -> tuple[float, float, float, float]:
    x_min, y_min, width, height = draw(coord), draw(coord), draw(extent), draw(extent)
    return (x_min, y_min, x_min + width, y_min + height)


def assert_close(actual: tuple[float, ...], expected: tuple[float, ...], *, scale: float) -> None:
    # 1e-6 relative to the largest coordinate, and never stricter than 1e-6 px: 5e-324 -> 0.0
    # through a division is rounding, not a bug.
    for a, e in zip(actual, expected, strict=True):
        assert math.isclose(a, e, rel_tol=1e-6, abs_tol=1e-6 * scale), (actual, expected)


@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        # an ordinary box
        ({"x_min": 1, "y_min": 2, "x_max": 3, "y_max": 4, "class_id": 0}, DoesNotRaise()),
        # zero-width and zero-height box: allowed (degenerate, area 0)
        ({"x_min": 5, "y_min": 5, "x_max": 5, "y_max": 5, "class_id": 0}, DoesNotRaise()),
        # negative coordinates: allowed (outside the image, clip later)
        ({"x_min": -10, "y_min": -5, "x_max": -1, "y_max": 0, "class_id": 2}, DoesNotRaise()),
        # score at both ends of [0, 1]
        ({"x_min": 0, "y_min": 0, "x_max": 1, "y_max": 1, "class_id": 0, "score": 0.0},
         DoesNotRaise()),
        ({"x_min": 0, "y_min": 0, "x_max": 1, "y_max": 1, "class_id": 0, "score": 1.0},
         DoesNotRaise()),
        # NaN coordinate
        ({"x_min": NAN, "y_min": 0, "x_max": 1, "y_max": 1, "class_id": 0},
         pytest.raises(BoxError, match="finite")),
        # infinite coordinate
        ({"x_min": 0, "y_min": 0, "x_max": INF, "y_max": 1, "class_id": 0},
         pytest.raises(BoxError, match="finite")),
        # string coordinate
        ({"x_min": "0", "y_min": 0, "x_max": 1, "y_max": 1, "class_id": 0},
         pytest.raises(BoxError, match="finite")),
        # x_max < x_min (flipped box)
        ({"x_min": 3, "y_min": 0, "x_max": 1, "y_max": 1, "class_id": 0},
         pytest.raises(BoxError, match="x_max >= x_min")),
        # y_max < y_min
        ({"x_min": 0, "y_min": 3, "x_max": 1, "y_max": 1, "class_id": 0},
         pytest.raises(BoxError, match="y_max >= y_min")),
        # negative class id
        ({"x_min": 0, "y_min": 0, "x_max": 1, "y_max": 1, "class_id": -1},
         pytest.raises(BoxError, match="class_id must be >= 0")),
        # float class id
        ({"x_min": 0, "y_min": 0, "x_max": 1, "y_max": 1, "class_id": 1.0},
         pytest.raises(BoxError, match="class_id must be an int")),
        # bool class id (True is an int in Python, not a class)
        ({"x_min": 0, "y_min": 0, "x_max": 1, "y_max": 1, "class_id": True},
         pytest.raises(BoxError, match="class_id must be an int")),
        # score above 1
        ({"x_min": 0, "y_min": 0, "x_max": 1, "y_max": 1, "class_id": 0, "score": 1.5},
         pytest.raises(BoxError, match="score")),
        # NaN score
        ({"x_min": 0, "y_min": 0, "x_max": 1, "y_max": 1, "class_id": 0, "score": NAN},
         pytest.raises(BoxError, match="score")),
    ],
)
def test_box_validates_on_construction(kwargs: dict, expectation: DoesNotRaise) -> None:
    with expectation:
        Box(**kwargs)


def test_box_error_is_a_boxloop_value_error() -> None:
    with pytest.raises(BoxloopError) as caught:
        Box(x_min=1, y_min=0, x_max=0, y_max=1, class_id=0)
    assert isinstance(caught.value, ValueError)


def test_box_from_xyxy_builds_float_box() -> None:
    box = Box.from_xyxy([1, 2, 30, 40], class_id=7, score=0.5)
    assert box.xyxy == (1.0, 2.0, 30.0, 40.0)
    assert all(isinstance(v, float) for v in box.xyxy)
    assert (box.class_id, box.score) == (7, 0.5)


def test_box_from_xyxy_raises_when_nan() -> None:
    with pytest.raises(BoxError, match="finite"):
        Box.from_xyxy((0, NAN, 1, 1), class_id=0)


def test_box_geometry_properties() -> None:
    box = Box.from_xyxy((10, 20, 40, 30), class_id=0)
    assert (box.width, box.height, box.area) == (30.0, 10.0, 300.0)


def test_box_is_human_when_score_none() -> None:
    predicted = Box.from_xyxy((0, 0, 1, 1), class_id=0, score=0.9)
    assert not predicted.is_human
    assert predicted.with_score(None).is_human
    assert predicted.with_score(None).xyxy == predicted.xyxy


def test_box_is_frozen_and_hashable() -> None:
    box = Box.from_xyxy((0, 0, 1, 1), class_id=0)
    with pytest.raises(AttributeError):
        box.x_min = 5.0  # type: ignore[misc]
    assert len({box, Box.from_xyxy((0, 0, 1, 1), class_id=0)}) == 1


@pytest.mark.parametrize(
    ("xyxy", "xywh", "cxcywh"),
    [
        # ordinary box
        ((10, 20, 50, 80), (10, 20, 40, 60), (30, 50, 40, 60)),
        # zero width and height
        ((5, 5, 5, 5), (5, 5, 0, 0), (5, 5, 0, 0)),
        # negative coordinates
        ((-10, -20, -4, 0), (-10, -20, 6, 20), (-7, -10, 6, 20)),
        # normalized box covering the whole image
        ((0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 1.0, 1.0), (0.5, 0.5, 1.0, 1.0)),
    ],
)
def test_converters_match_table(xyxy: tuple, xywh: tuple, cxcywh: tuple) -> None:
    assert xyxy_to_xywh(xyxy) == pytest.approx(xywh)
    assert xywh_to_xyxy(xywh) == pytest.approx(xyxy)
    assert xyxy_to_cxcywh(xyxy) == pytest.approx(cxcywh)
    assert cxcywh_to_xyxy(cxcywh) == pytest.approx(xyxy)


@pytest.mark.parametrize(
    ("pixel", "image_wh", "normalized"),
    [
        # non-square landscape image: x divides by width, y by height
        ((64, 48, 320, 240), (640, 480), (0.1, 0.1, 0.5, 0.5)),
        # non-square portrait image: the swap a square image would hide
        ((48, 64, 240, 320), (480, 640), (0.1, 0.1, 0.5, 0.5)),
        # box on the far edges
        ((0, 0, 1920, 1080), (1920, 1080), (0.0, 0.0, 1.0, 1.0)),
        # zero-size box
        ((100, 100, 100, 100), (200, 400), (0.5, 0.25, 0.5, 0.25)),
        # negative coordinates stay negative (no silent clipping)
        ((-32, -24, 32, 24), (640, 480), (-0.05, -0.05, 0.05, 0.05)),
        # 1x1 image
        ((0, 0, 1, 1), (1, 1), (0.0, 0.0, 1.0, 1.0)),
    ],
)
def test_pixel_normalized_match_table(pixel: tuple, image_wh: tuple, normalized: tuple) -> None:
    assert pixel_to_normalized(pixel, image_wh) == pytest.approx(normalized)
    assert normalized_to_pixel(normalized, image_wh) == pytest.approx(pixel)


@pytest.mark.parametrize(
    "image_wh",
    [
        (0, 480),  # zero width
        (640, 0),  # zero height
        (-640, 480),  # negative width
    ],
)
def test_pixel_normalized_raise_when_image_wh_not_positive(image_wh: tuple) -> None:
    with pytest.raises(BoxError, match="image_wh"):
        pixel_to_normalized((0, 0, 1, 1), image_wh)
    with pytest.raises(BoxError, match="image_wh"):
        normalized_to_pixel((0, 0, 1, 1), image_wh)


@pytest.mark.parametrize(
    ("xyxy", "image_wh", "expected"),
    [
        # inside the image, so unchanged
        ((10, 10, 20, 20), (100, 50), (10, 10, 20, 20)),
        # exactly on the edges, so unchanged
        ((0, 0, 100, 50), (100, 50), (0, 0, 100, 50)),
        # straddling the left/top edges (negative coords): cut at 0
        ((-5, -5, 10, 10), (100, 50), (0, 0, 10, 10)),
        # straddling the right/bottom edges: cut at width/height (non-square)
        ((90, 40, 120, 70), (100, 50), (90, 40, 100, 50)),
        # fully left of the image: collapses onto x = 0
        ((-20, 10, -10, 20), (100, 50), (0, 10, 0, 20)),
        # fully below the image: collapses onto y = height
        ((10, 60, 20, 70), (100, 50), (10, 50, 20, 50)),
    ],
)
def test_clip_xyxy_match_table(xyxy: tuple, image_wh: tuple, expected: tuple) -> None:
    assert clip_xyxy(xyxy, image_wh) == expected


def test_clip_box_keeps_class_and_score() -> None:
    box = Box.from_xyxy((-5, -5, 10, 10), class_id=3, score=0.4)
    clipped = clip_box(box, (8, 6))
    assert clipped.xyxy == (0.0, 0.0, 8.0, 6.0)
    assert (clipped.class_id, clipped.score) == (3, 0.4)


@pytest.mark.parametrize(
    ("xyxy", "expected"),
    [
        ((0, 0, 100, 50), True),  # exactly the image
        ((-0.5, -0.5, 100.5, 50.5), True),  # within the default half-pixel tolerance
        ((-1, 0, 10, 10), False),  # one pixel left of the image
        ((0, 0, 10, 51), False),  # one pixel below the image (non-square: height 50)
        ((0, 0, 101, 10), False),  # one pixel right of the image
    ],
)
def test_is_inside_match_table(xyxy: tuple, expected: bool) -> None:
    assert is_inside(Box.from_xyxy(xyxy, class_id=0), (100, 50)) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # identical boxes
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
        # half overlap: inter 50, union 150
        ((0, 0, 10, 10), (5, 0, 15, 10), 1 / 3),
        # one inside the other: 25 / 100
        ((0, 0, 10, 10), (0, 0, 5, 5), 0.25),
        # touching edges: no overlap
        ((0, 0, 10, 10), (10, 0, 20, 10), 0.0),
        # disjoint
        ((0, 0, 10, 10), (50, 50, 60, 60), 0.0),
        # zero-width box inside another: 0
        ((5, 0, 5, 10), (0, 0, 10, 10), 0.0),
        # two identical zero-area boxes: 0, not a division by zero
        ((5, 5, 5, 5), (5, 5, 5, 5), 0.0),
        # negative coordinates
        ((-10, -10, 0, 0), (-5, -10, 5, 0), 1 / 3),
    ],
)
def test_iou_xyxy_match_table(a: tuple, b: tuple, expected: float) -> None:
    assert iou_xyxy(a, b) == pytest.approx(expected)
    assert iou(Box.from_xyxy(a, class_id=0), Box.from_xyxy(b, class_id=1)) == pytest.approx(
        expected
    )


def test_iou_matrix_shape_and_values() -> None:
    rows = [Box.from_xyxy((0, 0, 10, 10), class_id=0), Box.from_xyxy((5, 0, 15, 10), class_id=0)]
    cols = [Box.from_xyxy((0, 0, 10, 10), class_id=0)] * 3
    matrix = iou_matrix(rows, cols)
    assert len(matrix) == 2
    assert all(len(row) == 3 for row in matrix)
    assert matrix[0] == [1.0, 1.0, 1.0]
    assert matrix[1] == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize(
    ("rows", "cols"),
    [
        ([], []),  # no boxes at all
        ([Box.from_xyxy((0, 0, 1, 1), class_id=0)], []),  # no columns
    ],
)
def test_iou_matrix_when_empty(rows: list, cols: list) -> None:
    assert iou_matrix(rows, cols) == [[] for _ in rows]


@given(xyxy_boxes())
def test_xyxy_xywh_round_trip(xyxy: tuple) -> None:
    scale = max(1.0, *map(abs, xyxy))
    assert_close(xywh_to_xyxy(xyxy_to_xywh(xyxy)), xyxy, scale=scale)


@given(xyxy_boxes())
def test_xyxy_cxcywh_round_trip(xyxy: tuple) -> None:
    scale = max(1.0, *map(abs, xyxy))
    assert_close(cxcywh_to_xyxy(xyxy_to_cxcywh(xyxy)), xyxy, scale=scale)


@given(xyxy_boxes(), image_side, image_side)
def test_pixel_normalized_round_trip_on_non_square_images(
    xyxy: tuple, width: int, height: int
) -> None:
    scale = max(1.0, *map(abs, xyxy))
    normalized = pixel_to_normalized(xyxy, (width, height))
    assert_close(normalized_to_pixel(normalized, (width, height)), xyxy, scale=scale)
    # x is divided by the width and y by the height, never the other way round.
    assert math.isclose(normalized[0] * width, xyxy[0], rel_tol=1e-6, abs_tol=1e-6 * scale)
    assert math.isclose(normalized[1] * height, xyxy[1], rel_tol=1e-6, abs_tol=1e-6 * scale)


@given(xyxy_boxes(), xyxy_boxes())
def test_iou_symmetric_and_in_unit_interval(a: tuple, b: tuple) -> None:
    forward, backward = iou_xyxy(a, b), iou_xyxy(b, a)
    assert forward == backward
    assert 0.0 <= forward <= 1.0


@given(xyxy_boxes())
def test_iou_of_box_with_itself_is_one_when_area_positive(xyxy: tuple) -> None:
    box = Box.from_xyxy(xyxy, class_id=0)
    if box.area > 0:
        assert iou(box, box) == pytest.approx(1.0)
    else:
        assert iou(box, box) == 0.0


@given(xyxy_boxes(), image_side, image_side)
def test_clip_xyxy_result_inside_image(xyxy: tuple, width: int, height: int) -> None:
    clipped = clip_xyxy(xyxy, (width, height))
    assert 0 <= clipped[0] <= clipped[2] <= width
    assert 0 <= clipped[1] <= clipped[3] <= height
    assert is_inside(Box.from_xyxy(clipped, class_id=0), (width, height), tolerance_px=0.0)


@given(
    st.tuples(*[st.floats() | st.integers(-10, 10_010) | st.sampled_from([0.0, -0.0])] * 4),
    image_side,
    image_side,
)
def test_clip_xyxy_equals_the_min_max_formula(xyxy: tuple, width: int, height: int) -> None:
    # clip_xyxy spells out min(max(v, 0.0), side) for speed; same values and types, NaN and
    # -0.0 included (repr tells -0.0 from 0.0 and 5 from 5.0, and NaN equals itself there).
    sides = (width, height, width, height)
    x0, y0, x1, y1 = (min(max(v, 0.0), side) for v, side in zip(xyxy, sides, strict=True))
    expected = (x0, y0, max(x0, x1), max(y0, y1))
    assert repr(clip_xyxy(xyxy, (width, height))) == repr(expected)
