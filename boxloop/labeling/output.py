"""Answers -> the human label of an image, as Ground Truth's output manifest holds it.

The labels go through `boxloop.core.consolidation.consolidate` whatever the number of workers:
one worker's boxes come out as drawn with confidence 0.0 (as Ground Truth writes for one worker
per object); several workers' boxes are clustered, voted and averaged as the simulated crowd's
are. The labeling runner writes the result with `boxloop.core.formats.groundtruth`, so
MergeHumanLabels reads browser labels exactly as it reads Ground Truth's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from boxloop.core.boxes import Box
from boxloop.core.consolidation import ConsolidationConfig, consolidate
from boxloop.core.detections import Detections
from boxloop.core.formats.groundtruth import Label

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from boxloop.labeling.contract import Answer

JOB_NAME_PREFIX = "labeling-job/"


def answer_detections(answer: Answer) -> Detections:
    """One worker's boxes as pixel `Detections` of a human (scores ``None``)."""
    boxes = tuple(
        Box.from_xyxy((b.left, b.top, b.left + b.width, b.top + b.height), b.class_id)
        for b in answer.boxes
    )
    return Detections(image_id=answer.task_id, image_wh=answer.image_wh, boxes=boxes)


def label_of(
    answers: Sequence[Answer],
    *,
    job_name: str,
    class_map: Mapping[int, str],
    creation_date: str,
    consolidation: ConsolidationConfig | None = None,
) -> Label:
    """The human label of one image from its workers' answers (at least one).

    Raises:
        ValueError: no answers, or answers for different images or sizes (a store bug).
    """
    if not answers:
        raise ValueError("a label needs at least one answer")
    if len({(a.task_id, a.image_wh) for a in answers}) != 1:
        raise ValueError(f"answers for different images or sizes: {answers!r}")
    merged = consolidate([answer_detections(a) for a in answers], consolidation)
    return Label(
        detections=merged.detections,
        confidences=merged.confidences,
        class_map=dict(class_map),
        human_annotated=True,
        job_name=JOB_NAME_PREFIX + job_name,
        creation_date=creation_date,
    )
