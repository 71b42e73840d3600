"""Calibrate the auto-labeling threshold on human-labeled validation images.

The rule: accept an image when its confidence is at or above ``theta``; pick the lowest
``theta`` at which the validation images that would be accepted meet the accuracy target.
Picking the best prefix of a small validation set is optimistic (the prototype accepted
images at 64-73 % real accuracy against a 95 % target on 12-24 images, see
research/local-detector.md §5), so by default the target must be met by a one-sided lower
confidence bound, and no threshold is returned below a minimum number of images.

The validation set is a random sample, but the pool is not: every round auto-labels the
pool's confident images and sends its doubtful ones to humans, so later rounds see a pool
whose confidences crowd just above any threshold. Validation images above ``theta`` are
mostly far above it and right; the pool images above it are mostly near it and right less
often (measured on the demo: 90 % on validation, 80 % on the images accepted in round 3).
Given the pool's confidences, the threshold must therefore also reach the target in
expectation over the pool images it would accept, each weighted by the accuracy that
validation images of its confidence have (an isotonic fit, accuracy non-decreasing in
confidence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Literal, NamedTuple

from boxloop.core.errors import ConfigError
from boxloop.core.matching import match_boxes
from boxloop.core.metrics import image_mean_iou

if TYPE_CHECKING:
    from collections.abc import Iterable

    from boxloop.core.detections import Detections

Metric = Literal["mean_iou", "exact_match"]
"""Per-image accuracy of an auto-label (see :func:`image_score`)."""

DEFAULT_TARGETS: dict[Metric, float] = {"mean_iou": 0.6, "exact_match": 0.9}
"""Ground Truth's bounding-box requirement (mean IoU 0.6), and 90 % of images exactly right.

Ground Truth's 95 % is for classification, one answer per image; an image is exactly right
only when every box is, and the demo's measured recipe (``boxloop.local.demo``) reaches 0.9."""

CurvePoint = tuple[float, float, float]
"""(threshold, accuracy of the images at or above it, coverage = their share of all)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationConfig:
    """What "good enough" means for auto-labels.

    Attributes:
        metric: ``mean_iou`` or ``exact_match`` (see :func:`image_score`).
        target: Accuracy the accepted images must reach; ``None`` takes
            :data:`DEFAULT_TARGETS` for the metric.
        confidence_level: One-sided level of the lower bound that must reach the target
            (e.g. 0.9), on validation and on the pool's expected accuracy alike; ``None``
            compares the plain means (optimistic on few images).
        min_accepted: Fewest validation images a threshold must accept to be trusted.
        min_validation: Fewest validation images below which no threshold is returned.
        match_iou: IoU a predicted box needs to match a reference box for ``exact_match``.
        max_curve_points: The returned curve is thinned to about this many points.

    Raises:
        ConfigError: Listing every invalid value.
    """

    metric: Metric = "mean_iou"
    target: float | None = None
    confidence_level: float | None = 0.9
    min_accepted: int = 20
    min_validation: int = 50
    match_iou: float = 0.5
    max_curve_points: int = 200

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.metric not in DEFAULT_TARGETS:
            problems.append(f"metric must be one of {sorted(DEFAULT_TARGETS)}, got {self.metric!r}")
        if self.target is not None and not _in_range(self.target, 0.0, 1.0, closed_low=False):
            problems.append(f"target must be a number in (0, 1], got {self.target!r}")
        level = self.confidence_level
        if level is not None and not _in_range(level, 0.5, 1.0, closed_high=False):
            problems.append(f"confidence_level must be in [0.5, 1) or None, got {level!r}")
        for name, value, low in (
            ("min_accepted", self.min_accepted, 1),
            ("min_validation", self.min_validation, 1),
            ("max_curve_points", self.max_curve_points, 2),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                problems.append(f"{name} must be an int >= {low}, got {value!r}")
        if not _in_range(self.match_iou, 0.0, 1.0, closed_low=False):
            problems.append(f"match_iou must be a number in (0, 1], got {self.match_iou!r}")
        if problems:
            raise ConfigError(problems)

    @property
    def resolved_target(self) -> float:
        """The target, with the metric's default filled in."""
        return self.target if self.target is not None else DEFAULT_TARGETS[self.metric]

    @property
    def z(self) -> float | None:
        """The one-sided normal quantile of ``confidence_level`` (1.2816 for 0.9), or None."""
        if self.confidence_level is None:
            return None
        return NormalDist().inv_cdf(self.confidence_level)


