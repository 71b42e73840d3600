"""Detection quality of predicted vs reference Detections: GT mean IoU, exact match, COCO mAP."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from boxloop.core.boxes import iou_xyxy
from boxloop.core.matching import match_boxes

if TYPE_CHECKING:
    from collections.abc import Iterable

    from boxloop.core.boxes import Box
    from boxloop.core.detections import Detections


def _linspace(start: float, stop: float, num: int) -> tuple[float, ...]:
    """``numpy.linspace`` bit for bit, so threshold ties resolve exactly as in pycocotools."""
    step = (stop - start) / (num - 1)
    values = [i * step + start for i in range(num)]
    values[-1] = stop
    return tuple(values)


COCO_IOU_THRESHOLDS: tuple[float, ...] = _linspace(0.5, 0.95, 10)
"""COCOeval's ``iouThrs``: 0.50, 0.55, ..., 0.95 (as numpy computes them, 0.6000000000000001)."""
COCO_RECALL_THRESHOLDS: tuple[float, ...] = _linspace(0.0, 1.0, 101)
"""COCOeval's ``recThrs``: the 101 recall points of the interpolated precision curve."""
COCO_MAX_DETECTIONS = 100
"""COCOeval's ``maxDets[-1]``: predictions kept per image and class, highest scores first."""
_EPS = 2.220446049250313e-16  # np.spacing(1), which COCOeval adds to tp + fp


def _score(box: Box) -> float:
    """A box's ranking score; human boxes (no score) rank as fully confident."""
    return 1.0 if box.score is None else box.score


def _check_pair(predicted: Detections, reference: Detections) -> None:
    if predicted.image_id != reference.image_id:
        raise ValueError(
            f"predicted and reference must describe the same image, got image_id "
            f"{predicted.image_id!r} vs {reference.image_id!r} (pairs are zipped out of order?)"
        )


def _check_iou_threshold(iou_threshold: float) -> float:
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    return iou_threshold


def _class_iou_terms(
    predicted: Detections, reference: Detections, iou_threshold: float
) -> dict[int, tuple[float, int]]:
    """Per class: (sum of matched IoUs, number of terms = reference boxes + extra predictions)."""
    matching = match_boxes(predicted.boxes, reference.boxes, iou_threshold=iou_threshold)
    sums: dict[int, float] = defaultdict(float)
    counts: dict[int, int] = defaultdict(int)
    for pair in matching.pairs:
        class_id = reference.boxes[pair.reference].class_id
        sums[class_id] += pair.iou
        counts[class_id] += 1
    for index in matching.unmatched_reference:
        counts[reference.boxes[index].class_id] += 1
    for index in matching.unmatched_predicted:
        counts[predicted.boxes[index].class_id] += 1
    return {class_id: (sums[class_id], count) for class_id, count in counts.items()}


def image_mean_iou(
    predicted: Detections, reference: Detections, *, iou_threshold: float = 0.5
) -> float:
    """Ground Truth's mean IoU (see ``MeanIoU``) restricted to one image.

    Returns:
        A value in [0, 1]; 1.0 when both sides are empty (nothing missed, nothing extra).
    """
    terms = _class_iou_terms(predicted, reference, _check_iou_threshold(iou_threshold))
    if not terms:
        return 1.0
    return sum(total / count for total, count in terms.values()) / len(terms)


