"""Consolidate several workers' boxes for one image into one label with per-box confidences."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

from boxloop.core.boxes import Box, iou_xyxy
from boxloop.core.detections import Detections
from boxloop.core.errors import BoxError, ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsolidationConfig:
    """How boxes from several workers are grouped, kept and merged.

    Attributes:
        iou_threshold: Two boxes from different workers can describe the same object only when
            their IoU is at least this (inclusive), in ``(0, 1]``. Every pair inside a cluster
            must clear it (complete linkage), so a cluster cannot chain from one object to the
            next through intermediate boxes.
        min_agreement: A cluster is kept when *more than* this fraction of the workers drew it,
            in ``[0, 1]``: 0.5 (default) is a strict majority (2 of 3, 3 of 5, 2 of 2); 0.0 keeps
            every box any worker drew; 1.0 needs every worker. See `required_support`.
        class_aware: When true only boxes of the same class can cluster; when false (default)
            boxes cluster by position alone and the class is decided by majority vote, so one
            worker's wrong class does not split an object into two.
        weight_by_score: Average the coordinates weighted by each box's score (``None``, a
            human box, weighs 1). Off by default: worker boxes are human and carry no score.

    Raises:
        ConfigError: Listing every out-of-range value at once.
    """

    iou_threshold: float = 0.5
    min_agreement: float = 0.5
    class_aware: bool = False
    weight_by_score: bool = False

    def __post_init__(self) -> None:
        problems = []
        if not _is_number(self.iou_threshold) or not 0.0 < self.iou_threshold <= 1.0:
            problems.append(f"iou_threshold must be in (0, 1], got {self.iou_threshold!r}")
        if not _is_number(self.min_agreement) or not 0.0 <= self.min_agreement <= 1.0:
            problems.append(f"min_agreement must be in [0, 1], got {self.min_agreement!r}")
        for name in ("class_aware", "weight_by_score"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be a bool, got {getattr(self, name)!r}")
        if problems:
            raise ConfigError(problems)

    def required_support(self, n_workers: int) -> int:
        """How many distinct workers must have drawn a cluster for it to be kept.

        ``floor(min_agreement * n_workers) + 1``, capped at ``n_workers``: "more than
        ``min_agreement`` of the workers, and never more than all of them".
        """
        # The epsilon keeps 0.29 * 100 (= 28.999999999999996 in floats) from rounding down.
        return min(n_workers, math.floor(self.min_agreement * n_workers + 1e-9) + 1)


@dataclass(frozen=True, slots=True)
class Consolidated:
    """The consolidated label of one image.

    Attributes:
        detections: The consolidated boxes, in pixels, as a human label (every score ``None``).
        confidences: One confidence in ``[0, 1]`` per box, in box order, the value that goes
            into the Ground Truth output's ``objects[i].confidence``.
    """

    detections: Detections
    confidences: tuple[float, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.confidences, tuple):
            object.__setattr__(self, "confidences", tuple(self.confidences))
        if len(self.confidences) != len(self.detections.boxes):
            raise BoxError(
                f"Consolidated needs one confidence per box, got {len(self.confidences)} "
                f"confidences for {len(self.detections.boxes)} boxes"
            )
        if not all(_is_number(c) and 0.0 <= c <= 1.0 for c in self.confidences):
            raise BoxError(f"confidences must be in [0, 1], got {self.confidences}")


def consolidate(
    workers: Sequence[Detections], config: ConsolidationConfig | None = None
) -> Consolidated:
    """Merge every worker's boxes for one image, the way Ground Truth's ACS-BoundingBox does.

    Ground Truth documents its box consolidation as "finds the most similar boxes from
    different workers based on the Jaccard index of the boxes" and averages them; its exact
    algorithm is not published, so this is boxloop's deterministic version of it:

    1. **Cluster** (greedy complete linkage): every cross-worker pair of boxes with IoU at or
       above ``iou_threshold`` is visited in descending IoU order (ties in input order); the two
       boxes' clusters merge when they share no worker and every pair across them also clears
       the threshold. So a cluster holds at most one box per worker, and no Hungarian step is
       needed: the most similar boxes pair first.
    2. **Keep** clusters drawn by at least ``config.required_support(len(workers))`` workers.
    3. **Merge**: coordinates are the mean of the members' (score-weighted if configured); the
       class is the majority vote, ties going to the class of the earliest worker.
    4. **Confidence** = ``class_votes / n_workers * mean pairwise IoU of the members``: the
       share of all workers that drew this box with this class, times how tightly they agree
       on where it is. A box only one worker drew has no pair to compare, so its confidence is
       0.0; with a single worker every box is such a box, which matches Ground Truth's output
       (confidence 0.00 for every object when one worker labels each image).

    Output boxes are ordered by their earliest member (worker index, then box index).

    Args:
        workers: One `Detections` per worker, all for the same image (same ``image_id`` and
            ``image_wh``), in pixels; an empty one means that worker drew no boxes.
        config: Thresholds; the defaults when ``None``.

    Returns:
        The consolidated human label and one confidence per box.

    Raises:
        BoxError: When ``workers`` is empty or the workers disagree on the image.
    """
    config = config or ConsolidationConfig()
    if not workers:
        raise BoxError("consolidate needs at least one worker's Detections, got none")
    first = workers[0]
    for index, worker in enumerate(workers):
        if (worker.image_id, worker.image_wh) != (first.image_id, first.image_wh):
            raise BoxError(
                f"every worker must label the same image: worker 0 has "
                f"({first.image_id!r}, {first.image_wh}), worker {index} has "
                f"({worker.image_id!r}, {worker.image_wh})"
            )

    members = [(w, box) for w, worker in enumerate(workers) for box in worker.boxes]
    clusters = _cluster(members, config)
    n_workers = len(workers)
    needed = config.required_support(n_workers)
    boxes: list[Box] = []
    confidences: list[float] = []
    for cluster in clusters:
        if len(cluster) < needed:
            continue
        cluster_boxes = [members[i][1] for i in cluster]
        class_id, votes = _vote_class(cluster_boxes)
        boxes.append(_mean_box(cluster_boxes, class_id, weight_by_score=config.weight_by_score))
        confidences.append(votes / n_workers * _mean_pairwise_iou(cluster_boxes))
    return Consolidated(detections=first.with_boxes(boxes), confidences=tuple(confidences))


def _cluster(members: list[tuple[int, Box]], config: ConsolidationConfig) -> list[list[int]]:
    """Greedy complete-linkage clusters of member indices, ordered by their first member."""

    def can_pair(i: int, j: int) -> bool:
        (wi, bi), (wj, bj) = members[i], members[j]
        if wi == wj or (config.class_aware and bi.class_id != bj.class_id):
            return False
        return iou_xyxy(bi.xyxy, bj.xyxy) >= config.iou_threshold

    candidates = [
        (iou_xyxy(members[i][1].xyxy, members[j][1].xyxy), i, j)
        for i, j in combinations(range(len(members)), 2)
        if can_pair(i, j)
    ]
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    cluster_of = list(range(len(members)))
    clusters: dict[int, list[int]] = {i: [i] for i in range(len(members))}
    for _, i, j in candidates:
        ci, cj = cluster_of[i], cluster_of[j]
        if ci == cj:
            continue
        if not all(can_pair(a, b) for a in clusters[ci] for b in clusters[cj]):
            continue
        keep, gone = min(ci, cj), max(ci, cj)
        clusters[keep] = sorted(clusters[keep] + clusters.pop(gone))
        for member in clusters[keep]:
            cluster_of[member] = keep
    return [clusters[key] for key in sorted(clusters)]


def _vote_class(boxes: list[Box]) -> tuple[int, int]:
    """The most drawn class and its vote count; ties go to the earliest box's class."""
    votes = Counter(box.class_id for box in boxes)
    top = max(votes.values())
    winner = next(box.class_id for box in boxes if votes[box.class_id] == top)
    return winner, top


