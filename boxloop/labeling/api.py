"""`LabelingApi`: every route of ``/api/v1`` (see docs/labeling-api.md), host-neutral.

A host (the local ``ThreadingHTTPServer``, an AWS Lambda) turns its request into an
`ApiRequest`, calls `LabelingApi.handle` and writes the `ApiResponse`. The API authenticates
through the host's authenticator, checks every body, keeps state only in the `TaskStore`, and
never takes a file path from the client: an image is named by its task id and served from the
task's own input.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from boxloop.labeling.contract import (
    API_BASE,
    Answer,
    ApiError,
    ApiRequest,
    ApiResponse,
    JobInfo,
    Principal,
    TaskInfo,
)
from boxloop.labeling.effort import check_effort
from boxloop.labeling.review import REVIEW_JOB, ReviewItem, review_page
from boxloop.labeling.validation import check_boxes

if TYPE_CHECKING:
    from collections.abc import Callable

    from boxloop.labeling.auth import ImageSigner
    from boxloop.labeling.contract import Lease
    from boxloop.labeling.review import ReviewCatalog
    from boxloop.labeling.store import TaskStore

DEFAULT_LEASE_S = 600.0
MAX_NAME = 80
_TASK_ID = r"([A-Za-z0-9_-]{1,128})"
_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("GET", re.compile(r"^/config\.json$"), "config"),
    ("GET", re.compile(rf"^{API_BASE}/session$"), "session"),
    ("POST", re.compile(rf"^{API_BASE}/worker$"), "worker"),
    ("POST", re.compile(rf"^{API_BASE}/tasks/next$"), "next"),
    ("GET", re.compile(rf"^{API_BASE}/tasks/{_TASK_ID}$"), "task"),
    ("POST", re.compile(rf"^{API_BASE}/tasks/{_TASK_ID}/submit$"), "submit"),
    ("POST", re.compile(rf"^{API_BASE}/tasks/{_TASK_ID}/release$"), "release"),
    ("GET", re.compile(rf"^{API_BASE}/images/{_TASK_ID}$"), "image"),
    ("GET", re.compile(rf"^{API_BASE}/review/items$"), "review_items"),
    ("POST", re.compile(rf"^{API_BASE}/review/items/{_TASK_ID}/correct$"), "review_correct"),
)
"""(method, path pattern, handler): the route table."""
_NO_AUTH = {"config", "image"}
_IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
}


def _body(request: ApiRequest) -> dict[str, Any]:
    body = request.body
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError("bad_request", "the request body must be a JSON object")
    return body


class LabelingApi:
    """The labeling API over a `TaskStore`.

    Args:
        store: Tasks, leases, answers.
        auth: The host's authenticator: request -> `Principal`, or ``ApiError("unauthorized")``.
        image_url: A task -> the URL an ``<img>`` loads it from (signed or presigned).
        signer: Checks ``/api/v1/images/...`` links; ``None`` when images come from elsewhere
            (S3 presigned URLs), which turns the image route off.
        lease_s: How long a lease lasts.
        client_config: ``GET /config.json``'s body.
        clock: Unix seconds.
        review: Review mode's catalog (``boxloop review OUT``); ``None`` serves label mode.
    """

    def __init__(
        self,
        store: TaskStore,
        auth: Callable[[ApiRequest], Principal],
        *,
        image_url: Callable[[TaskInfo], str],
        signer: ImageSigner | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        client_config: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        review: ReviewCatalog | None = None,
    ) -> None:
        """See the class docstring."""
        self.store = store
        self.auth = auth
        self.image_url = image_url
        self.signer = signer
        self.lease_s = float(lease_s)
        self.client_config = client_config or {"api": API_BASE, "auth": "token", "cognito": None}
        self.clock = clock
        self.review = review

    def handle(self, request: ApiRequest) -> ApiResponse:
        """Answer one call; every failure is a JSON error response, never an exception."""
        try:
            return self._route(request)
        except ApiError as error:
            return ApiResponse.error(error)

    def _route(self, request: ApiRequest) -> ApiResponse:
        path_known = False
        for method, pattern, name in _ROUTES:
            match = pattern.match(request.path)
            if not match:
                continue
            path_known = True
            if method != request.method:
                continue
            if name in _NO_AUTH:
                return getattr(self, f"_{name}")(request, *match.groups())
            principal = self.auth(request)
            return getattr(self, f"_{name}")(request, principal, *match.groups())
        if path_known:
            raise ApiError(
                "bad_request", f"{request.method} is not allowed on {request.path}", status=405
            )
        raise ApiError("not_found", f"no such route: {request.method} {request.path}")

    # -- routes -------------------------------------------------------------------------------

    def _config(self, request: ApiRequest) -> ApiResponse:
        return ApiResponse(body=self.client_config)

    def _worker_json(self, principal: Principal) -> dict[str, Any]:
        name = self.store.worker_name(principal.worker_id) or principal.name
        return {"id": principal.worker_id, "name": name}

    def _session(self, request: ApiRequest, principal: Principal) -> ApiResponse:
        if self.review is not None:
            return ApiResponse(
                body={
                    "mode": "review",
                    "job": self._review_job(),
                    "worker": self._worker_json(principal),
                }
            )
        job = self.store.job()
        job_json = None
        if job is not None:
            job_json = {**job.to_json(), "counts": self.store.counts(self.clock()).to_json()}
        return ApiResponse(
            body={"mode": "label", "job": job_json, "worker": self._worker_json(principal)}
        )

    def _worker(self, request: ApiRequest, principal: Principal) -> ApiResponse:
        name = _body(request).get("name")
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME:
            raise ApiError(
                "bad_request", f"name must be 1-{MAX_NAME} characters, got {name!r}", "name"
            )
        self.store.set_worker_name(principal.worker_id, name.strip())
        return ApiResponse(body={"worker": self._worker_json(principal)})

    def _task_json(self, task: TaskInfo, lease: Lease | None, worker_id: str) -> dict[str, Any]:
        earlier = next(
            (a for a in self.store.answers(task.task_id) if a.worker_id == worker_id), None
        )
        return {
            "task_id": task.task_id,
            "image_url": self.image_url(task),
            "width": task.width,
            "height": task.height,
            "role": task.role,
            "lease_id": lease.lease_id if lease else None,
            "lease_expires_at": lease.expires_at if lease else None,
            "preannotations": [p.to_json() for p in task.preannotations],
            "answer": earlier.answer_json() if earlier else None,
        }

    def _next(self, request: ApiRequest, principal: Principal) -> ApiResponse:
        _body(request)
        claim = self.store.claim(principal.worker_id, self.clock(), self.lease_s)
        if claim.lease is None:
            return ApiResponse(body={"task": None, "reason": claim.reason})
        task = self.store.task(claim.lease.task_id)
        if task is None:  # the job closed between claim and read
            return ApiResponse(body={"task": None, "reason": "no-job"})
        return ApiResponse(
            body={"task": self._task_json(task, claim.lease, principal.worker_id), "reason": None}
        )

    def _open_task(self, task_id: str, worker_id: str, *, held: bool = False) -> TaskInfo:
        """The task in the open job, else ``job_closed`` or ``not_found``.

        ``held``: the call carries a lease, so the worker held the task in a job that has
        closed since (leases end with their job, so the store cannot tell; a client that made
        one up learns no more than from ``not_found``: the task is in no open job).
        """
        task = self.store.task(task_id)
        if task is not None:
            return task
        if any(a.worker_id == worker_id for a in self.store.answers(task_id)):
            raise ApiError(
                "job_closed",
                "this image's job has ended; its answer is final (it is in the run's labels)",
            )
        if held:
            raise ApiError(
                "job_closed",
                f"the labeling job of image {task_id} has closed (its images were answered or "
                "its time ran out), so this answer was not needed and is not kept (one you gave "
                "before the close is); take the next image",
            )
        raise ApiError("not_found", f"no open task {task_id}")

    def _task(self, request: ApiRequest, principal: Principal, task_id: str) -> ApiResponse:
        task = self._open_task(task_id, principal.worker_id)
        lease = self.store.lease_of(task_id, principal.worker_id, self.clock())
        answered = any(a.worker_id == principal.worker_id for a in self.store.answers(task_id))
        if lease is None and not answered:
            raise ApiError(
                "not_found", f"task {task_id} is neither answered nor held by this worker"
            )
        return ApiResponse(body=self._task_json(task, lease, principal.worker_id))

    def _submit(self, request: ApiRequest, principal: Principal, task_id: str) -> ApiResponse:
        body = _body(request)
        worker = principal.worker_id
        lease_id = body.get("lease_id")
        task = self._open_task(task_id, worker, held=isinstance(lease_id, str) and bool(lease_id))
        job = self.store.job()
        if job is None:
            raise ApiError("job_closed", "no labeling job is open; wait for the next batch")
        now = self.clock()
        self._check_lease(task, job.workers_per_object, lease_id, worker, now)
        boxes, no_objects = check_boxes(
            body, (task.width, task.height), job.classes, task.source_ref
        )
        answer = Answer(
            task_id=task_id,
            worker_id=worker,
            worker_name=self.store.worker_name(worker) or principal.name,
            job=job.name,
            source_ref=task.source_ref,
            image_wh=(task.width, task.height),
            boxes=boxes,
            no_objects=no_objects,
            effort=check_effort(body.get("effort"), self.lease_s),
            preannotated=bool(task.preannotations),
            at=round(now, 3),
        )
        duplicate = self.store.record(answer)
        counts = self.store.counts(self.clock()).to_json()
        return ApiResponse(body={"accepted": True, "duplicate": duplicate, "counts": counts})

    def _check_lease(
        self, task: TaskInfo, workers_per_object: int, lease_id: Any, worker: str, now: float
    ) -> None:
        """Accept a live lease, the worker's earlier answer, or an expired lease still needed.

        An expired lease is accepted while the image still needs this worker's answer (labels
        cost money: none thrown away needlessly); once others hold or finished it, refused.
        """
        if lease_id is not None and not isinstance(lease_id, str):
            raise ApiError("bad_request", "lease_id must be a string or null", "lease_id")
        answers = self.store.answers(task.task_id)
        if any(a.worker_id == worker for a in answers):
            return
        lease = self.store.lease_of(task.task_id, worker, now)
        if lease is not None:
            return
        needed = workers_per_object - len(answers)
        held = sum(1 for held in self.store.leases(task.task_id, now) if held.worker_id != worker)
        if needed - held <= 0:
            raise ApiError(
                "lease_expired",
                f"your time on {task.source_ref} ran out and it went to someone else; "
                "take the next image",
                "lease_id",
            )

    def _release(self, request: ApiRequest, principal: Principal, task_id: str) -> ApiResponse:
        lease_id = _body(request).get("lease_id")
        if not isinstance(lease_id, str):
            raise ApiError("bad_request", "lease_id must be the task's lease id", "lease_id")
        self._open_task(task_id, principal.worker_id)
        released = self.store.release(task_id, lease_id, principal.worker_id)
        counts = self.store.counts(self.clock()).to_json()
        return ApiResponse(body={"released": released, "counts": counts})

    def _image(self, request: ApiRequest, task_id: str) -> ApiResponse:
        if self.signer is None:
            raise ApiError("not_found", "images are not served here")
        self.signer.check(task_id, request.query.get("exp", ""), request.query.get("sig", ""))
        found = self.review.item(task_id) if self.review is not None else self.store.task(task_id)
        if found is None:
            raise ApiError("not_found", f"no image {task_id} here")
        image = found.image
        suffix = "." + image.rsplit(".", 1)[-1].lower() if "." in image else ""
        return ApiResponse(
            file=image,
            content_type=_IMAGE_TYPES.get(suffix, "application/octet-stream"),
            headers={"Cache-Control": "private, max-age=3600"},
        )

    # -- review mode --------------------------------------------------------------------------

    def _catalog(self) -> ReviewCatalog:
        if self.review is None:
            raise ApiError(
                "not_found", "this server labels a batch; review runs with boxloop review"
            )
        return self.review

    def _review_job(self) -> dict[str, Any]:
        catalog = self._catalog()
        total = len(catalog.items())
        done = sum(1 for item in catalog.items() if self.store.answers(item.item_id))
        return {
            **JobInfo(name=catalog.name, classes=catalog.classes, title="Review").to_json(),
            "counts": {"total": total, "done": done, "left": total - done, "leased": 0},
        }

    def _review_items(self, request: ApiRequest, principal: Principal) -> ApiResponse:
        items, total = review_page(self._catalog(), request.query)
        return ApiResponse(
            body={
                "items": [item.to_json(self.image_url(_review_task(item))) for item in items],
                "total": total,
            }
        )

    def _review_correct(
        self, request: ApiRequest, principal: Principal, item_id: str
    ) -> ApiResponse:
        catalog = self._catalog()
        item = catalog.item(item_id)
        if item is None:
            raise ApiError("not_found", f"no image {item_id} in this run")
        boxes, no_objects = check_boxes(
            _body(request), (item.width, item.height), catalog.classes, item.source_ref
        )
        worker = principal.worker_id
        answer = Answer(
            task_id=item_id,
            worker_id=worker,
            worker_name=self.store.worker_name(worker) or principal.name,
            job=REVIEW_JOB,
            source_ref=item.source_ref,
            image_wh=(item.width, item.height),
            boxes=boxes,
            no_objects=no_objects,
            kind="review",
            at=round(self.clock(), 3),
        )
        duplicate = self.store.record(answer)
        catalog.apply(answer)
        return ApiResponse(
            body={
                "accepted": True,
                "duplicate": duplicate,
                "item": _item_json(catalog, item_id, self),
            }
        )


def _review_task(item: ReviewItem) -> TaskInfo:
    """A review item as the image-URL signer sees it (by id and file)."""
    return TaskInfo(
        task_id=item.item_id,
        source_ref=item.source_ref,
        image=item.image,
        width=item.width,
        height=item.height,
        role=item.kind,
    )


def _item_json(catalog: ReviewCatalog, item_id: str, api: LabelingApi) -> dict[str, Any] | None:
    item = catalog.item(item_id)
    return item.to_json(api.image_url(_review_task(item))) if item else None
