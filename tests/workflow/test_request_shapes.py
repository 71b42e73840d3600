"""Every SageMaker and SNS request of an end-to-end run, checked against botocore's models.

moto accepts invalid requests, so the e2e runs alone would not notice a request that SageMaker
or SNS refuses on a real account. Here the synthesized state machine runs twice on moto (the
happy path, with the longest execution name Step Functions allows, so every name and URI built
from it is as long as it gets, and a run whose transform fails, for the failure notification);
each request is read back from the execution history as Step Functions rendered it and
checked by ``request_shapes``. The checker's own tests show it refuses bad requests.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import pytest
from e2e_runners import StandInTransform
from request_shapes import (
    SNS_MESSAGE_MAX_BYTES,
    ServiceRequest,
    constraint_problems,
    iter_service_requests,
    operation_model,
    request_problems,
)

if TYPE_CHECKING:
    from e2e_harness import E2ERun, WorkflowHarness

#: Step Functions' longest execution name (80 characters); the run id is derived from it.
LONG_NAME = "shapes-" + "x" * 66 + "-abcdef"
EXPECTED_OPERATIONS = {
    ("sagemaker", "CreateLabelingJob"),
    ("sagemaker", "CreateTrainingJob"),
    ("sagemaker", "CreateModel"),
    ("sagemaker", "CreateTransformJob"),
    ("sagemaker", "CreateProcessingJob"),
    ("sns", "Publish"),
}


@pytest.fixture(scope="module")
def happy_run(harness: WorkflowHarness) -> E2ERun:
    run = harness.run(LONG_NAME)
    assert run.result.status == "SUCCEEDED", f"{run.result.error}: {run.result.cause}"
    return run


@pytest.fixture(scope="module")
def failed_run(harness: WorkflowHarness) -> E2ERun:
    """A run whose first transform fails: NotifyFailure publishes the whole state."""
    transform = StandInTransform(
        reference=harness.reference,
        num_classes=harness.num_classes,
        fail_on_calls=frozenset({1}),
    )
    run = harness.run("shapes-failed-transform", transform=transform)
    assert run.result.visited_states[-2:] == ("NotifyFailure", "Failed")
    return run


@pytest.fixture(scope="module")
def requests(happy_run: E2ERun, failed_run: E2ERun) -> list[ServiceRequest]:
    return [
        *iter_service_requests(happy_run.events),
        *iter_service_requests(failed_run.events),
    ]


def _request(operation: str, **params: object) -> ServiceRequest:
    return ServiceRequest(state="Test", service="sagemaker", operation=operation, params=params)


def _training_request(**changes: object) -> ServiceRequest:
    """A valid CreateTrainingJob request, with ``changes`` applied (``None`` drops a key)."""
    params = {
        "TrainingJobName": "boxloop-1a2b3c4d-000-train",
        "AlgorithmSpecification": {"TrainingImage": "img:1", "TrainingInputMode": "Pipe"},
        "RoleArn": "arn:aws:iam::123456789012:role/boxloop-sagemaker",
        "HyperParameters": {"num_classes": "3"},
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/runs/r/iter-000/train/"},
        "ResourceConfig": {
            "InstanceCount": 1,
            "InstanceType": "ml.p3.2xlarge",
            "VolumeSizeInGB": 50,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
    }
    params.update(changes)
    return _request(
        "CreateTrainingJob", **{key: value for key, value in params.items() if value is not None}
    )


# --- the checker refuses what the services refuse --------------------------------------------


def test_request_problems_is_empty_when_the_request_is_valid() -> None:
    assert request_problems(_training_request()) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # a 70-character job name: over the model's max of 63
        ({"TrainingJobName": "j" * 70}, "TrainingJobName: 70 characters, more than the maximum 63"),
        # an underscore: the pattern matches "a" but SageMaker matches the whole name
        ({"TrainingJobName": "a_b"}, "TrainingJobName: 'a_b' does not match the pattern"),
        # a key the API does not know (ParamValidator)
        ({"HyperParameter": {}}, 'Unknown parameter in input: "HyperParameter"'),
        # a required key missing (ParamValidator)
        ({"RoleArn": None}, 'Missing required parameter in input: "RoleArn"'),
        # a number where the API takes a string, in a map (ParamValidator)
        ({"HyperParameters": {"epochs": 30}}, "Invalid type for parameter HyperParameters.epochs"),
        # a hyperparameter value over 2,500 characters
        ({"HyperParameters": {"x": "1" * 2501}}, "HyperParameters['x']: 2501 characters"),
        # an instance type SageMaker does not offer (enum)
        (
            {
                "ResourceConfig": {
                    "InstanceCount": 1,
                    "InstanceType": "ml.nope",
                    "VolumeSizeInGB": 1,
                }
            },
            "ResourceConfig.InstanceType: 'ml.nope' is not one of",
        ),
        # an S3 URI that is no URI (pattern)
        (
            {"OutputDataConfig": {"S3OutputPath": "bucket/key"}},
            "OutputDataConfig.S3OutputPath: 'bucket/key' does not match",
        ),
        # a float where the API takes an integer (ParamValidator)
        (
            {"StoppingCondition": {"MaxRuntimeInSeconds": 86400.0}},
            "Invalid type for parameter StoppingCondition.MaxRuntimeInSeconds",
        ),
    ],
)
def test_request_problems_names_the_field_when_a_training_request_is_invalid(
    changes: dict[str, object], expected: str
) -> None:
    problems = request_problems(_training_request(**changes))
    assert any(expected in problem for problem in problems), problems


def test_request_problems_checks_list_sizes_and_their_items_when_arguments_are_long() -> None:
    app = operation_model("sagemaker", "CreateProcessingJob").input_shape.members[
        "AppSpecification"
    ]
    assert app.members["ContainerArguments"].metadata["max"] == 100
    request = _request(
        "CreateProcessingJob",
        ProcessingJobName="p",
        RoleArn="arn:aws:iam::123456789012:role/r",
        ProcessingResources={
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.xlarge",
                "VolumeSizeInGB": 30,
            }
        },
        AppSpecification={"ImageUri": "img", "ContainerArguments": ["a"] * 100 + ["b" * 257]},
    )
    problems = request_problems(request)
    assert "AppSpecification.ContainerArguments: 101 items, more than the maximum 100" in problems
    assert any("ContainerArguments[100]: 257 characters" in p for p in problems), problems


def test_request_problems_applies_sns_limits_when_the_model_only_documents_them() -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:t"
    valid = ServiceRequest(
        state="Test", service="sns", operation="Publish", params={"TopicArn": topic, "Message": "m"}
    )
    long_subject = ServiceRequest(
        state="Test",
        service="sns",
        operation="Publish",
        params={"TopicArn": topic, "Subject": "s" * 100, "Message": "m"},
    )
    big = ServiceRequest(
        state="Test",
        service="sns",
        operation="Publish",
        params={"TopicArn": topic, "Subject": "a\nb", "Message": "é" * SNS_MESSAGE_MAX_BYTES},
    )
    assert request_problems(valid) == []
    assert [p.split(":")[0] for p in request_problems(long_subject)] == ["Subject"]
    assert [p.split(":")[0] for p in request_problems(big)] == ["Subject", "Message"]


def test_request_problems_matches_java_semantics_when_a_title_leaves_the_bmp() -> None:
    # GIVEN TaskTitle's pattern, which admits only BMP characters (no surrogates)
    human = operation_model("sagemaker", "CreateLabelingJob").input_shape.members["HumanTaskConfig"]
    # WHEN a title holds an emoji (two UTF-16 code units, as the service's Java regex sees it)
    problems = constraint_problems({"TaskTitle": "boxes 📦"}, human)
    # THEN it is refused, while an accented BMP title passes
    assert problems and problems[0].startswith("TaskTitle:")
    assert constraint_problems({"TaskTitle": "Boîtes"}, human) == []


# --- the state machine's requests -------------------------------------------------------------


def test_workflow_requests_cover_every_service_operation_when_the_runs_end(
    requests: list[ServiceRequest], happy_run: E2ERun
) -> None:
    # GIVEN the requests read back from both executions' histories
    seen = Counter((r.service, r.operation) for r in requests)
    # WHEN they are counted per operation and per state
    per_state = Counter(r.state for r in iter_service_requests(happy_run.events))
    # THEN every SageMaker and SNS operation the ASL uses was rendered at least once, and each
    # entry into a service Task state of the happy run left exactly one request
    assert set(seen) == EXPECTED_OPERATIONS, seen
    assert per_state == {state: happy_run.entered(state) for state in per_state}
    assert per_state["Train"] >= 2


def test_workflow_history_requests_equal_what_the_jobs_received_when_the_run_succeeds(
    happy_run: E2ERun,
) -> None:
    # GIVEN the stand-in jobs, which record each request as moto's SageMaker API received it
    rendered = list(iter_service_requests(happy_run.events))
    # WHEN the history's Parameters are compared with them
    training = [r.params for r in rendered if r.operation == "CreateTrainingJob"]
    transform = [r.params for r in rendered if r.operation == "CreateTransformJob"]
    # THEN they are the same requests: what is checked here is what the service gets
    assert training == happy_run.training.requests
    assert transform == happy_run.transform.requests


def test_workflow_renders_only_requests_the_services_accept_when_it_runs(
    requests: list[ServiceRequest],
) -> None:
    # GIVEN every SageMaker and SNS request both runs rendered
    # WHEN each is checked against the installed botocore's service model (ParamValidator,
    # then max, pattern and enum, then SNS's documented limits)
    problems = {
        f"{r.label()} #{i}": found for i, r in enumerate(requests) if (found := request_problems(r))
    }
    # THEN none of them would be refused by the real service
    assert problems == {}
