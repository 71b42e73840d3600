"""Measured human effort: per answer what the page reports, per job the sums reports read.

The page times each image (seconds the image was on screen and the tab visible) and counts
what the worker did with boxes. Seconds are capped at the lease length: a tab left open over
lunch is not labeling work.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from boxloop.labeling.contract import ApiError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from boxloop.labeling.contract import Answer

EFFORT_COUNTS = (
    "boxes_drawn",
    "model_boxes_accepted",
    "model_boxes_moved",
    "model_boxes_deleted",
)


def check_effort(data: Any, max_seconds: float) -> dict[str, float]:
    """The submit body's ``effort``, checked (``{}`` when absent).

    Raises:
        ApiError: ``bad_request`` naming ``effort.<field>``.
    """
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ApiError("bad_request", "effort must be an object", "effort")
    effort: dict[str, float] = {}
    for key in ("seconds", *EFFORT_COUNTS):
        value = data.get(key, 0)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ApiError(
                "bad_request", f"effort.{key} must be a number >= 0, got {value!r}", f"effort.{key}"
            )
        effort[key] = round(min(float(value), max_seconds), 3) if key == "seconds" else int(value)
    return effort


@dataclass(slots=True)
class EffortSummary:
    """The ``"effort"`` block of a job's ``boxloop-workforce.json`` (see docs/labeling-api.md)."""

    images: int = 0
    seconds: float = 0.0
    boxes: int = 0
    boxes_drawn: int = 0
    model_boxes_accepted: int = 0
    model_boxes_moved: int = 0
    model_boxes_deleted: int = 0
    preannotated_images: int = 0
    preannotated_seconds: float = 0.0
    preannotated_boxes: int = 0
    workers: dict[str, int] = field(default_factory=dict)

    def add(self, answer: Answer) -> None:
        """Count one worker's answer for one image."""
        seconds = float(answer.effort.get("seconds", 0.0))
        self.images += 1
        self.seconds += seconds
        self.boxes += len(answer.boxes)
        for key in EFFORT_COUNTS:
            setattr(self, key, getattr(self, key) + int(answer.effort.get(key, 0)))
        if answer.preannotated:
            self.preannotated_images += 1
            self.preannotated_seconds += seconds
            self.preannotated_boxes += len(answer.boxes)
        who = answer.worker_name or answer.worker_id
        self.workers[who] = self.workers.get(who, 0) + 1

    @classmethod
    def of(cls, answers: Iterable[Answer]) -> EffortSummary:
        """The summary of ``answers``."""
        summary = cls()
        for answer in answers:
            summary.add(answer)
        return summary

    def to_json(self) -> dict[str, Any]:
        """JSON-ready, seconds rounded to milliseconds."""
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["preannotated_seconds"] = round(self.preannotated_seconds, 3)
        return data
