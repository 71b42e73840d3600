"""A small labeling API over a JournalStore with a settable clock, for the labeling tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boxloop.labeling import (
    API_BASE,
    ApiRequest,
    ApiResponse,
    ImageSigner,
    JobInfo,
    JournalStore,
    LabelingApi,
    PreBox,
    TaskInfo,
    TokenAuth,
)

if TYPE_CHECKING:
    from pathlib import Path

TOKEN = "t" * 32
CLASSES = {0: "car", 1: "person"}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    api: LabelingApi
    store: JournalStore
    clock: Clock
    tasks: list[TaskInfo]

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        worker: str | None = "w1",
        token: str | None = TOKEN,
        query: dict[str, str] | None = None,
    ) -> ApiResponse:
        headers = {}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        if worker is not None:
            headers["x-boxloop-worker"] = worker
        return self.api.handle(
            ApiRequest(
                method=method,
                path=path if path.startswith("/config") else API_BASE + path,
                query=query or {},
                headers=headers,
                body=body,
            )
        )


def make_tasks(tmp: Path, n: int = 3, *, preannotate_first: bool = True) -> list[TaskInfo]:
    tasks = []
    for i in range(n):
        image = tmp / f"img{i}.png"
        image.write_bytes(b"\x89PNG fake " + bytes([i]))
        pre = (PreBox(class_id=0, left=1, top=2, width=10, height=12, score=0.9),)
        tasks.append(
            TaskInfo(
                task_id=f"rec{i}",
                source_ref=str(image),
                image=str(image),
                width=64,
                height=48,
                role="pool" if i else "validation",
                preannotations=pre if (i == 1 and preannotate_first) else (),
            )
        )
    return tasks


def harness(tmp: Path, *, n: int = 3, workers_per_object: int = 1, lease_s: float = 60) -> Harness:
    clock = Clock()
    store = JournalStore(tmp / "labeling" / "journal.jsonl")
    signer = ImageSigner(b"k" * 32, clock=clock)
    api = LabelingApi(
        store,
        TokenAuth(TOKEN),
        image_url=lambda t: signer.url(API_BASE, t.task_id),
        signer=signer,
        lease_s=lease_s,
        clock=clock,
    )
    tasks = make_tasks(tmp, n)
    store.open_job(
        JobInfo(name="job-1", classes=CLASSES, workers_per_object=workers_per_object), tasks
    )
    return Harness(api, store, clock, tasks)


def box(class_id: int = 0, left: float = 5, top: float = 6, width: float = 20, height: float = 10):
    return {"class_id": class_id, "left": left, "top": top, "width": width, "height": height}
