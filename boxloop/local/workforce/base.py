"""The workforce interface: what the local labeling job hands to annotators and gets back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from boxloop.core.errors import BoxError
from boxloop.labeling.output import JOB_NAME_PREFIX

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from pathlib import Path

    from boxloop.core.boxes import ImageWH
    from boxloop.core.formats.groundtruth import Label


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """What every task of one labeling job shares, from its CreateLabelingJob request.

    Attributes:
        name: ``LabelingJobName``.
        workers_per_object: ``HumanTaskConfig.NumberOfHumanWorkersPerDataObject``: how many
            workers label each image before their boxes are consolidated.
        class_map: Class id -> name from the job's label category config (class id = position
            in its ``labels`` list). Empty when unknown (a workforce used outside a job).
    """

    name: str = "local"
    workers_per_object: int = 1
    class_map: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        workers = self.workers_per_object
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise BoxError(f"workers_per_object must be an int >= 1, got {workers!r}")

    @property
    def job_name(self) -> str:
        """The ``job-name`` a human label of this job carries."""
        return JOB_NAME_PREFIX + self.name


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelTask:
    """One image (Ground Truth's "data object") to label.

    Attributes:
        record_id: The ledger id of the image (hash of ``source_ref``); results are keyed by it.
        source_ref: The image URI as the input manifest names it.
        image_path: A local copy of the image (a workforce that shows pixels reads it).
        image_wh: ``(width, height)`` in pixels from the image header, or ``None`` when the
            header could not be read.
        job: The job the task belongs to.
        fields: The object's input manifest line (provenance, pre-annotations), as Ground
            Truth hands a task template the whole data object.
    """

    record_id: str
    source_ref: str
    image_path: Path
    image_wh: ImageWH | None
    job: JobSpec = field(default_factory=JobSpec)
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskResult:
    """What came back for one task: a consolidated human label, or why there is none.

    Attributes:
        record_id: The task's ``record_id``.
        label: The human label (``human_annotated=True``, box scores ``None``), or ``None``.
        failure_reason: Why the task produced no label (written to the output manifest as
            ``<attr>-metadata.failure-reason``); set exactly when ``label`` is ``None``.
        n_workers: How many workers worked on the image.
        worker_seconds: Their summed working time, in seconds, for the cost report.
        output_fields: Top-level fields the labeled line of the output manifest gets besides
            the label: provenance only the workforce knows (the browser workforce's
            ``boxloop-workers``, who labeled the image); merge keeps them with the record.
    """

    record_id: str
    label: Label | None
    failure_reason: str | None = None
    n_workers: int = 0
    worker_seconds: float = 0.0
    output_fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.label is None) == (self.failure_reason is None):
            raise BoxError(
                f"task {self.record_id}: a result has either a label or a failure_reason, "
                f"got label={self.label is not None} failure_reason={self.failure_reason!r}"
            )
        if self.worker_seconds < 0 or self.n_workers < 0:
            raise BoxError(
                f"task {self.record_id}: n_workers and worker_seconds must be >= 0, got "
                f"{self.n_workers} and {self.worker_seconds}"
            )

    @classmethod
    def failed(cls, record_id: str, reason: str) -> TaskResult:
        """A task that produced no label, for ``reason``."""
        return cls(record_id=record_id, label=None, failure_reason=reason)


@runtime_checkable
class Workforce(Protocol):
    """Annotators for the local labeling job: simulated, imported or interactive.

    ``label`` may yield results in any order and lazily (an interactive reviewer yields one as
    each image is submitted); a task it yields nothing for counts as expired (never submitted)
    and goes back to the pool. Raising a ``BoxloopError`` fails the whole job with its message.

    A workforce that measures more than results may also have ``job_summary(job_name) ->
    dict``: the labeling runner adds it to the job's ``boxloop-workforce.json`` (the browser
    workforce's measured ``effort``).
    """

    @property
    def name(self) -> str:
        """A short name for reports (``"simulated"``, ``"import:coco"``)."""
        ...

    def label(self, tasks: Sequence[LabelTask]) -> Iterator[TaskResult]:
        """Label ``tasks``; at most one result per task."""
        ...
