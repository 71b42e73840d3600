"""`DynamoTaskStore`: the labeling API's `TaskStore` in one DynamoDB table (the AWS host).

Every Lambda invocation makes its own store over the same table, so all state is in DynamoDB
and every change is one conditional write: two labelers claiming the same image at once, a
retried invoke registering the batch again, a late submit after the job closed, all end with
one winner and nothing lost.

Items (``pk``, ``sk``):

- ``job#<name>``, ``meta``: the job (`JobInfo` as JSON), its ``status`` (``open`` ->
  ``finishing`` -> ``closed``), the Step Functions task token, the execution, the deadline and
  the spec the finisher needs (input manifest, output path, label attribute).
- ``jobs``, ``<name>``: the index of jobs not yet closed (a Query finds them; few items).
- ``job#<name>``, ``task#<task_id>``: small and hot: ``workers`` (string set of who answered),
  ``leases`` (worker -> ``{lease_id, expires_at}``) and a version ``v`` every change bumps
  (the condition of the next change). Claims and counts read only these.
- ``job#<name>``, ``info#<task_id>``: the `TaskInfo` (image, size, pre-annotations), read once
  per task shown.
- ``answer#<scope>#<task_id>``, ``<worker_id>``: the worker's latest `Answer` for the image in
  the job's scope (the run): an image answered in an earlier job of the run (a deadline, a
  late submit) is not asked for again, while another run over the same images, perhaps with
  other classes, starts afresh.
- ``worker#<worker_id>``, ``name``: the name a worker gave.

Answers are never deleted or expired: they are the human labels the run paid for.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from boxloop.aws.clients import client
from boxloop.labeling.contract import Answer, Counts, JobInfo, Lease, TaskInfo
from boxloop.labeling.store import Claim

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

REGISTERING, OPEN, FINISHING, CLOSED = "registering", "open", "finishing", "closed"
JOBS_PK = "jobs"
_BATCH = 25  # BatchWriteItem's limit
_CONFLICT = "ConditionalCheckFailedException"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": repr(round(float(value), 3)) if isinstance(value, float) else str(value)}


def _job_pk(name: str) -> dict[str, str]:
    return _s(f"job#{name}")


def _num(item: dict[str, Any], key: str, default: float = 0.0) -> float:
    return float(item[key]["N"]) if key in item else default


def _conflict(exc: ClientError) -> bool:
    """Whether DynamoDB refused the write for its condition (another writer got there first)."""
    return exc.response.get("Error", {}).get("Code") == _CONFLICT


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRecord:
    """A job's ``meta`` item, as the finisher and the sweep read it.

    Attributes:
        info: What the page shows.
        status: ``open``, ``finishing`` or ``closed``.
        task_token: The token of the ``LabelInApp`` state waiting on this job.
        execution: The execution ARN (for messages).
        deadline: Unix seconds after which unanswered images expire.
        spec: What the finisher needs: ``input_manifest``, ``output_path``,
            ``label_attribute``, ``failed`` (task id -> failure reason of unreadable images).
        finishing_since: When a finisher took the job (0 when none did).
        scope: Where its answers are kept (the run's id): jobs of one run share answers.
    """

    info: JobInfo
    status: str
    task_token: str
    execution: str
    deadline: float
    spec: dict[str, Any]
    finishing_since: float = 0.0
    scope: str = ""


def _job_from_json(data: dict[str, Any]) -> JobInfo:
    return JobInfo(
        name=str(data["name"]),
        classes={int(k): str(v) for k, v in data["classes"].items()},
        workers_per_object=int(data.get("workers_per_object", 1)),
        title=str(data.get("title", "")),
        instructions=str(data.get("instructions", "")),
    )


def _job_to_json(job: JobInfo) -> dict[str, Any]:
    return {
        "name": job.name,
        "classes": {str(k): v for k, v in job.classes.items()},
        "workers_per_object": job.workers_per_object,
        "title": job.title,
        "instructions": job.instructions,
    }


class DynamoTaskStore:
    """The `TaskStore` over the labeling table; ``job_name`` pins a job (else the oldest open).

    Args:
        table: The table's name (``BOXLOOP_LABELING_TABLE``).
        job_name: Work on this job; ``None`` picks the oldest job still open, as a labeler's
            page sees it (jobs of several runs at once are served one after the other).
        dynamodb: A boto3 DynamoDB client (default: the cached one).
    """

    def __init__(self, table: str, *, job_name: str | None = None, dynamodb: Any = None) -> None:
        """See the class docstring."""
        self.table = table
        self.db = dynamodb or client("dynamodb")
        self._job_name = job_name
        self._record: JobRecord | None = None
        self._loaded = False

    # -- jobs ---------------------------------------------------------------------------------

    def open_jobs(self) -> list[str]:
        """Names of the jobs not yet closed, oldest first."""
        rows = []
        for item in self._query(_s(JOBS_PK)):
            rows.append((_num(item, "created_at"), item["sk"]["S"]))
        return [name for _, name in sorted(rows)]

    def record_of(self, name: str) -> JobRecord | None:
        """Job ``name``'s meta item (any status), or ``None``."""
        item = self.db.get_item(
            TableName=self.table, Key={"pk": _job_pk(name), "sk": _s("meta")}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        return JobRecord(
            info=_job_from_json(json.loads(item["info"]["S"])),
            status=item["status"]["S"],
            task_token=item.get("task_token", {}).get("S", ""),
            execution=item.get("execution", {}).get("S", ""),
            deadline=_num(item, "deadline"),
            spec=json.loads(item.get("spec", {}).get("S", "{}")),
            finishing_since=_num(item, "finishing_since"),
            scope=item.get("scope", {}).get("S", ""),
        )

    def _current(self) -> JobRecord | None:
        if not self._loaded:
            self._loaded = True
            names = [self._job_name] if self._job_name else self.open_jobs()
            for name in names:
                record = self.record_of(name)
                if record is not None and record.status == OPEN:
                    self._record = record
                    break
        return self._record

    def register(
        self,
        job: JobInfo,
        tasks: Iterable[TaskInfo],
        *,
        task_token: str,
        execution: str,
        deadline: float,
        spec: dict[str, Any],
        failed: dict[str, str] | None = None,
        scope: str = "",
        now: float | None = None,
    ) -> bool:
        """Open ``job`` with ``tasks`` (streamed, written in batches), or take a newer token.

        Idempotent: registering a job that exists (a retried invoke) keeps its tasks, leases
        and answers and stores the new task token (Step Functions gives a retry a new one).
        A job that is already closed stays closed. ``failed`` (image id -> why it cannot be
        labeled) is read after ``tasks`` is consumed, so a generator may fill it as it goes.

        Returns:
            ``True`` when the job was new.
        """
        now = time.time() if now is None else now
        meta = {
            "pk": _job_pk(job.name),
            "sk": _s("meta"),
            "info": _s(json.dumps(_job_to_json(job), sort_keys=True)),
            "status": _s(REGISTERING),
            "task_token": _s(task_token),
            "execution": _s(execution),
            "deadline": _n(deadline),
            "spec": _s(json.dumps(spec, sort_keys=True)),
            "created_at": _n(now),
            "scope": _s(scope),
        }
        try:
            self.db.put_item(
                TableName=self.table,
                Item=meta,
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if not _conflict(exc):
                raise
            status = self._status(job.name)
            if status == CLOSED:
                return False
            self.db.update_item(
                TableName=self.table,
                Key={"pk": _job_pk(job.name), "sk": _s("meta")},
                UpdateExpression="SET task_token = :t, execution = :e",
                ExpressionAttributeValues={":t": _s(task_token), ":e": _s(execution)},
            )
            if status != REGISTERING:
                return False
            # else an earlier invoke died while writing the tasks (none can be answered yet,
            # the job was never open): write them all again.
        self._write_tasks(job, tasks, scope)
        self._batch_put(
            [
                {"pk": _job_pk(job.name), "sk": _s(f"failed#{task_id}"), "reason": _s(reason)}
                for task_id, reason in (failed or {}).items()
            ]
        )
        self.db.put_item(
            TableName=self.table,
            Item={"pk": _s(JOBS_PK), "sk": _s(job.name), "created_at": _n(now)},
        )
        self._set_status(job.name, OPEN, expected=(REGISTERING,))
        return True

    def _status(self, name: str) -> str | None:
        record = self.db.get_item(
            TableName=self.table,
            Key={"pk": _job_pk(name), "sk": _s("meta")},
            ConsistentRead=True,
            ProjectionExpression="#s",
            ExpressionAttributeNames={"#s": "status"},
        ).get("Item")
        return record["status"]["S"] if record else None

    def _write_tasks(self, job: JobInfo, tasks: Iterable[TaskInfo], scope: str) -> None:
        """Task and info items, with the answers the images already have in ``scope``."""
        batch: list[dict[str, Any]] = []
        for task in tasks:
            workers = [a.worker_id for a in self._answers(scope, task.task_id)]
            state: dict[str, Any] = {
                "pk": _job_pk(job.name),
                "sk": _s(f"task#{task.task_id}"),
                "leases": {"M": {}},
                "v": _n(0),
            }
            if workers:
                state["workers"] = {"SS": workers}
            info = {
                "pk": _job_pk(job.name),
                "sk": _s(f"info#{task.task_id}"),
                "info": _s(json.dumps(task.to_json(), separators=(",", ":"))),
            }
            batch += [state, info]
            if len(batch) >= _BATCH - 1:
                self._batch_put(batch)
                batch = []
        if batch:
            self._batch_put(batch)

    def _batch_put(self, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), _BATCH):
            self._batch_put_25(items[start : start + _BATCH])

    def _batch_put_25(self, items: list[dict[str, Any]]) -> None:
        requests = [{"PutRequest": {"Item": item}} for item in items]
        while requests:
            response = self.db.batch_write_item(RequestItems={self.table: requests})
            requests = response.get("UnprocessedItems", {}).get(self.table, [])
            if requests:
                time.sleep(0.05)

    def _set_status(
        self, name: str, status: str, *, expected: tuple[str, ...], extra: str = ""
    ) -> bool:
        """Move job ``name`` to ``status`` if it is in one of ``expected``; False if not."""
        values = {f":x{i}": _s(s) for i, s in enumerate(expected)}
        condition = " OR ".join(f"#s = :x{i}" for i in range(len(expected)))
        try:
            self.db.update_item(
                TableName=self.table,
                Key={"pk": _job_pk(name), "sk": _s("meta")},
                UpdateExpression=f"SET #s = :new{extra}",
                ConditionExpression=f"attribute_exists(pk) AND ({condition})",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":new": _s(status), **values},
            )
        except ClientError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def take_for_finishing(self, name: str, now: float, *, stale_s: float) -> JobRecord | None:
        """Make this caller the job's one finisher: ``open`` -> ``finishing``.

        A finisher that died (``finishing`` for over ``stale_s``) is taken over, so a crash
        between writing the manifest and sending the task success cannot leave the run waiting.

        Returns:
            The job's record when this caller finishes it, else ``None``.
        """
        try:
            self.db.update_item(
                TableName=self.table,
                Key={"pk": _job_pk(name), "sk": _s("meta")},
                UpdateExpression="SET #s = :finishing, finishing_since = :now",
                ConditionExpression=(
                    "#s = :open OR (#s = :finishing AND finishing_since < :stale)"
                ),
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":finishing": _s(FINISHING),
                    ":open": _s(OPEN),
                    ":now": _n(now),
                    ":stale": _n(now - stale_s),
                },
            )
        except ClientError as exc:
            if _conflict(exc):
                return None
            raise
        return self.record_of(name)

    def open_job(self, job: JobInfo, tasks: Iterable[TaskInfo]) -> None:
        """See `TaskStore.open_job` (no task token: for hosts that wait on the job themselves)."""
        self.register(job, tasks, task_token="", execution="", deadline=0.0, spec={})
        self._job_name, self._loaded, self._record = job.name, False, None

    def close_job(self, name: str) -> None:
        """See `TaskStore.close_job`: the job takes no more answers; its answers stay."""
        self._set_status(name, CLOSED, expected=(OPEN, FINISHING, REGISTERING))
        self.db.delete_item(TableName=self.table, Key={"pk": _s(JOBS_PK), "sk": _s(name)})
        if self._record is not None and self._record.info.name == name:
            self._record = None

    def job(self) -> JobInfo | None:
        """See `TaskStore.job`."""
        record = self._current()
        return record.info if record else None

    def task(self, task_id: str) -> TaskInfo | None:
        """See `TaskStore.task`."""
        record = self._current()
        if record is None:
            return None
        item = self.db.get_item(
            TableName=self.table,
            Key={"pk": _job_pk(record.info.name), "sk": _s(f"info#{task_id}")},
        ).get("Item")
        return TaskInfo.from_json(json.loads(item["info"]["S"])) if item else None

    # -- leases -------------------------------------------------------------------------------

    def _query(self, pk: dict[str, str], prefix: str | None = None) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": pk},
            "ConsistentRead": True,
        }
        if prefix is not None:
            kwargs["KeyConditionExpression"] += " AND begins_with(sk, :prefix)"
            kwargs["ExpressionAttributeValues"][":prefix"] = _s(prefix)
        while True:
            page = self.db.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _task_states(self, name: str) -> Iterator[dict[str, Any]]:
        return self._query(_job_pk(name), "task#")

    @staticmethod
    def _live(item: dict[str, Any], now: float) -> dict[str, Lease]:
        task_id = item["sk"]["S"].removeprefix("task#")
        leases = {}
        for worker, value in item.get("leases", {}).get("M", {}).items():
            held = value["M"]
            expires = float(held["expires_at"]["N"])
            if expires > now:
                leases[worker] = Lease(
                    task_id=task_id,
                    lease_id=held["lease_id"]["S"],
                    worker_id=worker,
                    expires_at=expires,
                )
        return leases

    def _set_lease(self, item: dict[str, Any], lease: Lease) -> bool:
        """Put ``lease`` on a task item unless someone changed it since ``item`` was read."""
        try:
            self.db.update_item(
                TableName=self.table,
                Key={"pk": item["pk"], "sk": item["sk"]},
                UpdateExpression="SET leases.#w = :lease ADD v :one",
                ConditionExpression="v = :v",
                ExpressionAttributeNames={"#w": lease.worker_id},
                ExpressionAttributeValues={
                    ":v": item["v"],
                    ":one": _n(1),
                    ":lease": {
                        "M": {"lease_id": _s(lease.lease_id), "expires_at": _n(lease.expires_at)}
                    },
                },
            )
        except ClientError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def _reread(self, item: dict[str, Any]) -> dict[str, Any] | None:
        return self.db.get_item(
            TableName=self.table, Key={"pk": item["pk"], "sk": item["sk"]}, ConsistentRead=True
        ).get("Item")

    def claim(self, worker_id: str, now: float, lease_s: float) -> Claim:
        """See `TaskStore.claim`: the worker's own live lease (renewed) first, else a free task."""
        record = self._current()
        if record is None:
            return Claim(None, "no-job")
        name, needed_total = record.info.name, record.info.workers_per_object
        items = list(self._task_states(name))
        for item in items:
            mine = self._live(item, now).get(worker_id)
            if mine is not None:
                lease = Lease(
                    task_id=mine.task_id,
                    lease_id=mine.lease_id,
                    worker_id=worker_id,
                    expires_at=now + lease_s,
                )
                if self._set_lease(item, lease):
                    return Claim(lease)
        held_by_others = False
        for item in items:
            for _ in range(5):  # another labeler changed the image meanwhile: look again
                workers = set(item.get("workers", {}).get("SS", []))
                needed = needed_total - len(workers)
                if needed <= 0 or worker_id in workers:
                    break
                live = {w: le for w, le in self._live(item, now).items() if w != worker_id}
                if len(live) >= needed:
                    held_by_others = True
                    break
                lease = Lease(
                    task_id=item["sk"]["S"].removeprefix("task#"),
                    lease_id=secrets.token_urlsafe(12),
                    worker_id=worker_id,
                    expires_at=now + lease_s,
                )
                if self._set_lease(item, lease):
                    return Claim(lease)
                fresh = self._reread(item)
                if fresh is None:
                    break
                item = fresh
        return Claim(None, "all-leased" if held_by_others else "done")

    def _task_item(self, name: str, task_id: str) -> dict[str, Any] | None:
        return self.db.get_item(
            TableName=self.table,
            Key={"pk": _job_pk(name), "sk": _s(f"task#{task_id}")},
            ConsistentRead=True,
        ).get("Item")

    def lease_of(self, task_id: str, worker_id: str, now: float) -> Lease | None:
        """See `TaskStore.lease_of`."""
        record = self._current()
        item = self._task_item(record.info.name, task_id) if record else None
        return self._live(item, now).get(worker_id) if item else None

    def leases(self, task_id: str, now: float) -> list[Lease]:
        """Every live lease on ``task_id`` (any worker)."""
        record = self._current()
        item = self._task_item(record.info.name, task_id) if record else None
        return list(self._live(item, now).values()) if item else []

    def release(self, task_id: str, lease_id: str, worker_id: str) -> bool:
        """See `TaskStore.release`."""
        record = self._current()
        if record is None:
            return False
        try:
            self.db.update_item(
                TableName=self.table,
                Key={"pk": _job_pk(record.info.name), "sk": _s(f"task#{task_id}")},
                UpdateExpression="REMOVE leases.#w ADD v :one",
                ConditionExpression="leases.#w.lease_id = :lease",
                ExpressionAttributeNames={"#w": worker_id},
                ExpressionAttributeValues={":lease": _s(lease_id), ":one": _n(1)},
            )
        except ClientError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    # -- answers ------------------------------------------------------------------------------

    def _scope_of(self, job_name: str) -> str:
        current = self._current()
        if current is not None and current.info.name == job_name:
            return current.scope
        record = self.record_of(job_name)
        return record.scope if record else ""

    def _answer_item(self, scope: str, task_id: str, worker_id: str) -> dict[str, Any] | None:
        return self.db.get_item(
            TableName=self.table,
            Key={"pk": _s(f"answer#{scope}#{task_id}"), "sk": _s(worker_id)},
            ConsistentRead=True,
        ).get("Item")

    def record(self, answer: Answer) -> bool:
        """See `TaskStore.record`: the answer first (durable), then the task's worker set."""
        scope = self._scope_of(answer.job)
        earlier = self._answer_item(scope, answer.task_id, answer.worker_id)
        first_at = _num(earlier, "first_at", answer.at) if earlier else answer.at
        duplicate = bool(
            earlier and Answer.from_json(json.loads(earlier["data"]["S"])).same_content(answer)
        )
        if not duplicate:
            self.db.put_item(
                TableName=self.table,
                Item={
                    "pk": _s(f"answer#{scope}#{answer.task_id}"),
                    "sk": _s(answer.worker_id),
                    "data": _s(json.dumps(answer.to_json(), separators=(",", ":"))),
                    "first_at": _n(first_at),
                },
            )
        try:  # the image's task in the answer's job counts this worker (once: a set)
            self.db.update_item(
                TableName=self.table,
                Key={"pk": _job_pk(answer.job), "sk": _s(f"task#{answer.task_id}")},
                UpdateExpression="ADD workers :w, v :one REMOVE leases.#w",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#w": answer.worker_id},
                ExpressionAttributeValues={":w": {"SS": [answer.worker_id]}, ":one": _n(1)},
            )
        except ClientError as exc:
            if not _conflict(exc):
                raise
        return duplicate

    def answers(self, task_id: str) -> list[Answer]:
        """See `TaskStore.answers`: every worker's latest in the job's run, first-answer order.

        The job is the open one, or the one the store was made for (``job_name``, open or not:
        the finisher reads a job it has taken).
        """
        if self._job_name:
            return self._answers(self._scope_of(self._job_name), task_id)
        current = self._current()
        return self._answers(current.scope if current else "", task_id)

    def answers_in(self, scope: str, task_id: str) -> list[Answer]:
        """Every worker's latest answer for ``task_id`` in ``scope`` (a job's run)."""
        return self._answers(scope, task_id)

    def _answers(self, scope: str, task_id: str) -> list[Answer]:
        items = sorted(
            self._query(_s(f"answer#{scope}#{task_id}")), key=lambda i: _num(i, "first_at")
        )
        return [Answer.from_json(json.loads(item["data"]["S"])) for item in items]

    def counts(self, now: float) -> Counts:
        """See `TaskStore.counts`."""
        record = self._current()
        if record is None:
            return Counts()
        return self.job_counts(record.info.name, record.info.workers_per_object, now)

    def job_counts(self, name: str, workers_per_object: int, now: float) -> Counts:
        """Counts of job ``name`` (open or not)."""
        total = done = leased = 0
        for item in self._task_states(name):
            total += 1
            done += len(item.get("workers", {}).get("SS", [])) >= workers_per_object
            leased += bool(self._live(item, now))
        return Counts(total=total, done=done, leased=leased)

    def failed_images(self, name: str) -> dict[str, str]:
        """Image id -> why it cannot be labeled, for job ``name``'s unreadable images."""
        return {
            item["sk"]["S"].removeprefix("failed#"): item["reason"]["S"]
            for item in self._query(_job_pk(name), "failed#")
        }

    # -- workers ------------------------------------------------------------------------------

    def set_worker_name(self, worker_id: str, name: str) -> None:
        """See `TaskStore.set_worker_name`."""
        self.db.put_item(
            TableName=self.table,
            Item={"pk": _s(f"worker#{worker_id}"), "sk": _s("name"), "name": _s(name)},
        )

    def worker_name(self, worker_id: str) -> str | None:
        """See `TaskStore.worker_name`."""
        item = self.db.get_item(
            TableName=self.table, Key={"pk": _s(f"worker#{worker_id}"), "sk": _s("name")}
        ).get("Item")
        return item["name"]["S"] if item else None
