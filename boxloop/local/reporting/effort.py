"""Human effort of a run: what each labeling job's ``boxloop-workforce.json`` says, summed.

Every local labeling job writes that stats file (``LabelingRunner``): its counts and the
workforce's worker time, simulated for the simulated workforce, none for imported labels. The
browser workforce adds an ``"effort"`` block measured in the page (see docs/labeling-api.md):
seconds, boxes and what the annotator did with the model's pre-annotations. The report shows
the measured figures next to the simulated ones, and what the pre-annotations saved: seconds
per image on pre-annotated images against images labeled from scratch.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from boxloop.aws.s3 import S3Uri, iter_keys, read_text
from boxloop.core.errors import BoxloopError
from boxloop.labeling.output import STATS_FILE

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from boxloop.steps.run import RunPaths

_MEASURED_COUNTS = (
    "boxes_drawn",
    "model_boxes_accepted",
    "model_boxes_moved",
    "model_boxes_deleted",
)


def read_labeling_stats(paths: RunPaths, iterations: int) -> list[dict[str, Any]]:
    """Every labeling job's stats file of the run, in iteration order.

    Each iteration's jobs write under ``iter-<k>/labeling/output/<job>/`` (the labeling
    request's ``S3OutputPath``); an iteration without human labeling has none.

    Raises:
        BoxloopError: a stats file is not a JSON object (it names the file).
    """
    stats = []
    for k in range(iterations + 1):
        prefix = paths.step(k, "labeling", "output")
        bucket = S3Uri.parse(prefix).bucket
        for key in sorted(iter_keys(prefix)):
            if not key.endswith(f"/{STATS_FILE}"):
                continue
            uri = f"s3://{bucket}/{key}"
            data = json.loads(read_text(uri))
            if not isinstance(data, dict):
                raise BoxloopError(f"{uri}: a labeling job's stats must be a JSON object")
            stats.append(data)
    return stats


def _rates(images: int, seconds: float, boxes: int) -> dict[str, Any]:
    """Totals with seconds per image and per box (``None`` where there is nothing to divide)."""
    return {
        "images": images,
        "seconds": round(seconds, 3),
        "boxes": boxes,
        "seconds_per_image": round(seconds / images, 3) if images else None,
        "seconds_per_box": round(seconds / boxes, 3) if boxes else None,
    }


def _measured(efforts: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The measured block: all images, pre-annotated vs from scratch, and the saving."""
    totals: dict[str, float] = {}
    for effort in efforts:
        for key, value in effort.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
    images = int(totals.get("images", 0))
    if not images:
        return None
    seconds, boxes = float(totals.get("seconds", 0.0)), int(totals.get("boxes", 0))
    pre_images = int(totals.get("preannotated_images", 0))
    pre_seconds = float(totals.get("preannotated_seconds", 0.0))
    pre_boxes = int(totals.get("preannotated_boxes", 0))
    preannotated = _rates(pre_images, pre_seconds, pre_boxes)
    scratch = _rates(images - pre_images, seconds - pre_seconds, boxes - pre_boxes)
    saving = None
    if preannotated["seconds_per_image"] is not None and scratch["seconds_per_image"]:
        saved = scratch["seconds_per_image"] - preannotated["seconds_per_image"]
        saving = {
            "seconds_per_image": round(saved, 3),
            "fraction": round(saved / scratch["seconds_per_image"], 4),
        }
    return {
        **_rates(images, seconds, boxes),
        **{key: int(totals.get(key, 0)) for key in _MEASURED_COUNTS},
        "preannotated": preannotated,
        "from_scratch": scratch,
        "preannotation_saving": saving,
    }


def human_effort(stats: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The report's ``human_effort`` block from the jobs' stats, or ``None`` without jobs.

    ``workforce_time`` is what the workforces reported (``worker_seconds``): simulated seconds
    for the simulated workforce (``simulated`` true), measured ones for the browser; imported
    labels report none. ``measured`` sums the browser's ``effort`` blocks; ``None`` when no
    job measured anything (simulated and imported runs). Images and boxes count per worker,
    as they cost: an image two annotators labeled counts twice, and so do its boxes (the
    stats count the consolidated label's boxes once, so they are multiplied by the job's
    workers per image).
    """
    stats = list(stats)
    if not stats:
        return None
    workforces = sorted({str(s.get("workforce", "unknown")) for s in stats})
    labeled = sum(int(s.get("labeled", 0)) for s in stats)
    tasks = sum(int(s.get("worker_tasks", 0)) for s in stats)
    seconds = sum(float(s.get("worker_seconds", 0.0)) for s in stats)
    boxes = sum(int(s.get("boxes", 0)) for s in stats)
    worker_boxes = sum(_worker_boxes(s) for s in stats)
    efforts = [s["effort"] for s in stats if isinstance(s.get("effort"), dict)]
    return {
        "jobs": len(stats),
        "workforces": workforces,
        "labeled_images": labeled,
        "boxes": boxes,
        "workforce_time": {
            "simulated": workforces == ["simulated"],
            **_rates(tasks, seconds, worker_boxes),
        },
        "measured": _measured(efforts),
    }


def _worker_boxes(stats: Mapping[str, Any]) -> int:
    """A job's boxes as its workers drew them: label boxes times workers per image."""
    objects = int(stats.get("labeled", 0)) + int(stats.get("failed", 0))
    if not objects:
        return 0
    return round(int(stats.get("boxes", 0)) * int(stats.get("worker_tasks", 0)) / objects)