def _in_range(
    value: object, low: float, high: float, *, closed_low: bool = True, closed_high: bool = True
) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    above = value >= low if closed_low else value > low
    below = value <= high if closed_high else value < high
    return above and below


@dataclass(frozen=True, slots=True, kw_only=True)
class Calibration:
    """The chosen threshold and what it is expected to deliver.

    Attributes:
        threshold: Auto-label images with confidence ``>=`` this; ``None`` = auto-label
            nothing this round (too few validation images, or no threshold meets the target).
        expected_accuracy: Mean per-image metric of the accepted validation images.
        lower_bound: Its one-sided lower confidence bound (``None`` without a level).
        coverage: Share of validation images accepted (0 when ``threshold`` is None).
        n_validation: Validation images seen.
        n_accepted: Validation images at or above the threshold.
        metric: The metric used.
        target: The accuracy the threshold had to reach.
        curve: ``(threshold, accuracy, coverage)`` from the highest threshold down, one
            point per distinct confidence, thinned to about ``max_curve_points``.
        pool_expected_accuracy: Expected accuracy of the pool images the threshold accepts,
            when the pool was given (``None`` otherwise, or when it accepts none).
        pool_lower_bound: Its one-sided lower bound at ``confidence_level`` (``None``
            without a level).
        n_pool_accepted: Pool images at or above the threshold (``None`` without a pool).
        validation_threshold: The lowest threshold the validation images alone certify (their
            bound and ``min_accepted``, not the pool's test); ``threshold`` without a pool.
            Open pool images at or above it that ``threshold`` leaves unlabeled are the
            would-be auto-labels whose human labels the pool's test lacks (the audit).
    """

    threshold: float | None
    expected_accuracy: float | None
    lower_bound: float | None
    coverage: float
    n_validation: int
    n_accepted: int
    metric: Metric
    target: float
    curve: tuple[CurvePoint, ...]
    pool_expected_accuracy: float | None = None
    pool_lower_bound: float | None = None
    n_pool_accepted: int | None = None
    validation_threshold: float | None = None


def image_score(
    predicted: Detections, reference: Detections, metric: Metric, *, match_iou: float = 0.5
) -> float:
    """How good one image's auto-label is, in ``[0, 1]``.

    * ``mean_iou`` (Ground Truth's box metric, per image; ``boxloop.core.metrics.image_mean_iou``):
      per class, every reference box contributes the IoU of its matched prediction or 0 and
      every unmatched prediction 0; the class means are averaged. Any same-class overlap counts
      as a match (IoU > 0), so a loose box earns partial credit. Both empty scores 1.0.
    * ``exact_match``: 1.0 when every box pairs one-to-one with a reference box of the same
      class at IoU ``>= match_iou`` and none is missing or extra, else 0.0.

    Args:
        predicted: The auto-label (the kept boxes), pixels.
        reference: The human label of the same image, pixels.
        metric: Which score.
        match_iou: Pairing IoU for ``exact_match``.

    Returns:
        The score in ``[0, 1]``.

    Raises:
        ValueError: When the two sides belong to different images.
    """
    if predicted.image_id != reference.image_id:
        raise ValueError(
            f"predicted image {predicted.image_id!r} compared with reference of "
            f"{reference.image_id!r}: the validation join is broken"
        )
    if metric == "exact_match":
        matching = match_boxes(predicted.boxes, reference.boxes, iou_threshold=match_iou)
        return 1.0 if matching.is_exact else 0.0
    return image_mean_iou(predicted, reference, iou_threshold=math.ulp(0.0))


