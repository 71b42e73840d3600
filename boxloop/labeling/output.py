"""What a labeling job writes, in Ground Truth's format, whichever host runs it.

`label_of` turns answers into the human label of an image. The labels go through
`boxloop.core.consolidation.consolidate` whatever the number of workers: one worker's boxes come
out as drawn with confidence 0.0 (as Ground Truth writes for one worker per object); several
workers' boxes are clustered, voted and averaged as the simulated crowd's are. The hosts write
the result with `boxloop.core.formats.groundtruth`, so MergeHumanLabels reads browser labels
exactly as it reads Ground Truth's.

The rest is the output manifest's frame, shared by the local labeling runner
(`boxloop.local.workforce.runner`) and the AWS job (`boxloop.aws.human_labeling`) so both write
the same lines and counts: where the manifest goes (`output_manifest_uri`), which input fields a
line keeps (`kept_fields`), a failed object's metadata (`failure_fields`), the ``creation-date``
format (`ground_truth_now`), and the job's counts (`JobStats`, with DescribeLabelingJob's
``LabelCounters``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from boxloop.core.boxes import Box
from boxloop.core.consolidation import ConsolidationConfig, consolidate
from boxloop.core.detections import Detections
from boxloop.core.formats.groundtruth import METADATA_SUFFIX, Label
from boxloop.labeling.preannotations import PREANNOTATIONS_KEY

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from boxloop.labeling.contract import Answer

JOB_NAME_PREFIX: Final = "labeling-job/"
"""Ground Truth writes ``job-name`` as ``labeling-job/<LabelingJobName>``."""
FAILURE_REASON_KEY: Final = "failure-reason"
"""Ground Truth's metadata key for an object that could not be labeled."""
STATS_FILE: Final = "boxloop-workforce.json"
"""Next to the job's manifests: its `JobStats` (and the workforce's effort); reports read it."""


def ground_truth_now() -> str:
    """The current UTC time as Ground Truth writes ``creation-date``: no zone, microseconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def output_manifest_uri(output_path: str, name: str) -> str:
    """Where Ground Truth puts job ``name``'s output manifest under ``S3OutputPath``."""
    return f"{output_path.rstrip('/')}/{name}/manifests/output/output.manifest"


def stats_uri(output_path: str, name: str) -> str:
    """Where job ``name``'s `STATS_FILE` goes (next to Ground Truth's folders)."""
    return f"{output_path.rstrip('/')}/{name}/{STATS_FILE}"


def kept_fields(obj: Mapping[str, Any], attr: str) -> dict[str, Any]:
    """The input line's fields an output line keeps.

    Without ``<attr>`` and ``<attr>-metadata`` (this job writes them anew, or a stale label of an
    earlier round would survive a failure) and without the pre-annotations (the worker's
    suggestions, not a label).
    """
    drop = (attr, attr + METADATA_SUFFIX, PREANNOTATIONS_KEY)
    return {k: v for k, v in obj.items() if k not in drop}


def failure_fields(attr: str, reason: str, *, job_name: str, creation_date: str) -> dict[str, Any]:
    """The ``<attr>-metadata`` of a failed object (``job_name`` bare): no ``<attr>``."""
    return {
        attr + METADATA_SUFFIX: {
            FAILURE_REASON_KEY: reason,
            "human-annotated": "yes",
            "creation-date": creation_date,
            "job-name": JOB_NAME_PREFIX + job_name,
        }
    }


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


@dataclass(slots=True)
class JobStats:
    """Counts of one labeling job, for ``LabelCounters`` and the cost report (`STATS_FILE`).

    Attributes:
        job: ``LabelingJobName``.
        workforce: The workforce's name.
        objects: Data objects in the input manifest.
        labeled: Objects that got a label.
        failed: Objects that failed (written with a ``failure-reason``).
        unlabeled: Objects nothing came back for (expired; left out of the output).
        boxes: Boxes in the labels.
        worker_tasks: Worker assignments (objects x workers who worked on them).
        worker_seconds: Summed worker time, seconds.
        first_failure: The first failure reason, for the job's own failure message.
    """

    job: str
    workforce: str
    objects: int = 0
    labeled: int = 0
    failed: int = 0
    unlabeled: int = 0
    boxes: int = 0
    worker_tasks: int = 0
    worker_seconds: float = 0.0
    first_failure: str | None = None

    def add_labeled(self, boxes: int, *, workers: int, seconds: float) -> None:
        """Count an object labeled with ``boxes`` boxes by ``workers`` in ``seconds``."""
        self.objects += 1
        self.labeled += 1
        self.boxes += boxes
        self.worker_tasks += workers
        self.worker_seconds += seconds

    def add_failed(self, reason: str | None, *, workers: int = 0, seconds: float = 0.0) -> None:
        """Count an object that failed for ``reason`` (after ``workers`` tried it)."""
        self.objects += 1
        self.failed += 1
        self.worker_tasks += workers
        self.worker_seconds += seconds
        self.first_failure = self.first_failure or reason

    def add_unlabeled(self) -> None:
        """Count an object nothing came back for."""
        self.objects += 1
        self.unlabeled += 1

    def counters(self) -> dict[str, int]:
        """DescribeLabelingJob's ``LabelCounters`` (every label here is a human one)."""
        return {
            "TotalLabeled": self.labeled,
            "HumanLabeled": self.labeled,
            "MachineLabeled": 0,
            "FailedNonRetryableError": self.failed,
            "Unlabeled": self.unlabeled,
        }

    def outputs(self, output_uri: str) -> dict[str, Any]:
        """DescribeLabelingJob's ``LabelingJobOutput`` and ``LabelCounters`` of the job."""
        return {
            "LabelingJobOutput": {"OutputDatasetS3Uri": output_uri},
            "LabelCounters": self.counters(),
        }

    def to_json(self) -> dict[str, Any]:
        """Every count, JSON-ready."""
        data = dataclasses.asdict(self)
        data["worker_seconds"] = round(self.worker_seconds, 3)
        return data
