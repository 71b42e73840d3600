"""What the local labeling job checks in, and counts of, each task result.

The output line and the counts themselves are host-neutral (`boxloop.labeling.output`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from boxloop.core.errors import ConfigError

if TYPE_CHECKING:
    from boxloop.labeling.output import JobStats
    from boxloop.local.workforce.base import LabelTask, TaskResult


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


def count_result(stats: JobStats, result: TaskResult | None) -> None:
    """Count one object's result in ``stats`` (``None``: nothing came back, so unlabeled)."""
    if result is None:
        stats.add_unlabeled()
    elif result.label is None:
        stats.add_failed(
            result.failure_reason, workers=result.n_workers, seconds=result.worker_seconds
        )
    else:
        stats.add_labeled(
            len(result.label.detections.boxes),
            workers=result.n_workers,
            seconds=result.worker_seconds,
        )
