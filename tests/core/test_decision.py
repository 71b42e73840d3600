from __future__ import annotations

import math
import random

import pytest

from boxloop.core.calibration import CalibrationConfig, ImageEvidence
from boxloop.core.decision import Accuracy, Decision, Estimate, accuracy_at, decide, estimate

EXACT = CalibrationConfig(
    metric="exact_match", target=0.9, confidence_level=0.8, min_accepted=15, min_validation=40
)


def right(confidence: float, boxes: int = 1) -> ImageEvidence:
    return ImageEvidence(
        confidence=confidence, score=1.0, boxes=boxes, box_score=float(boxes), empty=boxes == 0
    )


def wrong(confidence: float, boxes: int = 1) -> ImageEvidence:
    return ImageEvidence(confidence=confidence, score=0.0, boxes=boxes + 1, box_score=0.0)


def _accuracy(c: float, steep: float = 12.0, centre: float = 0.55) -> float:
    """P(an image at confidence c is exactly right): a logistic curve."""
    return 1.0 / (1.0 + math.exp(-steep * (c - centre)))


def _accuracy_above(t: float, steep: float = 12.0, centre: float = 0.55) -> float:
    """Expected accuracy of the images at or above t, confidences uniform on [0, 1]."""
    if t >= 1.0:
        return 1.0

    def integral(c: float) -> float:
        return math.log1p(math.exp(steep * (c - centre))) / steep

    return (integral(1.0) - integral(t)) / (1.0 - t)


@pytest.mark.parametrize("n_validation", [60, 120, 250])
def test_decide_keeps_its_promise_by_simulation(n_validation: int) -> None:
    # GIVEN synthetic scores of known accuracy: confidence uniform, P(right) logistic in it
    rng = random.Random(n_validation)
    draws, failures, certified = 300, 0, 0
    for _ in range(draws):
        validation = []
        for _ in range(n_validation):
            c = rng.random()
            validation.append(ImageEvidence(confidence=c, score=float(rng.random() < _accuracy(c))))
        pool = [rng.random() for _ in range(400)]
        # WHEN the rule decides
        decision = decide(validation, pool, EXACT)
        # THEN the images it accepts have an expected accuracy below 0.9 in at most delta of
        # the draws (the promise), and it does accept something in most draws
        if decision.threshold is not None:
            certified += 1
            failures += _accuracy_above(decision.threshold) < 0.9
    assert failures / draws <= 0.2
    assert certified / draws > (0.5 if n_validation >= 120 else 0.1)


def test_decide_without_validation_labels_nothing() -> None:
    decision = decide([], [0.9, 0.8], EXACT)
    assert decision.threshold is None
    assert decision.rule == "none"
    assert "0 validation images" in decision.reason
    assert decision.accepted == Accuracy()


def test_decide_with_every_validation_image_wrong_labels_nothing() -> None:
    validation = [wrong(c / 100) for c in range(100)]
    decision = decide(validation, [c / 50 for c in range(50)], EXACT)
    assert decision.threshold is None
    assert decision.rule == "fixed_sequence"
    assert [t.passed for t in decision.tested] == [False]  # the first test fails: walk stops
    assert "no threshold shows 0.9" in decision.reason


def test_decide_with_every_validation_image_right_accepts_the_whole_pool() -> None:
    validation = [right(c / 100) for c in range(1, 101)]
    pool = [c / 100 for c in range(1, 101)]
    decision = decide(validation, pool, EXACT)
    assert decision.threshold == 0.01
    assert decision.n_pool_accepted == 100
    assert decision.pool_share == 1.0
    assert all(t.passed for t in decision.tested)
    assert decision.accepted.image_accuracy == 1.0
    assert decision.accepted.image_bound == pytest.approx(0.2 ** (1 / 100))
    assert "every step passed" in decision.reason


def test_decide_treats_tied_confidences_as_one_threshold() -> None:
    # GIVEN 60 validation images tied at 0.8 (all right) and 40 tied at 0.3 (all wrong),
    # and a pool tied the same way
    validation = [right(0.8)] * 60 + [wrong(0.3)] * 40
    pool = [0.8] * 30 + [0.3] * 20
    decision = decide(validation, pool, EXACT)
    # THEN a threshold accepts all or none of a tie: 0.8 passes, 0.3 fails
    assert [(t.threshold, t.passed) for t in decision.tested] == [(0.8, True), (0.3, False)]
    assert decision.threshold == 0.8
    assert decision.n_pool_accepted == 30
    assert decision.accepted.images == 60


