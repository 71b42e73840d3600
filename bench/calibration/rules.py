"""The compared rules: each takes validation rows and the pool's confidences, returns a cut.

* ``new``: boxloop's decision (:func:`boxloop.core.decision.decide`), exact match 0.9 at
  level 0.8, image and box tests, as the measured recipe asks.
* ``old``: the rule it replaced: the lowest validation confidence at which the accepted
  images' one-sided Wilson bound (level 0.8) reaches 0.9 with >= 15 images. (Its pool-aware
  isotonic test is left out: it only raised the cut on later rounds' shifted pools, and this
  replay has no shift.)
* ``fixed-0.5``: the AWS samples' fixed cut, on boxloop's image confidence.
* ``ground-truth``: Ground Truth's: the lowest cut whose validation images' plain mean
  (image) IoU reaches 0.6, with >= 15 images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist

from boxloop.core.calibration import CalibrationConfig, ImageEvidence
from boxloop.core.decision import decide

Row = Sequence  # (confidence, exact, iou, boxes, boxes_right, box_iou, empty, role)
Rule = Callable[[list[Row], list[float]], float | None]

TARGET, LEVEL, MIN_ACCEPTED = 0.9, 0.8, 15
RECIPE = CalibrationConfig(
    metric="exact_match",
    target=TARGET,
    confidence_level=LEVEL,
    min_accepted=MIN_ACCEPTED,
    min_validation=40,
)


def evidence(row: Row) -> ImageEvidence:
    """A row as the decision sees it (exact match)."""
    return ImageEvidence(
        confidence=row[0],
        score=float(row[1]),
        boxes=row[3],
        box_score=float(row[4]),
        empty=bool(row[6]),
    )


def new_rule(validation: list[Row], pool: list[float]) -> float | None:
    return decide([evidence(r) for r in validation], pool, RECIPE).threshold


def _wilson(successes: float, n: int, z: float) -> float:
    p, z2 = successes / n, z * z
    spread = z * math.sqrt(max(p * (1 - p) / n + z2 / (4 * n * n), 0.0))
    return max(0.0, (p + z2 / (2 * n) - spread) / (1 + z2 / n))


def _lowest_passing(
    validation: list[Row], passes: Callable[[float, int], bool], value: Callable[[Row], float]
) -> float | None:
    ordered = sorted(validation, key=lambda r: -r[0])
    best, total = None, 0.0
    for index, row in enumerate(ordered):
        total += value(row)
        if index + 1 < len(ordered) and ordered[index + 1][0] == row[0]:
            continue  # a tie is accepted whole
        if index + 1 >= MIN_ACCEPTED and passes(total, index + 1):
            best = row[0]
    return best


def old_rule(validation: list[Row], pool: list[float]) -> float | None:
    z = NormalDist().inv_cdf(LEVEL)
    return _lowest_passing(validation, lambda s, n: _wilson(s, n, z) >= TARGET, lambda r: r[1])


def fixed_rule(validation: list[Row], pool: list[float]) -> float | None:
    return 0.5


def ground_truth_rule(validation: list[Row], pool: list[float]) -> float | None:
    return _lowest_passing(validation, lambda s, n: s / n >= 0.6, lambda r: r[2])


RULES: dict[str, Rule] = {
    "new": new_rule,
    "old": old_rule,
    "fixed-0.5": fixed_rule,
    "ground-truth": ground_truth_rule,
}
PROMISES: dict[str, tuple[str, float]] = {
    "new": ("exact", TARGET),
    "old": ("exact", TARGET),
    "fixed-0.5": ("exact", TARGET),
    "ground-truth": ("iou", 0.6),
}
"""What each rule is judged by: the metric it promises (or, for the fixed cut, the recipe's)."""
