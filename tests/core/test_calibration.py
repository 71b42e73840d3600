from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boxloop.core.boxes import Box
from boxloop.core.calibration import (
    CalibrationConfig,
    ImageEvidence,
    Metric,
    clopper_pearson_interval,
    clopper_pearson_lower,
    empirical_bernstein_lower,
    image_evidence,
    image_score,
    ratio_lower_bound,
)
from boxloop.core.detections import Detections
from boxloop.core.errors import ConfigError


def box(
    xyxy: tuple[float, float, float, float], class_id: int = 0, score: float | None = None
) -> Box:
    return Box.from_xyxy(xyxy, class_id=class_id, score=score)


def dets(*boxes: Box, image_id: str = "img") -> Detections:
    return Detections(image_id=image_id, image_wh=(640, 480), boxes=boxes)


def row(i: int, class_id: int = 0, score: float | None = None) -> Box:
    """The i-th 10x10 box of a row of disjoint boxes."""
    return box((20 * i, 0, 20 * i + 10, 10), class_id, score)


REF = box((0, 0, 10, 10))
SAME = REF.with_score(0.9)
IOU_06 = box((0, 0, 10, 6), 0, 0.9)  # inter 60 / union 100
IOU_05 = box((0, 0, 10, 5), 0, 0.9)  # inter 50 / union 100
IOU_04 = box((0, 0, 10, 4), 0, 0.9)  # inter 40 / union 100
IOU_THIRD = box((5, 0, 15, 10), 0, 0.9)  # inter 50 / union 150
TWENTY_REF = tuple(row(i) for i in range(20))
TWENTY_PRED = tuple(row(i, score=0.9) for i in range(20))


@pytest.mark.parametrize(
    ("metric", "predicted", "reference", "kwargs", "expected"),
    [
        # mean_iou, 0 boxes on both sides: a correct "no objects" label
        ("mean_iou", (), (), {}, 1.0),
        # mean_iou, empty prediction on a non-empty reference: every box missed
        ("mean_iou", (), (REF,), {}, 0.0),
        # mean_iou, a prediction on an empty reference: one extra box
        ("mean_iou", (SAME,), (), {}, 0.0),
        # mean_iou, 1 identical box
        ("mean_iou", (SAME,), (REF,), {}, 1.0),
        # mean_iou, a loose box below IoU 0.5 still earns partial credit
        ("mean_iou", (IOU_THIRD,), (REF,), {}, 1 / 3),
        # mean_iou, a perfect box plus an extra one: (1 + 0) / 2
        ("mean_iou", (SAME, row(3, score=0.8)), (REF,), {}, 0.5),
        # mean_iou, one of two reference boxes missed: (1 + 0) / 2
        ("mean_iou", (SAME,), (REF, row(3)), {}, 0.5),
        # mean_iou, right place, wrong class: a miss plus an extra
        ("mean_iou", (box((0, 0, 10, 10), 1, 0.9),), (REF,), {}, 0.0),
        # mean_iou, 20 boxes all found
        ("mean_iou", TWENTY_PRED, TWENTY_REF, {}, 1.0),
        # mean_iou, 19 of 20 found
        ("mean_iou", TWENTY_PRED[:19], TWENTY_REF, {}, 19 / 20),
        # exact_match, 0 boxes on both sides
        ("exact_match", (), (), {}, 1.0),
        # exact_match, empty prediction on a non-empty reference
        ("exact_match", (), (REF,), {}, 0.0),
        # exact_match, a prediction on an empty reference
        ("exact_match", (SAME,), (), {}, 0.0),
        # exact_match, IoU 0.6 is a match
        ("exact_match", (IOU_06,), (REF,), {}, 1.0),
        # exact_match, IoU exactly 0.5 is a match (inclusive)
        ("exact_match", (IOU_05,), (REF,), {}, 1.0),
        # exact_match, IoU 0.4 is not
        ("exact_match", (IOU_04,), (REF,), {}, 0.0),
        # exact_match, IoU 0.4 is a match with match_iou 0.3
        ("exact_match", (IOU_04,), (REF,), {"match_iou": 0.3}, 1.0),
        # exact_match, an extra box spoils the image
        ("exact_match", (SAME, row(3, score=0.8)), (REF,), {}, 0.0),
        # exact_match, wrong class
        ("exact_match", (box((0, 0, 10, 10), 1, 0.9),), (REF,), {}, 0.0),
        # exact_match, 20 boxes all found
        ("exact_match", TWENTY_PRED, TWENTY_REF, {}, 1.0),
    ],
)
def test_image_score_table(
    metric: Metric, predicted: tuple, reference: tuple, kwargs: dict, expected: float
) -> None:
    assert image_score(dets(*predicted), dets(*reference), metric, **kwargs) == pytest.approx(
        expected
    )


def test_image_score_raises_when_images_differ() -> None:
    with pytest.raises(ValueError, match="validation join is broken"):
        image_score(dets(image_id="a"), dets(image_id="b"), "mean_iou")