def wilson_lower_bound(successes: float, n: int, z: float) -> float:
    """One-sided Wilson score lower bound of a proportion ``successes / n``.

    Unlike ``p - z * se`` it stays sensible at ``p = 1`` and small ``n`` (20 of 20 at
    ``z = 1.2816`` gives 0.924, not 1.0). Returns 0.0 for ``n == 0``.
    """
    if n <= 0:
        return 0.0
    p = successes / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(max(p * (1 - p) / n + z2 / (4 * n * n), 0.0))
    return max(0.0, (centre - spread) / (1 + z2 / n))


def mean_lower_bound(mean: float, variance: float, n: int, z: float) -> float:
    """Normal-approximation lower bound ``mean - z * sd / sqrt(n)``, clipped to ``[0, 1]``.

    ``variance`` is the sample variance (``n - 1`` denominator). Per-image mean IoU is a
    bounded, usually left-skewed variable, so this is an approximation; it is conservative in
    the sense that it only ever lowers the mean. With ``n < 2`` the spread is unknown and the
    bound is 0.
    """
    if n < 2:
        return 0.0
    return min(1.0, max(0.0, mean - z * math.sqrt(max(variance, 0.0) / n)))


def calibrate_threshold(
    validation: Iterable[tuple[float, Detections, Detections]],
    config: CalibrationConfig | None = None,
    *,
    pool: Iterable[float] | None = None,
) -> Calibration:
    """Pick the lowest confidence threshold whose accepted validation images meet the target.

    Args:
        validation: ``(confidence, predicted kept boxes, reference boxes)`` per validation
            image, streamed; only ``(confidence, score)`` pairs are held (16 bytes-ish each).
        config: Metric, target, bound and minimum sizes; the defaults when ``None``.
        pool: Confidences of the images the threshold will be applied to (see
            :func:`calibrate_scores`).

    Returns:
        The calibration; see :func:`calibrate_scores`.

    Raises:
        ValueError: For a confidence outside ``[0, 1]`` or a broken join (see
            :func:`image_score`).
    """
    config = config or CalibrationConfig()
    scored = (
        (confidence, image_score(predicted, reference, config.metric, match_iou=config.match_iou))
        for confidence, predicted, reference in validation
    )
    return calibrate_scores(scored, config, pool=pool)


class FittedGroup(NamedTuple):
    """The isotonic accuracy of one confidence group, and the block it was pooled into."""

    accuracy: float
    block: int
    block_images: int
    block_variance: float
    """Binomial variance of the block's accuracy estimate, ``p(1 - p) / n`` with the
    Laplace-smoothed ``p = (sum + 1) / (n + 2)``, so a block that is all right still counts
    as uncertain; it bounds the variance of any score in ``[0, 1]``."""


def isotonic_accuracy(groups: list[tuple[float, int, float]]) -> list[FittedGroup]:
    """Accuracy per confidence group, fitted non-decreasing in confidence.

    Pool adjacent violators, weighted by group size: a less confident group that did better
    than a more confident one is noise on a few images, so the two share their mean.

    Args:
        groups: ``(confidence, images, sum of scores)`` per distinct confidence, highest first.

    Returns:
        The fit per group, in the same order.
    """
    blocks: list[list[float]] = []  # [sum, images, groups merged], lowest confidence first
    for _, count, total in reversed(groups):
        blocks.append([total, count, 1])
        while len(blocks) > 1 and blocks[-2][0] * blocks[-1][1] > blocks[-1][0] * blocks[-2][1]:
            total_, count_, merged = blocks.pop()
            blocks[-1][0] += total_
            blocks[-1][1] += count_
            blocks[-1][2] += merged
    fitted = []
    for index, (total, count, merged) in enumerate(blocks):
        smoothed = (total + 1.0) / (count + 2.0)
        variance = smoothed * (1.0 - smoothed) / count
        fitted.extend([FittedGroup(total / count, index, int(count), variance)] * int(merged))
    return fitted[::-1]


