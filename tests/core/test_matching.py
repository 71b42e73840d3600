from __future__ import annotations

import random

import pytest

from boxloop.core.boxes import Box
from boxloop.core.matching import Match, Matching, match_boxes


def box(xyxy: tuple[float, float, float, float], class_id: int = 0,
        score: float | None = None) -> Box:
    return Box.from_xyxy(xyxy, class_id=class_id, score=score)


def shifted(b: Box, dx: float, score: float | None = None) -> Box:
    return box((b.x_min + dx, b.y_min, b.x_max + dx, b.y_max), b.class_id, score)


REF = box((0, 0, 10, 10), 0)
HALF = box((5, 0, 15, 10), 0, 0.9)  # IoU 1/3 with REF


@pytest.mark.parametrize(
    ("predicted", "reference", "kwargs", "pairs", "unmatched_p", "unmatched_r"),
    [
        # both empty: an exact match with nothing in it
        ([], [], {}, (), (), ()),
        # no predictions: every reference missed
        ([], [REF], {}, (), (), (0,)),
        # no references: every prediction spurious
        ([HALF], [], {}, (), (0,), ()),
        # one identical box
        ([REF.with_score(0.8)], [REF], {}, ((0, 0),), (), ()),
        # IoU 1/3 below the default 0.5 threshold
        ([HALF], [REF], {}, (), (0,), (0,)),
        # same pair with a threshold under 1/3
        ([HALF], [REF], {"iou_threshold": 0.3}, ((0, 0),), (), ()),
        # threshold is inclusive: IoU exactly 0.5 (inter 50, union 100)
        ([box((0, 0, 10, 5), 0, 0.9)], [box((0, 0, 10, 10), 0)], {}, ((0, 0),), (), ()),
        # class-aware: same place, different class: no pair
        ([REF.with_score(0.9)], [box((0, 0, 10, 10), 1)], {}, (), (0,), (0,)),
        # class-agnostic: same place, different class: paired
        ([REF.with_score(0.9)], [box((0, 0, 10, 10), 1)], {"class_aware": False},
         ((0, 0),), (), ()),
        # non-contiguous class ids 3 and 17 each find their own reference
        ([box((0, 0, 10, 10), 17, 0.9), box((0, 0, 10, 10), 3, 0.8)],
         [box((0, 0, 10, 10), 3), box((0, 0, 10, 10), 17)], {}, ((0, 1), (1, 0)), (), ()),
        # two predictions on one reference: the second is a duplicate, left unmatched
        ([REF.with_score(0.9), REF.with_score(0.8)], [REF], {}, ((0, 0),), (1,), ()),
        # zero-area prediction on top of a reference never matches
        ([box((5, 5, 5, 5), 0, 0.9)], [REF], {}, (), (0,), (0,)),
    ],
)
def test_match_boxes_match_table(
    predicted: list, reference: list, kwargs: dict, pairs: tuple, unmatched_p: tuple,
    unmatched_r: tuple,
) -> None:
    matching = match_boxes(predicted, reference, **kwargs)
    assert tuple((p.predicted, p.reference) for p in matching.pairs) == pairs
    assert matching.unmatched_predicted == unmatched_p
    assert matching.unmatched_reference == unmatched_r
    assert matching.is_exact is (not unmatched_p and not unmatched_r)


def test_match_boxes_most_confident_prediction_chooses_first() -> None:
    # Both predictions overlap the one reference; the low-score one is listed first and
    # overlaps more, but the high-score one takes the reference (COCO's evaluation order).
    reference = [REF]
    low_first = box((0, 0, 10, 10), 0, 0.3)
    high_second = box((1, 0, 11, 10), 0, 0.9)
    matching = match_boxes([low_first, high_second], reference)
    assert [(p.predicted, p.reference) for p in matching.pairs] == [(1, 0)]
    assert matching.unmatched_predicted == (0,)


def test_match_boxes_human_box_counts_as_score_one() -> None:
    # A human box (score None) outranks any model score.
    human = box((1, 0, 11, 10), 0, None)
    model = box((0, 0, 10, 10), 0, 0.99)
    matching = match_boxes([model, human], [REF])
    assert [p.predicted for p in matching.pairs] == [1]


def test_match_boxes_each_prediction_takes_highest_iou_reference() -> None:
    # One prediction between two references takes the closer one; the other stays missed.
    prediction = box((2, 0, 12, 10), 0, 0.9)
    far, near = box((4, 0, 14, 10), 0), box((1, 0, 11, 10), 0)
    matching = match_boxes([prediction], [far, near])
    assert [(p.predicted, p.reference) for p in matching.pairs] == [(0, 1)]
    assert matching.unmatched_reference == (0,)


def test_match_boxes_equal_scores_keep_input_order() -> None:
    first = box((0, 0, 10, 10), 0, 0.5)
    second = box((0, 0, 10, 10), 0, 0.5)
    matching = match_boxes([first, second], [REF])
    assert [p.predicted for p in matching.pairs] == [0]


def test_match_boxes_equal_iou_references_take_first() -> None:
    prediction = box((5, 0, 15, 10), 0, 0.9)
    left, right = box((0, 0, 10, 10), 0), box((10, 0, 20, 10), 0)  # both IoU 1/3
    matching = match_boxes([prediction], [left, right], iou_threshold=0.3)
    assert [p.reference for p in matching.pairs] == [0]


def test_match_boxes_records_iou_of_each_pair() -> None:
    matching = match_boxes([HALF], [REF], iou_threshold=0.3)
    assert matching.pairs[0].iou == pytest.approx(1 / 3)
    assert matching.mean_iou == pytest.approx(1 / 3)


def test_match_boxes_20_shuffled_boxes_match_exactly() -> None:
    reference = [box((20 * (i % 5), 20 * (i // 5), 20 * (i % 5) + 10, 20 * (i // 5) + 10),
                     class_id=i % 3) for i in range(20)]
    order = list(range(20))
    random.Random(7).shuffle(order)
    predicted = [shifted(reference[i], 1.0, score=0.5 + i / 40) for i in order]
    matching = match_boxes(predicted, reference)
    assert matching.is_exact
    assert len(matching.pairs) == 20
    assert all(order[p.predicted] == p.reference for p in matching.pairs)
    assert matching.mean_iou == pytest.approx(9 / 11)  # inter 90, union 110


def test_matching_mean_iou_none_when_nothing_matched() -> None:
    assert Matching(pairs=(), unmatched_predicted=(0,), unmatched_reference=()).mean_iou is None


def test_matching_mean_iou_averages_pairs() -> None:
    matching = Matching(
        pairs=(Match(predicted=0, reference=0, iou=0.5), Match(predicted=1, reference=1, iou=1.0)),
        unmatched_predicted=(),
        unmatched_reference=(),
    )
    assert matching.mean_iou == pytest.approx(0.75)
    assert matching.is_exact


def test_match_boxes_unmatched_indices_sorted_ascending() -> None:
    predicted = [box((100 + 20 * i, 0, 110 + 20 * i, 10), 0, s) for i, s in
                 enumerate((0.1, 0.9, 0.5))]
    matching = match_boxes(predicted, [REF, box((500, 500, 510, 510), 0)])
    assert matching.unmatched_predicted == (0, 1, 2)
    assert matching.unmatched_reference == (0, 1)
