"""The state machine's error model: what is retried, what goes straight to NotifyFailure, names.

Statically, on ``statemachine/boxloop.asl.json``: every ``BoxloopError`` a Lambda can raise is
caught by name and retried nowhere; SageMaker tasks retry only what Step Functions reports for
a throttled or faulty call, and name each attempt's job apart. Then on moto, through the
synthesized stack: a terminal error ends the run at once, a transient one is retried, a create
call that SageMaker accepted but answered with a fault is retried under a new name, and two
executions whose names collide keep separate runs.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Final

import pytest
from botocore.exceptions import ClientError
from e2e_runners import StandInTraining, StandInTransform, read_manifest

from boxloop.aws.clients import client
from boxloop.aws.s3 import read_text
from boxloop.core.config import LoopConfig
from boxloop.core.errors import ManifestError, TransientServiceError
from boxloop.core.labels import LabelConfig
from boxloop.local.emulator import SageMakerApiError
from boxloop.steps.run import RunPaths, RunState, run_id_for
from stacks.roles import job_name_pattern

if TYPE_CHECKING:
    from collections.abc import Callable

    from e2e_harness import E2ERun, WorkflowHarness

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
ASL: Final = json.loads((REPO_ROOT / "statemachine" / "boxloop.asl.json").read_text())
TASKS: Final = {name: s for name, s in ASL["States"].items() if s["Type"] == "Task"}
LAMBDA_TASKS: Final = {n: s for n, s in TASKS.items() if s["Resource"].endswith("FunctionArn}")}
SAGEMAKER_TASKS: Final = {n: s for n, s in TASKS.items() if ":sagemaker:" in s["Resource"]}
SAGEMAKER_JOBS: Final = {
    n: s for n, s in SAGEMAKER_TASKS.items() if s["Resource"].endswith(".sync")
}
WILDCARDS: Final = {"States.ALL", "States.TaskFailed"}
# What Step Functions reports for a SageMaker API call that may succeed when made again: every
# unmodeled error code (ThrottlingException among them) and a full instance quota.
SAGEMAKER_TRANSIENT: Final = {
    "SageMaker.AmazonSageMakerException",
    "SageMaker.ResourceLimitExceededException",
}
LAMBDA_TRANSIENT: Final = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "TransientServiceError",
}
_DISCOVER: Final = """
import importlib.util, json, pathlib
from boxloop.core.errors import BoxloopError
for path in sorted(pathlib.Path("lambdas").glob("*/app.py")):
    spec = importlib.util.spec_from_file_location("lambda_" + path.parent.name, path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
def walk(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from walk(sub)
print(json.dumps(sorted({c.__name__ for c in (BoxloopError, *walk(BoxloopError))})))
"""


@pytest.fixture(scope="module")
def terminal_errors() -> set[str]:
    """Every BoxloopError class a Lambda's code imports, found in a fresh interpreter."""
    found = subprocess.run(
        [sys.executable, "-c", _DISCOVER],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(found.stdout))


def _retried(state: dict[str, Any]) -> set[str]:
    return {name for retrier in state.get("Retry", []) for name in retrier["ErrorEquals"]}


def test_error_discovery_finds_the_terminal_errors_of_core_and_steps(terminal_errors):
    # a sanity row: the walk must find the classes core and the steps define
    assert {"BoxloopError", "ManifestError", "NothingUsableError", "ConfigError"} <= terminal_errors
    assert "NotEnoughLabelsError" in terminal_errors


@pytest.mark.parametrize("state", sorted(LAMBDA_TASKS))
def test_asl_catches_every_terminal_error_by_name_when_a_lambda_raises_it(terminal_errors, state):
    # GIVEN every BoxloopError subclass a Lambda can raise (Lambda reports the class name)
    catchers = LAMBDA_TASKS[state]["Catch"]
    # THEN the task's first Catch names each one and goes straight to NotifyFailure
    assert set(catchers[0]["ErrorEquals"]) == terminal_errors
    assert catchers[0]["Next"] == "NotifyFailure"
    # AND everything else is still caught, after the retries
    assert catchers[-1]["ErrorEquals"] == ["States.ALL"]


@pytest.mark.parametrize("state", sorted(TASKS))
def test_asl_retries_no_terminal_error_when_a_task_fails(terminal_errors, state):
    retried = _retried(TASKS[state])
    assert not retried & terminal_errors
    if state in LAMBDA_TASKS or state in SAGEMAKER_TASKS:
        # no wildcard, which would retry a terminal error (or a failed job) too
        assert not retried & WILDCARDS


@pytest.mark.parametrize("state", sorted(LAMBDA_TASKS))
def test_asl_retries_only_transient_lambda_errors(state):
    assert _retried(LAMBDA_TASKS[state]) == LAMBDA_TRANSIENT


@pytest.mark.parametrize("state", sorted(SAGEMAKER_TASKS))
def test_asl_retries_sagemaker_api_errors_twice_at_most(state):
    # Step Functions reports a validation error under the same name as throttling
    # (SageMaker.AmazonSageMakerException): a bad request may be tried three times, not six
    retriers = SAGEMAKER_TASKS[state]["Retry"]
    assert _retried(SAGEMAKER_TASKS[state]) == SAGEMAKER_TRANSIENT
    for retrier in retriers:
        if "SageMaker.AmazonSageMakerException" in retrier["ErrorEquals"]:
            assert retrier["MaxAttempts"] <= 2
        assert retrier["MaxAttempts"] <= 3


@pytest.mark.parametrize("state", sorted(SAGEMAKER_JOBS))
def test_asl_names_each_attempt_of_a_sagemaker_job_apart(state):
    task = SAGEMAKER_JOBS[state]
    field = next(k for k in task["Parameters"] if k.endswith("JobName.$"))
    # GIVEN the job's name: the Lambda's base name, then the attempt
    assert re.fullmatch(
        r"States\.Format\('\{\}-\{\}', \$\.[a-z_.]+\.job_name, \$\$\.State\.RetryCount\)",
        task["Parameters"][field],
    )
    # THEN the task's result carries the name the job really got
    assert task["ResultSelector"]["job_name.$"] == f"$.{field.removesuffix('.$')}"


@pytest.mark.parametrize("kind", ["label", "train", "infer", "post"])
def test_job_names_fit_sagemaker_and_iam_with_the_attempt_suffix(kind):
    # GIVEN the longest jobPrefix, the longest run id and a two-digit attempt
    config = LoopConfig(labels=LabelConfig(("car",)), job_prefix="P" * 20)
    run_id = run_id_for("x" * 80, "arn:aws:states:us-east-1:123456789012:execution:m:" + "x" * 80)
    run = RunState(run_id=run_id, root=f"s3://b/runs/{run_id}", ledger="", iteration=999)
    name = f"{run.job_name(config, kind)}-99"
    # THEN SageMaker takes it (63 chars at most) and the IAM pattern <jobPrefix>-* covers it
    assert len(name) <= 63
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", name)
    pattern = job_name_pattern(SimpleNamespace(loop=config))  # type: ignore[arg-type]
    assert fnmatch.fnmatchcase(name.lower(), pattern)


def test_asl_names_the_model_after_the_training_job_that_ran():
    assert ASL["States"]["CreateModel"]["Parameters"]["ModelName.$"] == (
        "$.training.result.job_name"
    )


def test_asl_passes_the_execution_arn_to_ingest():
    assert ASL["States"]["Ingest"]["Parameters"]["execution_arn.$"] == "$$.Execution.Id"


# --- on moto, through the synthesized stack ---------------------------------------------------


def _raise_on_call(error: Exception, calls: set[int]) -> Callable[[Any], Any]:
    """A handler wrapper that raises ``error`` on the given 1-based calls."""
    seen = [0]

    def wrap(handler: Any) -> Any:
        def wrapped(event: Any, context: Any) -> Any:
            seen[0] += 1
            if seen[0] in calls:
                raise error
            return handler(event, context)

        return wrapped

    wrap.calls = seen  # type: ignore[attr-defined]
    return wrap


def _training_jobs(run: E2ERun) -> list[str]:
    return [request["TrainingJobName"] for request in run.training.requests]


def _iteration_of(job_name: str) -> int:
    """The iteration in a job name ``<prefix>-<run hash>-<iteration>-<kind>-<attempt>``."""
    found = re.search(r"-(\d{3})-[a-z]+(?:-\d+)?-\d+$", job_name)
    assert found, f"not a boxloop job name: {job_name}"
    return int(found.group(1))


def _iteration_reports(run: E2ERun) -> dict[int, dict[str, Any]]:
    """Iteration -> the report FilterLowConfidence wrote for it."""
    paths = RunPaths(run.root)
    reports = {}
    for iteration in range(run.entered("FilterLowConfidence")):
        reports[iteration] = json.loads(read_text(paths.step(iteration, "report", "report.json")))
    return reports


def test_workflow_fails_at_once_when_every_manifest_line_is_bad(harness: WorkflowHarness):
    # GIVEN an input manifest with no usable line
    client("s3").put_object(
        Bucket="boxloop-e2e-data", Key="input/bad.manifest", Body='{"no-source-ref": 1}\nnot json\n'
    )
    execution_input = {"manifest": "s3://boxloop-e2e-data/input/bad.manifest"}
    # WHEN a run starts from it
    run = harness.run("bad-manifest", execution_input)
    # THEN Ingest's NothingUsableError goes straight to NotifyFailure: no retry
    assert run.result.status == "FAILED"
    assert run.result.visited_states == ("Ingest", "NotifyFailure", "Failed")
    assert run.result.task_errors == ("NothingUsableError",)
    assert not [d for d in run.skipped_delays if d.kind == "retry"]
    assert run.failure_state()["error"]["Error"] == "NothingUsableError"


def test_workflow_fails_at_once_when_a_later_lambda_raises_a_manifest_error(
    harness: WorkflowHarness,
):
    # GIVEN MergeHumanLabels raising a ManifestError (a broken labeling output line)
    wrap = _raise_on_call(ManifestError("is not JSON", source="output.manifest", line=2), {1})
    # WHEN a run reaches it
    run = harness.run("merge-manifest-error", wrap={"merge_human_labels": wrap})
    # THEN the Lambda ran once and the run went straight to NotifyFailure
    assert wrap.calls == [1]  # type: ignore[attr-defined]
    assert run.result.status == "FAILED"
    assert run.result.visited_states[-3:] == ("MergeHumanLabels", "NotifyFailure", "Failed")
    assert run.result.task_errors == ("ManifestError",)
    assert "output.manifest:2" in run.failure_state()["error"]["Cause"]


def test_workflow_retries_a_transient_service_error(harness: WorkflowHarness):
    # GIVEN PrepareInference failing once with S3 unreachable after botocore's retries
    wrap = _raise_on_call(TransientServiceError("EndpointConnectionError: s3"), {1})
    # WHEN a run reaches it
    run = harness.run("transient-s3", wrap={"prepare_inference": wrap})
    # THEN the task's Retry absorbs it and the run succeeds
    assert run.result.status == "SUCCEEDED", f"{run.result.error}: {run.result.cause}"
    assert run.result.task_errors == ("TransientServiceError",)


def test_workflow_uses_the_retried_job_when_a_create_was_accepted_then_failed(
    harness: WorkflowHarness,
):
    # GIVEN SageMaker accepting the first CreateTrainingJob but answering it with a fault
    fault = SageMakerApiError("InternalFailure", "try again", status=500, accepted=True)
    training = StandInTraining(num_classes=harness.num_classes, api_errors={1: fault})
    # WHEN a run trains
    run = harness.run("accepted-then-failed", training=training)
    # THEN the retry creates a job under a new name (no ResourceInUse) and the run succeeds
    assert run.result.status == "SUCCEEDED", f"{run.result.error}: {run.result.cause}"
    assert run.result.task_errors == ("SageMaker.AmazonSageMakerException",)
    first, retried, *later = _training_jobs(run)
    assert (first[-2:], retried[-2:]) == ("-0", "-1")
    assert first[:-2] == retried[:-2]
    assert all(name.endswith("-0") for name in later)
    # AND every later state used the job it waited on: the model, the transform's model and
    # the auto-labels' provenance all name the retried job, never the first one
    sagemaker = client("sagemaker")
    model = sagemaker.describe_model(ModelName=retried)
    assert retried in model["PrimaryContainer"]["ModelDataUrl"]
    assert run.transform.models[0] == retried
    assert run.transform.requests[0]["ModelName"] == retried
    with pytest.raises(ClientError):
        sagemaker.describe_model(ModelName=first)
    auto = [line for line in run.output_lines().values() if line["boxloop"].get("model")]
    assert auto
    assert {line["boxloop"]["model"] for line in auto} <= {retried, *later}
    # AND the accepted first job, superseded, no longer runs unattended: PrepareInference,
    # which read the retried job's name, stopped it, and the iteration's report names it
    assert sagemaker.describe_training_job(TrainingJobName=first)["TrainingJobStatus"] == (
        "Stopped"
    )
    assert sagemaker.describe_training_job(TrainingJobName=retried)["TrainingJobStatus"] == (
        "Completed"
    )
    reports = _iteration_reports(run)
    assert reports[_iteration_of(first)]["superseded_jobs_stopped"] == [first]
    assert [r["superseded_jobs_stopped"] for r in reports.values()].count([]) == len(reports) - 1


class _AcceptedThenFaulted:
    """A job runner whose first Create* call SageMaker accepts but answers with a fault.

    The first job stays InProgress, unattended; every later call goes to ``runner``, whose
    attributes (``jobs``, ``requests``...) read through.
    """

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.names: list[str] = []

    def __call__(self, request: dict[str, Any]) -> Any:
        self.names.append(next(v for k, v in request.items() if k.endswith("JobName")))
        if len(self.names) == 1:
            raise SageMakerApiError("InternalFailure", "try again", status=500, accepted=True)
        return self.runner(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runner, name)


def test_workflow_stops_every_kind_of_job_a_retry_superseded(
    harness: WorkflowHarness, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN the first labeling, transform and processing creates accepted, then faulted
    import e2e_harness

    labeling: list[_AcceptedThenFaulted] = []
    make_runner = e2e_harness.make_labeling_runner

    def make_labeling_runner(*args: Any, **kwargs: Any) -> _AcceptedThenFaulted:
        labeling.append(_AcceptedThenFaulted(make_runner(*args, **kwargs)))
        return labeling[-1]

    monkeypatch.setattr(e2e_harness, "make_labeling_runner", make_labeling_runner)
    processing = _AcceptedThenFaulted(harness.processing)
    monkeypatch.setattr(harness, "processing", processing)
    transform = _AcceptedThenFaulted(
        StandInTransform(reference=harness.reference, num_classes=harness.num_classes)
    )
    # WHEN a run goes through them
    run = harness.run("superseded-jobs", transform=transform)  # type: ignore[arg-type]
    # THEN each was retried under a new name and the run succeeded
    assert run.result.status == "SUCCEEDED", f"{run.result.error}: {run.result.cause}"
    assert run.result.task_errors == ("SageMaker.AmazonSageMakerException",) * 3
    runners = {"labeling": labeling[0], "transform": transform, "processing": processing}
    firsts = {kind: runner.names[0] for kind, runner in runners.items()}
    for kind, runner in runners.items():
        assert runner.names[1] == runner.names[0][:-2] + "-1", kind
    # AND the attempt each retry superseded was stopped, not left running unattended
    sagemaker = client("sagemaker")
    statuses = {
        "labeling": sagemaker.describe_labeling_job(LabelingJobName=firsts["labeling"])[
            "LabelingJobStatus"
        ],
        "transform": sagemaker.describe_transform_job(TransformJobName=firsts["transform"])[
            "TransformJobStatus"
        ],
        "processing": sagemaker.describe_processing_job(ProcessingJobName=firsts["processing"])[
            "ProcessingJobStatus"
        ],
    }
    assert statuses == dict.fromkeys(runners, "Stopped")
    # AND the report of each one's iteration names it, labeling first (no one else's)
    reports = _iteration_reports(run)
    reported = {
        iteration: report["superseded_jobs_stopped"]
        for iteration, report in reports.items()
        if report["superseded_jobs_stopped"]
    }
    expected: dict[int, list[str]] = {}
    for name in firsts.values():
        expected.setdefault(_iteration_of(name), []).append(name)
    assert reported == expected


def test_workflow_retries_a_throttled_create_under_a_new_name(harness: WorkflowHarness):
    # GIVEN the first CreateTrainingJob throttled (refused: no job)
    throttled = SageMakerApiError("ThrottlingException", "Rate exceeded")
    training = StandInTraining(num_classes=harness.num_classes, api_errors={1: throttled})
    # WHEN a run trains
    run = harness.run("throttled-create", training=training)
    # THEN the second attempt runs and the run succeeds
    assert run.result.status == "SUCCEEDED", f"{run.result.error}: {run.result.cause}"
    assert run.result.task_errors == ("SageMaker.AmazonSageMakerException",)
    assert _training_jobs(run)[1].endswith("-1")


def test_workflow_gives_up_on_a_validation_error_after_two_retries(harness: WorkflowHarness):
    # GIVEN a CreateTrainingJob request SageMaker refuses every time
    refused = SageMakerApiError("ValidationException", "1 validation error detected")
    training = StandInTraining(
        num_classes=harness.num_classes, api_errors=dict.fromkeys(range(1, 10), refused)
    )
    # WHEN a run trains
    run = harness.run("validation-error", training=training)
    # THEN Train is tried three times in all, then the run fails through NotifyFailure
    assert run.result.status == "FAILED"
    assert run.result.visited_states[-3:] == ("Train", "NotifyFailure", "Failed")
    assert run.result.task_errors == ("SageMaker.AmazonSageMakerException",) * 3
    assert [name[-2:] for name in _training_jobs(run)] == ["-0", "-1", "-2"]


def test_workflow_keeps_runs_apart_when_execution_names_collide(harness: WorkflowHarness):
    # GIVEN two executions whose names are one folder-safe name
    runs = [harness.run(name) for name in ("run_1", "run.1")]
    # THEN both succeed, each in its own folder, with its own ledgers and job names
    for run in runs:
        assert run.result.status == "SUCCEEDED", f"{run.result.error}: {run.result.cause}"
        assert run.run_id.startswith("run-1-")
        assert run.result.output["output_manifest"].startswith(run.root + "/")
    one, two = runs
    assert one.root != two.root
    assert not set(one.ledgers()) & set(two.ledgers())
    assert len(read_manifest(one.ledgers()[0])) == len(read_manifest(two.ledgers()[0])) == 36
    assert not set(_training_jobs(one)) & set(_training_jobs(two))
    assert not {j.name for j in one.labeling_jobs} & {j.name for j in two.labeling_jobs}
