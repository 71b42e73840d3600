"""``load_stack_outputs`` against a real CloudFormation stack in moto, and its error messages."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from boxloop.aws.stack_outputs import (
    NO_CREDENTIALS,
    AwsSetupError,
    load_stack_outputs,
)

REGION = "eu-west-1"
TEMPLATE = {
    "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    "Outputs": {
        "BucketName": {"Value": "boxloop-data-123"},
        "StateMachineArn": {"Value": f"arn:aws:states:{REGION}:123456789012:stateMachine:Bx"},
    },
}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@mock_aws
def test_outputs_as_cloudformation_returns_them(aws_env: None) -> None:
    boto3.client("cloudformation").create_stack(
        StackName="Boxloop", TemplateBody=json.dumps(TEMPLATE)
    )
    outputs = load_stack_outputs("Boxloop")
    assert outputs.bucket == "boxloop-data-123"
    assert outputs.state_machine_arn.endswith(":stateMachine:Bx")
    assert outputs.region == REGION


@mock_aws
def test_missing_output_names_the_stack_and_the_fix(aws_env: None) -> None:
    boto3.client("cloudformation").create_stack(
        StackName="Boxloop", TemplateBody=json.dumps(TEMPLATE)
    )
    with pytest.raises(AwsSetupError, match=r"no output 'TopicArn' \(it has: BucketName, "):
        load_stack_outputs("Boxloop").get("TopicArn")


@mock_aws
def test_missing_stack(aws_env: None) -> None:
    with pytest.raises(AwsSetupError, match=r"stack 'Nope' not found in eu-west-1: deploy it"):
        load_stack_outputs("Nope")


def test_no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with pytest.raises(AwsSetupError) as info:
        load_stack_outputs("Boxloop")
    assert str(info.value) == NO_CREDENTIALS
