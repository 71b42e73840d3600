"""The labeling job's life on AWS: register a batch, finish it exactly once, sweep open jobs.

The ``LabelInApp`` state invokes StartHumanLabeling with the batch's ``labeling`` block and a
task token, then waits. `start_human_labeling` registers the batch's images as tasks of a job
named like the Ground Truth job would be (``labeling.job_name``). Labelers answer through the
API; when the last image has its answers, the API call that recorded it runs `finish_job`.
Every few minutes `sweep` sends each open job's heartbeat, finishes a job whose deadline
passed (its unanswered images are left out of the output and counted ``Unlabeled``, as Ground
Truth counts expired objects; MergeHumanLabels returns them to the pool), and closes a job
whose execution ended (stopped, timed out): nobody waits on it, its answers stay in the table.

`finish_job` writes the output manifest in Ground Truth's format (the input lines with the
consolidated label, or a ``failure-reason`` for an image that could not be read) and sends the
task success with DescribeLabelingJob's shape, so the state's ResultSelector and every later
state are those of the Ground Truth variant.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any, Final

from boxloop.aws.labeling_env import LABELING_TABLE_ENV, SWEEP_MINUTES
from boxloop.aws.labeling_store import FINISHING, OPEN, DynamoTaskStore
from boxloop.aws.s3 import iter_lines, open_for_write, read_image_size, read_text, write_text
from boxloop.aws.task_callback import send_failure, send_heartbeat, send_success
from boxloop.core.errors import ConfigError
from boxloop.core.formats.groundtruth import label_to_fields
from boxloop.core.image_size import ImageHeaderError
from boxloop.core.labels import LabelConfig
from boxloop.core.manifests import SOURCE_REF, iter_source_objects, record_id, write_json_line
from boxloop.core.records import PROVENANCE_KEY
from boxloop.labeling.contract import JobInfo, TaskInfo
from boxloop.labeling.effort import EffortSummary
from boxloop.labeling.output import (
    JobStats,
    failure_fields,
    ground_truth_now,
    kept_fields,
    label_of,
    output_manifest_uri,
    stats_uri,
)
from boxloop.labeling.preannotations import PREANNOTATIONS_KEY, preboxes_from_field, task_role

if TYPE_CHECKING:
    from collections.abc import Iterator

WORKFORCE_NAME: Final = "boxloop-app"
STALE_FINISH_S: Final = 2 * SWEEP_MINUTES * 60
"""A finisher silent this long died: the sweep takes the job over."""
FAILED_ERROR: Final = "Labeling.NothingLabeled"
"""The task failure when a job ends without one labeled image (Ground Truth fails it too)."""


def table_store(**kwargs: Any) -> DynamoTaskStore:
    """The store over the stack's table (``BOXLOOP_LABELING_TABLE``)."""
    table = os.environ.get(LABELING_TABLE_ENV)
    if not table:
        raise ConfigError(
            [f"{LABELING_TABLE_ENV} is not set: the stack sets it on the labeling Lambdas"]
        )
    return DynamoTaskStore(table, **kwargs)


def deadline_of(started: float, availability_s: float) -> float:
    """When unanswered images expire: before the state's own timeout (``availability_s``).

    The sweep runs every ``SWEEP_MINUTES``; the job ends up to two sweeps before the state
    would time out, so the labels reach the run instead of a ``States.Timeout``.
    """
    margin = min(2 * SWEEP_MINUTES * 60, availability_s / 2)
    return started + availability_s - margin


# -- start --------------------------------------------------------------------------------------


def _lines(manifest: str) -> Iterator[tuple[int, dict[str, Any]]]:
    return iter_source_objects(iter_lines(manifest), source=manifest)


def _tasks(manifest: str, failed: dict[str, str]) -> Iterator[TaskInfo]:
    """One task per readable image of the input manifest; unreadable ones go to ``failed``."""
    for _, obj in _lines(manifest):
        ref = obj[SOURCE_REF]
        rid = record_id(ref)
        try:
            width, height = read_image_size(ref)
        except ImageHeaderError as exc:
            failed[rid] = f"the image's header could not be read ({exc}), so it cannot be labeled"
            continue
        provenance = obj.get(PROVENANCE_KEY)
        role = task_role(provenance if isinstance(provenance, dict) else {})
        pre = preboxes_from_field(obj.get(PREANNOTATIONS_KEY)) if role == "pool" else ()
        yield TaskInfo(
            task_id=rid,
            source_ref=ref,
            image=ref,
            width=int(width),
            height=int(height),
            role=role,
            preannotations=pre,
        )


