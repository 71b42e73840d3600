from __future__ import annotations

import dataclasses
import itertools
import math
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boxloop.core.boxes import Box
from boxloop.core.calibration import (
    Calibration,
    CalibrationConfig,
    Metric,
    calibrate_scores,
    calibrate_threshold,
    image_score,
    isotonic_accuracy,
    mean_lower_bound,
    wilson_lower_bound,
)
from boxloop.core.detections import Detections
from boxloop.core.errors import ConfigError

Z90 = statistics.NormalDist().inv_cdf(0.9)


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
    ("successes", "n", "z", "expected"),
    [
        # n == 0: nothing known
        (0, 0, Z90, 0.0),
        # all wrong: 0
        (0, 10, Z90, 0.0),
        # all right: the closed form n / (n + z^2), 20 of 20 -> 0.924, not 1
        (20, 20, Z90, 20 / (20 + Z90**2)),
        # textbook: 50 of 100, two-sided 95 % Wilson interval starts at 0.4038
        (50, 100, 1.959964, 0.40383),
    ],
)
def test_wilson_lower_bound_table(successes: int, n: int, z: float, expected: float) -> None:
    assert wilson_lower_bound(successes, n, z) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    ("mean", "variance", "n", "expected"),
    [
        # one image: the spread is unknown, so nothing is guaranteed
        (0.9, 0.0, 1, 0.0),
        # mean - z * sd / sqrt(n) = 0.8 - 1.2816 * 0.2 / 10
        (0.8, 0.04, 100, 0.8 - Z90 * 0.02),
        # no spread: the mean itself
        (0.7, 0.0, 30, 0.7),
        # clipped at 0
        (0.1, 1.0, 4, 0.0),
    ],
)
def test_mean_lower_bound_table(mean: float, variance: float, n: int, expected: float) -> None:
    assert mean_lower_bound(mean, variance, n, Z90) == pytest.approx(expected)


def ranked(scores: list[float]) -> list[tuple[float, float]]:
    """(confidence, score) pairs with distinct confidences, highest first, in input order."""
    return [((1000 - i) / 1000, s) for i, s in enumerate(scores)]


PLAIN = {"confidence_level": None}


def test_calibrate_scores_returns_none_when_validation_is_small() -> None:
    # The noisy early round: 12 perfect validation images are no evidence.
    pairs = [(0.9, 1.0)] * 12
    result = calibrate_scores(pairs, CalibrationConfig(**PLAIN))
    assert result.threshold is None
    assert (result.n_validation, result.n_accepted, result.coverage) == (12, 0, 0.0)
    assert (result.expected_accuracy, result.lower_bound) == (None, None)
    assert result.curve == ((0.9, 1.0, 1.0),)  # the curve is still there for the report
    small = CalibrationConfig(min_validation=10, min_accepted=5, **PLAIN)
    assert calibrate_scores(pairs, small).threshold == 0.9


def test_calibrate_scores_returns_none_when_too_few_images_are_accepted() -> None:
    # Only the top 10 of 60 are right: prefixes of >= 20 images reach at most 10 / 20 = 0.5.
    pairs = ranked([1.0] * 10 + [0.0] * 50)
    assert calibrate_scores(pairs, CalibrationConfig(**PLAIN)).threshold is None
    # Trusting 10 images, the lowest prefix still >= 0.6 is 10 of 16.
    result = calibrate_scores(pairs, CalibrationConfig(min_accepted=10, **PLAIN))
    assert (result.threshold, result.n_accepted) == (pairs[15][0], 16)


def test_calibrate_scores_picks_lowest_qualifying_threshold() -> None:
    # Prefix accuracy by size: 20 -> 1.0, 25 -> 0.8 (ok), 26..54 < 0.8, 55..62 >= 0.8, 63 < 0.8.
    pairs = ranked([1.0] * 20 + [0.0] * 5 + [1.0] * 30 + [0.0] * 45)
    config = CalibrationConfig(metric="exact_match", target=0.8, **PLAIN)
    result = calibrate_scores(pairs, config)
    assert result.threshold == pairs[61][0]
    assert result.n_accepted == 62
    assert result.expected_accuracy == pytest.approx(50 / 62)
    assert result.coverage == pytest.approx(0.62)


