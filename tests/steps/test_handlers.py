"""Each Lambda handler called as Step Functions calls it, on moto's S3.

The events are shaped like the ASL's ``Parameters`` for the state; every handler must return
URIs and counts only, far below the 256 KiB payload limit whatever the dataset size.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from boxloop.aws import clients
from boxloop.core.errors import TransientServiceError
from boxloop.core.ledger import sort_by_id
from boxloop.core.manifests import record_id
from boxloop.core.records import record_from_json
from boxloop.steps.postprocess import PREDICTIONS_FILE
from boxloop.steps.run import (
    BUCKET_ENV,
    CONFIG_ENV,
    RunState,
    default_config,
    run_id_for,
    write_records,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
BUCKET = "boxloop-test"
IMAGES = "s3://imgs"
ROOT = f"s3://{BUCKET}/runs/exec-1"
EXECUTIONS = "arn:aws:states:us-east-1:123456789012:execution:boxloop"
MAX_PAYLOAD_BYTES = 4096
ONE = [(0, 10, 10, 20, 20)]


def _handler(name: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    path = REPO_ROOT / "lambdas" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"boxloop_test_lambda_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def _assert_small(payload: dict[str, Any]) -> None:
    """The payload is small and names run files only: no image, no manifest line."""
    text = json.dumps(payload)
    assert len(text.encode()) < MAX_PAYLOAD_BYTES
    assert IMAGES not in text
    for uri in re.findall(r's3://[^"]*', text):
        assert uri.startswith(f"s3://{BUCKET}/"), uri


def _ref(name: str) -> str:
    return f"{IMAGES}/{name}.jpg"


@pytest.fixture
def s3(monkeypatch, make_config) -> Iterator[Any]:
    """S3 on moto, with the run bucket, fake credentials and the stack's environment."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "boxloop-test",
        BUCKET_ENV: BUCKET,
        CONFIG_ENV: json.dumps(make_config(min_validation=2).to_dict()),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    clients.clear()  # a cached client made outside this mock would escape it
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client
    clients.clear()


def _put(s3, key: str, lines: list[dict[str, Any]]) -> str:
    s3.put_object(Bucket=BUCKET, Key=key, Body="".join(json.dumps(x) + "\n" for x in lines))
    return f"s3://{BUCKET}/{key}"


def _get_lines(s3, uri: str) -> list[dict[str, Any]]:
    key = uri.removeprefix(f"s3://{BUCKET}/")
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    return [json.loads(x) for x in body.splitlines() if x.strip()]


@pytest.fixture
def s3_run(s3, make_config, ledger_line, gt_fields) -> Callable[..., dict[str, Any]]:
    """A run on S3 (config + ledger) as ingest would leave it; returns the ``run`` block."""

    def build(**state: Any) -> dict[str, Any]:
        config = make_config(min_validation=2)
        lines = [
            ledger_line(_ref("val-0"), label=gt_fields(boxes=ONE), role="validation"),
            ledger_line(_ref("val-1"), label=gt_fields(boxes=ONE), role="validation"),
            ledger_line(_ref("seed-0"), label=gt_fields(boxes=ONE), role="seed", iteration=0),
            *(ledger_line(_ref(f"pool-{i}")) for i in range(3)),
        ]
        run = RunState(run_id="exec-1", root=ROOT, ledger=f"{ROOT}/ledger/given.jsonl", **state)
        s3.put_object(
            Bucket=BUCKET,
            Key="runs/exec-1/config.json",
            Body=json.dumps(config.to_dict()),
        )
        records = (record_from_json(x, "boxes") for x in lines)
        write_records(run.ledger, sort_by_id(records, "boxes"), "boxes")
        return run.to_json()

    return build


