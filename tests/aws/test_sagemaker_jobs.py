"""Stopping superseded SageMaker job attempts, on moto's SageMaker with the local emulator.

The jobs are made through the API as a fault leaves them: a Create* call that SageMaker
accepted but answered with a fault leaves its job ``InProgress`` (``SageMakerApiError`` with
``accepted=True``), a refused one leaves no job, and the others end Completed or Failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID as ACCOUNT

from boxloop.aws.clients import client
from boxloop.aws.sagemaker_jobs import _APIS, JobAttempt, _stop, stop_superseded_jobs
from boxloop.local import emulator
from boxloop.local.emulator import JobResult, SageMakerApiError

REGION: Final = "us-east-1"
ROLE_ARN: Final = "arn:aws:iam::123456789012:role/sagemaker"
IMAGE: Final = "123456789012.dkr.ecr.us-east-1.amazonaws.com/img:1"
BASE: Final = "bl-abcd-001-train"

# outcome of a Create* call -> what the local runner does
OUTCOMES: Final = {
    # accepted, the answer lost: the job runs on
    "running": SageMakerApiError("InternalFailure", "lost", status=500, accepted=True),
    # refused: no job
    "refused": SageMakerApiError("ThrottlingException", "Rate exceeded"),
    "completed": JobResult(status="Completed"),
    "failed": JobResult(status="Failed", failure_reason="AlgorithmError: diverged"),
}


@pytest.fixture
def sagemaker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Moto with the emulator's SageMaker patches; a client that never retries a create."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws(config=emulator.MOTO_CONFIG), emulator.patched():
        yield boto3.client("sagemaker", config=Config(retries={"total_max_attempts": 1}))


def _request(kind: str, name: str) -> dict[str, Any]:
    """A minimal Create*Job request of ``kind``."""
    resources = {"InstanceCount": 1, "InstanceType": "ml.m5.large"}
    if kind == "training":
        return {
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "RoleArn": ROLE_ARN,
            "OutputDataConfig": {"S3OutputPath": "s3://b/models"},
            "ResourceConfig": {**resources, "VolumeSizeInGB": 5},
            "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        }
    if kind == "transform":
        source = {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": "s3://b/in.manifest"}}
        return {
            "ModelName": "m",
            "TransformInput": {"DataSource": source},
            "TransformOutput": {"S3OutputPath": "s3://b/out"},
            "TransformResources": resources,
        }
    if kind == "processing":
        return {
            "AppSpecification": {"ImageUri": IMAGE},
            "ProcessingResources": {"ClusterConfig": {**resources, "VolumeSizeInGB": 5}},
            "RoleArn": ROLE_ARN,
        }
    lambdas = "arn:aws:lambda:us-east-1:432418664414:function"
    return {
        "LabelAttributeName": "boxes",
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": "s3://b/in.manifest"}}},
        "OutputConfig": {"S3OutputPath": "s3://b/labels/"},
        "RoleArn": ROLE_ARN,
        "HumanTaskConfig": {
            "WorkteamArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/t",
            "UiConfig": {"UiTemplateS3Uri": "s3://b/template.liquid"},
            "PreHumanTaskLambdaArn": f"{lambdas}:PRE-BoundingBox",
            "TaskTitle": "t",
            "TaskDescription": "d",
            "NumberOfHumanWorkersPerDataObject": 1,
            "TaskTimeLimitInSeconds": 60,
            "AnnotationConsolidationConfig": {
                "AnnotationConsolidationLambdaArn": f"{lambdas}:ACS-BoundingBox"
            },
        },
    }


def _create_attempts(sagemaker: Any, kind: str, outcomes: list[str], base: str = BASE) -> None:
    """Create ``<base>-0``, ``<base>-1``, ... ending as ``outcomes`` says, through the API."""
    by_name = {f"{base}-{n}": OUTCOMES[outcome] for n, outcome in enumerate(outcomes)}
    api = _APIS[kind]

    def runner(request: dict[str, Any]) -> JobResult:
        outcome = by_name[request[api.name_field]]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    emulator.register_sagemaker_runner(f"create_{kind}_job", runner)  # type: ignore[arg-type]
    for name in by_name:
        try:
            create = getattr(sagemaker, f"create_{kind}_job")
            create(**{api.name_field: name}, **_request(kind, name))
        except ClientError:
            pass  # the fault the runner injected; "running" left its job behind


def _statuses(sagemaker: Any, kind: str, count: int, base: str = BASE) -> list[str | None]:
    """The status of attempts ``0 .. count-1``, ``None`` for an attempt that has no job."""
    api = _APIS[kind]
    found: list[str | None] = []
    for n in range(count):
        try:
            described = getattr(sagemaker, api.describe)(**{api.name_field: f"{base}-{n}"})
        except ClientError:
            found.append(None)
        else:
            found.append(described[api.status_field])
    return found


@pytest.mark.parametrize("kind", ["labeling", "training", "transform", "processing"])
def test_stop_superseded_jobs_stops_the_running_earlier_attempt_of_each_kind(sagemaker, kind):
    # GIVEN attempt 0 accepted and running unattended, attempt 1 the job the step read
    _create_attempts(sagemaker, kind, ["running", "completed"])
    # WHEN the step stops what attempt 1 superseded
    stopped = stop_superseded_jobs(kind, f"{BASE}-1", base=BASE)
    # THEN attempt 0 is stopped, and the job read is untouched
    assert stopped == (f"{BASE}-0",)
    assert _statuses(sagemaker, kind, 3) == ["Stopped", "Completed", None]


def test_stop_superseded_jobs_stops_only_earlier_attempts_that_are_running(sagemaker):
    # GIVEN attempts 0..4: refused (no job), failed, completed, running, running; 3 is read
    outcomes = ["refused", "failed", "completed", "running", "running"]
    _create_attempts(sagemaker, "training", outcomes)
    # WHEN attempt 3 is the job the step read
    stopped = stop_superseded_jobs("training", f"{BASE}-3", base=BASE)
    # THEN nothing but attempt 3's predecessors is looked at, and none that ended is touched
    assert stopped == ()
    assert _statuses(sagemaker, "training", 5) == [
        None,
        "Failed",
        "Completed",
        "InProgress",
        "InProgress",
    ]
    # AND from attempt 4, the running attempt 3 is stopped and the ended ones stay as they were
    assert stop_superseded_jobs("training", f"{BASE}-4", base=BASE) == (f"{BASE}-3",)
    assert _statuses(sagemaker, "training", 5) == [
        None,
        "Failed",
        "Completed",
        "Stopped",
        "InProgress",
    ]


def test_stop_superseded_jobs_leaves_the_first_attempt_alone(sagemaker):
    # GIVEN attempt 0 running (a job the .sync task still waits on, or reads)
    _create_attempts(sagemaker, "processing", ["running"])
    # WHEN a step reads attempt 0
    stopped = stop_superseded_jobs("processing", f"{BASE}-0", base=BASE)
    # THEN nothing is stopped
    assert stopped == ()
    assert _statuses(sagemaker, "processing", 1) == ["InProgress"]


def test_stop_superseded_jobs_never_splits_a_name_that_is_not_its_base_and_attempt(sagemaker):
    # GIVEN a labeling part whose base name ends in a number itself, attempt 0 running
    base = "bl-abcd-001-label"
    _create_attempts(sagemaker, "labeling", ["running", "running"], base=base)
    # WHEN the step reads a name that is not <base>-<digits> (the base alone, or another job's)
    assert stop_superseded_jobs("labeling", base, base=base) == ()
    assert stop_superseded_jobs("labeling", f"{base}-2-0", base=base) == ()
    assert stop_superseded_jobs("labeling", f"{base}-1", base="bl-abcd-001") == ()
    # THEN nothing is stopped
    assert _statuses(sagemaker, "labeling", 3, base) == ["InProgress", "InProgress", None]


def test_stop_superseded_jobs_reports_an_attempt_already_stopping(sagemaker):
    # GIVEN attempt 0 stopped by a first run of the step, which then failed: on SageMaker the
    # job is Stopping for a while (locally a stop is instant, so the test sets the status)
    _create_attempts(sagemaker, "transform", ["running", "completed"])
    backend = get_backend("sagemaker")[ACCOUNT][REGION]
    backend.transform_jobs[f"{BASE}-0"].transform_job_status = "Stopping"
    # WHEN the retried step runs again
    again = stop_superseded_jobs("transform", f"{BASE}-1", base=BASE)
    # THEN the report still names it, and no second stop was made (it would be refused)
    assert again == (f"{BASE}-0",)
    assert _statuses(sagemaker, "transform", 2) == ["Stopping", "Completed"]
    # AND once it has stopped, a third run has nothing to report
    backend.transform_jobs[f"{BASE}-0"].transform_job_status = "Stopped"
    assert stop_superseded_jobs("transform", f"{BASE}-1", base=BASE) == ()


def test_stop_of_a_job_that_has_ended_is_not_an_error(sagemaker):
    # GIVEN a job that ended between Describe* and Stop* (SageMaker refuses to stop it)
    _create_attempts(sagemaker, "training", ["completed"])
    # WHEN it is stopped
    with pytest.raises(ClientError, match="ValidationException"):
        sagemaker.stop_training_job(TrainingJobName=f"{BASE}-0")
    # THEN the helper takes the refusal as "nothing to stop", as for a job that does not exist
    assert _stop(client("sagemaker"), _APIS["training"], f"{BASE}-0") is False
    assert _stop(client("sagemaker"), _APIS["training"], f"{BASE}-9") is False


def test_stop_superseded_jobs_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown SageMaker job kind 'model'"):
        stop_superseded_jobs("model", f"{BASE}-1", base=BASE)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "base", "attempt"),
    [
        # a first attempt
        ("bl-abcd-001-train-0", "bl-abcd-001-train", 0),
        # a later attempt, two digits
        ("bl-abcd-001-train-12", "bl-abcd-001-train", 12),
        # a base that ends in digits itself (the second labeling part)
        ("bl-abcd-001-label-2-1", "bl-abcd-001-label-2", 1),
        # the same name read against the first part's base: attempt 2 of it, as named
        ("bl-abcd-001-label-2", "bl-abcd-001-label", 2),
        # no attempt suffix
        ("bl-abcd-001-train", "bl-abcd-001-train", None),
        # another job's name
        ("bl-abcd-001-infer-1", "bl-abcd-001-train", None),
        # a suffix that is not a number
        ("bl-abcd-001-train-x", "bl-abcd-001-train", None),
        # a negative number is not an attempt
        ("bl-abcd-001-train--1", "bl-abcd-001-train", None),
        # non-ASCII digits are not SageMaker's
        ("bl-abcd-001-train-\u0663", "bl-abcd-001-train", None),
        # an empty base names nothing
        ("-1", "", None),
    ],
)
def test_job_attempt_parse_reads_the_attempt_of_a_base_name(name, base, attempt):
    parsed = JobAttempt.parse(name, base=base)
    assert (parsed.attempt if parsed else None) == attempt
    if parsed:
        assert parsed.name == name


def test_job_attempt_earlier_names_every_attempt_before_it():
    assert JobAttempt("b", 3).earlier() == ("b-0", "b-1", "b-2")
    assert JobAttempt("b", 0).earlier() == ()


@pytest.mark.parametrize(("base", "attempt"), [("", 1), ("b", -1)])
def test_job_attempt_refuses_an_empty_base_or_a_negative_attempt(base, attempt):
    with pytest.raises(ValueError, match=r"base name|attempt must be"):
        JobAttempt(base, attempt)
