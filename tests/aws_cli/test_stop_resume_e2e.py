"""``boxloop aws stop`` and ``resume`` on a moto deployment: no answer is lost, none relabeled.

The first run is stopped while its first labeling job is open and its people have answered
(the labeling runner has written the job's output where Ground Truth writes it, then waits as
an open job does). ``stop`` must stop the execution, stop the job and merge its answers into
the run's ledger; ``resume`` starts a new execution from that ledger, which finishes without
sending any of those images to humans again.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from conftest import SMALL_RUN_SETS, Deployed, RecordedRequests, run_cli

from boxloop.aws.clients import client
from boxloop.aws.operate.deployment import load_deployment
from boxloop.aws.operate.executions import describe, history
from boxloop.aws.s3 import iter_lines

if TYPE_CHECKING:
    from collections.abc import Callable

STOPPED, RESUMED = "halt-1", "halt-2"


@dataclass
class Halted:
    """What the commands printed, and the requests and jobs of both runs."""

    status: tuple[int, str, str]
    stop: tuple[int, str, str]
    resume: tuple[int, str, str]
    watch: tuple[int, str, str]
    answered: set[str]
    first_job: str
    later_jobs: list[dict[str, Any]] = field(default_factory=list)
    requests: RecordedRequests = field(default_factory=RecordedRequests)


def _ids(manifest: str, *, labeled_with: str | None = None) -> set[str]:
    lines = [json.loads(line) for line in iter_lines(manifest) if line]
    return {line["id"] for line in lines if labeled_with is None or labeled_with in line}


def _wait_until_ended(name: str) -> None:
    deadline = time.monotonic() + 60
    while describe(load_deployment(), name).is_running:
        assert time.monotonic() < deadline, f"{name} still running"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def halted(deployed: Deployed) -> Halted:
    opened, release = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def held_open(runner: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def labeling(request: dict[str, Any]) -> Any:
            result = runner(request)  # the people answer; the output manifest is written
            seen["job"] = request["LabelingJobName"]
            seen["output"] = result.outputs["LabelingJobOutput"]["OutputDatasetS3Uri"]
            opened.set()
            release.wait(60)  # ... and the job stays open until the test lets it go
            return result

        return labeling

    deployed.arm(labeling=held_open)
    sets = tuple(f"--set={s}" for s in SMALL_RUN_SETS)
    manifest = deployed.harness.input_manifest
    started = run_cli("aws", "start", "--manifest", manifest, "--name", STOPPED, *sets)
    assert started[0] == 0, started
    try:
        assert opened.wait(60), "the labeling job never opened"
        with RecordedRequests() as recorder:
            status = run_cli("aws", "status", STOPPED)
            stop = run_cli("aws", "stop", STOPPED, "--wait", "5")
    finally:
        release.set()
    _wait_until_ended(STOPPED)
    answered = _ids(seen["output"], labeled_with="boxes")
    later: list[dict[str, Any]] = []

    def recording(runner: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def labeling(request: dict[str, Any]) -> Any:
            later.append(request)
            return runner(request)

        return labeling

    deployed.arm(labeling=recording)
    with recorder:
        resume = run_cli("aws", "resume", STOPPED, "--name", RESUMED)
    watch = run_cli("aws", "status", RESUMED, "--watch", "--interval", "0.05")
    return Halted(
        status=status,
        stop=stop,
        resume=resume,
        watch=watch,
        answered=answered,
        first_job=seen["job"],
        later_jobs=later,
        requests=recorder,
    )


def test_status_shows_the_open_labeling_job(halted: Halted):
    code, out, err = halted.status
    assert code == 0, err
    assert f"labeling   {halted.first_job}: 0 / " in out
    assert "answered (InProgress)" in out


def test_stop_stops_the_execution_and_the_job_and_merges_the_answers(halted: Halted):
    code, out, err = halted.stop
    assert code == 0, err
    assert f"stopped execution {STOPPED}" in out
    assert f"labeling job {halted.first_job}: Stopped" in out
    merged = out.split("its answers are merged into ", 1)[1].split()[0]
    assert merged.endswith("/ledger/iter-000-1-merge.jsonl")
    assert halted.answered, "the workforce answered nothing"
    assert _ids(merged, labeled_with="boxes") == halted.answered
    assert describe(load_deployment(), STOPPED).status == "ABORTED"
    job = client("sagemaker").describe_labeling_job(LabelingJobName=halted.first_job)
    assert job["LabelingJobStatus"] in ("Stopped", "Completed")  # the runner returned later


def test_no_state_ran_after_the_stop(halted: Halted):
    entered = [
        e["stateEnteredEventDetails"]["name"]
        for e in history(describe(load_deployment(), STOPPED).arn)
        if "stateEnteredEventDetails" in e
    ]
    assert entered[-1] == "Label"


def test_resume_continues_from_the_merged_ledger_without_relabeling(halted: Halted):
    code, out, err = halted.resume
    assert code == 0, err
    assert out.startswith("resuming from s3://")
    assert out.split()[2].endswith("/ledger/iter-000-1-merge.jsonl")
    assert f"started {RESUMED}" in out
    code, out, err = halted.watch
    assert code == 0, err
    assert out.split("\n\n")[-1].startswith(f"execution  {RESUMED}  SUCCEEDED")
    assert halted.later_jobs, "the resumed run sent nothing to humans"
    relabeled = set()
    for request in halted.later_jobs:
        sent = _ids(request["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"])
        relabeled |= sent & halted.answered
    assert relabeled == set()
    resumed = describe(load_deployment(), RESUMED)
    assert resumed.input["overrides"] == describe(load_deployment(), STOPPED).input["overrides"]


def test_stop_and_resume_requests_are_valid(halted: Halted):
    assert {
        ("stepfunctions", "StopExecution"),
        ("sagemaker", "StopLabelingJob"),
        ("sagemaker", "DescribeLabelingJob"),
        ("stepfunctions", "StartExecution"),
    } <= halted.requests.operations()
    assert halted.requests.problems() == []


def test_resume_refuses_a_finished_execution(halted: Halted):
    code, _, err = run_cli("aws", "resume", RESUMED)
    assert code == 2
    assert f"execution {RESUMED} succeeded: there is nothing to resume" in err


def test_export_of_a_stopped_run_says_what_to_do(halted: Halted, tmp_path):
    code, _, err = run_cli(
        "aws", "export", STOPPED, "--format", "coco", "--out", str(tmp_path / "c.json")
    )
    assert code == 2
    assert f"execution {STOPPED} is ABORTED: it has no output.manifest yet; resume it" in err
