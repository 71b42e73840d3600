"""Where the labeling API keeps tasks, leases and answers: the `TaskStore` Protocol.

`JournalStore` is the local store: an in-memory index over an append-only JSON-lines journal,
each answer flushed and fsynced before the API replies, so a submitted label survives Ctrl-C,
a crash or a power cut, and a restarted store (a resumed run) rebuilds every answer from it.
Answers are keyed by ``(task_id, worker_id)`` and ``task_id`` is the image's ledger record id,
so a later job (or a resumed run, whose job names are new) finds them by image.

Leases live in memory only: after a restart every unanswered image is free again, which is
what an expired lease means anyway.

The AWS host implements the same Protocol over DynamoDB (``boxloop/aws/labeling_store.py``).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from boxloop.labeling.contract import Answer, Counts, JobInfo, Lease, TaskInfo

if TYPE_CHECKING:
    from collections.abc import Sequence

JOURNAL_FILE = "journal.jsonl"


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of `TaskStore.claim`: a lease, or why there is none.

    ``reason`` is ``"done"`` (nothing left this worker may answer), ``"all-leased"`` (what is
    left is held by others: ask again) or ``"no-job"`` (between jobs).
    """

    lease: Lease | None
    reason: str | None = None


class TaskStore(Protocol):
    """Tasks of the open job, their leases, and every answer, for `LabelingApi`.

    Every method is safe to call from several threads (or Lambda invocations) at once.
    """

    def open_job(self, job: JobInfo, tasks: Sequence[TaskInfo]) -> None:
        """Make ``job`` the open job with ``tasks``; again with the same job: a no-op.

        Earlier answers for a task's id count only when they are for its image size.
        """
        ...

    def close_job(self, name: str) -> None:
        """End job ``name``: its tasks take no more answers (``job_closed``)."""
        ...

    def job(self) -> JobInfo | None:
        """The open job, or ``None`` between jobs."""
        ...

    def task(self, task_id: str) -> TaskInfo | None:
        """A task of the open job."""
        ...

    def claim(self, worker_id: str, now: float, lease_s: float) -> Claim:
        """Lease the next task ``worker_id`` may answer (its own live lease first, renewed)."""
        ...

    def lease_of(self, task_id: str, worker_id: str, now: float) -> Lease | None:
        """``worker_id``'s live lease on ``task_id``."""
        ...

    def leases(self, task_id: str, now: float) -> list[Lease]:
        """Every live lease on ``task_id``."""
        ...

    def release(self, task_id: str, lease_id: str, worker_id: str) -> bool:
        """Drop that lease; ``False`` when it was not (or no longer) held."""
        ...

    def record(self, answer: Answer) -> bool:
        """Store ``answer`` durably, replacing the worker's earlier one for the task.

        Returns ``True`` when it is a duplicate (same content already stored: nothing written).
        The worker's lease on the task, if any, ends.
        """
        ...

    def answers(self, task_id: str) -> list[Answer]:
        """Every worker's latest answer for ``task_id`` (any job), in first-answer order."""
        ...

    def counts(self, now: float) -> Counts:
        """Counts of the open job."""
        ...

    def set_worker_name(self, worker_id: str, name: str) -> None:
        """Remember the name ``worker_id`` gave (durably)."""
        ...

    def worker_name(self, worker_id: str) -> str | None:
        """The name ``worker_id`` gave, or ``None``."""
        ...