def test_ingest_handler_writes_the_ledger_and_returns_the_run(s3):
    # GIVEN an input manifest in S3 and the execution input Step Functions passes
    manifest = _put(s3, "in/input.manifest", [{"source-ref": _ref(f"i{i}")} for i in range(5)])
    event = {
        "execution": "exec-1",
        "execution_arn": f"{EXECUTIONS}:exec-1",
        "input": {"manifest": manifest, "overrides": {"seed": 3}},
    }
    # WHEN the Ingest Lambda runs
    run = _handler("ingest")(event, None)
    # THEN the ledger and config are in the run folder, named after the execution and the hash
    # of its ARN, and the payload holds URIs and counts
    run_id = run_id_for("exec-1", f"{EXECUTIONS}:exec-1")
    assert run["run_id"] == run_id
    assert re.fullmatch(r"exec-1-[0-9a-f]{8}", run_id)
    assert run["ledger"] == f"s3://{BUCKET}/runs/{run_id}/ledger/iter-000-0-ingest.jsonl"
    assert len(_get_lines(s3, run["ledger"])) == 5
    config = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"runs/{run_id}/config.json")["Body"].read()
    )
    assert config["seed"] == 3
    assert run["counts"]["total"] == 5
    assert run["counts"]["rejected"] == 0
    _assert_small(run)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # names that are one folder-safe name, in one state machine
        (("run_1", "boxloop"), ("run.1", "boxloop")),
        (("run_1", "boxloop"), ("run-1", "boxloop")),
        # one name in two stacks sharing the bucket and the jobPrefix
        (("run-1", "boxloop"), ("run-1", "boxloop-staging")),
    ],
)
def test_ingest_handler_keeps_runs_apart_when_execution_names_collide(s3, first, second):
    # GIVEN two executions whose names map to one folder-safe name, or one name in two stacks
    manifest = _put(s3, "in/input.manifest", [{"source-ref": _ref(f"i{i}")} for i in range(5)])
    runs = []
    for name, machine in (first, second):
        arn = f"arn:aws:states:us-east-1:123456789012:execution:{machine}:{name}"
        event = {"execution": name, "execution_arn": arn, "input": {"manifest": manifest}}
        # WHEN the Ingest Lambda runs for each
        runs.append(RunState.from_json(_handler("ingest")(event, None)))
    # THEN each has its own run id, folder, ledger and job names
    one, two = runs
    assert one.run_id != two.run_id
    assert one.root != two.root
    assert one.ledger != two.ledger
    assert len(_get_lines(s3, one.ledger)) == len(_get_lines(s3, two.ledger)) == 5
    config = default_config()
    assert one.job_name(config, "train") != two.job_name(config, "train")
    # AND the folder still starts with the execution's (folder-safe) name, to be found by it
    assert one.run_id.startswith("run-1-")
    assert two.run_id.startswith("run-1-")


def test_ingest_handler_raises_transient_service_error_when_s3_cannot_be_reached(s3, monkeypatch):
    # GIVEN S3 that cannot be reached (a closed local port), with botocore's retries spent
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    clients.clear()
    event = {"execution": "exec-1", "input": {"manifest": f"s3://{BUCKET}/in/input.manifest"}}
    # WHEN the Ingest Lambda runs
    with pytest.raises(TransientServiceError, match="EndpointConnectionError") as raised:
        _handler("ingest")(event, None)
    # THEN it fails with the one error name the ASL retries, the botocore error chained
    assert type(raised.value).__name__ == "TransientServiceError"
    assert raised.value.__cause__ is not None


def test_ingest_handler_keeps_the_error_name_when_the_manifest_is_missing(s3):
    # GIVEN an execution input naming a manifest that does not exist (not transient)
    event = {"execution": "exec-1", "input": {"manifest": f"s3://{BUCKET}/in/none.manifest"}}
    # WHEN the Ingest Lambda runs
    # THEN botocore's own error leaves the handler unchanged: the ASL does not retry it
    with pytest.raises(ClientError) as raised:
        _handler("ingest")(event, None)
    assert type(raised.value).__name__ == "NoSuchKey"