def calibrate_scores(
    scored: Iterable[tuple[float, float]],
    config: CalibrationConfig | None = None,
    *,
    pool: Iterable[float] | None = None,
) -> Calibration:
    """:func:`calibrate_threshold` on precomputed ``(confidence, per-image score)`` pairs.

    Images are sorted by confidence, descending; equal confidences form one group because a
    threshold accepts all or none of them. Walking the groups from the top, the accepted set
    is always a prefix, so its count, sum and variance update in O(1) per image (Welford):
    O(n log n) overall and deterministic (ties are ordered by score, so input order does not
    matter). A group's threshold qualifies when it accepts ``>= min_accepted`` images and the
    lower bound (or the mean, without a level) reaches the target; the lowest qualifying
    threshold wins, and ``None`` is returned with fewer than ``min_validation`` images.
    The bound is Wilson's for ``exact_match`` (a proportion) and :func:`mean_lower_bound`
    for ``mean_iou``.

    With ``pool``, a threshold must also reach the target on the pool: the mean over the pool
    confidences at or above it of :func:`isotonic_accuracy` at each one's confidence (a pool
    confidence between two validation groups takes the lower group's accuracy; above the
    highest, the highest's). With a ``confidence_level`` its lower bound must: the mean minus
    ``z`` standard errors, each isotonic block's estimate weighted by the pool images it holds,
    so a threshold that sends many pool images into a block measured on few validation
    images is not trusted (measured on the demo: a plain mean expected 91 % where 80 % were
    right). A threshold that accepts no pool image passes this test trivially. The pool's
    confidences are held sorted (8 bytes per image).

    Args:
        scored: ``(confidence, score)`` pairs, both in ``[0, 1]``.
        config: As for :func:`calibrate_threshold`.
        pool: Confidences of the unlabeled images the threshold will be applied to, in
            ``[0, 1]``; ``None`` calibrates on the validation images alone.

    Returns:
        The calibration, with the curve for plotting.

    Raises:
        ValueError: For a confidence or score outside ``[0, 1]``.
    """
    config = config or CalibrationConfig()
    pairs = [_checked(confidence, score) for confidence, score in scored]
    pairs.sort(key=lambda pair: (-pair[0], -pair[1]))
    tally = None
    if pool is not None:
        tally = _PoolTally(
            sorted((_checked_pool(c) for c in pool), reverse=True),
            isotonic_accuracy(_groups(pairs)),
            config.z,
        )
    n_validation = len(pairs)
    target, z = config.resolved_target, config.z
    curve: list[CurvePoint] = []
    best: _Choice | None = None
    validation_best: float | None = None
    count, total, running_mean, m2 = 0, 0.0, 0.0, 0.0
    for index, (confidence, score) in enumerate(pairs):
        count += 1
        total += score  # exact for 0/1 scores, so "45 of 50 >= 0.9" holds exactly
        delta = score - running_mean
        running_mean += delta / count
        m2 += delta * (score - running_mean)
        if index + 1 < n_validation and pairs[index + 1][0] == confidence:
            continue  # the group of equal confidences is not complete yet
        mean = total / count
        curve.append((confidence, mean, count / n_validation))
        bound = None
        if z is not None:
            bound = (
                wilson_lower_bound(mean * count, count, z)
                if config.metric == "exact_match"
                else mean_lower_bound(mean, m2 / (count - 1) if count > 1 else 0.0, count, z)
            )
        reaches = (bound if bound is not None else mean) >= target
        if count >= config.min_accepted and reaches:
            validation_best = confidence
        pool_mean = pool_bound = None
        if tally is not None:
            pool_mean, pool_bound = tally.accept_next_group(confidence)
            pool_value = pool_bound if pool_bound is not None else pool_mean
            reaches = reaches and (pool_value is None or pool_value >= target - 1e-12)
        if count >= config.min_accepted and reaches:
            pool_count = None if tally is None else tally.count
            best = _Choice(confidence, mean, bound, count, pool_mean, pool_bound, pool_count)
    if n_validation < config.min_validation:
        best = validation_best = None
    return Calibration(
        threshold=best.threshold if best else None,
        expected_accuracy=best.mean if best else None,
        lower_bound=best.bound if best else None,
        coverage=best.count / n_validation if best else 0.0,
        n_validation=n_validation,
        n_accepted=best.count if best else 0,
        metric=config.metric,
        target=target,
        curve=_thin(curve, config.max_curve_points),
        pool_expected_accuracy=best.pool_mean if best else None,
        pool_lower_bound=best.pool_bound if best else None,
        n_pool_accepted=None if tally is None else (best.pool_count if best else 0),
        validation_threshold=validation_best,
    )


