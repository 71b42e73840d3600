"""The synthesized state machine on moto under injected faults, and a resumed run.

Faults: a failing training job, a failing transform job, expiring labeling tasks, a throttled
Lambda. Each execution runs the same stack, dataset and runners as the happy path
(``test_synthesized_workflow.py``); only the injected fault differs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from e2e_harness import ATTR, SMALL_RUN, ThrottleFirstCalls
from e2e_runners import StandInTraining, StandInTransform, read_manifest

from boxloop.local.emulator import SkippedDelay

if TYPE_CHECKING:
    from e2e_harness import E2ERun, WorkflowHarness


@pytest.fixture(scope="module")
def failed_training_run(harness: WorkflowHarness) -> E2ERun:
    """A run whose second training job (iteration 1) fails, after two labeling jobs merged."""
    training = StandInTraining(num_classes=harness.num_classes, fail_on_calls=frozenset({2}))
    return harness.run("fail-train", training=training)


def _assert_failed_via_notification(run: E2ERun, failed_state: str) -> None:
    result = run.result
    assert result.status == "FAILED"
    assert result.error == "BoxloopRunFailed"
    assert result.visited_states[-3:] == (failed_state, "NotifyFailure", "Failed")
    assert result.task_errors == ("States.TaskFailed",)
    state = run.failure_state()
    assert state["error"]["Error"] == "States.TaskFailed"
    assert "injected failure" in state["error"]["Cause"]


def _assert_ledger_keeps_human_labels(run: E2ERun) -> str:
    """The failure state's ledger is the newest in S3 and holds every human label; returns it."""
    ledger = run.failure_state()["run"]["ledger"]
    assert ledger == run.ledgers()[-1]
    lines = {line["id"]: line for line in read_manifest(ledger)}
    human = run.human_labels()
    assert human
    for record_id, fields in human.items():
        assert {key: lines[record_id].get(key) for key in fields} == fields, record_id
    return ledger


def test_workflow_fails_through_notify_failure_when_training_fails(
    failed_training_run: E2ERun,
) -> None:
    # GIVEN a training job that fails in the second iteration
    run = failed_training_run
    # WHEN the Train task fails
    # THEN the Catch sends the run to NotifyFailure (one SNS message naming the execution and
    # carrying the state) and then to the Fail state, and the last ledger keeps every human label
    _assert_failed_via_notification(run, "Train")
    assert run.entered("Train") == 2
    assert run.entered("CreateModel") == 1
    assert len(run.labeling_jobs) == 2
    _assert_ledger_keeps_human_labels(run)


def test_workflow_fails_through_notify_failure_when_transform_fails(
    harness: WorkflowHarness,
) -> None:
    # GIVEN a batch transform job that fails the first time
    transform = StandInTransform(
        reference=harness.reference, num_classes=harness.num_classes, fail_on_calls=frozenset({1})
    )
    # WHEN a run reaches it
    run = harness.run("fail-transform", transform=transform)
    # THEN the run fails the same way, before post-processing, with the seed labels kept
    _assert_failed_via_notification(run, "Transform")
    assert run.entered("PostProcess") == 0
    assert len(run.labeling_jobs) == 1
    _assert_ledger_keeps_human_labels(run)


def test_workflow_resumes_without_relabeling_when_started_from_a_failed_runs_ledger(
    harness: WorkflowHarness, failed_training_run: E2ERun
) -> None:
    # GIVEN the ledger a failed run left, and the human labels it paid for
    ledger = _assert_ledger_keeps_human_labels(failed_training_run)
    paid = failed_training_run.human_labels()
    # WHEN a new execution starts from that ledger with working runners
    run = harness.run("resume", {"ledger": ledger, "overrides": SMALL_RUN})
    # THEN it succeeds, never sends a paid-for image to humans again, keeps every earlier
    # human label unchanged, and labels every image
    assert run.result.status == "SUCCEEDED", f"{run.result.error}: {run.result.cause}"
    assert run.labeling_jobs, "the resumed run had images left for humans"
    for job in run.labeling_jobs:
        assert not job.input_ids() & set(paid), job.name
    lines = run.output_lines()
    for record_id, fields in paid.items():
        assert {key: lines[record_id][key] for key in fields} == fields, record_id
    assert all(ATTR in line for line in lines.values())
    assert len(lines) == 36


def test_workflow_retries_failed_labeling_objects_when_tasks_expire(
    harness: WorkflowHarness,
) -> None:
    # GIVEN a workforce that lets 30 % of its tasks expire
    # WHEN a run labels through it
    run = harness.run("flaky-workforce", failure_rate=0.3)
    # THEN the run still succeeds
    assert run.result.status == "SUCCEEDED", f"{run.result.error}: {run.result.cause}"
    failed = run.failed_objects()
    assert failed, "the workforce let no task expire"
    lines = run.output_lines()
    failures_per_image: dict[str, int] = {}
    for _, record_id in failed:
        failures_per_image[record_id] = failures_per_image.get(record_id, 0) + 1
    # AND every expired image counts its attempts, and ends labeled or exhausted and reported
    max_attempts = json.loads(harness.workflow.environment["BOXLOOP_CONFIG"])["max_label_attempts"]
    exhausted = 0
    for record_id, failures in failures_per_image.items():
        line = lines[record_id]
        assert line["boxloop"]["attempts"] == failures, record_id
        if ATTR not in line:
            assert failures >= max_attempts, record_id
            exhausted += 1
    counts = run.result.output["counts"]
    assert counts["exhausted"] == exhausted == counts["unlabeled"]
    # AND expired images went back to humans in a later job
    job_of = {job.name: index for index, job in enumerate(run.labeling_jobs)}
    retried = [
        record_id
        for job_name, record_id in failed
        if any(
            record_id in later.input_ids() for later in run.labeling_jobs[job_of[job_name] + 1 :]
        )
    ]
    assert retried


def test_workflow_retries_a_throttled_lambda_when_it_is_throttled_twice(
    harness: WorkflowHarness,
) -> None:
    # GIVEN the PrepareTraining Lambda throttled (HTTP 429) on its first two invocations
    throttle = ThrottleFirstCalls(times=2)
    # WHEN a run reaches it
    run = harness.run("throttled", wrap={"prepare_training": throttle})
    # THEN the task's Retry absorbs both with its back-off (2 s, then 4 s) and the run succeeds
    assert run.result.status == "SUCCEEDED", f"{run.result.error}: {run.result.cause}"
    assert run.result.task_errors == ("Lambda.TooManyRequestsException",) * 2
    failed_events = [e for e in run.events if e["type"] == "LambdaFunctionFailed"]
    assert [e["lambdaFunctionFailedEventDetails"]["error"] for e in failed_events] == [
        "Lambda.TooManyRequestsException"
    ] * 2
    assert run.skipped_delays == (SkippedDelay("retry", 2.0), SkippedDelay("retry", 4.0))
    assert throttle.calls == run.entered("PrepareTraining") + 2
