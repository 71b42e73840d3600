"""The embedded engine: run statemachine/boxloop.asl.json on moto with local runners.

The very same ASL file, Lambda handlers and processing script as on AWS; only the services
differ: moto's S3 and Step Functions engine, the SageMaker jobs served by local runners
(PyTorch detector, local workforce) through ``boxloop.local.emulator``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from boxloop.aws import clients
from boxloop.aws.asl import LAMBDA_STEPS, function_arn_key
from boxloop.aws.clients import client
from boxloop.aws.s3 import upload_file
from boxloop.core.config import LoopConfig
from boxloop.core.errors import BoxloopError
from boxloop.local import emulator
from boxloop.local.runners import (
    REPO_ROOT,
    DetectorSettings,
    ImageCache,
    make_processing_runner,
    make_training_runner,
    make_transform_runner,
)
from boxloop.steps.run import run_id_for

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "boxloop-local"
ASL_FILE = REPO_ROOT / "statemachine" / "boxloop.asl.json"
LAMBDA_STATES = {folder: function_arn_key(folder) for folder in LAMBDA_STEPS}
"""``lambdas/<folder>`` -> the placeholder of its function's ARN (the stack's, boxloop.aws.asl)."""
_FINISHED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
POLL_S = 1.0
HISTORY_POLL_S = 5.0
"""moto serializes the whole history on every call (it ignores maxResults), under the GIL the
training thread needs; progress can lag a few seconds instead."""


class LocalRunError(BoxloopError):
    """The local execution did not succeed; the message names the failed state and cause."""


@dataclass(frozen=True, slots=True)
class StepEvent:
    """One state entered or left, for progress display."""

    state: str
    kind: str  # "entered" | "exited" | "failed"
    elapsed_s: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalRun:
    """What a local execution produced (files are copied out of the emulator by the caller).

    ``root`` is the run's folder in the emulated bucket, ``s3://<bucket>/runs/<run id>``, named
    as the Ingest Lambda names it from the execution's name and ARN.
    """

    status: str
    root: str
    output: dict[str, Any] | None
    error: str | None
    cause: str | None
    visited: tuple[str, ...]


def load_handler(name: str) -> Callable[[dict[str, Any], Any], Any]:
    """The ``lambda_handler`` of ``lambdas/<name>/app.py``, loaded from its file as Lambda does."""
    path = REPO_ROOT / "lambdas" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"boxloop_lambda_{name}", path)
    if spec is None or spec.loader is None:
        raise LocalRunError(f"cannot load the Lambda handler {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def substitutions(topic_arn: str) -> dict[str, str]:
    """The ``${...}`` values for the local run (the stack computes the AWS ones)."""
    values = {
        key: f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:boxloop-{name}"
        for name, key in LAMBDA_STATES.items()
    }
    values.update(
        {
            "Partition": "aws",
            "SageMakerRoleArn": f"arn:aws:iam::{ACCOUNT}:role/boxloop-local-sagemaker",
            "BucketName": BUCKET,
            "TrainingImage": "boxloop-local/detector:latest",
            "ProcessingImage": "boxloop-local/processing:latest",
            "TrainingInstanceType": "ml.m5.large",
            "TransformInstanceType": "ml.m5.large",
            "ProcessingInstanceType": "ml.m5.large",
            "WorkteamArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/local",
            "PreHumanTaskLambdaArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:PRE-BoundingBox",
            "AnnotationConsolidationLambdaArn": (
                f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ACS-BoundingBox"
            ),
            "UiTemplateS3Uri": f"s3://{BUCKET}/config/bounding-box.liquid.html",
            "LabelCategoryConfigS3Uri": f"s3://{BUCKET}/config/label-categories.json",
            "ProcessingCodeS3Uri": f"s3://{BUCKET}/code/processing/",
            "TopicArn": topic_arn,
            "LabelAttributeName": "boxes",
            # Local runs label through the emulator's Ground Truth job (createLabelingJob.sync
            # served by the local workforce); the stack's own labeling app is an AWS host.
            "HumanLabeling": "groundtruth",
            "StartHumanLabelingFunctionArn": (
                f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:boxloop-start-human-labeling"
            ),
        }
    )
    return values


@contextmanager
def local_aws() -> Iterator[None]:
    """Enter moto with boxloop's patches, fake credentials and the local bucket, for one run."""
    from moto import mock_aws

    saved = {
        k: os.environ.get(k)
        for k in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_DEFAULT_REGION",
        )
    }
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "boxloop-local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_SESSION_TOKEN": "local",
            "AWS_DEFAULT_REGION": REGION,
        }
    )
    clients.clear()
    try:
        with mock_aws(config=emulator.MOTO_CONFIG):
            emulator.apply(instant_delays=True)
            try:
                client("s3").create_bucket(Bucket=BUCKET)
                yield
            finally:
                emulator.remove()
                clients.clear()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def register_handlers(config: LoopConfig) -> None:
    """Route the 7 Lambda states to the handlers in ``lambdas/``, with the stack's env vars."""
    os.environ["BOXLOOP_BUCKET"] = BUCKET
    os.environ["BOXLOOP_CONFIG"] = json.dumps(config.to_dict())
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "boxloop")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    for name in LAMBDA_STATES:
        emulator.register_lambda(f"boxloop-{name}", load_handler(name))


