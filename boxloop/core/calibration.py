"""What an auto-label's accuracy is, and exact bounds on it from human-labeled images.

The auto-label decision (:mod:`boxloop.core.decision`) certifies a threshold from validation
images: each one is scored here (per image and per box), and the scores become lower
confidence bounds that hold at a stated level without a normal approximation:

* a share of images exactly right is a binomial proportion: Clopper-Pearson's exact bound;
* a mean of per-image scores in ``[0, 1]`` (Ground Truth's mean IoU) takes Maurer and
  Pontil's empirical Bernstein bound, valid for any distribution on ``[0, 1]``;
* a share of boxes counts boxes, which come in images: the bound treats the image as the
  unit (a ratio estimator with the image-level spread), so many boxes of one image do not pass
  for independent evidence. It is a normal approximation, the only one; the report says so.

Empty images are counted as what they are: an empty auto-label on an empty image is right,
and scores 1.0 under an image metric, so a set of mostly empty images can meet an image-level
target while its boxes are poor. That is why boxes are scored (and certified) as well.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Literal

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
"""(threshold, accuracy of the validation images at or above it, their share of all)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationConfig:
    """What "good enough" means for auto-labels, and how sure the decision must be.

    Attributes:
        metric: ``mean_iou`` or ``exact_match`` (see :func:`image_score`).
        target: Accuracy the accepted images must reach, per image and per box; ``None``
            takes :data:`DEFAULT_TARGETS` for the metric.
        confidence_level: The probability ``1 - delta`` with which the promise holds over
            the draw of validation images (e.g. 0.8); ``None`` compares plain means (no
            promise: Ground Truth's rule).
        min_accepted: The fixed sequence of thresholds starts where the pool share it
            accepts would hold this many validation images (see :mod:`.decision`).
        min_validation: Fewest validation images below which nothing is auto-labeled.
        match_iou: IoU a predicted box needs to match a reference box (same class).
        grid_steps: The thresholds tested are the pool's confidence quantiles at
            ``1/grid_steps, 2/grid_steps, ...`` of the pool, most confident first.
        max_curve_points: The reported curve is thinned to about this many points.

    Raises:
        ConfigError: Listing every invalid value.
    """

    metric: Metric = "mean_iou"
    target: float | None = None
    confidence_level: float | None = 0.9
    min_accepted: int = 20
    min_validation: int = 50
    match_iou: float = 0.5
    grid_steps: int = 20
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
            ("grid_steps", self.grid_steps, 1),
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
    def delta(self) -> float | None:
        """The allowed failure probability ``1 - confidence_level`` (None without a level)."""
        return None if self.confidence_level is None else 1.0 - self.confidence_level


