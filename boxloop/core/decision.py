"""The auto-label decision: validation evidence in, one threshold with a stated promise out.

**The promise.** With probability at least ``confidence_level`` over the draw of the
validation images, the images at or above the chosen threshold have an expected accuracy of at
least the target, per image (the target metric) and per box, provided the validation images
are a random sample of the images the threshold is applied to.

**The rule** (fixed-sequence testing, as in Learn-then-Test, Angelopoulos et al. 2021).
The thresholds tested are fixed before any validation label is looked at: the open pool's
confidence quantiles, the most confident ``1/grid_steps`` of the pool, then ``2/grid_steps``,
and so on (the pool's images are not the validation images, so the grid does not depend on
the labels it is tested with). The sequence starts at the first share at which the
validation images would be expected to number ``max(min_accepted, n_min + n_validation / 8)``,
where ``n_min`` is the fewest images whose perfect record passes the bound (16 for 90 % at
level 0.8); above it a test could hardly pass, and a failed first test would end the walk.
Going down, each threshold is tested: the validation images at or above it must reach the
target with their exact lower bound (Clopper-Pearson for a share of images exactly right,
empirical Bernstein for mean IoU) and the boxes with theirs. The first failure
stops the walk; the last threshold that passed is chosen. Every test is at level ``delta``,
and the walk stops at the first failure, so the chance of passing any threshold whose true
accuracy misses the target is at most ``delta`` (no union over thresholds is paid, because a
false pass needs the first failing threshold to pass).

The old rule, "the lowest of all thresholds whose bound passes", tests about a hundred
thresholds and keeps the luckiest: its promise did not hold (``docs/benchmarks.md``).

**What it does not cover.** Images earlier rounds auto-labeled leave survivors harder than
validation, so the promise is made for the pool the decision sees; ``defer_auto_labels``
applies the threshold only with the last model, on the pool validation stands for. The box
bound treats images as units under a normal approximation (see :mod:`.calibration`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from boxloop.core.calibration import (
    CalibrationConfig,
    CurvePoint,
    ImageEvidence,
    Metric,
    clopper_pearson_interval,
    clopper_pearson_lower,
    empirical_bernstein_lower,
    ratio_lower_bound,
    thin_curve,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

Rule = Literal["fixed_sequence", "fixed_threshold", "none"]

START_MARGIN = 8
"""The walk starts where ``n_min + n_validation / 8`` validation images are expected: at
``n_min`` a single miss fails the first test and ends the walk. Chosen on
``bench.calibration``'s synthetic inputs (efficiency at 120 validation images 0.60 -> 0.84 on
the demo-like one); it depends on no label, so the promise holds for any value."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Accuracy:
    """What a set of human-labeled images says about their auto-labels.

    Attributes:
        images: Images in the set.
        empty_images: Those whose human label holds no box (an empty auto-label is right
            there, and scores 1.0 under any image metric).
        image_accuracy: Mean per-image metric (``None`` for no image).
        image_bound: Its lower bound at the decision's level (``None`` without a level).
        boxes: Boxes judged (pairs + missed + extra).
        box_accuracy: Box credit / boxes (``None`` for no box).
        box_bound: Its lower bound (``None`` without a level or a box).
    """

    images: int = 0
    empty_images: int = 0
    image_accuracy: float | None = None
    image_bound: float | None = None
    boxes: int = 0
    box_accuracy: float | None = None
    box_bound: float | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (the field names)."""
        return {name: getattr(self, name) for name in _ACCURACY_FIELDS}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Accuracy:
        """Parse :meth:`to_json`'s form."""
        return cls(
            **{name: data.get(name, getattr(_NO_ACCURACY, name)) for name in _ACCURACY_FIELDS}
        )