@dataclass(slots=True)
class MeanIoU:
    """Ground Truth's box quality metric: expected mean IoU over predicted and missed boxes.

    Ground Truth auto-labels boxes when this reaches 0.6 on its validation set. The exact
    definition implemented here: each image's boxes are paired by ``match_boxes`` (class-aware,
    greedy by score, IoU >= ``iou_threshold``). Then, per class over the whole data set, every
    reference box contributes its matched IoU (0 when missed) and every unmatched predicted box
    contributes 0; the class's mean IoU is the average of those terms; the result is the
    unweighted mean over every class that has at least one term (a reference or a predicted
    box). A prediction with IoU below the threshold therefore costs twice: a missed reference
    and an extra prediction.

    Like every accumulator here (supervision's shape), ``update()`` adds one image's
    ``(predicted, reference)`` and returns the metric, ``compute()`` reads the result and
    ``reset()`` starts over, so a data set streams through one image at a time.

    Attributes:
        iou_threshold: Minimum IoU for a prediction to count as the reference box it overlaps.
    """

    iou_threshold: float = 0.5
    _sums: dict[int, float] = field(default_factory=dict, init=False, repr=False)
    _counts: dict[int, int] = field(default_factory=dict, init=False, repr=False)
    _images: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        _check_iou_threshold(self.iou_threshold)

    def update(self, predicted: Detections, reference: Detections) -> MeanIoU:
        """Add one image.

        Raises:
            ValueError: ``predicted`` and ``reference`` have different ``image_id``s.
        """
        _check_pair(predicted, reference)
        for class_id, (total, count) in _class_iou_terms(
            predicted, reference, self.iou_threshold
        ).items():
            self._sums[class_id] = self._sums.get(class_id, 0.0) + total
            self._counts[class_id] = self._counts.get(class_id, 0) + count
        self._images += 1
        return self

    def reset(self) -> None:
        """Forget every image added so far."""
        self._sums.clear()
        self._counts.clear()
        self._images = 0

    def compute(self) -> float | None:
        """The mean over classes; 1.0 when no image had a box, ``None`` before any image."""
        if not self._images:
            return None
        if not self._counts:
            return 1.0
        per_class = [self._sums[c] / n for c, n in self._counts.items()]
        return sum(per_class) / len(per_class)


def mean_iou(
    pairs: Iterable[tuple[Detections, Detections]], *, iou_threshold: float = 0.5
) -> float | None:
    """``MeanIoU`` over ``(predicted, reference)`` pairs; ``None`` for no pairs."""
    metric = MeanIoU(iou_threshold=iou_threshold)
    for predicted, reference in pairs:
        metric.update(predicted, reference)
    return metric.compute()


def is_exact_match(
    predicted: Detections, reference: Detections, *, iou_threshold: float = 0.5
) -> bool:
    """True when every reference box is matched with the right class and nothing is extra.

    Matching is ``match_boxes`` (one-to-one, IoU >= ``iou_threshold``); an empty prediction on
    an empty reference is exact. This is the "could this auto-label replace a human" test.
    """
    _check_pair(predicted, reference)
    return match_boxes(
        predicted.boxes, reference.boxes, iou_threshold=_check_iou_threshold(iou_threshold)
    ).is_exact


def exact_match_accuracy(
    pairs: Iterable[tuple[Detections, Detections]], *, iou_threshold: float = 0.5
) -> float | None:
    """Fraction of images that are ``is_exact_match``; ``None`` for no pairs."""
    flags = [is_exact_match(p, r, iou_threshold=iou_threshold) for p, r in pairs]
    return sum(flags) / len(flags) if flags else None


@dataclass(frozen=True, slots=True, kw_only=True)
class MeanAveragePrecisionResult:
    """COCO box AP, area "all", at most 100 predictions per image and class.

    Attributes:
        map50_95: Mean over classes of AP averaged over IoU 0.50:0.05:0.95 (COCOeval stats[0]);
            ``None`` when no class has a reference box (pycocotools prints -1).
        map50: Mean over classes of AP at IoU 0.5 (COCOeval stats[1]); ``None`` likewise.
        ap50_95_by_class: Class id -> AP@[.5:.95], only classes with reference boxes.
        ap50_by_class: Class id -> AP@0.5, same classes.
    """

    map50_95: float | None
    map50: float | None
    ap50_95_by_class: dict[int, float]
    ap50_by_class: dict[int, float]


def _coco_match(predicted: list[Box], reference: list[Box]) -> list[tuple[bool, ...]]:
    """COCOeval.evaluateImg for one image and class: per prediction, is it a TP at each IoU.

    Predictions arrive sorted by score. Each takes the free reference with the highest IoU at or
    above the threshold; among equal IoUs the later reference wins, as COCOeval's ``>=`` scan does.
    """
    ious = [[iou_xyxy(p.xyxy, r.xyxy) for r in reference] for p in predicted]
    hits = [[False] * len(COCO_IOU_THRESHOLDS) for _ in predicted]
    for t_index, threshold in enumerate(COCO_IOU_THRESHOLDS):
        taken = [False] * len(reference)
        for p_index, row in enumerate(ious):
            best, match = min(threshold, 1 - 1e-10), -1
            for r_index, overlap in enumerate(row):
                if taken[r_index] or overlap < best:
                    continue
                best, match = overlap, r_index
            if match >= 0:
                taken[match] = True
                hits[p_index][t_index] = True
    return [tuple(h) for h in hits]