def test_calibrate_scores_lower_bound_accepts_strictly_fewer() -> None:
    # 40 right, then alternating wrong/right for 20, then 40 wrong.
    pairs = ranked([1.0] * 40 + [0.0, 1.0] * 10 + [0.0] * 40)
    plain = calibrate_scores(pairs, CalibrationConfig(metric="exact_match", target=0.9, **PLAIN))
    bounded = calibrate_scores(
        pairs, CalibrationConfig(metric="exact_match", target=0.9, confidence_level=0.9)
    )
    assert (plain.n_accepted, plain.expected_accuracy) == (50, 0.9)  # 45 of 50 exactly
    assert plain.lower_bound is None
    assert bounded.threshold is not None and plain.threshold is not None
    assert bounded.n_accepted < plain.n_accepted
    assert bounded.threshold > plain.threshold
    assert bounded.lower_bound is not None and bounded.lower_bound >= 0.9
    assert bounded.lower_bound == pytest.approx(wilson_lower_bound(41, 42, Z90))
    stricter = calibrate_scores(
        pairs, CalibrationConfig(metric="exact_match", target=0.9, confidence_level=0.99)
    )
    assert stricter.threshold is None  # 40 of 40 at 99 % is only 0.88


def test_calibrate_scores_mean_iou_bound_uses_spread() -> None:
    # Same mean 0.8, with and without spread: only the steady one clears a 0.75 bound.
    steady = [(0.9, 0.8)] * 50
    noisy = [(0.9, 1.0)] * 40 + [(0.9, 0.0)] * 10
    config = CalibrationConfig(target=0.75)
    assert calibrate_scores(steady, config).threshold == 0.9
    assert calibrate_scores(noisy, config).threshold is None
    assert calibrate_scores(noisy, CalibrationConfig(target=0.75, **PLAIN)).threshold == 0.9


@pytest.mark.parametrize(
    ("target", "threshold", "n_accepted"),
    [
        # all confidences equal, 50 of 60 right (0.833): one group, all accepted
        (0.8, 0.7, 60),
        # all confidences equal, target above 0.833: nothing accepted
        (0.9, None, 0),
    ],
)
def test_calibrate_scores_when_all_confidences_equal(
    target: float, threshold: float | None, n_accepted: int
) -> None:
    pairs = [(0.7, 1.0)] * 50 + [(0.7, 0.0)] * 10
    result = calibrate_scores(pairs, CalibrationConfig(target=target, **PLAIN))
    assert (result.threshold, result.n_accepted) == (threshold, n_accepted)
    assert len(result.curve) == 1


def test_calibrate_scores_never_splits_equal_confidences() -> None:
    # 30 right at 0.9; at 0.8, 10 right and 20 wrong. Splitting the 0.8 group after its right
    # images would show 40 of 40; a threshold of 0.8 accepts all 60 (0.67), so 0.9 it is.
    pairs = [(0.9, 1.0)] * 30 + [(0.8, 0.0)] * 20 + [(0.8, 1.0)] * 10
    result = calibrate_scores(pairs, CalibrationConfig(target=0.8, **PLAIN))
    assert (result.threshold, result.n_accepted) == (0.9, 30)
    assert [point[0] for point in result.curve] == [0.9, 0.8]


def test_calibrate_scores_is_independent_of_input_order() -> None:
    rng = random.Random(7)
    pairs = [(round(rng.random(), 2), rng.random()) for _ in range(500)]
    expected = calibrate_scores(pairs)
    for seed in range(3):
        shuffled = list(pairs)
        random.Random(seed).shuffle(shuffled)
        assert calibrate_scores(shuffled) == expected


def test_calibrate_scores_thins_curve_when_large() -> None:
    # 100k validation images streamed from a generator; the curve stays plottable.
    rng = random.Random(3)
    pairs = ((c, min(1.0, c + rng.random() / 4)) for c in (rng.random() for _ in range(100_000)))
    result = calibrate_scores(pairs, CalibrationConfig(max_curve_points=50))
    assert result.n_validation == 100_000
    assert len(result.curve) <= 50
    thresholds = [point[0] for point in result.curve]
    coverages = [point[2] for point in result.curve]
    assert thresholds == sorted(thresholds, reverse=True)
    assert coverages == sorted(coverages)
    assert coverages[-1] == 1.0
    assert result.threshold is not None and result.lower_bound is not None
    assert result.lower_bound >= 0.6