@dataclass(frozen=True)
class _Context:
    """The part of Lambda's context the Ingest handler reads: its remaining time."""

    remaining_ms: int

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_ingest_handler_checks_the_images_ingest_left_when_given_the_run(s3, jpeg_bytes):
    # GIVEN images in S3 and an Ingest invocation that had no time to spare
    refs = [f"s3://{BUCKET}/img/{i}.jpg" for i in range(4)]
    for ref in refs:
        s3.put_object(Bucket=BUCKET, Key=ref.split(f"{BUCKET}/", 1)[1], Body=jpeg_bytes())
    manifest = _put(s3, "in/input.manifest", [{"source-ref": ref} for ref in refs])
    event = {"execution": "exec-1", "input": {"manifest": manifest}}
    first = _handler("ingest")(event, _Context(remaining_ms=0))
    assert (first["counts"]["images_checked"], first["counts"]["images_unchecked"]) == (1, 3)
    # WHEN the CheckImages state calls the same Lambda with the run block
    run = _handler("ingest")({"run": first}, _Context(remaining_ms=900_000))
    # THEN it wrote the next ledger part, every image checked, and returns URIs and counts
    assert run["ledger"] == first["ledger"].replace(".jsonl", ".part-002.jsonl")
    lines = _get_lines(s3, run["ledger"])
    assert {line["boxloop"]["image_check"] for line in lines} == {"ok"}
    assert (run["counts"]["images_checked"], run["counts"]["images_unchecked"]) == (4, 0)
    assert run["run_id"] == first["run_id"]
    _assert_small(run)


def test_prepare_labeling_handler_returns_the_labeling_block(s3, s3_run):
    # GIVEN the run block after Ingest
    event = {"run": s3_run()}
    # WHEN the PrepareLabeling Lambda runs
    labeling = _handler("prepare_labeling")(event, None)
    # THEN it names the input manifest, label config and output path the Label state needs
    assert labeling["count"] == 3  # the seed of 4 lacks 3: every open pool image
    assert len(_get_lines(s3, labeling["input_manifest"])) == 3
    assert labeling["label_category_config"].startswith(f"{ROOT}/iter-000/labeling/")
    assert labeling["output_config"]["S3OutputPath"].startswith(f"{ROOT}/")
    _assert_small(labeling)


def test_merge_human_labels_handler_merges_the_job_output(s3, s3_run, gt_fields):
    # GIVEN a finished labeling job over two pool images, one of which failed
    run = s3_run()
    inputs = [
        {"source-ref": _ref(f"pool-{i}"), "id": record_id(_ref(f"pool-{i}")), "boxloop": {}}
        for i in range(2)
    ]
    failed = {"boxes-metadata": {"failure-reason": "expired", "human-annotated": "yes"}}
    labeling = {
        "count": 2,
        "input_manifest": _put(s3, "runs/exec-1/iter-000/labeling/input.manifest", inputs),
        "result": {
            "status": "Completed",
            "output_manifest": _put(
                s3,
                "runs/exec-1/iter-000/labeling/output/job/manifests/output/output.manifest",
                [{**inputs[0], **gt_fields(boxes=ONE)}, {**inputs[1], **failed}],
            ),
        },
    }
    # WHEN the MergeHumanLabels Lambda runs with the state's run and labeling blocks
    merged = _handler("merge_human_labels")({"run": run, "labeling": labeling}, None)
    # THEN the new ledger holds the label and the failure, and the payload is the run block
    assert merged["ledger"] == f"{ROOT}/ledger/iter-000-1-merge.jsonl"
    lines = {x["source-ref"]: x for x in _get_lines(s3, merged["ledger"])}
    assert lines[_ref("pool-0")]["boxes-metadata"]["human-annotated"] == "yes"
    assert lines[_ref("pool-1")]["boxloop"]["attempts"] == 1
    assert merged["counts"]["human"] == 4
    assert merged["counts"]["merged"] == 2
    _assert_small(merged)


