"""Validation mAP@0.5 of the local detector: the built-in algorithm's ``validation:mAP`` stand-in.

This is the plain Pascal-VOC computation (all-point interpolated AP per class, averaged over
the classes that have reference boxes), enough for a quality gate; the project's metrics module
computes the full COCO-style figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from boxloop.core.boxes import Box
from boxloop.core.detections import Detections
from boxloop.core.matching import match_boxes
from boxloop.local.detector.artifact import load_model
from boxloop.local.detector.predict import iter_pixel_predictions

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


def average_precision(scored_hits: Sequence[tuple[float, bool]], num_references: int) -> float:
    """All-point interpolated AP (VOC 2010+) from ``(score, is_true_positive)`` pairs.

    Args:
        scored_hits: One pair per prediction of the class, over every image.
        num_references: Reference boxes of the class over every image (> 0).

    Returns:
        The area under the monotone precision envelope of the precision/recall curve.
    """
    ordered = sorted(scored_hits, key=lambda pair: -pair[0])
    precisions: list[float] = []
    recalls: list[float] = []
    true_positives = 0
    for rank, (_, hit) in enumerate(ordered, start=1):
        true_positives += hit
        precisions.append(true_positives / rank)
        recalls.append(true_positives / num_references)
    for i in range(len(precisions) - 2, -1, -1):
        precisions[i] = max(precisions[i], precisions[i + 1])
    area, previous_recall = 0.0, 0.0
    for precision, recall in zip(precisions, recalls, strict=True):
        area += (recall - previous_recall) * precision
        previous_recall = recall
    return area


def mean_average_precision(
    predictions: Sequence[Detections],
    references: Sequence[Detections],
    *,
    iou_threshold: float = 0.5,
) -> float:
    """MAP over image-aligned predictions and references (pixels, same images, same order).

    A prediction is a true positive when :func:`~boxloop.core.matching.match_boxes` (greedy by
    score, same class, IoU >= ``iou_threshold``) pairs it with a reference. Classes without any
    reference box are left out of the mean, as in VOC and COCO.

    Returns:
        The mean AP in [0, 1]; 0.0 when no image has a reference box.
    """
    hits: dict[int, list[tuple[float, bool]]] = {}
    counts: dict[int, int] = {}
    for predicted, reference in zip(predictions, references, strict=True):
        for box in reference.boxes:
            counts[box.class_id] = counts.get(box.class_id, 0) + 1
        matching = match_boxes(predicted.boxes, reference.boxes, iou_threshold=iou_threshold)
        matched = {pair.predicted for pair in matching.pairs}
        for index, box in enumerate(predicted.boxes):
            score = 1.0 if box.score is None else box.score
            hits.setdefault(box.class_id, []).append((score, index in matched))
    if not counts:
        return 0.0
    aps = [average_precision(hits.get(cls, []), n) for cls, n in sorted(counts.items())]
    return sum(aps) / len(aps)


def evaluate(
    model_path: Path,
    samples: Sequence[tuple[Path, Detections]],
    *,
    iou_threshold: float = 0.5,
    score_floor: float = 0.01,
    batch_size: int = 8,
    num_threads: int | None = None,
) -> float:
    """Validation mAP@``iou_threshold`` of a saved detector on labelled images.

    Args:
        model_path: A saved detector file.
        samples: ``(image_path, reference Detections in pixels of that image)`` pairs.
        iou_threshold: IoU for a true positive.
        score_floor: Lowest score kept; low, because AP integrates over every threshold.
        batch_size: Images per forward pass.
        num_threads: Torch threads (default: every CPU).

    Returns:
        mAP in [0, 1] (see :func:`mean_average_precision`).
    """
    model, info = load_model(model_path)
    predictions = [
        Detections(
            image_id=reference.image_id,
            image_wh=found.image_wh,
            boxes=tuple(
                Box.from_xyxy(box, class_id, min(1.0, max(0.0, score)))
                for box, score, class_id in zip(
                    found.boxes.tolist(),
                    found.scores.tolist(),
                    found.class_ids.tolist(),
                    strict=True,
                )
            ),
        )
        for (_, reference), found in zip(
            samples,
            iter_pixel_predictions(
                model,
                info.image_size,
                [path for path, _ in samples],
                score_floor=score_floor,
                batch_size=batch_size,
                num_threads=num_threads,
            ),
            strict=True,
        )
    ]
    return mean_average_precision(
        predictions, [reference for _, reference in samples], iou_threshold=iou_threshold
    )
