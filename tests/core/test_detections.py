from __future__ import annotations

from contextlib import ExitStack as DoesNotRaise

import pytest

from boxloop.core.boxes import Box
from boxloop.core.detections import Detections
from boxloop.core.errors import BoxError


def box(xyxy: tuple[float, float, float, float], class_id: int = 0,
        score: float | None = None) -> Box:
    return Box.from_xyxy(xyxy, class_id=class_id, score=score)


def grid_boxes(n: int) -> tuple[Box, ...]:
    """``n`` disjoint 10x10 boxes on a 5-column grid, class ids 0..3, scores spread over (0, 1]."""
    return tuple(
        box((20 * (i % 5), 20 * (i // 5), 20 * (i % 5) + 10, 20 * (i // 5) + 10),
            class_id=i % 4, score=(i + 1) / n)
        for i in range(n)
    )


@pytest.mark.parametrize(
    ("image_wh", "boxes", "expectation"),
    [
        # empty image (0 boxes)
        ((640, 480), (), DoesNotRaise()),
        # one box
        ((640, 480), (box((1, 2, 3, 4)),), DoesNotRaise()),
        # 20 boxes
        ((640, 480), grid_boxes(20), DoesNotRaise()),
        # boxes passed as a list are stored as a tuple
        ((640, 480), [box((1, 2, 3, 4))], DoesNotRaise()),
        # a box outside the image is allowed (clipping is explicit)
        ((10, 10), (box((-5, -5, 20, 20)),), DoesNotRaise()),
        # zero width
        ((0, 480), (), pytest.raises(BoxError, match="image_wh")),
        # negative height
        ((640, -1), (), pytest.raises(BoxError, match="image_wh")),
        # float size (pixels are whole numbers)
        ((640.0, 480), (), pytest.raises(BoxError, match="image_wh")),
        # raw xyxy tuple instead of a Box
        ((640, 480), ((1, 2, 3, 4),), pytest.raises(BoxError, match="Box values")),
    ],
)
def test_detections_validates_on_construction(
    image_wh: tuple, boxes: tuple, expectation: DoesNotRaise
) -> None:
    with expectation:
        detections = Detections("img", image_wh, boxes)
        assert isinstance(detections.boxes, tuple)
        assert len(detections) == len(boxes)


def test_detections_normalizes_image_wh_list_to_tuple() -> None:
    # JSON gives [width, height]; a list would break equality and hashing of the frozen value.
    from_json = Detections("img", [640, 480])  # type: ignore[arg-type]
    assert from_json.image_wh == (640, 480)
    assert from_json == Detections("img", (640, 480))
    assert hash(from_json) == hash(Detections("img", (640, 480)))


def test_detections_empty_is_empty() -> None:
    empty = Detections.empty("img", (640, 480))
    assert empty.is_empty()
    assert len(empty) == 0
    assert list(empty) == []
    assert empty.scores == ()
    assert empty.class_ids == ()
    assert not Detections("img", (640, 480), (box((0, 0, 1, 1)),)).is_empty()


def test_detections_iterates_boxes_in_order() -> None:
    boxes = grid_boxes(20)
    detections = Detections("img", (640, 480), boxes)
    assert tuple(detections) == boxes
    assert detections.scores == tuple(b.score for b in boxes)


def test_detections_class_ids_keep_non_contiguous_ids() -> None:
    detections = Detections("img", (64, 48), (box((0, 0, 1, 1), 17), box((0, 0, 1, 1), 3)))
    assert detections.class_ids == (17, 3)


def test_detections_operations_return_new_objects() -> None:
    original = Detections("img", (64, 48), (box((0, 0, 1, 1), score=0.2),))
    changed = original.with_boxes([box((1, 1, 2, 2), score=0.9)])
    assert changed is not original
    assert original.boxes[0].score == 0.2
    assert changed.image_id == "img"
    assert changed.image_wh == (64, 48)
    assert isinstance(changed.boxes, tuple)


def test_detections_filter_keeps_matching_boxes() -> None:
    detections = Detections("img", (640, 480), grid_boxes(20))
    even = detections.filter(lambda b: b.class_id % 2 == 0)
    assert even.class_ids == tuple(c for c in detections.class_ids if c % 2 == 0)


@pytest.mark.parametrize(
    ("scores", "floor", "kept"),
    [
        # empty image stays empty
        ((), 0.5, ()),
        # at the floor is kept (inclusive), below is dropped
        ((0.5, 0.49), 0.5, (0.5,)),
        # human boxes (score None) are always kept
        ((None, 0.1), 0.5, (None,)),
        # floor 0 keeps everything
        ((0.0, 1.0, None), 0.0, (0.0, 1.0, None)),
        # floor above every score drops every model box
        ((0.9, 0.99), 1.0, ()),
    ],
)
def test_detections_above_match_table(scores: tuple, floor: float, kept: tuple) -> None:
    detections = Detections("img", (64, 48), tuple(box((0, 0, 1, 1), score=s) for s in scores))
    assert detections.above(floor).scores == kept


@pytest.mark.parametrize(
    ("xyxy", "image_wh", "expected"),
    [
        # inside the image, so unchanged
        ((1, 1, 5, 5), (64, 48), ((1, 1, 5, 5),)),
        # on the edge, so unchanged
        ((0, 0, 64, 48), (64, 48), ((0, 0, 64, 48),)),
        # straddling the right edge of a non-square image: cut
        ((60, 40, 70, 50), (64, 48), ((60, 40, 64, 48),)),
        # fully outside: collapses to zero area and is dropped
        ((70, 10, 80, 20), (64, 48), ()),
        # already zero-width inside the image: dropped too
        ((5, 5, 5, 10), (64, 48), ()),
    ],
)
def test_detections_clipped_match_table(xyxy: tuple, image_wh: tuple, expected: tuple) -> None:
    detections = Detections("img", image_wh, (box(xyxy, 2, 0.7),))
    clipped = detections.clipped()
    assert tuple(b.xyxy for b in clipped) == expected
    assert all((b.class_id, b.score) == (2, 0.7) for b in clipped)


def test_detections_as_human_removes_scores() -> None:
    detections = Detections("img", (640, 480), grid_boxes(20))
    human = detections.as_human()
    assert human.scores == (None,) * 20
    assert all(b.is_human for b in human)
    assert tuple(b.xyxy for b in human) == tuple(b.xyxy for b in detections)
    assert human.class_ids == detections.class_ids


def test_detections_is_frozen() -> None:
    detections = Detections.empty("img", (64, 48))
    with pytest.raises(AttributeError):
        detections.image_id = "other"  # type: ignore[misc]
