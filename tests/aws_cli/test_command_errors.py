"""What the ``boxloop aws`` commands say when they cannot act, and what they refuse to start.

A small stack on moto (a bucket, a one-state state machine, a CloudFormation stack with the
outputs the commands read): fast, and enough for every error that happens before a workflow
runs. The errors must name the fix, and a refused start must leave nothing behind (no upload,
no execution).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from conftest import run_cli
from moto import mock_aws

from boxloop.aws.clients import client
from boxloop.aws.operate import upload
from boxloop.aws.operate.deployment import Deployment
from boxloop.aws.operate.start import execution_name
from boxloop.aws.operate.status import cost_so_far, job_instance_seconds
from boxloop.aws.stack_outputs import LOOP_CONFIG_KEY, StackOutputs
from boxloop.core.config import LoopConfig

if TYPE_CHECKING:
    from collections.abc import Iterator

REGION = "eu-west-1"
BUCKET = "boxloop-data-test"
PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


def _stack(outputs: dict[str, str], name: str = "Boxloop") -> None:
    body = {
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(body))


@pytest.fixture
def stack(credentials: None) -> Iterator[str]:
    """A deployed stack: bucket with config/loop.json, state machine, outputs. Its ARN."""
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        loop = LoopConfig.from_dict({"labels": ["car", "person"]}).to_dict()
        s3.put_object(Bucket=BUCKET, Key=LOOP_CONFIG_KEY, Body=json.dumps(loop).encode())
        arn = boto3.client("stepfunctions").create_state_machine(
            name="Workflow",
            definition=PASS_MACHINE,
            roleArn="arn:aws:iam::123456789012:role/sfn",
        )["stateMachineArn"]
        _stack({"BucketName": BUCKET, "StateMachineArn": arn})
        yield arn


def _executions(arn: str) -> list[dict]:
    return boto3.client("stepfunctions").list_executions(stateMachineArn=arn)["executions"]


def _keys(prefix: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def test_no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    code, out, err = run_cli("aws", "status")
    assert (code, out) == (2, "")
    assert err == "error: no AWS credentials: run aws configure / set AWS_PROFILE\n"


@mock_aws
def test_missing_stack(credentials: None):
    code, _, err = run_cli("aws", "status", "--stack", "Labels")
    assert code == 2
    assert err == (
        "error: stack 'Labels' not found in eu-west-1: deploy it (cdk deploy), or pass "
        "--stack NAME / set AWS_REGION to where it is\n"
    )


@mock_aws
def test_stack_without_the_outputs_the_commands_need(credentials: None):
    _stack({"BucketName": BUCKET})
    code, _, err = run_cli("aws", "status")
    assert code == 2
    assert "stack 'Boxloop' has no output 'StateMachineArn' (it has: BucketName)" in err
    assert "redeploy" in err


def test_unknown_execution(stack: str):
    code, _, err = run_cli("aws", "status", "street-9")
    assert code == 2
    assert err.startswith(f"error: no execution 'street-9' of {stack} ")
    code, _, err = run_cli("aws", "report", "street-9", "--out", "unused")
    assert code == 2 and "no execution 'street-9'" in err


def test_no_execution_yet(stack: str):
    code, _, err = run_cli("aws", "status")
    assert code == 2
    assert f"{stack} has no execution yet: start one with boxloop aws start" in err


@pytest.mark.parametrize(
    ("setting", "message"),
    [("batch_sise=5", "unknown setting 'batch_sise'"), ("target_value=3", "target_value")],
)
def test_bad_setting_refused_before_any_upload(
    stack: str, tmp_path: Path, setting: str, message: str
):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8 not really")
    code, _, err = run_cli("aws", "start", "--images", str(tmp_path), "--set", setting)
    assert code == 2
    assert err.startswith("error: invalid configuration:") and message in err
    assert _keys("inputs/") == []
    assert _executions(stack) == []


def test_manifest_without_a_usable_line_is_refused(stack: str):
    client("s3").put_object(Bucket=BUCKET, Key="in/bad.manifest", Body=b'{"source": 1}\nnope\n')
    code, _, err = run_cli("aws", "start", "--manifest", f"s3://{BUCKET}/in/bad.manifest")
    assert code == 2
    assert f"s3://{BUCKET}/in/bad.manifest: no usable line (" in err
    assert _executions(stack) == []


def test_bad_lines_are_listed_and_the_good_ones_run(stack: str):
    body = f'{{"source-ref": "s3://{BUCKET}/i/1.jpg"}}\n{{"sauce-ref": "x"}}\n'
    client("s3").put_object(Bucket=BUCKET, Key="in/m.manifest", Body=body.encode())
    code, out, err = run_cli(
        "aws",
        "start",
        "--manifest",
        f"s3://{BUCKET}/in/m.manifest",
        "--name",
        "m-1",
        "--set",
        "batch_size=7",
    )
    assert code == 0, err
    assert "2 lines, 1 good (0 labeled), 1 bad" in out
    assert f"s3://{BUCKET}/in/m.manifest:2: " in out
    (started,) = _executions(stack)
    assert started["name"] == "m-1"
    described = boto3.client("stepfunctions").describe_execution(
        executionArn=started["executionArn"]
    )
    assert json.loads(described["input"]) == {
        "manifest": f"s3://{BUCKET}/in/m.manifest",
        "overrides": {"batch_size": 7},
    }


def test_bad_execution_name(stack: str):
    code, _, err = run_cli("aws", "start", "--manifest", f"s3://{BUCKET}/x", "--name", "a b")
    assert code == 2
    assert "--name 'a b': an execution name is 1-80 letters, digits, hyphens and underscores" in err


def test_stack_deployed_before_config_loop_json(stack: str):
    client("s3").delete_object(Bucket=BUCKET, Key=LOOP_CONFIG_KEY)
    code, _, err = run_cli("aws", "start", "--manifest", f"s3://{BUCKET}/x")
    assert code == 2
    assert f"s3://{BUCKET}/{LOOP_CONFIG_KEY} is missing" in err and "cdk deploy" in err


def test_local_export_of_a_missing_folder(tmp_path: Path):
    code, _, err = run_cli("export", str(tmp_path / "nope"), "--format", "coco", "--out", "x")
    assert code == 2
    assert "no such file (give a local run's output folder or its output.manifest)" in err


def test_console_url_follows_the_partition_and_region():
    china = Deployment(
        StackOutputs(
            "Boxloop",
            {"StateMachineArn": "arn:aws-cn:states:cn-north-1:123456789012:stateMachine:W"},
        )
    )
    arn = china.execution_arn("run-1")
    assert arn == "arn:aws-cn:states:cn-north-1:123456789012:execution:W:run-1"
    assert china.console_url(arn) == (
        "https://cn-north-1.console.amazonaws.cn/states/home?region=cn-north-1"
        f"#/v2/executions/details/{arn}"
    )


def test_execution_name_fits_step_functions():
    name = execution_name("my photos.2026/" + "x" * 100)
    assert len(name) == 80
    assert name.startswith("my-photos-2026-xxx")


def test_compute_cost_from_the_jobs_descriptions():
    training = {
        "TrainingStartTime": "2026-12-07T01:00:00+00:00",
        "TrainingEndTime": "2026-12-07T01:30:00+00:00",
        "ResourceConfig": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 2},
    }
    assert job_instance_seconds(training, "createTrainingJob") == ("ml.p3.2xlarge", 3600.0)
    config = LoopConfig.from_dict({"labels": ["car"]})
    notes: list[str] = []
    cost = cost_so_far(
        {"human": 10, "auto": 0}, config, {"ml.p3.2xlarge": 3600.0, "ml.x9.huge": 5.0}, notes
    )
    assert cost.compute_usd == Decimal("3.825")
    assert cost.labeling_usd == Decimal(str(config.price_per_human_label_usd)) * 10
    assert notes == ["no price for ml.x9.huge: its compute is not in the cost"]


@mock_aws
def test_upload_skips_multipart_objects_by_their_recorded_md5(credentials: None, tmp_path):
    # GIVEN objects whose ETag is no MD5 (multipart, as SSE-KMS ones are too)
    boto3.client("s3").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / name).write_bytes(name.encode() * 100)
    plan = upload.plan_upload(tmp_path, bucket=BUCKET)
    from boto3.s3.transfer import TransferConfig

    for path, key in plan.files:
        boto3.client("s3").upload_file(
            str(path),
            BUCKET,
            key,
            ExtraArgs={"Metadata": {upload.MD5_METADATA: upload.file_md5(path)}},
            Config=TransferConfig(multipart_threshold=1, multipart_chunksize=5 * 1024 * 1024),
        )
    etag = boto3.client("s3").head_object(Bucket=BUCKET, Key=plan.files[0][1])["ETag"]
    assert "-" in etag
    # WHEN one file changes (same size) and the folder is uploaded again
    (tmp_path / "b.png").write_bytes(b"B.PNG" * 100)
    summary = upload.upload_images(plan)
    # THEN only the changed file is sent
    assert (summary.uploaded, summary.skipped) == (1, 2)
    key = plan.files[1][1]
    assert boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"B.PNG" * 100
    manifest = boto3.client("s3").get_object(Bucket=BUCKET, Key=plan.prefix + "input.manifest")
    assert [json.loads(line)["source-ref"] for line in manifest["Body"].read().splitlines()] == [
        f"s3://{BUCKET}/{k}" for _, k in plan.files
    ]


def test_upload_name_is_stable_per_folder_and_tells_folders_apart(tmp_path: Path):
    (tmp_path / "a" / "photos").mkdir(parents=True)
    (tmp_path / "b" / "photos").mkdir(parents=True)
    first = upload.upload_name(tmp_path / "a" / "photos")
    assert first == upload.upload_name(tmp_path / "a" / ".." / "a" / "photos")
    assert first.startswith("photos-") and len(first) == len("photos-") + 8
    assert first != upload.upload_name(tmp_path / "b" / "photos")


def test_aws_refusals_are_one_line_errors(stack: str):
    code, out, err = run_cli("aws", "start", "--manifest", f"s3://{BUCKET}/in/missing.manifest")
    assert (code, out) == (2, "")
    assert err.startswith("error: An error occurred (NoSuchKey) when calling the GetObject")
    assert _executions(stack) == []