_ACCURACY_FIELDS = (
    "images",
    "empty_images",
    "image_accuracy",
    "image_bound",
    "boxes",
    "box_accuracy",
    "box_bound",
)
_NO_ACCURACY = Accuracy()


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One threshold of the fixed sequence and what its validation images showed."""

    threshold: float
    pool_share: float
    accuracy: Accuracy
    passed: bool

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "threshold": self.threshold,
            "pool_share": self.pool_share,
            "passed": self.passed,
            **self.accuracy.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Step:
        """Parse :meth:`to_json`'s form."""
        return cls(
            threshold=data["threshold"],
            pool_share=data["pool_share"],
            passed=data["passed"],
            accuracy=Accuracy.from_json(data),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The threshold, why, what it is expected to deliver and what it would accept.

    Attributes:
        threshold: Auto-label open images with confidence ``>=`` it; ``None``: none.
        reason: Why, in one sentence a user can read.
        rule: ``fixed_sequence`` (certified), ``fixed_threshold`` (configured, no promise)
            or ``none`` (nothing tested: no validation, no pool, failed gate).
        metric: The image metric.
        target: The accuracy promised, per image and per box.
        confidence_level: The probability the promise holds with (``None``: plain means).
        n_validation: Validation images seen.
        accepted: The validation images at or above ``threshold``: their accuracy and bounds.
        n_pool: Open images the threshold may auto-label.
        n_pool_accepted: Those at or above ``threshold``: what would be auto-labeled.
        tested: The fixed sequence as walked, most conservative first.
        curve: ``(threshold, accuracy, validation share)`` per distinct validation confidence.
    """

    threshold: float | None
    reason: str
    rule: Rule
    metric: Metric
    target: float
    confidence_level: float | None
    n_validation: int
    accepted: Accuracy
    n_pool: int
    n_pool_accepted: int
    tested: tuple[Step, ...] = ()
    curve: tuple[CurvePoint, ...] = ()

    @property
    def pool_share(self) -> float:
        """Share of the open images the threshold would auto-label."""
        return self.n_pool_accepted / self.n_pool if self.n_pool else 0.0

    def to_json(self) -> dict[str, Any]:
        """The ``auto_label`` block of the iteration report."""
        return {
            "threshold": self.threshold,
            "reason": self.reason,
            "rule": self.rule,
            "metric": self.metric,
            "target": self.target,
            "confidence_level": self.confidence_level,
            "n_validation": self.n_validation,
            "accepted": self.accepted.to_json(),
            "n_pool": self.n_pool,
            "n_pool_accepted": self.n_pool_accepted,
            "tested": [test.to_json() for test in self.tested],
            "curve": [list(point) for point in self.curve],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Decision:
        """Parse the ``auto_label`` block (:meth:`to_json`'s form)."""
        return cls(
            threshold=data["threshold"],
            reason=data["reason"],
            rule=data["rule"],
            metric=data["metric"],
            target=data["target"],
            confidence_level=data["confidence_level"],
            n_validation=data["n_validation"],
            accepted=Accuracy.from_json(data["accepted"]),
            n_pool=data["n_pool"],
            n_pool_accepted=data["n_pool_accepted"],
            tested=tuple(Step.from_json(t) for t in data.get("tested", ())),
            curve=tuple(tuple(point) for point in data.get("curve", ())),  # type: ignore[misc]
        )


class _Tally:
    """Running sums over a prefix of the validation images, most confident first."""

    __slots__ = ("boxes", "boxes_sq", "credit", "credit_sq", "cross", "empty", "n", "sq", "total")

    def __init__(self) -> None:
        self.n = self.empty = self.boxes = 0
        self.total = self.sq = self.credit = self.credit_sq = self.cross = self.boxes_sq = 0.0

    def add(self, item: ImageEvidence) -> None:
        self.n += 1
        self.empty += item.empty
        self.total += item.score
        self.sq += item.score * item.score
        self.boxes += item.boxes
        self.credit += item.box_score
        self.credit_sq += item.box_score * item.box_score
        self.cross += item.box_score * item.boxes
        self.boxes_sq += item.boxes * item.boxes

    def accuracy(self, metric: Metric, delta: float | None) -> Accuracy:
        if not self.n:
            return Accuracy()
        mean = self.total / self.n
        image_bound = box_bound = None
        if delta is not None:
            image_bound = (
                clopper_pearson_lower(round(self.total), self.n, delta)
                if metric == "exact_match"
                else empirical_bernstein_lower(self.total, self.sq, self.n, delta)
            )
            if self.boxes:
                box_bound = ratio_lower_bound(
                    self.credit,
                    self.boxes,
                    self.cross,
                    self.credit_sq,
                    self.boxes_sq,
                    self.n,
                    delta,
                )
        return Accuracy(
            images=self.n,
            empty_images=self.empty,
            image_accuracy=mean,
            image_bound=image_bound,
            boxes=self.boxes,
            box_accuracy=self.credit / self.boxes if self.boxes else None,
            box_bound=box_bound,
        )


def meets(accuracy: Accuracy, target: float) -> bool:
    """The images (bound, else mean) and their boxes (likewise, when any) reach ``target``."""
    if not accuracy.images:
        return False
    image = accuracy.image_bound if accuracy.image_bound is not None else accuracy.image_accuracy
    box = accuracy.box_bound if accuracy.box_bound is not None else accuracy.box_accuracy
    eps = 1e-12  # "45 of 50 >= 0.9" must hold exactly
    return image is not None and image >= target - eps and (box is None or box >= target - eps)


def smallest_passing_sample(config: CalibrationConfig, limit: int) -> int | None:
    """Fewest images whose perfect record passes the bound (``None``: not within ``limit``)."""
    delta, target = config.delta, config.resolved_target
    for n in range(1, limit + 1):
        if delta is None:
            bound = 1.0
        elif config.metric == "exact_match":
            bound = clopper_pearson_lower(n, n, delta)
        else:
            bound = empirical_bernstein_lower(float(n), float(n), n, delta)
        if bound >= target - 1e-12:
            return n
    return None


def accuracy_at(
    validation: Sequence[ImageEvidence], threshold: float, config: CalibrationConfig
) -> Accuracy:
    """The accuracy and bounds of the validation images at or above ``threshold``."""
    tally = _Tally()
    for item in validation:
        if item.confidence >= threshold:
            tally.add(item)
    return tally.accuracy(config.metric, config.delta)


def decide(
    validation: Iterable[ImageEvidence],
    pool: Iterable[float],
    config: CalibrationConfig | None = None,
    *,
    fixed_threshold: float | None = None,
    gate_passed: bool = True,
) -> Decision:
    """The auto-label decision of one round (see the module docstring for the rule).

    Args:
        validation: One :class:`ImageEvidence` per human-labeled validation image.
        pool: Confidences of the open images the threshold may auto-label (8 bytes each are
            held, sorted).
        config: Metric, target, level and sizes; the defaults when ``None``.
        fixed_threshold: A configured cut instead of the rule (reported, never certified).
        gate_passed: False when the model failed its quality gate: nothing is auto-labeled.

    Returns:
        The decision; pure: the same evidence gives the same decision.
    """
    config = config or CalibrationConfig()
    items = sorted(validation, key=lambda e: (-e.confidence, -e.score))
    confidences = sorted((float(c) for c in pool), reverse=True)
    target, delta = config.resolved_target, config.delta
    common = {
        "metric": config.metric,
        "target": target,
        "confidence_level": config.confidence_level,
        "n_validation": len(items),
        "n_pool": len(confidences),
        "curve": _curve(items, config),
    }

    def none(reason: str, rule: Rule = "none", tested: tuple[Step, ...] = ()) -> Decision:
        return Decision(
            threshold=None,
            reason=reason,
            rule=rule,
            accepted=Accuracy(),
            n_pool_accepted=0,
            tested=tested,
            **common,  # type: ignore[arg-type]
        )

    if not gate_passed:
        return none("the model failed its quality gate: nothing is auto-labeled")
    if fixed_threshold is not None:
        accepted = accuracy_at(items, fixed_threshold, config)
        return Decision(
            threshold=fixed_threshold,
            reason=f"fixed threshold {fixed_threshold:g} (configured: no promise)",
            rule="fixed_threshold",
            accepted=accepted,
            n_pool_accepted=_count_at_or_above(confidences, fixed_threshold),
            **common,  # type: ignore[arg-type]
        )
    if not confidences:
        return none("no open image is left to auto-label")
    if len(items) < config.min_validation:
        return none(
            f"{len(items)} validation images, fewer than min_validation "
            f"({config.min_validation}): nothing is auto-labeled yet"
        )
    n_min = smallest_passing_sample(config, len(items))
    if n_min is None:
        return none(
            f"even {len(items)} validation images all right could not show {target:g} at "
            f"level {config.confidence_level}: more validation images are needed"
        )
    start = max(config.min_accepted, n_min + len(items) // START_MARGIN)
    tested: list[Step] = []
    chosen: Step | None = None
    tally, index = _Tally(), 0
    for threshold, n_accepted in _grid(confidences, config.grid_steps):
        share = n_accepted / len(confidences)
        if len(items) * share < start:
            continue  # too few validation images expected here for any test to pass
        while index < len(items) and items[index].confidence >= threshold:
            tally.add(items[index])
            index += 1
        accuracy = tally.accuracy(config.metric, delta)
        test = Step(threshold=threshold, pool_share=share, accuracy=accuracy, passed=False)
        if not meets(accuracy, target):
            tested.append(test)
            break
        test = Step(threshold=threshold, pool_share=share, accuracy=accuracy, passed=True)
        tested.append(test)
        chosen = test
    if chosen is None:
        first = tested[0] if tested else None
        detail = f" (at {first.threshold:.3f}: {_shown(first.accuracy, config)})" if first else ""
        return none(f"no threshold shows {target:g}{detail}", "fixed_sequence", tuple(tested))
    failed = tested[-1] if not tested[-1].passed else None
    why = (
        f"the most confident {chosen.pool_share:.0%} of the open images: "
        f"{_shown(chosen.accuracy, config)}"
    )
    why += (
        f"; the next step ({failed.threshold:.3f}) fails: {_shown(failed.accuracy, config)}"
        if failed
        else "; every step passed"
    )
    return Decision(
        threshold=chosen.threshold,
        reason=why,
        rule="fixed_sequence",
        accepted=chosen.accuracy,
        n_pool_accepted=_count_at_or_above(confidences, chosen.threshold),
        tested=tuple(tested),
        **common,  # type: ignore[arg-type]
    )


def _shown(accuracy: Accuracy, config: CalibrationConfig) -> str:
    """``"45 validation images (3 empty), 0.933 >= 0.91 bound; boxes 0.95 >= 0.92"``."""
    image = accuracy.image_accuracy or 0.0
    text = f"{accuracy.images} validation images ({accuracy.empty_images} empty), {image:.3f}"
    if accuracy.image_bound is not None:
        text += f" (bound {accuracy.image_bound:.3f})"
    if accuracy.box_accuracy is not None:
        text += f"; {accuracy.boxes} boxes {accuracy.box_accuracy:.3f}"
        if accuracy.box_bound is not None:
            text += f" (bound {accuracy.box_bound:.3f})"
    return text


def _grid(descending: list[float], steps: int) -> list[tuple[float, int]]:
    """``(threshold, pool images at or above it)`` at each ``j / steps`` of the pool, distinct."""
    grid: list[tuple[float, int]] = []
    n = len(descending)
    for j in range(1, steps + 1):
        threshold = descending[min(n, math.ceil(j * n / steps)) - 1]
        if grid and grid[-1][0] == threshold:
            continue
        grid.append((threshold, _count_at_or_above(descending, threshold)))
    return grid


def _count_at_or_above(descending: list[float], threshold: float) -> int:
    low, high = 0, len(descending)
    while low < high:
        mid = (low + high) // 2
        if descending[mid] >= threshold:
            low = mid + 1
        else:
            high = mid
    return low


def _curve(items: list[ImageEvidence], config: CalibrationConfig) -> tuple[CurvePoint, ...]:
    """(threshold, mean image metric, validation share) per distinct confidence."""
    points: list[CurvePoint] = []
    total = 0.0
    for index, item in enumerate(items):
        total += item.score
        if index + 1 < len(items) and items[index + 1].confidence == item.confidence:
            continue
        points.append((item.confidence, total / (index + 1), (index + 1) / len(items)))
    return thin_curve(points, config.max_curve_points)


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimate:
    """Delivered accuracy estimated from audited auto-labels, with a two-sided interval.

    Attributes:
        images: Audited images.
        empty_images: Those whose human label holds no box.
        image_accuracy: Mean per-image metric of their auto-labels (``None``: none audited).
        image_interval: ``(low, high)`` at ``level`` (exact for exact match).
        boxes: Boxes judged.
        box_accuracy: Box credit / boxes.
        box_interval: ``(low, high)`` (normal approximation over images).
        level: The interval's coverage.
    """

    images: int = 0
    empty_images: int = 0
    image_accuracy: float | None = None
    image_interval: tuple[float, float] | None = None
    boxes: int = 0
    box_accuracy: float | None = None
    box_interval: tuple[float, float] | None = None
    level: float = 0.9

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "images": self.images,
            "empty_images": self.empty_images,
            "image_accuracy": self.image_accuracy,
            "image_interval": list(self.image_interval) if self.image_interval else None,
            "boxes": self.boxes,
            "box_accuracy": self.box_accuracy,
            "box_interval": list(self.box_interval) if self.box_interval else None,
            "level": self.level,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Estimate:
        """Parse :meth:`to_json`'s form."""
        image, box = data.get("image_interval"), data.get("box_interval")
        return cls(
            images=data.get("images", 0),
            empty_images=data.get("empty_images", 0),
            image_accuracy=data.get("image_accuracy"),
            image_interval=tuple(image) if image else None,  # type: ignore[arg-type]
            boxes=data.get("boxes", 0),
            box_accuracy=data.get("box_accuracy"),
            box_interval=tuple(box) if box else None,  # type: ignore[arg-type]
            level=data.get("level", 0.9),
        )


def estimate(evidence: Iterable[ImageEvidence], metric: Metric, *, level: float = 0.9) -> Estimate:
    """What audited auto-labels say about delivered accuracy: the means and their intervals.

    The audit is a uniform random sample of the images a threshold accepts (or would), so
    its share of exact images estimates theirs without bias; the interval is Clopper-Pearson
    for exact match and empirical Bernstein for mean IoU, each side at ``(1 - level) / 2``.
    """
    tally = _Tally()
    for item in evidence:
        tally.add(item)
    if not tally.n:
        return Estimate(level=level)
    tail = (1.0 - level) / 2
    if metric == "exact_match":
        image_interval = clopper_pearson_interval(round(tally.total), tally.n, level)
    else:
        low = empirical_bernstein_lower(tally.total, tally.sq, tally.n, tail)
        flipped_total = tally.n - tally.total
        flipped_sq = tally.n - 2 * tally.total + tally.sq
        high = 1.0 - empirical_bernstein_lower(flipped_total, flipped_sq, tally.n, tail)
        image_interval = (low, high)
    box_interval = None
    if tally.boxes:
        low = ratio_lower_bound(
            tally.credit, tally.boxes, tally.cross, tally.credit_sq, tally.boxes_sq, tally.n, tail
        )
        ratio = tally.credit / tally.boxes
        box_interval = (low, min(1.0, 2 * ratio - low)) if tally.n >= 2 else (0.0, 1.0)
    return Estimate(
        images=tally.n,
        empty_images=tally.empty,
        image_accuracy=tally.total / tally.n,
        image_interval=image_interval,
        boxes=tally.boxes,
        box_accuracy=tally.credit / tally.boxes if tally.boxes else None,
        box_interval=box_interval,
        level=level,
    )