def _mean_box(boxes: list[Box], class_id: int, *, weight_by_score: bool) -> Box:
    """The (weighted) mean of the boxes' pixel coordinates, as a human box."""
    weights = [
        (1.0 if box.score is None else box.score) if weight_by_score else 1.0 for box in boxes
    ]
    total = sum(weights)
    if total <= 0.0:  # every box scored 0: fall back to the plain mean
        weights, total = [1.0] * len(boxes), float(len(boxes))
    coords = [
        sum(w * box.xyxy[k] for w, box in zip(weights, boxes, strict=True)) / total
        for k in range(4)
    ]
    # A weighted mean of x_min values never exceeds that of x_max values, but floating-point
    # rounding can cross them by an ulp on a zero-width box; clamp so Box accepts it.
    x_min, y_min, x_max, y_max = coords
    return Box(x_min=x_min, y_min=y_min, x_max=max(x_min, x_max), y_max=max(y_min, y_max),
               class_id=class_id, score=None)


def _mean_pairwise_iou(boxes: list[Box]) -> float:
    """Mean IoU over every pair of boxes; 0.0 for a single box (nothing confirms it)."""
    pairs = list(combinations(boxes, 2))
    if not pairs:
        return 0.0
    return sum(iou_xyxy(a.xyxy, b.xyxy) for a, b in pairs) / len(pairs)


def _is_number(value: object) -> bool:
    """A real, finite number (bools excluded: ``True`` is not a threshold)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