def _in_range(
    value: object, low: float, high: float, *, closed_low: bool = True, closed_high: bool = True
) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    above = value >= low if closed_low else value > low
    below = value <= high if closed_high else value < high
    return above and below


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

    Raises:
        ValueError: When the two sides belong to different images.
    """
    _check_join(predicted, reference)
    if metric == "exact_match":
        matching = match_boxes(predicted.boxes, reference.boxes, iou_threshold=match_iou)
        return 1.0 if matching.is_exact else 0.0
    return image_mean_iou(predicted, reference, iou_threshold=math.ulp(0.0))


@dataclass(frozen=True, slots=True)
class ImageEvidence:
    """One human-labeled image as the decision sees it (a few numbers, no boxes).

    Attributes:
        confidence: The model's image confidence in ``[0, 1]``.
        score: :func:`image_score` of the auto-label it would get.
        boxes: Boxes the auto-label is judged on: pairs + missed reference boxes + extra
            predicted boxes (0 for an empty auto-label of an empty image).
        box_score: The boxes' credit: pairs at ``match_iou`` (``exact_match``) or the sum of
            their IoUs (``mean_iou``); missed and extra boxes earn 0.
        empty: The human label holds no box.
    """

    confidence: float
    score: float
    boxes: int = 0
    box_score: float = 0.0
    empty: bool = False

    def __post_init__(self) -> None:
        for name in ("confidence", "score"):
            value = getattr(self, name)
            if not _in_range(value, 0.0, 1.0):
                raise ValueError(f"validation {name} must be a number in [0, 1], got {value!r}")
        if isinstance(self.boxes, bool) or not isinstance(self.boxes, int) or self.boxes < 0:
            raise ValueError(f"boxes must be an int >= 0, got {self.boxes!r}")
        if not _in_range(self.box_score, 0.0, float(self.boxes)):
            raise ValueError(
                f"box_score must be in [0, boxes={self.boxes}], got {self.box_score!r}"
            )


def image_evidence(
    confidence: float,
    predicted: Detections,
    reference: Detections,
    metric: Metric,
    *,
    match_iou: float = 0.5,
) -> ImageEvidence:
    """Score one validation (or audited) image's would-be auto-label against its human label.

    Raises:
        ValueError: When the two sides belong to different images, or for a confidence
            outside ``[0, 1]``.
    """
    score = image_score(predicted, reference, metric, match_iou=match_iou)
    matching = match_boxes(predicted.boxes, reference.boxes, iou_threshold=match_iou)
    pairs = len(matching.pairs)
    boxes = len(predicted.boxes) + len(reference.boxes) - pairs
    credit = float(pairs) if metric == "exact_match" else math.fsum(p.iou for p in matching.pairs)
    return ImageEvidence(
        confidence=float(confidence),
        score=score,
        boxes=boxes,
        box_score=min(credit, float(boxes)),
        empty=not reference.boxes,
    )


def _check_join(predicted: Detections, reference: Detections) -> None:
    if predicted.image_id != reference.image_id:
        raise ValueError(
            f"predicted image {predicted.image_id!r} compared with reference of "
            f"{reference.image_id!r}: the validation join is broken"
        )


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return result


def _regularized_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b)``, the regularized incomplete beta function (Numerical Recipes 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _binomial_tail(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``: ``I_p(k, n - k + 1)``."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return _regularized_beta(float(k), float(n - k + 1), p)


@functools.lru_cache(maxsize=65536)
def clopper_pearson_lower(successes: int, n: int, delta: float) -> float:
    """Exact one-sided ``1 - delta`` lower bound of a binomial proportion (Clopper-Pearson).

    Cached: a decision walks nested prefixes and a round re-tests the same counts.

    The largest ``p`` with ``P(X >= successes | n, p) <= delta``: for any true proportion,
    the bound exceeds it with probability at most ``delta``. 20 of 20 at ``delta = 0.2``
    gives 0.923; 0 successes or ``n = 0`` give 0.0.
    """
    if n <= 0 or successes <= 0:
        return 0.0
    if successes >= n:
        return delta ** (1.0 / n)
    low, high = 0.0, successes / n
    for _ in range(60):  # bisection to ~1e-18: the tail is increasing in p
        mid = (low + high) / 2
        if _binomial_tail(successes, n, mid) > delta:
            high = mid
        else:
            low = mid
    return low


def clopper_pearson_interval(successes: int, n: int, level: float) -> tuple[float, float]:
    """Exact two-sided ``level`` interval of a binomial proportion (``(0, 1)`` for ``n = 0``)."""
    if n <= 0:
        return (0.0, 1.0)
    tail = (1.0 - level) / 2
    low = clopper_pearson_lower(successes, n, tail)
    high = 1.0 - clopper_pearson_lower(n - successes, n, tail)
    return (low, high)


def empirical_bernstein_lower(total: float, square_total: float, n: int, delta: float) -> float:
    """A ``1 - delta`` lower bound of the mean of ``n`` i.i.d. values in ``[0, 1]``.

    Maurer and Pontil (2009), Theorem 4: ``mean - sqrt(2 V ln(2/delta) / n) - 7 ln(2/delta) /
    (3 (n - 1))`` with ``V`` the sample variance. Valid for any distribution on ``[0, 1]``
    (mean IoU is bounded and skewed), at the price of being looser than a normal bound.
    """
    if n < 2:
        return 0.0
    mean = total / n
    variance = max(0.0, (square_total - n * mean * mean) / (n - 1))
    log_term = math.log(2.0 / delta)
    bound = mean - math.sqrt(2.0 * variance * log_term / n) - 7.0 * log_term / (3.0 * (n - 1))
    return min(1.0, max(0.0, bound))


def ratio_lower_bound(
    credit: float,
    boxes: int,
    cross: float,
    square_credit: float,
    square_boxes: float,
    n: int,
    delta: float,
) -> float:
    """A ``1 - delta`` lower bound of ``sum credit / sum boxes`` over images (approximate).

    The ratio estimator's spread from the images as units: the residuals ``c_i - R b_i`` have
    variance ``(sum c^2 - 2 R sum c b + R^2 sum b^2) / (n - 1)``, and the ratio's standard
    error is ``sqrt(variance / n) / mean boxes``. A normal approximation, the one bound here
    that is not exact; with fewer than 2 images there is no spread and the bound is 0.
    """
    if n < 2 or boxes <= 0:
        return 0.0
    ratio = credit / boxes
    residual = max(0.0, square_credit - 2 * ratio * cross + ratio * ratio * square_boxes)
    se = math.sqrt(residual / (n - 1) / n) / (boxes / n)
    return min(1.0, max(0.0, ratio - NormalDist().inv_cdf(1.0 - delta) * se))


def thin_curve(curve: Iterable[CurvePoint], max_points: int) -> tuple[CurvePoint, ...]:
    """Every ``ceil(len / max_points)``-th point, always keeping the first and the last."""
    points = list(curve)
    if len(points) <= max_points:
        return tuple(points)
    stride = math.ceil(len(points) / (max_points - 1))
    kept = points[::stride]
    if kept[-1] is not points[-1]:
        kept.append(points[-1])
    return tuple(kept)