class JournalStore:
    """The local `TaskStore`: memory index + fsynced append-only journal.

    ``changed`` is notified after every answer and job change, so a waiting workforce wakes.
    """

    def __init__(self, journal: Path) -> None:
        """Open (or create) ``journal`` and replay it.

        A last line cut short by a crash is skipped (the answer it held was never acknowledged).
        """
        self.path = Path(journal)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)
        self._answers: dict[str, dict[str, Answer]] = {}
        self._names: dict[str, str] = {}
        self._job: JobInfo | None = None
        self._tasks: dict[str, TaskInfo] = {}
        self._leases: dict[str, dict[str, Lease]] = {}
        self.skipped_lines = self._replay()
        self._file = self.path.open("a", encoding="utf-8")

    def _replay(self) -> int:
        if not self.path.exists():
            return 0
        skipped = 0
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.path.open("ab") as f:  # a torn last line stays alone, never joins the next
                f.write(b"\n")
        for raw in data.splitlines():
            try:
                line = json.loads(raw)
                if line.get("kind") == "worker":
                    self._names[str(line["worker_id"])] = str(line["name"])
                elif line.get("kind") == "answer":
                    answer = Answer.from_json(line)
                    self._answers.setdefault(answer.task_id, {})[answer.worker_id] = answer
            except (ValueError, KeyError, TypeError, IndexError):
                skipped += 1
        return skipped

    def _append(self, line: dict[str, Any]) -> None:
        self._file.write(json.dumps(line, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the journal file."""
        with self._lock:
            self._file.close()

    # -- jobs ---------------------------------------------------------------------------------

    def open_job(self, job: JobInfo, tasks: Sequence[TaskInfo]) -> None:
        """See `TaskStore.open_job`."""
        with self._lock:
            if self._job is not None and self._job.name == job.name:
                return
            self._job = job
            self._tasks = {t.task_id: t for t in tasks}
            self._leases = {}
            for task in tasks:  # answers for another size of the image are for another image
                answers = self._answers.get(task.task_id, {})
                for worker, answer in list(answers.items()):
                    if answer.image_wh != (task.width, task.height):
                        del answers[worker]
            self.changed.notify_all()

    def close_job(self, name: str) -> None:
        """See `TaskStore.close_job`."""
        with self._lock:
            if self._job is not None and self._job.name == name:
                self._job, self._tasks, self._leases = None, {}, {}
                self.changed.notify_all()

    def job(self) -> JobInfo | None:
        """See `TaskStore.job`."""
        return self._job

    def task(self, task_id: str) -> TaskInfo | None:
        """See `TaskStore.task`."""
        return self._tasks.get(task_id)

    # -- leases -------------------------------------------------------------------------------

    def _needed(self, task_id: str) -> int:
        """How many more different workers ``task_id`` needs."""
        wanted = self._job.workers_per_object if self._job else 1
        return max(0, wanted - len(self._answers.get(task_id, {})))

    def _live(self, task_id: str, now: float) -> dict[str, Lease]:
        leases = self._leases.get(task_id, {})
        for worker, lease in list(leases.items()):
            if lease.expires_at <= now:
                del leases[worker]
        return leases

    def claim(self, worker_id: str, now: float, lease_s: float) -> Claim:
        """See `TaskStore.claim`."""
        with self._lock:
            if self._job is None:
                return Claim(None, "no-job")
            held_by_others = False
            for task_id in self._tasks:
                leases = self._live(task_id, now)
                mine = leases.get(worker_id)
                if mine is not None:
                    renewed = Lease(
                        task_id=task_id,
                        lease_id=mine.lease_id,
                        worker_id=worker_id,
                        expires_at=now + lease_s,
                    )
                    leases[worker_id] = renewed
                    return Claim(renewed)
            for task_id in self._tasks:
                needed = self._needed(task_id)
                if needed == 0 or worker_id in self._answers.get(task_id, {}):
                    continue
                leases = self._live(task_id, now)
                if len(leases) >= needed:
                    held_by_others = True
                    continue
                lease = Lease(
                    task_id=task_id,
                    lease_id=secrets.token_urlsafe(12),
                    worker_id=worker_id,
                    expires_at=now + lease_s,
                )
                self._leases.setdefault(task_id, {})[worker_id] = lease
                return Claim(lease)
            return Claim(None, "all-leased" if held_by_others else "done")

    def lease_of(self, task_id: str, worker_id: str, now: float) -> Lease | None:
        """See `TaskStore.lease_of`."""
        with self._lock:
            return self._live(task_id, now).get(worker_id)

    def leases(self, task_id: str, now: float) -> list[Lease]:
        """See `TaskStore.leases`."""
        with self._lock:
            return list(self._live(task_id, now).values())

    def release(self, task_id: str, lease_id: str, worker_id: str) -> bool:
        """See `TaskStore.release`."""
        with self._lock:
            leases = self._leases.get(task_id, {})
            lease = leases.get(worker_id)
            if lease is None or lease.lease_id != lease_id:
                return False
            del leases[worker_id]
            self.changed.notify_all()
            return True

    # -- answers ------------------------------------------------------------------------------

    def record(self, answer: Answer) -> bool:
        """See `TaskStore.record`."""
        with self._lock:
            earlier = self._answers.get(answer.task_id, {}).get(answer.worker_id)
            self._leases.get(answer.task_id, {}).pop(answer.worker_id, None)
            if earlier is not None and earlier.same_content(answer):
                return True
            self._append({"kind": "answer", **answer.to_json()})
            self._answers.setdefault(answer.task_id, {})[answer.worker_id] = answer
            self.changed.notify_all()
            return False

    def answers(self, task_id: str) -> list[Answer]:
        """See `TaskStore.answers`."""
        with self._lock:
            return list(self._answers.get(task_id, {}).values())

    def counts(self, now: float) -> Counts:
        """See `TaskStore.counts`."""
        with self._lock:
            done = sum(1 for t in self._tasks if self._needed(t) == 0)
            leased = sum(1 for t in self._tasks if self._live(t, now))
            return Counts(total=len(self._tasks), done=done, leased=leased)

    def is_done(self, task_id: str) -> bool:
        """Whether ``task_id`` has all its answers (for the open job's workers_per_object)."""
        with self._lock:
            return self._needed(task_id) == 0

    # -- workers ------------------------------------------------------------------------------

    def set_worker_name(self, worker_id: str, name: str) -> None:
        """See `TaskStore.set_worker_name`."""
        with self._lock:
            if self._names.get(worker_id) == name:
                return
            self._append({"kind": "worker", "worker_id": worker_id, "name": name})
            self._names[worker_id] = name

    def worker_name(self, worker_id: str) -> str | None:
        """See `TaskStore.worker_name`."""
        return self._names.get(worker_id)