def _average_precision(hits: list[bool], num_reference: int) -> float:
    """COCOeval.accumulate for one class and IoU: 101-point interpolated AP."""
    precision: list[float] = []
    recall: list[float] = []
    tp = fp = 0
    for hit in hits:
        tp, fp = tp + hit, fp + (not hit)
        recall.append(tp / num_reference)
        precision.append(tp / (fp + tp + _EPS))
    for i in range(len(precision) - 1, 0, -1):
        precision[i - 1] = max(precision[i - 1], precision[i])
    total = 0.0
    for threshold in COCO_RECALL_THRESHOLDS:
        index = bisect_left(recall, threshold)
        if index >= len(precision):
            break  # COCOeval leaves 0 for recall levels never reached
        total += precision[index]
    return total / len(COCO_RECALL_THRESHOLDS)


@dataclass(slots=True)
class MeanAveragePrecision:
    """COCO mAP@[.5:.95] and mAP@0.5, equal to pycocotools' COCOeval (bbox) stats[0] and [1].

    Reproduces COCOeval with ``iscrowd=0`` everywhere: per image and class the predictions are
    sorted by score (stable, human boxes count as 1.0), cut to 100, and matched greedily; across
    the data set they are sorted by score again (stable, so ties keep the order of ``update()``
    calls, as COCOeval keeps image-id order) and AP is the 101-point interpolated precision.
    Classes with no reference box are left out of the mean (COCOeval's -1), and so are their
    predictions; an image without predictions still counts its reference boxes as missed.
    """

    _hits: dict[int, list[tuple[float, tuple[bool, ...]]]] = field(
        default_factory=dict, init=False, repr=False
    )
    _num_reference: dict[int, int] = field(default_factory=dict, init=False, repr=False)

    def update(self, predicted: Detections, reference: Detections) -> MeanAveragePrecision:
        """Add one image.

        Raises:
            ValueError: ``predicted`` and ``reference`` have different ``image_id``s.
        """
        _check_pair(predicted, reference)
        class_ids = {b.class_id for b in predicted.boxes} | {b.class_id for b in reference.boxes}
        for class_id in sorted(class_ids):
            preds = sorted(
                (b for b in predicted.boxes if b.class_id == class_id), key=lambda b: -_score(b)
            )[:COCO_MAX_DETECTIONS]
            refs = [b for b in reference.boxes if b.class_id == class_id]
            self._num_reference[class_id] = self._num_reference.get(class_id, 0) + len(refs)
            records = self._hits.setdefault(class_id, [])
            records.extend(zip((_score(b) for b in preds), _coco_match(preds, refs), strict=True))
        return self

    def reset(self) -> None:
        """Forget every image added so far."""
        self._hits.clear()
        self._num_reference.clear()

    def compute(self) -> MeanAveragePrecisionResult:
        """AP per class with reference boxes, and their means."""
        ap50: dict[int, float] = {}
        ap50_95: dict[int, float] = {}
        for class_id, num_reference in sorted(self._num_reference.items()):
            if not num_reference:
                continue
            ranked = sorted(self._hits.get(class_id, []), key=lambda record: -record[0])
            per_threshold = [
                _average_precision([hits[t] for _, hits in ranked], num_reference)
                for t in range(len(COCO_IOU_THRESHOLDS))
            ]
            ap50[class_id] = per_threshold[0]
            ap50_95[class_id] = sum(per_threshold) / len(per_threshold)
        return MeanAveragePrecisionResult(
            map50_95=sum(ap50_95.values()) / len(ap50_95) if ap50_95 else None,
            map50=sum(ap50.values()) / len(ap50) if ap50 else None,
            ap50_95_by_class=ap50_95,
            ap50_by_class=ap50,
        )


def mean_average_precision(
    pairs: Iterable[tuple[Detections, Detections]],
) -> MeanAveragePrecisionResult:
    """``MeanAveragePrecision`` over ``(predicted, reference)`` pairs, in order."""
    metric = MeanAveragePrecision()
    for predicted, reference in pairs:
        metric.update(predicted, reference)
    return metric.compute()
