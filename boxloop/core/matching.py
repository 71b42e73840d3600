"""Class-aware one-to-one matching of predicted boxes to reference boxes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from boxloop.core.boxes import iou_xyxy

if TYPE_CHECKING:
    from collections.abc import Sequence

    from boxloop.core.boxes import Box


@dataclass(frozen=True, slots=True)
class Match:
    """One predicted box paired with one reference box."""

    predicted: int
    reference: int
    iou: float


@dataclass(frozen=True, slots=True)
class Matching:
    """The result of matching: pairs plus what stayed unmatched on either side (indices)."""

    pairs: tuple[Match, ...]
    unmatched_predicted: tuple[int, ...]
    unmatched_reference: tuple[int, ...]

    @property
    def is_exact(self) -> bool:
        """Every reference box matched, no predicted box left over (image exact match)."""
        return not self.unmatched_predicted and not self.unmatched_reference

    @property
    def mean_iou(self) -> float | None:
        """Mean IoU over the matched pairs; ``None`` when nothing matched."""
        if not self.pairs:
            return None
        return sum(p.iou for p in self.pairs) / len(self.pairs)


def match_boxes(
    predicted: Sequence[Box],
    reference: Sequence[Box],
    *,
    iou_threshold: float = 0.5,
    class_aware: bool = True,
) -> Matching:
    """Greedily pair predictions with references, most confident prediction first.

    This is COCO's evaluation order: predictions sorted by score (descending; human boxes,
    which have no score, count as 1), each taking the unmatched reference of the same class
    with the highest IoU at or above ``iou_threshold``. Ties keep input order, so the result is
    deterministic.

    Args:
        predicted: Boxes to evaluate (pixels).
        reference: Reference boxes (pixels).
        iou_threshold: Minimum IoU for a pair (inclusive).
        class_aware: When true, only boxes of the same class can pair.

    Returns:
        The pairs and the unmatched indices of both sides, each sorted ascending.
    """
    order = sorted(
        range(len(predicted)),
        key=lambda i: -(predicted[i].score if predicted[i].score is not None else 1.0),
    )
    taken: set[int] = set()
    pairs: list[Match] = []
    unmatched_predicted: list[int] = []
    for pi in order:
        pbox = predicted[pi]
        best_ri, best_iou = -1, iou_threshold
        for ri, rbox in enumerate(reference):
            if ri in taken or (class_aware and rbox.class_id != pbox.class_id):
                continue
            overlap = iou_xyxy(pbox.xyxy, rbox.xyxy)
            if overlap >= best_iou and (best_ri < 0 or overlap > best_iou):
                best_ri, best_iou = ri, overlap
        if best_ri < 0:
            unmatched_predicted.append(pi)
        else:
            taken.add(best_ri)
            pairs.append(Match(predicted=pi, reference=best_ri, iou=best_iou))
    unmatched_reference = [ri for ri in range(len(reference)) if ri not in taken]
    return Matching(
        pairs=tuple(pairs),
        unmatched_predicted=tuple(sorted(unmatched_predicted)),
        unmatched_reference=tuple(unmatched_reference),
    )
