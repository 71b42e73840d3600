"""Smoke test of boxloop.local.emulator: every moto patch, driven through moto's ASL engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import (
    StateTaskLambda,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
    WaitFunction,
)

from boxloop.core.errors import ConfigError, ManifestError
from boxloop.local import emulator
from boxloop.local.emulator import JobResult, LambdaThrottled, SageMakerApiError, SkippedDelay

ASL = Path(__file__).parents[1] / "fixtures" / "asl" / "emulator_smoke.asl.json"
REGION = "us-east-1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
ACCOUNT = "123456789012"  # moto's default account
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/sagemaker"
SUBSTITUTIONS = {
    "PrepareFunction": "Prepare",
    "FetchFunction": "Fetch",
    "ValidateFunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:Validate",
    "TrainingImage": "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1",
    "ProcessingImage": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/postprocess:1",
    "RoleArn": ROLE_ARN,
    "Bucket": "boxloop-smoke",
    "WorkteamArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/team",
    "HumanTaskUiArn": f"arn:aws:sagemaker:{REGION}:394669845002:human-task-ui/BoundingBox",
    "PreLambdaArn": f"arn:aws:lambda:{REGION}:432418664414:function:PRE-BoundingBox",
    "AcsLambdaArn": f"arn:aws:lambda:{REGION}:432418664414:function:ACS-BoundingBox",
}
PATCHED = [  # every (owner, attribute) apply() replaces or adds
    (LambdaSimpleBackend, "invoke"),
    (StateTaskLambda, "_from_error"),
    (state_task_factory, "state_task_service_for"),
    (SageMakerResponse, "create_training_job"),
    (SageMakerResponse, "create_transform_job"),
    (SageMakerResponse, "create_processing_job"),
    (SageMakerResponse, "stop_training_job"),
    (SageMakerResponse, "stop_transform_job"),
    (SageMakerResponse, "stop_processing_job"),
    (WaitFunction, "_wait_interval"),
    (retrier_decl, "time"),
]


class FlakyError(Exception):
    """A transient failure the ASL retries by class name."""


class SmokeWorld:
    """The in-process handlers and runners of the smoke ASL; they record what they saw."""

    def __init__(self) -> None:
        self.events: dict[str, list[Any]] = {"Prepare": [], "Fetch": [], "Validate": []}
        self.function_names: list[str] = []
        self.requests: dict[str, list[dict[str, Any]]] = {}
        self.skipped: tuple[SkippedDelay, ...] = ()

    def prepare(self, event: Any, context: emulator.LambdaContext) -> dict[str, str]:
        self.events["Prepare"].append(event)
        self.function_names.append(context.function_name)
        if len(self.events["Prepare"]) == 1:
            raise FlakyError("first call fails")
        return {"run": "r1"}

    def fetch(self, event: Any, context: emulator.LambdaContext) -> dict[str, int]:
        self.events["Fetch"].append(event)
        if len(self.events["Fetch"]) <= 2:
            raise LambdaThrottled()
        return {"count": 3}

    def validate(self, event: Any, context: emulator.LambdaContext) -> None:
        self.events["Validate"].append(event)
        raise ManifestError("width must be > 0, got -3", source="input.manifest", line=3)

    def train(self, request: dict[str, Any]) -> JobResult:
        self.requests.setdefault("train", []).append(request)
        if request["HyperParameters"].get("learning_rate") == "1000":
            return JobResult(status="Failed", failure_reason="AlgorithmError: loss diverged")
        model_key = f"models/{request['TrainingJobName']}/output/model.tar.gz"
        boto3.client("s3").put_object(Bucket="boxloop-smoke", Key=model_key, Body=b"weights")
        return JobResult(status="Completed", metrics={"validation:mAP": 0.61})

    def process(self, request: dict[str, Any]) -> JobResult:
        self.requests.setdefault("process", []).append(request)
        return JobResult(status="Completed", outputs={"ExitMessage": "joined 12 predictions"})

    def label(self, request: dict[str, Any]) -> JobResult:
        self.requests.setdefault("label", []).append(request)
        counters = {"TotalLabeled": 10, "HumanLabeled": 9, "FailedNonRetryableError": 1}
        return JobResult(status="Completed", outputs={"LabelCounters": counters})


@pytest.fixture(scope="module")
def smoke() -> Iterator[tuple[emulator.ExecutionResult, SmokeWorld, bool]]:
    """One execution of the smoke ASL; returns its result, the world, and the model's presence."""
    world = SmokeWorld()
    with pytest.MonkeyPatch.context() as env:
        for key, value in CREDENTIALS.items():
            env.setenv(key, value)
        with mock_aws(config=emulator.MOTO_CONFIG), emulator.patched(instant_delays=True):
            boto3.client("s3").create_bucket(Bucket="boxloop-smoke")
            emulator.register_lambda("Prepare", world.prepare)
            emulator.register_lambda("Fetch", world.fetch)
            emulator.register_lambda("Validate", world.validate)
            emulator.register_sagemaker_runner("create_training_job", world.train)
            emulator.register_sagemaker_runner("create_processing_job", world.process)
            emulator.register_sagemaker_runner("create_labeling_job", world.label)
            definition = emulator.substitute_definition(ASL.read_text(), SUBSTITUTIONS)
            # 30 s < the 300 s Wait: the run only ends in time if the Wait is skipped.
            result = emulator.run_definition(definition, {"images": 12}, timeout_s=30)
            model_listing = boto3.client("s3").list_objects_v2(
                Bucket="boxloop-smoke", Prefix="models/r1-train/"
            )
            world.skipped = emulator.skipped_delays()
    yield result, world, model_listing.get("KeyCount", 0) == 1


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials, moto with the engine on, and the patches, for one test."""
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    with mock_aws(config=emulator.MOTO_CONFIG), emulator.patched(instant_delays=True):
        yield


def _machine(states: dict[str, Any], start: str) -> str:
    return json.dumps({"StartAt": start, "States": states})


def _training_request(name: str) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": SUBSTITUTIONS["TrainingImage"],
            "TrainingInputMode": "File",
        },
        "RoleArn": ROLE_ARN,
        "OutputDataConfig": {"S3OutputPath": "s3://b/models"},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }


# --- the smoke execution ---------------------------------------------------------------------


def test_smoke_execution_visits_every_state_and_succeeds(smoke):
    result, _, _ = smoke
    assert (result.status, result.error) == ("SUCCEEDED", None)
    assert result.visited_states == (  # a retried state is entered once
        "Prepare",
        "Fetch",
        "Validate",
        "Quarantine",
        "Train",
        "CreateModel",
        "Transform",
        "PostProcess",
        "Label",
        "WaitForReview",
        "Retrain",
        "RetrainFailed",
        "Done",
    )


def test_lambda_invoke_runs_registered_handler_with_state_input(smoke):
    result, world, _ = smoke
    assert world.events["Prepare"] == [{"images": 12}, {"images": 12}]
    assert world.function_names == ["Prepare", "Prepare"]
    assert result.output["prepared"] == {"run": "r1"}


def test_retry_on_handler_exception_class_name_then_success(smoke):
    result, world, _ = smoke
    assert result.task_errors[0] == "FlakyError"
    assert len(world.events["Prepare"]) == 2


def test_throttled_lambda_surfaces_as_too_many_requests_and_is_retried(smoke):
    result, world, _ = smoke
    assert result.task_errors[1:3] == (
        "Lambda.TooManyRequestsException",
        "Lambda.TooManyRequestsException",
    )
    assert len(world.events["Fetch"]) == 3
    assert result.output["fetched"] == {"count": 3}


def test_catch_matches_handler_exception_class_name_on_direct_function_arn(smoke):
    result, _, _ = smoke
    caught = result.output["quarantined"]
    cause = json.loads(caught["Cause"])
    assert caught["Error"] == "ManifestError"
    assert cause["errorType"] == "ManifestError"
    assert cause["errorMessage"].startswith("input.manifest:3: width must be > 0")
    assert "validated" not in result.output


def test_training_sync_reports_runner_metric_and_model(smoke):
    result, world, model_written = smoke
    assert result.output["train"]["ModelArtifacts"] == (
        "s3://boxloop-smoke/models/r1-train/output/model.tar.gz"
    )
    metrics = result.output["train"]["Metrics"]
    assert [(m["MetricName"], m["Value"]) for m in metrics] == [("validation:mAP", 0.61)]
    assert isinstance(metrics[0]["Timestamp"], str)  # datetimes come out as text
    assert model_written  # a runner's own S3 calls reach moto
    assert "MetricDefinitions" not in world.requests["train"][0]["AlgorithmSpecification"]


def test_create_model_request_response_returns_model_arn(smoke):
    result, _, _ = smoke
    assert result.output["model"] == {"ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/r1"}


def test_transform_sync_without_runner_is_moto_completed_trimmed_by_result_selector(smoke):
    result, _, _ = smoke
    assert result.output["transform"] == {"Status": "Completed"}


def test_processing_sync_reports_runner_outputs(smoke):
    result, world, _ = smoke
    assert result.output["postprocess"] == {
        "Status": "Completed",
        "ExitMessage": "joined 12 predictions",
    }
    assert world.requests["process"][0]["ProcessingJobName"] == "r1-postprocess"


def test_labeling_sync_reports_counters_and_output_manifest(smoke):
    result, world, _ = smoke
    assert result.output["labeling"] == {
        "Counters": {
            "TotalLabeled": 10,
            "HumanLabeled": 9,
            "MachineLabeled": 0,
            "FailedNonRetryableError": 1,
            "Unlabeled": 0,
        },
        "OutputManifest": "s3://boxloop-smoke/labels/r1-label/manifests/output/output.manifest",
    }
    assert world.requests["label"][0]["HumanTaskConfig"]["TaskTitle"] == "Draw boxes"


def test_failed_training_job_is_caught_as_task_failed_with_reason(smoke):
    result, _, _ = smoke
    caught = result.output["retrain_error"]
    assert caught["Error"] == "States.TaskFailed"
    described = json.loads(caught["Cause"])
    assert described["TrainingJobStatus"] == "Failed"
    assert described["FailureReason"] == "AlgorithmError: loss diverged"
    assert result.task_errors[-1] == "States.TaskFailed"


def test_wait_and_retry_delays_are_skipped_and_recorded(smoke):
    _, world, _ = smoke
    assert world.skipped == (
        SkippedDelay("retry", 1.0),  # FlakyError, IntervalSeconds 1
        SkippedDelay("retry", 2.0),  # first throttle, IntervalSeconds 2
        SkippedDelay("retry", 4.0),  # second throttle, BackoffRate 2
        SkippedDelay("wait", 300.0),  # WaitForReview
    )


# --- Lambda router edges ---------------------------------------------------------------------


def test_direct_function_arn_throttle_is_named_lambda_too_many_requests(aws):
    calls = []

    def handler(event: Any, context: emulator.LambdaContext) -> str:
        calls.append(event)
        if len(calls) == 1:
            raise LambdaThrottled()
        return "ok"

    emulator.register_lambda("Direct", handler)
    retry = [{"ErrorEquals": ["Lambda.TooManyRequestsException"], "MaxAttempts": 1}]
    task = {
        "Type": "Task",
        "Resource": SUBSTITUTIONS["ValidateFunctionArn"].replace("Validate", "Direct"),
        "Retry": retry,
        "End": True,
    }
    result = emulator.run_definition(_machine({"Call": task}, "Call"), {"n": 1})
    assert (result.status, result.output) == ("SUCCEEDED", "ok")
    assert result.task_errors == ("Lambda.TooManyRequestsException",)


def test_invoke_of_unregistered_missing_function_fails_with_resource_not_found(aws):
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "Missing", "Payload": {}},
        "End": True,
    }
    result = emulator.run_definition(_machine({"Call": task}, "Call"), {})
    assert (result.status, result.error) == ("FAILED", "Lambda.ResourceNotFoundException")


@pytest.mark.parametrize(
    ("result", "error_type"),
    [
        ({"boxes": 3}, None),  # JSON result: passed through
        ({1, 2}, "Runtime.MarshalError"),  # a set is not JSON: the runtime's marshal error
    ],
)
def test_direct_invoke_returns_result_or_runtime_error_envelope(aws, result, error_type):
    emulator.register_lambda("Echo", lambda event, context: result)
    response = boto3.client("lambda").invoke(FunctionName="Echo", Payload=b"{}")
    payload = json.loads(response["Payload"].read())
    if error_type is None:
        assert ("FunctionError" not in response, payload) == (True, result)
    else:
        assert (response["FunctionError"], payload["errorType"]) == ("Unhandled", error_type)


def test_register_lambda_rejects_arn(aws):
    with pytest.raises(ValueError, match="bare function name"):
        emulator.register_lambda(SUBSTITUTIONS["ValidateFunctionArn"], lambda e, c: None)


# --- SageMaker runners and labeling jobs -----------------------------------------------------


def _create_and_describe(kind: str, name: str) -> dict[str, Any]:
    sagemaker = boto3.client("sagemaker")
    if kind == "training":
        sagemaker.create_training_job(**_training_request(name))
        return sagemaker.describe_training_job(TrainingJobName=name)
    if kind == "transform":
        sagemaker.create_transform_job(
            TransformJobName=name,
            ModelName="m",
            TransformInput={
                "DataSource": {
                    "S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": "s3://b/pool.manifest"}
                }
            },
            TransformOutput={"S3OutputPath": "s3://b/out"},
            TransformResources={"InstanceCount": 1, "InstanceType": "ml.m5.large"},
        )
        return sagemaker.describe_transform_job(TransformJobName=name)
    if kind == "processing":
        sagemaker.create_processing_job(
            ProcessingJobName=name,
            AppSpecification={"ImageUri": SUBSTITUTIONS["ProcessingImage"]},
            ProcessingResources={
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "VolumeSizeInGB": 5,
                }
            },
            RoleArn=ROLE_ARN,
        )
        return sagemaker.describe_processing_job(ProcessingJobName=name)
    sagemaker.create_labeling_job(
        LabelingJobName=name,
        LabelAttributeName="boxes",
        InputConfig={"DataSource": {"S3DataSource": {"ManifestS3Uri": "s3://b/in.manifest"}}},
        OutputConfig={"S3OutputPath": "s3://b/labels/"},
        RoleArn=ROLE_ARN,
        HumanTaskConfig={
            "WorkteamArn": SUBSTITUTIONS["WorkteamArn"],
            "UiConfig": {"HumanTaskUiArn": SUBSTITUTIONS["HumanTaskUiArn"]},
            "PreHumanTaskLambdaArn": SUBSTITUTIONS["PreLambdaArn"],
            "TaskTitle": "t",
            "TaskDescription": "d",
            "NumberOfHumanWorkersPerDataObject": 1,
            "TaskTimeLimitInSeconds": 60,
            "AnnotationConsolidationConfig": {
                "AnnotationConsolidationLambdaArn": SUBSTITUTIONS["AcsLambdaArn"]
            },
        },
    )
    return sagemaker.describe_labeling_job(LabelingJobName=name)


ZERO_COUNTERS = {
    "TotalLabeled": 0,
    "HumanLabeled": 0,
    "MachineLabeled": 0,
    "FailedNonRetryableError": 0,
    "Unlabeled": 0,
}


@pytest.mark.parametrize(
    ("kind", "outputs", "status_field", "expected"),
    [
        # training: artifacts moved by the runner replace moto's default path
        (
            "training",
            {"ModelArtifacts": {"S3ModelArtifacts": "s3://b/m.tar.gz"}},
            "TrainingJobStatus",
            {"ModelArtifacts": {"S3ModelArtifacts": "s3://b/m.tar.gz"}},
        ),
        # transform: no outputs, only the status and reason change
        ("transform", {}, "TransformJobStatus", {}),
        # processing: exit message reported
        ("processing", {"ExitMessage": "done"}, "ProcessingJobStatus", {"ExitMessage": "done"}),
        # labeling: counters merged over the zero defaults
        (
            "labeling",
            {"LabelCounters": {"MachineLabeled": 4}},
            "LabelingJobStatus",
            {"LabelCounters": {**ZERO_COUNTERS, "MachineLabeled": 4}},
        ),
    ],
)
@pytest.mark.parametrize("status", ["Completed", "Failed"])
def test_runner_result_is_what_describe_reports(aws, kind, outputs, status_field, expected, status):
    seen = []
    reason = "ClientError: no images" if status == "Failed" else None

    def runner(request: dict[str, Any]) -> JobResult:
        seen.append(request)
        return JobResult(status=status, failure_reason=reason, outputs=outputs)

    emulator.register_sagemaker_runner(f"create_{kind}_job", runner)
    described = _create_and_describe(kind, f"job-{kind}")
    assert [request[f"{kind.title()}JobName"] for request in seen] == [f"job-{kind}"]
    assert described[status_field] == status
    assert (described.get("FailureReason") or None) == reason
    assert {key: described[key] for key in expected} == expected


def test_runner_exception_fails_the_job_with_algorithm_error(aws):
    def runner(request: dict[str, Any]) -> JobResult:
        raise RuntimeError("CUDA out of memory")

    emulator.register_sagemaker_runner("create_training_job", runner)
    described = _create_and_describe("training", "crash")
    assert described["TrainingJobStatus"] == "Failed"
    assert "RuntimeError('CUDA out of memory')" in described["FailureReason"]


def test_training_without_runner_keeps_moto_instant_completed(aws):
    described = _create_and_describe("training", "plain")
    assert described["TrainingJobStatus"] == "Completed"


def test_labeling_job_name_reuse_is_refused_like_sagemaker(aws):
    emulator.register_sagemaker_runner(
        "create_labeling_job", lambda request: JobResult(status="Completed")
    )
    _create_and_describe("labeling", "once")
    with pytest.raises(boto3.client("sagemaker").exceptions.ResourceInUse):
        _create_and_describe("labeling", "once")


def test_describe_of_unknown_labeling_job_is_resource_not_found(aws):
    sagemaker = boto3.client("sagemaker")
    with pytest.raises(sagemaker.exceptions.ResourceNotFound):
        sagemaker.describe_labeling_job(LabelingJobName="never-created")


def test_labeling_sync_without_runner_fails_with_amazon_sagemaker_exception(aws):
    definition = emulator.substitute_definition(ASL.read_text(), SUBSTITUTIONS)
    states = json.loads(definition)["States"]
    parameters = {k: v for k, v in states["Label"]["Parameters"].items() if not k.endswith(".$")}
    label = {
        "Type": "Task",
        "Resource": states["Label"]["Resource"],
        "End": True,
        "Parameters": {**parameters, "LabelingJobName": "no-runner"},
    }
    result = emulator.run_definition(_machine({"Label": label}, "Label"), {})
    assert (result.status, result.error) == ("FAILED", "SageMaker.AmazonSageMakerException")
    assert "register_sagemaker_runner('create_labeling_job'" in result.cause


def test_training_job_name_reuse_is_refused_like_sagemaker(aws):
    # moto alone would replace the first job; SageMaker refuses the name (ResourceInUse)
    emulator.register_sagemaker_runner(
        "create_training_job", lambda request: JobResult(status="Completed")
    )
    _create_and_describe("training", "once")
    with pytest.raises(boto3.client("sagemaker").exceptions.ResourceInUse):
        _create_and_describe("training", "once")


@pytest.mark.parametrize(
    ("error", "status", "job_status"),
    [
        # throttled: the call is refused, no job exists
        (SageMakerApiError("ThrottlingException", "Rate exceeded"), 400, None),
        # a refused request: no job exists
        (SageMakerApiError("ValidationException", "bad request"), 400, None),
        # accepted, then the response was lost: the job runs on, unattended
        (
            SageMakerApiError("InternalFailure", "oops", status=500, accepted=True),
            500,
            "InProgress",
        ),
    ],
)
def test_runner_api_error_answers_the_create_call(aws, error, status, job_status):
    def runner(request: dict[str, Any]) -> JobResult:
        raise error

    emulator.register_sagemaker_runner("create_training_job", runner)
    sagemaker = boto3.client("sagemaker", config=Config(retries={"total_max_attempts": 1}))
    with pytest.raises(ClientError) as raised:
        sagemaker.create_training_job(**_training_request("faulty"))
    response = raised.value.response
    assert response["Error"]["Code"] == error.code
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    jobs = sagemaker.list_training_jobs()["TrainingJobSummaries"]
    assert [(j["TrainingJobName"], j["TrainingJobStatus"]) for j in jobs] == (
        [("faulty", job_status)] if job_status else []
    )


def _train_task(name: str = "sfn-train") -> dict[str, Any]:
    request = _training_request(name)
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync",
        "Parameters": request,
        "End": True,
    }


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        # Step Functions names every API error SageMaker's Java SDK does not model as a class
        # SageMaker.AmazonSageMakerException: throttling, validation and service faults alike
        (
            SageMakerApiError("ThrottlingException", "Rate exceeded"),
            "SageMaker.AmazonSageMakerException",
        ),
        (SageMakerApiError("ValidationException", "bad"), "SageMaker.AmazonSageMakerException"),
        (
            SageMakerApiError("InternalFailure", "oops", status=500, accepted=True),
            "SageMaker.AmazonSageMakerException",
        ),
        # a modeled exception class keeps its own name
        (
            SageMakerApiError("ResourceLimitExceeded", "quota is 0 instances"),
            "SageMaker.ResourceLimitExceededException",
        ),
        # a job that ends Failed fails the .sync task with States.TaskFailed
        (
            JobResult(status="Failed", failure_reason="AlgorithmError: diverged"),
            "States.TaskFailed",
        ),
    ],
)
def test_sync_task_names_sagemaker_errors_as_step_functions_does(aws, fault, error):
    def runner(request: dict[str, Any]) -> JobResult:
        if isinstance(fault, Exception):
            raise fault
        return fault

    emulator.register_sagemaker_runner("create_training_job", runner)
    result = emulator.run_definition(_machine({"Train": _train_task()}, "Train"), {})
    assert (result.status, result.error) == ("FAILED", error)


def test_sync_task_reports_resource_in_use_when_the_job_name_is_taken(aws):
    emulator.register_sagemaker_runner(
        "create_training_job", lambda request: JobResult(status="Completed")
    )
    _create_and_describe("training", "taken")
    result = emulator.run_definition(_machine({"Train": _train_task("taken")}, "Train"), {})
    assert (result.status, result.error) == ("FAILED", "SageMaker.ResourceInUseException")


def test_register_sagemaker_runner_rejects_unknown_action(aws):
    with pytest.raises(ValueError, match="create_endpoint"):
        emulator.register_sagemaker_runner("create_endpoint", lambda r: None)  # type: ignore[arg-type]


def test_job_result_failed_without_reason_raises():
    with pytest.raises(ValueError, match="failure_reason"):
        JobResult(status="Failed")


# --- delays, timeout, lifecycle --------------------------------------------------------------


def test_run_execution_times_out_and_stops_when_wait_really_sleeps(aws):
    emulator.apply(instant_delays=False)
    wait = {"Type": "Wait", "Seconds": 120, "End": True}
    arn = emulator.create_state_machine(_machine({"LongWait": wait}, "LongWait"))
    # 2 s, far below the Wait's 120 s, but long enough for moto's thread to enter LongWait on
    # a loaded machine (at 0.3 s it sometimes had not, and the message named no state)
    with pytest.raises(emulator.ExecutionTimeoutError, match="LongWait"):
        emulator.run_execution(arn, {}, timeout_s=2.0)
    executions = boto3.client("stepfunctions").list_executions(stateMachineArn=arn)["executions"]
    assert [e["status"] for e in executions] == ["ABORTED"]
    assert emulator.skipped_delays() == ()


def test_apply_refuses_other_moto_version(monkeypatch):
    monkeypatch.setattr(moto, "__version__", "5.2.6")
    with pytest.raises(emulator.MotoVersionError, match="update them and the pin together"):
        emulator.apply()
    assert not emulator.is_applied()


def test_remove_restores_every_moto_attribute_after_repeated_apply():
    before = [vars(owner).get(name) for owner, name in PATCHED]
    emulator.apply()
    emulator.apply(instant_delays=True)
    patched = [vars(owner).get(name) for owner, name in PATCHED]
    assert all(p is not b for p, b in zip(patched, before, strict=True))
    assert hasattr(SageMakerResponse, "create_labeling_job")
    emulator.remove()
    assert [vars(owner).get(name) for owner, name in PATCHED] == before
    assert not hasattr(SageMakerResponse, "create_labeling_job")
    assert not emulator.is_applied()


def test_reset_forgets_handlers_between_tests(aws):
    emulator.register_lambda("Gone", lambda event, context: "handled")
    emulator.reset()
    with pytest.raises(boto3.client("lambda").exceptions.ResourceNotFoundException):
        boto3.client("lambda").invoke(FunctionName="Gone", Payload=b"{}")


# --- definitions -----------------------------------------------------------------------------


def test_substitute_definition_lists_every_missing_placeholder():
    with pytest.raises(ConfigError) as raised:
        emulator.substitute_definition(ASL.read_text(), {"Bucket": "b"})
    message = str(raised.value)
    assert "${RoleArn}" in message and "${PrepareFunction}" in message
    assert "${Bucket}" not in message


def test_definition_from_template_resolves_cdk_tokens_and_substitutions():
    definition = {
        "Fn::Join": [
            "",
            [
                '{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:',
                {"Ref": "AWS::Partition"},
                ':states:::lambda:invoke","Parameters":{"FunctionName":"',
                {"Fn::GetAtt": ["PrepareFn0A1B2C3D", "Arn"]},
                '","Payload":{"bucket":"${Bucket}","url":"s3.',
                {"Ref": "AWS::Region"},
                ".",
                {"Ref": "AWS::URLSuffix"},
                '","account":"',
                {"Ref": "AWS::AccountId"},
                '"}},"End":true}}}',
            ],
        ]
    }
    template = {
        "Resources": {
            "Bucket83908E77": {"Type": "AWS::S3::Bucket"},
            "Workflow": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "DefinitionString": definition,
                    "DefinitionSubstitutions": {"Bucket": {"Ref": "Bucket83908E77"}},
                },
            },
        }
    }
    refs = {"Bucket83908E77": "my-bucket", "PrepareFn0A1B2C3D.Arn": "arn:aws:lambda:x:1:function:P"}
    resolved = emulator.definition_from_template(
        template, refs, region="eu-west-1", account_id="111111111111"
    )
    task = json.loads(resolved)["States"]["A"]
    assert task["Resource"] == "arn:aws:states:::lambda:invoke"
    assert task["Parameters"] == {
        "FunctionName": "arn:aws:lambda:x:1:function:P",
        "Payload": {
            "bucket": "my-bucket",
            "url": "s3.eu-west-1.amazonaws.com",
            "account": "111111111111",
        },
    }


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"Ref": "Unknown"}, "'Unknown'"),  # a logical id missing from refs
        ({"Fn::GetAtt": ["Role1", "Arn"]}, "'Role1.Arn'"),  # an attribute missing from refs
        ({"Fn::Sub": "${AWS::Region}"}, "Fn::Sub"),  # an intrinsic CDK does not put in ASL
    ],
)
def test_resolve_intrinsics_raises_on_what_it_cannot_resolve(value, problem):
    with pytest.raises(ConfigError, match=problem):
        emulator.resolve_intrinsics(value, {}, region=REGION, account_id=ACCOUNT)


def test_resolve_intrinsics_looks_up_find_in_map_in_the_templates_mappings():
    mappings = {"Hosts": {"aws": {"host": "console.aws.amazon.com"}, "aws-cn": {"host": "cn"}}}
    value = {"Fn::FindInMap": ["Hosts", {"Ref": "AWS::Partition"}, "host"]}

    resolved = emulator.resolve_intrinsics(
        value, {}, region=REGION, account_id=ACCOUNT, partition="aws-cn", mappings=mappings
    )

    assert resolved == "cn"
    with pytest.raises(ConfigError, match=r"no Hosts\.aws-us-gov\.host"):
        emulator.resolve_intrinsics(
            value, {}, region=REGION, account_id=ACCOUNT, partition="aws-us-gov", mappings=mappings
        )
    with pytest.raises(ConfigError, match="Fn::FindInMap: intrinsic not supported"):
        emulator.resolve_intrinsics(value, {}, region=REGION, account_id=ACCOUNT)


def test_definition_from_template_reads_from_file_asset_with_substitutions(tmp_path):
    # What CDK's DefinitionBody.from_file synthesizes: the file is an asset in cdk.out.
    key = "49d1823a.json"
    (tmp_path / f"asset.{key}").write_text(ASL.read_text(), encoding="utf-8")
    substitutions = {name: {"Ref": f"Logical{name}"} for name in SUBSTITUTIONS}
    template = {
        "Resources": {
            "Workflow": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "DefinitionS3Location": {"Bucket": {"Fn::Sub": "cdk-assets"}, "Key": key},
                    "DefinitionSubstitutions": substitutions,
                },
            }
        }
    }
    refs = {f"Logical{name}": value for name, value in SUBSTITUTIONS.items()}
    resolved = emulator.definition_from_template(
        template, refs, region=REGION, account_id=ACCOUNT, asset_dir=tmp_path
    )
    assert resolved == emulator.substitute_definition(ASL.read_text(), SUBSTITUTIONS)


@pytest.mark.parametrize(
    ("properties", "problem"),
    [
        ({}, "has no Definition"),  # a state machine without any definition property
        ({"DefinitionS3Location": {"Key": "k.json"}}, "asset_dir"),  # asset, no cdk.out given
        ({"DefinitionString": "{not json"}, "not JSON"),  # a definition that does not parse
    ],
)
def test_definition_from_template_raises_on_unusable_definition(properties, problem):
    template = {
        "Resources": {"W": {"Type": "AWS::StepFunctions::StateMachine", "Properties": properties}}
    }
    with pytest.raises(ConfigError, match=problem):
        emulator.definition_from_template(template, {}, region=REGION, account_id=ACCOUNT)
