"""What the local labeling job checks in, counts of, and writes for each task result."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boxloop.core.errors import ConfigError
from boxloop.core.formats.groundtruth import METADATA_SUFFIX

if TYPE_CHECKING:
    from boxloop.local.workforce.base import JobSpec, LabelTask, TaskResult

FAILURE_REASON_KEY = "failure-reason"
"""Ground Truth's metadata key for an object that could not be labeled."""


def check_result(result: TaskResult, task: LabelTask, categories: str) -> TaskResult:
    """``result`` ready for the output manifest: the job's class map set, its classes checked.

    A label for another image size than the task's fails that object (the boxes would be in the
    wrong pixels); a class the job does not have is a configuration error.

    Raises:
        ConfigError: a box class or class name is not the job's (``categories`` names the file).
        ValueError: a workforce bug: a label not marked human-annotated.
    """
    label = result.label
    if label is None:
        return result
    if not label.human_annotated:
        raise ValueError(
            f"the label of {task.source_ref} is not human-annotated; a workforce "
            "must return human labels"
        )
    if task.image_wh is not None and label.detections.image_wh != tuple(task.image_wh):
        (w, h), (tw, th) = label.detections.image_wh, task.image_wh
        return dataclasses.replace(
            result,
            label=None,
            failure_reason=f"the label is for a {w}x{h} image, but {task.source_ref} is {tw}x{th}",
        )
    class_map = task.job.class_map
    bad_ids = sorted({box.class_id for box in label.detections} - set(class_map))
    bad_names = sorted(
        f"{i}: {name!r}"
        for i, name in label.class_map.items()
        if i in class_map and class_map[i] != name
    )
    if bad_ids or bad_names:
        what = " and ".join(
            part
            for part in (
                bad_ids and f"class ids {bad_ids}",
                bad_names and f"class names {', '.join(bad_names)}",
            )
            if part
        )
        raise ConfigError(
            [
                f"the label of {task.source_ref} has {what} that are not the job's label "
                f"categories {dict(class_map)} ({categories})"
            ]
        )
    return dataclasses.replace(result, label=dataclasses.replace(label, class_map=class_map))


def failure_fields(result: TaskResult, attr: str, job: JobSpec, now: str) -> dict[str, Any]:
    """The ``<attr>-metadata`` of a failed object: its ``failure-reason``, no ``<attr>``."""
    return {
        attr + METADATA_SUFFIX: {
            FAILURE_REASON_KEY: result.failure_reason,
            "human-annotated": "yes",
            "creation-date": now,
            "job-name": job.job_name,
        }
    }


@dataclass(slots=True)
class JobStats:
    """Counts of one labeling job, for ``LabelCounters`` and the cost report.

    Attributes:
        job: ``LabelingJobName``.
        workforce: The workforce's name.
        objects: Data objects in the input manifest.
        labeled: Objects that got a label.
        failed: Objects that failed (written with a ``failure-reason``).
        unlabeled: Objects the workforce returned nothing for (expired; left out of the output).
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

    def add(self, result: TaskResult | None) -> None:
        """Count one object's result (``None``: nothing came back)."""
        self.objects += 1
        if result is None:
            self.unlabeled += 1
            return
        self.worker_tasks += result.n_workers
        self.worker_seconds += result.worker_seconds
        if result.label is None:
            self.failed += 1
            self.first_failure = self.first_failure or result.failure_reason
            return
        self.labeled += 1
        self.boxes += len(result.label.detections.boxes)

    def counters(self) -> dict[str, int]:
        """DescribeLabelingJob's ``LabelCounters`` (every label here is a human one)."""
        return {
            "TotalLabeled": self.labeled,
            "HumanLabeled": self.labeled,
            "MachineLabeled": 0,
            "FailedNonRetryableError": self.failed,
            "Unlabeled": self.unlabeled,
        }

    def to_json(self) -> dict[str, Any]:
        """Every count, JSON-ready."""
        data = dataclasses.asdict(self)
        data["worker_seconds"] = round(self.worker_seconds, 3)
        return data