def test_decide_stops_at_the_first_failure_even_when_a_lower_threshold_would_pass() -> None:
    # GIVEN validation right at the top, a wrong band in the middle, right again below
    validation = (
        [right(0.9 - i / 1000) for i in range(60)]
        + [wrong(0.6 - i / 1000) for i in range(10)]
        + [right(0.4 - i / 1000) for i in range(150)]
    )
    pool = [v.confidence for v in validation]
    decision = decide(validation, pool, EXACT)
    # THEN the walk stops in the wrong band: the lower, passing thresholds are never reached
    assert decision.threshold is not None and decision.threshold > 0.6
    assert not decision.tested[-1].passed
    assert accuracy_at(validation, 0.2, EXACT).image_accuracy > 0.9  # would have passed


def test_decide_refuses_images_that_pass_while_their_boxes_do_not() -> None:
    # GIVEN images that are mostly empty and right, and a few dense ones badly wrong: 95 %
    # of images right, but most boxes wrong
    validation = [right(0.9 - i / 1000, boxes=0) for i in range(95)] + [
        wrong(0.9 - i / 1000, boxes=20) for i in range(95, 100)
    ]
    pool = [v.confidence for v in validation]
    config = CalibrationConfig(metric="exact_match", target=0.8, confidence_level=0.8)
    decision = decide(validation, pool, config)
    accepted = accuracy_at(validation, 0.0, config)
    assert accepted.image_accuracy == 0.95
    assert accepted.empty_images == 95
    assert accepted.box_accuracy == 0.0
    # THEN no threshold that takes the dense images in passes
    assert decision.threshold is None or decision.threshold > validation[95].confidence


def test_decide_fixed_threshold_and_failed_gate() -> None:
    validation = [right(0.9)] * 50 + [wrong(0.2)] * 50
    fixed = decide(validation, [0.9, 0.5, 0.1], EXACT, fixed_threshold=0.5)
    assert (fixed.threshold, fixed.rule, fixed.n_pool_accepted) == (0.5, "fixed_threshold", 2)
    assert "no promise" in fixed.reason
    assert fixed.accepted.images == 50
    gated = decide(validation, [0.9], EXACT, gate_passed=False)
    assert (gated.threshold, gated.rule) == (None, "none")
    assert "quality gate" in gated.reason


def test_decide_with_nothing_open_labels_nothing() -> None:
    decision = decide([right(0.9)] * 50, [], EXACT)
    assert decision.threshold is None
    assert "no open image" in decision.reason


def test_decide_asks_for_more_validation_when_even_a_perfect_record_cannot_pass() -> None:
    config = CalibrationConfig(metric="exact_match", target=0.99, min_validation=40)
    decision = decide([right(0.9)] * 40, [0.9], config)
    assert decision.threshold is None
    assert "more validation images" in decision.reason


def test_decide_is_independent_of_input_order() -> None:
    rng = random.Random(5)
    validation = [
        ImageEvidence(confidence=round(rng.random(), 2), score=float(rng.random() < 0.8))
        for _ in range(150)
    ]
    pool = [round(rng.random(), 2) for _ in range(200)]
    shuffled = list(validation)
    rng.shuffle(shuffled)
    assert decide(validation, pool, EXACT) == decide(shuffled, list(reversed(pool)), EXACT)


def test_decision_round_trips_through_json() -> None:
    validation = [right(0.9)] * 50 + [wrong(0.2)] * 50
    decision = decide(validation, [0.9, 0.5, 0.1], EXACT)
    assert decision.tested
    assert Decision.from_json(decision.to_json()) == decision


def test_estimate_gives_exact_intervals_for_exact_match() -> None:
    result = estimate([right(0.9)] * 3 + [wrong(0.9)], "exact_match", level=0.9)
    assert (result.images, result.image_accuracy) == (4, 0.75)
    assert result.image_interval == pytest.approx((0.2486, 0.9873), abs=1e-4)
    assert (result.boxes, result.box_accuracy) == (5, 0.6)
    assert Estimate.from_json(result.to_json()) == result
    assert estimate([], "exact_match") == Estimate()


def test_estimate_mean_iou_interval_contains_the_mean() -> None:
    scores = [0.9, 0.7, 0.8, 1.0, 0.6] * 6
    result = estimate(
        [ImageEvidence(confidence=0.5, score=s) for s in scores], "mean_iou", level=0.9
    )
    low, high = result.image_interval
    assert low < result.image_accuracy < high