def start_human_labeling(
    event: dict[str, Any], *, store: DynamoTaskStore | None = None, now: float | None = None
) -> dict[str, Any]:
    """Register the batch of a ``LabelInApp`` state's payload; returns names and counts.

    Args:
        event: ``{"labeling": <PrepareLabeling's block>, "run": ..., "task_token": ...,
            "execution": ...}``.
        store: The task store (default: the stack's table).
        now: Unix seconds (tests).

    Raises:
        ConfigError: the label category config is not readable or has no classes.
        ManifestError: the input manifest has a line without ``source-ref``.
    """
    now = time.time() if now is None else now
    store = store or table_store()
    labeling = event["labeling"]
    name = str(labeling["job_name"])
    task = labeling["task"]
    categories = str(labeling["label_category_config"])
    classes = LabelConfig.from_json(read_text(categories), source=categories).class_map
    info = JobInfo(
        name=name,
        classes=dict(classes),
        workers_per_object=int(task.get("workers_per_object", 1)),
        title=str(task.get("title", "")),
        instructions=str(task.get("description", "")),
    )
    spec = {
        "input_manifest": labeling["input_manifest"],
        "output_path": str(labeling["output_config"]["S3OutputPath"]).rstrip("/"),
        "label_attribute": labeling["label_attribute"],
    }
    failed: dict[str, str] = {}
    new = store.register(
        info,
        _tasks(spec["input_manifest"], failed),
        task_token=str(event["task_token"]),
        execution=str(event.get("execution", "")),
        deadline=deadline_of(now, float(task["availability_s"])),
        spec=spec,
        failed=failed,
        scope=str((event.get("run") or {}).get("run_id") or name),
        now=now,
    )
    counts = store.job_counts(name, info.workers_per_object, now)
    finished = ""
    if counts.left == 0:  # nothing to ask anyone (all unreadable, or all answered before)
        finished = finish_job(store, name, now=now)
    return {
        "job_name": name,
        "registered": new,
        "tasks": counts.total,
        "done": counts.done,
        "unreadable": len(failed),
        "finished": finished,
    }


# -- finish -------------------------------------------------------------------------------------


def finish_job(store: DynamoTaskStore, name: str, *, now: float | None = None) -> str:
    """Write job ``name``'s output manifest and answer its task token, once.

    Returns:
        ``"completed"`` (task success sent), ``"failed"`` (no image labeled: task failure
        sent), ``"gone"`` (nobody waited any more), or ``"busy"`` (another finisher has it, or
        it is closed).
    """
    now = time.time() if now is None else now
    record = store.take_for_finishing(name, now, stale_s=STALE_FINISH_S)
    if record is None:
        return "busy"
    spec = record.spec
    attr = str(spec["label_attribute"])
    workers = record.info.workers_per_object
    failed = store.failed_images(name)
    created = ground_truth_now()
    summary = EffortSummary()
    stats = JobStats(job=name, workforce=WORKFORCE_NAME)
    output = output_manifest_uri(str(spec["output_path"]), name)
    with open_for_write(output) as out:
        for _, obj in _lines(str(spec["input_manifest"])):
            rid = record_id(obj[SOURCE_REF])
            fields = kept_fields(obj, attr)
            if rid in failed:
                stats.add_failed(failed[rid])
                fields.update(
                    failure_fields(attr, failed[rid], job_name=name, creation_date=created)
                )
                write_json_line(out, fields)
                continue
            answers = store.answers_in(record.scope, rid)[:workers]
            if not answers:  # expired: left out, counted Unlabeled, back to the pool
                stats.add_unlabeled()
                continue
            label = label_of(
                answers, job_name=name, class_map=record.info.classes, creation_date=created
            )
            for answer in answers:
                summary.add(answer)
            stats.add_labeled(
                len(label.detections.boxes),
                workers=len(answers),
                seconds=sum(float(a.effort.get("seconds", 0.0)) for a in answers),
            )
            fields.update(label_to_fields(label, attr))
            write_json_line(out, fields)
    write_text(
        stats_uri(str(spec["output_path"]), name),
        json.dumps({**stats.to_json(), "effort": summary.to_json()}, indent=2),
    )
    if stats.labeled == 0 and stats.objects > 0:
        outcome = "failed"
        answered = send_failure(
            record.task_token,
            FAILED_ERROR,
            f"labeling job {name}: not one of its {stats.objects} images was labeled "
            f"({stats.failed} unreadable, {stats.unlabeled} expired); see {output}",
        )
    else:
        outcome = "completed"
        answered = send_success(
            record.task_token,
            {
                "LabelingJobName": name,
                "LabelingJobStatus": "Completed",
                **stats.outputs(output),
            },
        )
    store.close_job(name)
    return outcome if answered else "gone"


def finish_if_complete(store: DynamoTaskStore, name: str, *, now: float | None = None) -> str:
    """Finish job ``name`` when every image has its answers; ``""`` when some are left."""
    now = time.time() if now is None else now
    record = store.record_of(name)
    if record is None or record.status != OPEN:
        return ""
    counts = store.job_counts(name, record.info.workers_per_object, now)
    return finish_job(store, name, now=now) if counts.left == 0 else ""


# -- sweep --------------------------------------------------------------------------------------


def sweep(*, store: DynamoTaskStore | None = None, now: float | None = None) -> dict[str, Any]:
    """Heartbeats, deadlines and ended executions of every job not yet closed.

    Returns:
        Job name -> what happened: ``heartbeat``, ``completed``/``failed``/``gone``/``busy``
        (finished), ``closed`` (its execution ended), ``waiting`` (another finisher is on it).
    """
    now = time.time() if now is None else now
    store = store or table_store()
    done: dict[str, str] = {}
    for name in store.open_jobs():
        record = store.record_of(name)
        if record is None:
            continue
        if record.status == FINISHING:
            stale = now - record.finishing_since >= STALE_FINISH_S
            done[name] = finish_job(store, name, now=now) if stale else "waiting"
        elif record.status != OPEN:
            continue
        elif now >= record.deadline:
            done[name] = finish_job(store, name, now=now)
        elif send_heartbeat(record.task_token):
            done[name] = finish_if_complete(store, name, now=now) or "heartbeat"
        else:
            store.close_job(name)
            done[name] = "closed"
    return {"jobs": done}
