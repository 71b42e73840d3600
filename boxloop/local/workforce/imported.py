"""Labels made elsewhere, served as a labeling job's answers: COCO, VOC, Ground Truth, YOLO."""

from __future__ import annotations

from typing import TYPE_CHECKING

from boxloop.core.detections import Detections
from boxloop.core.formats.groundtruth import Label
from boxloop.labeling.output import ground_truth_now
from boxloop.local.workforce.base import LabelTask, TaskResult
from boxloop.local.workforce.lookup import LabelLookup
from boxloop.local.workforce.sources import (
    YoloLabel,
    read_coco,
    read_groundtruth,
    read_voc,
    read_yolo,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from pathlib import Path

ImportedLabel = Detections | YoloLabel


class ImportWorkforce:
    """A "workforce" that answers each task with a label someone already made.

    Labels are matched to tasks by the rule of `boxloop.local.workforce.lookup`: a key (the
    format's image name) matches a task when its path segments end the task's source-ref, the
    longest match winning, and a tie is an error. YOLO label files match the image file name
    without its extension. A task without a label fails with a reason naming the image and the
    source, and goes back to the pool: labeling can continue in batches as labels arrive.

    Every label becomes a one-worker human label: boxes without scores, confidence 0.0 per box
    (what Ground Truth writes for a single worker), the job's ``job-name`` and class map, and
    ``worker_seconds`` 0 (the time was spent elsewhere and is unknown).
    """

    def __init__(
        self,
        labels: Iterable[tuple[str, ImportedLabel]],
        *,
        kind: str,
        source: str,
        clock: Callable[[], str] = ground_truth_now,
    ) -> None:
        """Serve ``labels``, keyed by image name, from ``source`` (a path, for messages).

        Args:
            labels: ``(key, label)`` pairs as the readers of `boxloop.local.workforce.sources`
                return them, class ids already the job's.
            kind: The format, for ``name`` (``"coco"``, ``"voc"``, ``"groundtruth"``, ``"yolo"``).
            source: Where the labels came from.
            clock: Returns the ``creation-date`` text of each label.
        """
        self.kind = kind
        self._lookup: LabelLookup[ImportedLabel] = LabelLookup(
            labels, source=source, strip_extension=kind == "yolo"
        )
        self._clock = clock

    @property
    def name(self) -> str:
        """``import:<format>``."""
        return f"import:{self.kind}"

    def __len__(self) -> int:
        return len(self._lookup)

    @classmethod
    def from_coco(cls, location: str, *, class_names: Sequence[str]) -> ImportWorkforce:
        """Labels from a COCO dataset JSON (S3 URI or local path), matched by ``file_name``."""
        return cls(read_coco(location, class_names=class_names), kind="coco", source=location)

    @classmethod
    def from_voc(cls, folder: Path, *, class_names: Sequence[str]) -> ImportWorkforce:
        """Labels from a folder of Pascal VOC XML files, matched by ``<filename>``."""
        return cls(read_voc(folder, class_names=class_names), kind="voc", source=str(folder))

    @classmethod
    def from_groundtruth(
        cls, location: str, *, class_names: Sequence[str], attr: str | None = None
    ) -> ImportWorkforce:
        """Labels from a Ground Truth manifest (S3 URI or local path), matched by source-ref."""
        pairs = read_groundtruth(location, attr=attr, class_names=class_names)
        return cls(pairs, kind="groundtruth", source=location)

    @classmethod
    def from_yolo(
        cls,
        folder: Path,
        *,
        class_names: Sequence[str],
        yolo_names: Sequence[str] | None = None,
    ) -> ImportWorkforce:
        """Labels from a folder of YOLO ``.txt`` files, matched by image name without extension.

        ``yolo_names`` are the YOLO class names by index; see `read_yolo` for the default.
        """
        pairs = read_yolo(folder, class_names=class_names, yolo_names=yolo_names)
        return cls(pairs, kind="yolo", source=str(folder))

    def _detections(self, task: LabelTask, imported: ImportedLabel) -> Detections | str:
        """The task's boxes, or why there are none."""
        if isinstance(imported, YoloLabel):
            if task.image_wh is None:
                return (
                    f"the YOLO label {imported.source} needs the image size, and the header of "
                    f"{task.source_ref} could not be read"
                )
            return imported.to_detections(task.record_id, task.image_wh)
        return Detections(task.record_id, imported.image_wh, imported.boxes).as_human()

    def label(self, tasks: Sequence[LabelTask]) -> Iterator[TaskResult]:
        """Answer every task from the imported labels, in task order.

        Raises:
            ConfigError: a label matches two images of the batch, or two labels one image.
            ManifestError: a YOLO file is malformed (found only now: it needs the image size).
        """
        matches = self._lookup.find_all([task.source_ref for task in tasks])
        for task in tasks:
            match = matches[task.source_ref]
            if match is None:
                yield TaskResult.failed(
                    task.record_id,
                    f"no imported label for {task.source_ref} in {self._lookup.source} "
                    f"({self.kind} labels are matched by source-ref or file name)",
                )
                continue
            detections = self._detections(task, match[1])
            if isinstance(detections, str):
                yield TaskResult.failed(task.record_id, detections)
                continue
            yield TaskResult(
                record_id=task.record_id,
                label=Label(
                    detections=detections,
                    confidences=(0.0,) * len(detections.boxes),
                    class_map=dict(task.job.class_map),
                    human_annotated=True,
                    job_name=task.job.job_name,
                    creation_date=self._clock(),
                ),
                n_workers=1,
            )