class _Choice(NamedTuple):
    """A qualifying threshold and what it delivers (the lowest one wins)."""

    threshold: float
    mean: float
    bound: float | None
    count: int
    pool_mean: float | None
    pool_bound: float | None
    pool_count: int | None


class _PoolTally:
    """The pool images accepted as the threshold walks down the validation groups.

    Each pool image is valued by the isotonic accuracy of the validation group just at or
    below its confidence; the bound's variance is ``sum over blocks of (pool images in the
    block)^2 * block variance``, divided by the accepted count squared.
    """

    def __init__(self, descending: list[float], fitted: list[FittedGroup], z: float | None):
        self._confidences, self._fitted, self._z = descending, fitted, z
        self._group = 0
        self.count = 0
        self._total = 0.0
        self._square_sum = 0.0
        self._in_block: dict[int, int] = {}

    def accept_next_group(self, confidence: float) -> tuple[float | None, float | None]:
        """Accept the pool images down to the next validation group's ``confidence``.

        Returns:
            The expected accuracy of every pool image accepted so far and its lower bound
            (``None`` without a level); both ``None`` while no pool image is accepted.
        """
        before = self.count
        while self.count < len(self._confidences) and self._confidences[self.count] >= confidence:
            self.count += 1
        fit = self._fitted[self._group]
        self._group += 1
        added = self.count - before
        self._total += added * fit.accuracy  # one product per group: no float drift
        in_block = self._in_block.get(fit.block, 0)
        self._square_sum += ((in_block + added) ** 2 - in_block**2) * fit.block_variance
        self._in_block[fit.block] = in_block + added
        if not self.count:
            return None, None
        mean = self._total / self.count
        if self._z is None:
            return mean, None
        return mean, mean - self._z * math.sqrt(self._square_sum) / self.count


def _groups(pairs: list[tuple[float, float]]) -> list[tuple[float, int, float]]:
    """``(confidence, images, sum of scores)`` per distinct confidence of sorted pairs."""
    groups: list[tuple[float, int, float]] = []
    for confidence, score in pairs:
        if groups and groups[-1][0] == confidence:
            _, count, total = groups[-1]
            groups[-1] = (confidence, count + 1, total + score)
        else:
            groups.append((confidence, 1, score))
    return groups


def _checked(confidence: float, score: float) -> tuple[float, float]:
    for name, value in (("confidence", confidence), ("score", score)):
        if not _in_range(value, 0.0, 1.0):
            raise ValueError(f"validation {name} must be a number in [0, 1], got {value!r}")
    return (float(confidence), float(score))


def _checked_pool(confidence: float) -> float:
    if not _in_range(confidence, 0.0, 1.0):
        raise ValueError(f"pool confidence must be a number in [0, 1], got {confidence!r}")
    return float(confidence)


def _thin(curve: list[CurvePoint], max_points: int) -> tuple[CurvePoint, ...]:
    """Every ``ceil(len / max_points)``-th point, always keeping the first and the last."""
    if len(curve) <= max_points:
        return tuple(curve)
    stride = math.ceil(len(curve) / (max_points - 1))
    kept = curve[::stride]
    if kept[-1] is not curve[-1]:
        kept.append(curve[-1])
    return tuple(kept)