@pytest.mark.parametrize(
    "pair",
    [
        # confidence above 1
        (1.5, 1.0),
        # negative score
        (0.5, -0.1),
        # NaN confidence
        (float("nan"), 1.0),
    ],
)
def test_calibrate_scores_raises_on_out_of_range(pair: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="must be a number in"):
        calibrate_scores([pair])


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
    ],
)
def test_calibration_config_raises_table(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CalibrationConfig(**kwargs)


def test_calibration_config_target_defaults_per_metric() -> None:
    assert CalibrationConfig().resolved_target == 0.6
    assert CalibrationConfig(metric="exact_match").resolved_target == 0.9
    assert CalibrationConfig(target=0.7).resolved_target == 0.7


def test_calibrate_threshold_end_to_end_on_detections() -> None:
    # 60 validation images: confident ones labelled right, the rest missing their object.
    validation = []
    for i in range(60):
        confidence = (60 - i) / 60
        reference = dets(row(i % 5), image_id=f"img{i}")
        predicted = reference.as_human().with_boxes([row(i % 5, score=0.9)] if i < 35 else [])
        validation.append((confidence, predicted, reference))
    result = calibrate_threshold(validation)
    expected = calibrate_scores(
        [(c, 1.0 if i < 35 else 0.0) for i, (c, _, _) in enumerate(validation)]
    )
    assert isinstance(result, Calibration)
    assert result == expected
    assert result.threshold is not None
    assert result.metric == "mean_iou" and result.target == 0.6
    assert result.lower_bound is not None and result.lower_bound >= 0.6


def _oracle(pairs: list[tuple[float, float]], config: CalibrationConfig) -> tuple:
    """Brute force: every distinct confidence, recomputed from scratch."""
    if len(pairs) < config.min_validation:
        return (None, 0)
    best: tuple = (None, 0)
    for theta in sorted({c for c, _ in pairs}, reverse=True):
        accepted = [s for c, s in pairs if c >= theta]
        mean = math.fsum(accepted) / len(accepted)
        value = mean
        if config.z is not None:
            if config.metric == "exact_match":
                value = wilson_lower_bound(sum(accepted), len(accepted), config.z)
            else:
                variance = statistics.variance(accepted) if len(accepted) > 1 else 0.0
                value = mean_lower_bound(mean, variance, len(accepted), config.z)
        if len(accepted) >= config.min_accepted and value >= config.resolved_target + 1e-9:
            best = (theta, len(accepted))
        elif len(accepted) >= config.min_accepted and value >= config.resolved_target - 1e-9:
            return ("borderline", 0)  # float noise decides; skip the example
    return best


@given(
    data=st.lists(
        st.tuples(
            st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9, 1.0]),
            st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]),
        ),
        max_size=60,
    ),
    metric=st.sampled_from(["mean_iou", "exact_match"]),
    level=st.sampled_from([None, 0.8, 0.9]),
    min_accepted=st.integers(1, 5),
    min_validation=st.integers(1, 10),
    target=st.sampled_from([0.5, 0.6, 0.8]),
)
def test_calibrate_scores_matches_brute_force(
    data: list[tuple[float, float]],
    metric: Metric,
    level: float | None,
    min_accepted: int,
    min_validation: int,
    target: float,
) -> None:
    if metric == "exact_match":
        data = [(c, float(s >= 0.5)) for c, s in data]
    config = CalibrationConfig(
        metric=metric,
        target=target,
        confidence_level=level,
        min_accepted=min_accepted,
        min_validation=min_validation,
    )
    expected = _oracle(data, config)
    if expected[0] == "borderline":
        return
    result = calibrate_scores(data, config)
    assert (result.threshold, result.n_accepted) == expected
    assert result.n_validation == len(data)


def test_isotonic_accuracy_pools_adjacent_violators() -> None:
    # groups highest confidence first: 0.9 -> 1/2 right, 0.8 -> 2/2, 0.5 -> 0/1, 0.4 -> 1/1
    groups = [(0.9, 2, 1.0), (0.8, 2, 2.0), (0.5, 1, 0.0), (0.4, 1, 1.0)]
    # ascending: 1.0 (0.4) > 0.0 (0.5) merge -> 0.5 x2; then 1.0 (0.8) ok; 0.5 (0.9) < 1.0
    # merge -> 0.75 x2
    fitted = isotonic_accuracy(groups)
    assert [f.accuracy for f in fitted] == [0.75, 0.75, 0.5, 0.5]
    assert [f.block for f in fitted] == [1, 1, 0, 0]
    assert [f.block_images for f in fitted] == [4, 4, 2, 2]
    # Laplace-smoothed (3 + 1) / (4 + 2) = 2/3 -> (2/3)(1/3) / 4
    assert fitted[0].block_variance == pytest.approx(2 / 3 * 1 / 3 / 4)


@given(
    st.lists(
        st.tuples(st.floats(0.0, 1.0), st.integers(1, 5), st.floats(0.0, 1.0)),
        max_size=30,
        unique_by=lambda g: g[0],
    )
)
def test_isotonic_accuracy_is_monotone_and_keeps_the_total(
    raw: list[tuple[float, int, float]],
) -> None:
    groups = sorted(((c, n, n * share) for c, n, share in raw), reverse=True)
    fitted = [f.accuracy for f in isotonic_accuracy(groups)]
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(fitted))
    total = sum(n * f for (_, n, _), f in zip(groups, fitted, strict=True))
    assert total == pytest.approx(sum(t for _, _, t in groups))


