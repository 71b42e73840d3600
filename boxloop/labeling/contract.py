"""The labeling API's values: requests, responses, errors and the shapes stored per task.

Pure standard library, so every host (the local ``ThreadingHTTPServer``, AWS Lambda) builds
the same `ApiRequest`, gets the same `ApiResponse`, and a `TaskStore` of any kind stores the
same `TaskInfo`, `Answer` and `Lease`. ``docs/labeling-api.md`` is the contract in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

API_BASE = "/api/v1"
MAX_BODY_BYTES = 1 << 20
"""Request bodies over this are refused (413) by the host before parsing."""
MAX_BOXES = 500
WORKER_HEADER = "x-boxloop-worker"

ERROR_STATUS = {
    "bad_request": 400,
    "bad_box": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "job_closed": 409,
    "lease_expired": 410,
    "too_large": 413,
    "bad_host": 421,
    "internal": 500,
}


class ApiError(Exception):
    """An API failure with its HTTP status, stable ``code``, a sentence and the field at fault."""

    def __init__(
        self, code: str, message: str, field: str | None = None, *, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status or ERROR_STATUS[code]
        self.message = message
        self.field = field

    def to_json(self) -> dict[str, Any]:
        """The error body every route answers with."""
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls: the worker id the host vouches for, and its name when known."""

    worker_id: str
    name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiRequest:
    """One call, host-neutral: ``headers`` keys are lower-case; ``body`` is parsed JSON."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiResponse:
    """What the host writes back: JSON ``body``, or the bytes of the local image ``file``."""

    status: int = 200
    body: Any = None
    file: str | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def error(cls, error: ApiError) -> ApiResponse:
        """The JSON error response of ``error``."""
        return cls(status=error.status, body=error.to_json())


@dataclass(frozen=True, slots=True, kw_only=True)
class JobInfo:
    """The open labeling job as the page sees it.

    Attributes:
        name: ``LabelingJobName``.
        classes: Class id -> name.
        workers_per_object: Different workers each image needs.
        title: Short task title shown on the page.
        instructions: What to label, shown in the help overlay.
    """

    name: str
    classes: dict[int, str]
    workers_per_object: int = 1
    title: str = ""
    instructions: str = ""

    def to_json(self) -> dict[str, Any]:
        """The ``job`` block of ``GET /session`` (without counts)."""
        return {
            "name": self.name,
            "title": self.title,
            "instructions": self.instructions,
            "classes": [{"id": i, "name": n} for i, n in sorted(self.classes.items())],
            "workers_per_object": self.workers_per_object,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PreBox:
    """A model's suggested box (pixels) with its score."""

    class_id: int
    left: float
    top: float
    width: float
    height: float
    score: float

    def to_json(self) -> dict[str, Any]:
        """The ``preannotations[]`` item."""
        return {
            "class_id": self.class_id,
            "left": self.left,
            "top": self.top,
            "width": self.width,
            "height": self.height,
            "score": self.score,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PreBox:
        """Back from `to_json` (trusted: written by boxloop)."""
        return cls(
            class_id=int(data["class_id"]),
            left=float(data["left"]),
            top=float(data["top"]),
            width=float(data["width"]),
            height=float(data["height"]),
            score=float(data["score"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskInfo:
    """One image of the open job.

    Attributes:
        task_id: The image's ledger record id: stable across jobs and resumed runs.
        source_ref: The image as the user's manifest names it (for messages and the journal).
        image: Where the host reads the image (a local path, or an S3 URI on AWS).
        width: Image width, pixels.
        height: Image height, pixels.
        role: The record's role (``pool``, ``validation``, ``seed``; ``audit`` for an audited
            pool image).
        preannotations: The model's boxes to start from (pool images only).
    """

    task_id: str
    source_ref: str
    image: str
    width: int
    height: int
    role: str = "pool"
    preannotations: tuple[PreBox, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Stored form (a `TaskStore` row)."""
        return {
            "task_id": self.task_id,
            "source_ref": self.source_ref,
            "image": self.image,
            "width": self.width,
            "height": self.height,
            "role": self.role,
            "preannotations": [p.to_json() for p in self.preannotations],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskInfo:
        """Back from `to_json`."""
        return cls(
            task_id=str(data["task_id"]),
            source_ref=str(data["source_ref"]),
            image=str(data["image"]),
            width=int(data["width"]),
            height=int(data["height"]),
            role=str(data.get("role", "pool")),
            preannotations=tuple(PreBox.from_json(p) for p in data.get("preannotations", ())),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerBox:
    """One submitted box (pixels), checked, with where it came from."""

    class_id: int
    left: float
    top: float
    width: float
    height: float
    origin: str = "human"
    edited: bool = False

    def to_json(self) -> dict[str, Any]:
        """The ``boxes[]`` item of a submit body."""
        return {
            "class_id": self.class_id,
            "left": self.left,
            "top": self.top,
            "width": self.width,
            "height": self.height,
            "origin": self.origin,
            "edited": self.edited,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnswerBox:
        """Back from `to_json` (trusted: the journal's own lines)."""
        return cls(
            class_id=int(data["class_id"]),
            left=float(data["left"]),
            top=float(data["top"]),
            width=float(data["width"]),
            height=float(data["height"]),
            origin=str(data.get("origin", "human")),
            edited=bool(data.get("edited", False)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """One worker's answer for one image: what the journal keeps, keyed ``(task_id, worker_id)``.

    Attributes:
        task_id: The image's record id.
        worker_id: Who answered.
        worker_name: The name the worker gave (provenance), or ``None``.
        job: The job it was given in.
        source_ref: The image, for people reading the journal.
        image_wh: Image size the boxes are in.
        boxes: The checked boxes.
        no_objects: The explicit "nothing to label here" answer.
        effort: Per-answer effort figures (`boxloop.labeling.effort.Effort` as JSON).
        preannotated: Whether the task showed model boxes.
        kind: ``"label"``; ``"review"`` for a correction made in review mode.
        at: Unix time it was recorded.
    """

    task_id: str
    worker_id: str
    worker_name: str | None
    job: str
    source_ref: str
    image_wh: tuple[int, int]
    boxes: tuple[AnswerBox, ...]
    no_objects: bool
    effort: dict[str, float] = field(default_factory=dict)
    preannotated: bool = False
    kind: str = "label"
    at: float = 0.0

    def same_content(self, other: Answer) -> bool:
        """Whether ``other`` says the same (a duplicate submit), whenever it was made."""
        return (self.boxes, self.no_objects, self.kind) == (
            other.boxes,
            other.no_objects,
            other.kind,
        )

    def to_json(self) -> dict[str, Any]:
        """The journal line (without ``kind: answer`` framing)."""
        return {
            "task_id": self.task_id,
            "worker_id": self.worker_id,
            "worker_name": self.worker_name,
            "job": self.job,
            "source_ref": self.source_ref,
            "image_wh": list(self.image_wh),
            "boxes": [b.to_json() for b in self.boxes],
            "no_objects": self.no_objects,
            "effort": dict(self.effort),
            "preannotated": self.preannotated,
            "answer_kind": self.kind,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Answer:
        """Back from `to_json`."""
        wh = data["image_wh"]
        return cls(
            task_id=str(data["task_id"]),
            worker_id=str(data["worker_id"]),
            worker_name=data.get("worker_name"),
            job=str(data.get("job", "")),
            source_ref=str(data.get("source_ref", "")),
            image_wh=(int(wh[0]), int(wh[1])),
            boxes=tuple(AnswerBox.from_json(b) for b in data.get("boxes", ())),
            no_objects=bool(data.get("no_objects", False)),
            effort=dict(data.get("effort") or {}),
            preannotated=bool(data.get("preannotated", False)),
            kind=str(data.get("answer_kind", "label")),
            at=float(data.get("at", 0.0)),
        )

    def answer_json(self) -> dict[str, Any]:
        """The ``answer`` block of a Task: what the page re-opens."""
        return {
            "boxes": [b.to_json() for b in self.boxes],
            "no_objects": self.no_objects,
            "effort": dict(self.effort),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """A worker's hold on a task until ``expires_at`` (Unix seconds)."""

    task_id: str
    lease_id: str
    worker_id: str
    expires_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    """Images of the open job: all, with every answer, not yet, held now."""

    total: int = 0
    done: int = 0
    leased: int = 0

    @property
    def left(self) -> int:
        """Images still needing answers."""
        return self.total - self.done

    def to_json(self) -> dict[str, int]:
        """The ``counts`` block."""
        return {"total": self.total, "done": self.done, "left": self.left, "leased": self.leased}