def register_runners(
    work_dir: Path,
    detector: DetectorSettings,
    labeling_runner: Any,
    class_names: tuple[str, ...],
    on_training: Callable[[str, Any], None] | None = None,
) -> None:
    """Serve the SageMaker jobs with the local detector, processing script and workforce."""
    images = ImageCache(work_dir / "images")
    emulator.register_sagemaker_runner(
        "create_training_job",
        make_training_runner(work_dir, detector, images, class_names, on_training),
    )
    emulator.register_sagemaker_runner(
        "create_transform_job", make_transform_runner(work_dir, detector, images)
    )
    emulator.register_sagemaker_runner("create_processing_job", make_processing_runner(work_dir))
    emulator.register_sagemaker_runner("create_labeling_job", labeling_runner)


def _events(history: list[dict[str, Any]], start: datetime) -> Iterator[StepEvent]:
    """Step events with seconds since the execution started (from the events' timestamps)."""
    for event in history:
        kind = event["type"]
        elapsed_s = (event["timestamp"] - start).total_seconds()
        if kind.endswith("StateEntered"):
            yield StepEvent(event["stateEnteredEventDetails"]["name"], "entered", elapsed_s)
        elif kind.endswith("StateExited"):
            details = event["stateExitedEventDetails"]
            try:
                output = json.loads(details.get("output") or "{}")
            except ValueError:
                output = {}
            yield StepEvent(
                details["name"], "exited", elapsed_s, output if isinstance(output, dict) else {}
            )


def _new_events(sfn: Any, arn: str, last_id: int) -> list[dict[str, Any]]:
    """History events after ``last_id``, oldest first (newest pages first, as AWS pages)."""
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": arn, "reverseOrder": True, "maxResults": 100}
    while True:
        page = sfn.get_execution_history(**kwargs)
        fresh = [e for e in page["events"] if e["id"] > last_id]
        events.extend(fresh)
        if len(fresh) < len(page["events"]) or not page.get("nextToken"):
            return sorted(events, key=lambda e: e["id"])
        kwargs["nextToken"] = page["nextToken"]


def run_execution(
    execution_input: dict[str, Any],
    *,
    name: str,
    on_event: Callable[[StepEvent], None] | None = None,
    timeout_s: float = 7200.0,
) -> LocalRun:
    """Create the state machine from the ASL file, run one execution, stream its events."""
    topic_arn = client("sns").create_topic(Name="boxloop-local")["TopicArn"]
    definition = emulator.substitute_definition(ASL_FILE.read_text(), substitutions(topic_arn))
    sfn = client("stepfunctions")
    machine = sfn.create_state_machine(
        name=f"boxloop-{name}",
        definition=definition,
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/boxloop-local-states",
    )["stateMachineArn"]
    arn = sfn.start_execution(
        stateMachineArn=machine, name=name, input=json.dumps(execution_input)
    )["executionArn"]
    start = time.monotonic()
    last_id = 0
    visited: list[str] = []
    fetched = 0.0
    while True:
        described = sfn.describe_execution(executionArn=arn)
        done = described["status"] in _FINISHED
        if not done and time.monotonic() - start > timeout_s:
            sfn.stop_execution(executionArn=arn, error="Timeout", cause="local run timed out")
            raise LocalRunError(f"the local execution ran past {timeout_s:.0f} s")
        if not done and time.monotonic() - fetched < HISTORY_POLL_S:
            time.sleep(POLL_S)
            continue
        fetched = time.monotonic()
        new = _new_events(sfn, arn, last_id)
        if new:
            last_id = new[-1]["id"]
        for event in _events(new, described["startDate"]):
            if event.kind == "entered":
                visited.append(event.state)
            if on_event:
                on_event(event)
        if done:
            break
        time.sleep(POLL_S)
    output = json.loads(described["output"]) if described.get("output") else None
    return LocalRun(
        status=described["status"],
        root=f"s3://{BUCKET}/runs/{run_id_for(name, arn)}",
        output=output,
        error=described.get("error"),
        cause=described.get("cause"),
        visited=tuple(visited),
    )


def upload_images(manifest_lines: list[dict[str, Any]], base: Path) -> dict[str, str]:
    """Put local images into the emulated bucket; returns s3 URI -> original source-ref.

    Keys are the paths below the images' common folder, not absolute paths: record ids hash
    the source-ref, and ids decide the validation split and every tie-break, so the same
    images must give the same run wherever they lie on disk (``boxloop demo --out X``).
    """
    paths: list[tuple[str, Path]] = []
    for line in manifest_lines:
        original = line["source-ref"]
        path = Path(original)
        if not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise LocalRunError(f"source-ref {original!r}: no such image file ({path})")
        paths.append((original, path.resolve()))
    root = Path(os.path.commonpath([path.parent for _, path in paths])) if paths else base
    mapping: dict[str, str] = {}
    for original, path in paths:
        uri = f"s3://{BUCKET}/images/{path.relative_to(root).as_posix()}"
        upload_file(path, uri)
        mapping[uri] = original
    return mapping