def test_prepare_training_handler_returns_the_training_block(s3, s3_run):
    # GIVEN the run block of iteration 1, whose previous model is in S3
    event = {"run": s3_run(iteration=1, model={"artifacts": f"s3://{BUCKET}/m/model.tar.gz"})}
    # WHEN the PrepareTraining Lambda runs
    training = _handler("prepare_training")(event, None)
    # THEN it returns what the Train state needs, the manifests being in S3
    assert training["hyperparameters"]["num_training_samples"] == "1"
    assert [c["ChannelName"] for c in training["channels"]] == ["train", "validation", "model"]
    train_uri = training["channels"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    assert [x["source-ref"] for x in _get_lines(s3, train_uri)] == [_ref("seed-0")]
    _assert_small(training)


def test_prepare_inference_handler_returns_the_inference_block(s3, s3_run):
    # GIVEN the run and training blocks after CreateModel
    training = {
        "job_name": "bl-abcd-001-train",
        "result": {
            "model_artifacts": f"s3://{BUCKET}/m/model.tar.gz",
            "metrics": [{"MetricName": "validation:mAP", "Value": 0.3}],
        },
    }
    # WHEN the PrepareInference Lambda runs
    inference = _handler("prepare_inference")({"run": s3_run(), "training": training}, None)
    # THEN the ManifestFile is in S3 and the block names it, with the gate's verdict
    assert inference["count"] == 5  # 3 unlabeled pool + 2 human-labeled validation images
    key = inference["manifest_file"].removeprefix(f"s3://{BUCKET}/")
    document = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert document[0] == {"prefix": f"{IMAGES}/"}
    assert len(document) == 6
    assert inference["gate"]["value"] == 0.3
    _assert_small(inference)


def test_filter_low_confidence_handler_returns_the_run_and_decision(s3, s3_run):
    # GIVEN post-processed predictions for the pool images in S3
    run = s3_run()
    predictions = [
        {
            "id": record_id(_ref(f"pool-{i}")),
            "image_wh": [640, 480],
            "confidence": 0.4,
            "is_empty": True,
            "n_ambiguous": 1,
            "kept": [],
        }
        for i in range(3)
    ]
    output_path = f"{ROOT}/iter-000/postprocess/"
    _put(
        s3,
        f"runs/exec-1/iter-000/postprocess/{PREDICTIONS_FILE}",
        sorted(predictions, key=lambda p: p["id"]),
    )
    inference = {
        "count": 3,
        "gate": {"passed": True},
        "model_name": "bl-abcd-000-train",
        "model_artifacts": f"s3://{BUCKET}/m/model.tar.gz",
        "postprocess": {"output_path": output_path},
    }
    # WHEN the FilterLowConfidence Lambda runs
    after = _handler("filter_low_confidence")({"run": run, "inference": inference}, None)
    # THEN the run block moves to the next iteration with a decision for the Choice state
    assert after["iteration"] == 1
    assert after["decision"] == "continue"
    assert after["ledger"] == f"{ROOT}/ledger/iter-000-2-filter.jsonl"
    report = s3.get_object(Bucket=BUCKET, Key="runs/exec-1/iter-000/report/report.json")
    assert json.loads(report["Body"].read())["confidence_histogram"][8] == 3
    _assert_small(after)


def test_finalize_handler_returns_the_result(s3, s3_run):
    # GIVEN the run block when the Continue state chose Finalize
    # WHEN the Finalize Lambda runs
    result = _handler("finalize")({"run": s3_run(iteration=3)}, None)
    # THEN the output manifest is in S3 and the result (the SNS message) is small
    assert result["output_manifest"] == f"{ROOT}/output/output.manifest"
    assert len(_get_lines(s3, result["output_manifest"])) == 6
    assert result["counts"]["human"] == 3
    _assert_small(result)