@pytest.mark.parametrize(
    ("successes", "n", "delta", "expected"),
    [
        # n == 0: nothing known
        (0, 0, 0.2, 0.0),
        # all wrong: 0
        (0, 10, 0.2, 0.0),
        # all right: the closed form delta ** (1 / n), 20 of 20 at 80 % -> 0.923
        (20, 20, 0.2, 0.2 ** (1 / 20)),
        # textbook: 45 of 50, one-sided 95 % (scipy.stats.beta.ppf(0.05, 45, 6))
        (45, 50, 0.05, 0.80117),
        # 3 of 4 at one-sided 95 %: beta.ppf(0.05, 3, 2)
        (3, 4, 0.05, 0.24860),
    ],
)
def test_clopper_pearson_lower_table(successes: int, n: int, delta: float, expected: float) -> None:
    assert clopper_pearson_lower(successes, n, delta) == pytest.approx(expected, abs=1e-4)


@given(
    n=st.integers(1, 80),
    data=st.data(),
    delta=st.sampled_from([0.05, 0.1, 0.2, 0.5]),
)
def test_clopper_pearson_lower_is_the_exact_tail_inverse(n: int, data, delta: float) -> None:
    successes = data.draw(st.integers(1, n))
    bound = clopper_pearson_lower(successes, n, delta)
    assert 0.0 <= bound <= successes / n

    def tail(p: float) -> float:
        return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(successes, n + 1))

    assert tail(bound) == pytest.approx(delta, abs=1e-6) or (successes == n and bound > 0)
    assert tail(min(1.0, bound + 1e-3)) > delta - 1e-9


def test_clopper_pearson_interval_brackets_the_share() -> None:
    low, high = clopper_pearson_interval(3, 4, 0.9)
    assert low == pytest.approx(0.2486, abs=1e-4)
    assert high == pytest.approx(0.9873, abs=1e-4)
    assert clopper_pearson_interval(0, 0, 0.9) == (0.0, 1.0)


def test_empirical_bernstein_lower_is_valid_by_simulation() -> None:
    # 2,000 samples of 30 skewed values in [0, 1] with mean 0.7: the bound misses <= delta
    rng = random.Random(3)
    misses = 0
    for _ in range(2000):
        values = [min(1.0, rng.betavariate(7, 3)) for _ in range(30)]
        bound = empirical_bernstein_lower(sum(values), sum(v * v for v in values), 30, 0.2)
        misses += bound > 0.7
    assert misses / 2000 <= 0.2
    assert empirical_bernstein_lower(1.0, 1.0, 1, 0.2) == 0.0  # one value: no spread known


def test_ratio_lower_bound_counts_images_not_boxes() -> None:
    # 10 images: 5 with 10 boxes all right, 5 with 10 boxes all wrong -> 50 % of 100 boxes.
    # As 100 independent boxes the spread would be sqrt(.25/100) = 0.05; per image it is 0.167.
    credits, boxes = [10.0] * 5 + [0.0] * 5, [10] * 10
    bound = ratio_lower_bound(
        sum(credits),
        sum(boxes),
        sum(c * b for c, b in zip(credits, boxes, strict=True)),
        sum(c * c for c in credits),
        sum(b * b for b in boxes),
        10,
        0.2,
    )
    assert bound == pytest.approx(0.5 - 0.8416 * math.sqrt(250 / 9 / 10) / 10, abs=1e-3)
    assert bound < 0.5 - 0.8416 * 0.05


def test_image_evidence_counts_boxes_and_empty_images() -> None:
    # one pair, one missed reference box, one extra prediction: 3 boxes, 1 right
    evidence = image_evidence(0.7, dets(SAME, row(5, score=0.8)), dets(REF, row(3)), "exact_match")
    assert evidence == ImageEvidence(confidence=0.7, score=0.0, boxes=3, box_score=1.0)
    # an empty auto-label of an empty image: right, no box, counted as empty
    empty = image_evidence(0.9, dets(), dets(), "mean_iou")
    assert (empty.score, empty.boxes, empty.empty) == (1.0, 0, True)
    # mean IoU credit is the pairs' IoU
    loose = image_evidence(0.5, dets(IOU_06), dets(REF), "mean_iou")
    assert (loose.boxes, loose.box_score) == (1, pytest.approx(0.6))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"confidence": 1.5, "score": 1.0},
        {"confidence": 0.5, "score": -0.1},
        {"confidence": 0.5, "score": 1.0, "boxes": 1, "box_score": 2.0},
    ],
)
def test_image_evidence_refuses_values_out_of_range(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="must be"):
        ImageEvidence(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # unknown metric
        ({"metric": "f1"}, "metric must be one of"),
        # target 0 would accept anything
        ({"target": 0.0}, "target must be"),
        # a bound below 50 % would be an upper bound
        ({"confidence_level": 0.3}, "confidence_level must be"),
        # 100 % confidence has an infinite quantile
        ({"confidence_level": 1.0}, "confidence_level must be"),
        # minimum sizes must be positive ints
        ({"min_accepted": 0}, "min_accepted must be an int >= 1"),
        # a float size
        ({"min_validation": 2.5}, "min_validation must be an int >= 1"),
        # match IoU 0 pairs disjoint boxes
        ({"match_iou": 0.0}, "match_iou must be"),
        # a grid needs at least one step
        ({"grid_steps": 0}, "grid_steps must be an int >= 1"),
    ],
)
def test_calibration_config_raises_table(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CalibrationConfig(**kwargs)


def test_calibration_config_target_defaults_per_metric() -> None:
    assert CalibrationConfig().resolved_target == 0.6
    assert CalibrationConfig(metric="exact_match").resolved_target == 0.9
    assert CalibrationConfig(target=0.7).resolved_target == 0.7