# Ten validation images at confidence 0.9, all right; ten at 0.5, six right.
SHIFTED_VALIDATION = [(0.9, 1.0)] * 10 + [(0.5, 1.0)] * 6 + [(0.5, 0.0)] * 4
SHIFT_CONFIG = CalibrationConfig(
    metric="exact_match",
    target=0.8,
    confidence_level=None,
    min_accepted=5,
    min_validation=10,
)


def test_calibrate_scores_without_pool_accepts_the_validation_mean() -> None:
    result = calibrate_scores(SHIFTED_VALIDATION, SHIFT_CONFIG)
    assert result.threshold == 0.5  # 16 of 20 right = 0.8
    assert result.pool_expected_accuracy is None
    assert result.n_pool_accepted is None
    assert result.validation_threshold == result.threshold


def test_calibrate_scores_validation_threshold_needs_enough_validation() -> None:
    # GIVEN every pool image far below any validation image, so the pool's test cannot bind
    small = dataclasses.replace(SHIFT_CONFIG, min_validation=21)
    # WHEN there are fewer validation images than min_validation THEN neither threshold exists
    result = calibrate_scores(SHIFTED_VALIDATION, small, pool=[0.1])
    assert (result.threshold, result.validation_threshold) == (None, None)


def test_calibrate_scores_validation_threshold_is_none_when_validation_misses_the_target() -> None:
    strict = dataclasses.replace(SHIFT_CONFIG, target=0.99, min_accepted=11)
    result = calibrate_scores(SHIFTED_VALIDATION, strict, pool=[0.95] * 5)
    assert (result.threshold, result.validation_threshold) == (None, None)


def test_calibrate_scores_rejects_a_threshold_whose_pool_images_sit_at_its_edge() -> None:
    # GIVEN a later round's pool: its images crowd just above 0.5, where validation is 60% right
    pool = [0.55] * 100 + [0.95] * 5
    # WHEN calibrating with the pool
    result = calibrate_scores(SHIFTED_VALIDATION, SHIFT_CONFIG, pool=pool)
    # THEN 0.5 would auto-label 100 images expected 60% right, so the threshold stays at 0.9
    assert result.threshold == 0.9
    assert result.n_pool_accepted == 5  # the 0.95 images, valued as the 0.9 group (100%)
    assert result.pool_expected_accuracy == 1.0
    # AND validation alone would accept from 0.5: the 100 held-back images are the would-be ones
    assert result.validation_threshold == 0.5


def test_calibrate_scores_with_a_pool_like_validation_changes_nothing() -> None:
    pool = [c for c, _ in SHIFTED_VALIDATION]
    result = calibrate_scores(SHIFTED_VALIDATION, SHIFT_CONFIG, pool=pool)
    assert result.threshold == 0.5
    assert result.n_pool_accepted == 20
    assert result.pool_expected_accuracy == pytest.approx(0.8)


def test_calibrate_scores_pool_below_every_candidate_is_not_accepted() -> None:
    result = calibrate_scores(SHIFTED_VALIDATION, SHIFT_CONFIG, pool=[0.1, 0.2])
    assert result.threshold == 0.5
    assert result.n_pool_accepted == 0
    assert result.pool_expected_accuracy is None


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_calibrate_scores_names_a_bad_pool_confidence(bad: float) -> None:
    with pytest.raises(ValueError, match="pool confidence"):
        calibrate_scores(SHIFTED_VALIDATION, SHIFT_CONFIG, pool=[0.5, bad])


def test_calibrate_scores_pool_bound_distrusts_many_pool_images_on_few_validation_ones() -> None:
    # GIVEN validation that is all right at every confidence, but only 3 images at 0.2
    validation = [(0.9, 1.0)] * 30 + [(0.2, 1.0)] * 3
    # AND a later pool of 200 images at 0.25, all valued by those 3 images
    pool = [0.25] * 200
    # WHEN calibrating with and without a bound on the pool
    plain = calibrate_scores(validation, SHIFT_CONFIG, pool=pool)
    bounded_config = dataclasses.replace(SHIFT_CONFIG, confidence_level=0.9)
    bounded = calibrate_scores(validation, bounded_config, pool=pool)
    # THEN the plain mean trusts the 3 perfect images for all 200 pool images
    assert plain.threshold == 0.2
    assert plain.pool_expected_accuracy == 1.0
    assert plain.pool_lower_bound is None
    # AND the bound does not: (3 + 1) / (3 + 2) = 0.8 smoothed, se = sqrt(0.8 * 0.2 / 3)
    assert bounded.threshold == 0.9
    assert bounded.n_pool_accepted == 0
