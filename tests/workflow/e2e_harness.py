"""Run the synthesized state machine on moto with the local runners, and read what it left.

One ``WorkflowHarness`` per test module: a moto bucket holding a small generated dataset, a
topic with an SQS queue subscribed (to see what the run published), the state machine created
from the resolved template, the seven ``lambdas/<folder>/app.py`` handlers registered under the
template's function names with the template's environment. ``run`` starts one execution with
fresh job runners: the real processing runner, the real labeling runner with a
``SimulatedWorkforce``, and the training/transform stand-ins of ``e2e_runners``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from e2e_runners import StandInTraining, StandInTransform, read_manifest
from e2e_stack import ACCOUNT, REGION, resolve_workflow

from boxloop.aws.clients import client
from boxloop.aws.s3 import iter_keys, upload_file
from boxloop.core.formats.groundtruth import METADATA_SUFFIX
from boxloop.local import emulator
from boxloop.local.engine import load_handler
from boxloop.local.runners import make_processing_runner
from boxloop.local.workforce import SimulatedWorkforce, make_labeling_runner
from boxloop.steps.run import run_id_for

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from boxloop.core.detections import Detections
    from boxloop.local.emulator import ExecutionResult, LambdaContext, SkippedDelay
    from boxloop.local.workforce import LabelingRunner

    Handler = Callable[[Any, LambdaContext], Any]

BUCKET: Final = "boxloop-e2e-data"
TOPIC: Final = "boxloop-e2e-notifications"
ATTR: Final = "boxes"  # cdk.json's labelAttributeName
_LEDGER_NAME: Final = re.compile(
    r"/ledger/iter-\d{3}-[0-2]-(ingest|merge|filter)(\.part-\d{3})?\.jsonl$"
)
#: Run overrides for a 36-image dataset (the stack's defaults are sized for thousands): a
#: small seed and batches, calibration on the few validation images by the plain mean.
SMALL_RUN: Final[dict[str, Any]] = {
    "seed_size": 8,
    "batch_size": 6,
    "validation_fraction": 0.25,
    "min_validation": 5,
    "min_accepted": 3,
    "confidence_level": None,
    "target_value": 0.7,
    "patience": 3,
    # mean IoU, and auto-labels from the first model on: a 36-image run certifies no exact
    # match, and its few rounds must show auto-labels in any of them
    "target_metric": "mean_iou",
    "defer_auto_labels": False,
    "finish_with_humans": False,
    "max_iterations": 10,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelingJob:
    """One labeling job of a run: its input manifest and (when it completed) its output."""

    name: str
    input_manifest: str
    output_manifest: str | None

    def input_ids(self) -> set[str]:
        """Record ids sent to humans."""
        return {line["id"] for line in read_manifest(self.input_manifest)}

    def output_lines(self) -> list[dict[str, Any]]:
        """The output manifest's lines (labeled, or failed with a reason)."""
        return read_manifest(self.output_manifest) if self.output_manifest else []


@dataclass(frozen=True, slots=True, kw_only=True)
class E2ERun:
    """One finished execution and everything the tests inspect about it."""

    name: str
    result: ExecutionResult
    events: list[dict[str, Any]]
    labeling_jobs: list[LabelingJob]
    training: StandInTraining
    transform: StandInTransform
    notifications: list[dict[str, Any]]
    skipped_delays: tuple[SkippedDelay, ...]

    @property
    def run_id(self) -> str:
        """``<execution name>-<hash of the execution ARN>``, as the Ingest Lambda names it."""
        return run_id_for(self.name, self.result.execution_arn)

    @property
    def root(self) -> str:
        """``s3://bucket/runs/<run id>``."""
        return f"s3://{BUCKET}/runs/{self.run_id}"

    def entered(self, state: str) -> int:
        """How many times the execution entered ``state``."""
        return self.result.visited_states.count(state)

    def ledgers(self) -> list[str]:
        """Every ledger version the run wrote, oldest first (their names sort that way)."""
        keys = sorted(iter_keys(f"{self.root}/ledger/"))
        for key in keys:
            assert _LEDGER_NAME.search(key), f"unexpected ledger name {key}"
        return [f"s3://{BUCKET}/{key}" for key in keys]

    def output_lines(self) -> dict[str, dict[str, Any]]:
        """Record id -> line of the output manifest (the run must have succeeded)."""
        return {line["id"]: line for line in read_manifest(self.result.output["output_manifest"])}

    def failure_state(self) -> dict[str, Any]:
        """The state payload the failure notification carried (it names the last ledger)."""
        failed = [n for n in self.notifications if n["Subject"] == "boxloop run failed"]
        assert len(failed) == 1, f"expected one failure notification, got {self.notifications}"
        message = failed[0]["Message"]
        assert message.startswith(f"boxloop execution {self.name} failed; the ledger is kept."), (
            message
        )
        return json.loads(message.split(" State: ", 1)[1])

    def human_labels(self) -> dict[str, dict[str, Any]]:
        """Record id -> the label fields of every image the workforce labeled in this run."""
        labels = {}
        for job in self.labeling_jobs:
            for line in job.output_lines():
                if ATTR in line:
                    labels[line["id"]] = {
                        ATTR: line[ATTR],
                        ATTR + METADATA_SUFFIX: line[ATTR + METADATA_SUFFIX],
                    }
        return labels

    def failed_objects(self) -> list[tuple[str, str]]:
        """``(job name, record id)`` of every image a labeling job returned no label for.

        Both kinds count: objects the output manifest marks failed and objects it left out.
        """
        failed = []
        for job in self.labeling_jobs:
            labeled = {line["id"] for line in job.output_lines() if ATTR in line}
            failed.extend((job.name, rid) for rid in sorted(job.input_ids() - labeled))
        return failed

    def largest_state_output(self) -> tuple[int, str]:
        """The largest ``stateExited`` output of the history in bytes, and its state's name."""
        exits = [
            e["stateExitedEventDetails"] for e in self.events if "stateExitedEventDetails" in e
        ]
        return max((len(d.get("output", "").encode()), d["name"]) for d in exits)


@dataclass(slots=True)
class ThrottleFirstCalls:
    """Wraps a handler so that its first ``times`` invocations are throttled (HTTP 429)."""

    times: int
    calls: int = field(default=0)

    def __call__(self, handler: Handler) -> Handler:
        """The wrapped handler."""

        def throttled(event: Any, context: LambdaContext) -> Any:
            self.calls += 1
            if self.calls <= self.times:
                raise emulator.LambdaThrottled("Rate Exceeded.")
            return handler(event, context)

        return throttled


class WorkflowHarness:
    """Moto, the dataset and the synthesized state machine, ready to run executions."""

    def __init__(
        self,
        template: dict[str, Any],
        images: Mapping[Path, Detections],
        work_dir: Path,
        setenv: Callable[[str, str], None],
        stand_ins: dict[tuple[str, str | None], str] | None = None,
    ) -> None:
        """Create the bucket, topic, queue and state machine; upload the images and manifest.

        Call inside ``mock_aws(config=emulator.MOTO_CONFIG)`` with the emulator applied.
        ``stand_ins``: see ``resolve_workflow``.
        """
        self.work_dir = work_dir
        client("s3").create_bucket(Bucket=BUCKET)
        topic_arn = client("sns").create_topic(Name=TOPIC)["TopicArn"]
        self.queue_url = client("sqs").create_queue(QueueName=TOPIC)["QueueUrl"]
        queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{TOPIC}"
        client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        self.reference: dict[str, Detections] = {}
        lines = []
        for path, detections in images.items():
            uri = f"s3://{BUCKET}/images/{path.name}"
            upload_file(path, uri)
            self.reference[uri] = detections
            lines.append(json.dumps({"source-ref": uri}))
        self.input_manifest = f"s3://{BUCKET}/input/input.manifest"
        client("s3").put_object(
            Bucket=BUCKET, Key="input/input.manifest", Body="\n".join(lines) + "\n"
        )
        self.workflow = resolve_workflow(
            template, bucket_name=BUCKET, topic_arn=topic_arn, stand_ins=stand_ins
        )
        for key, value in self.workflow.environment.items():
            setenv(key, value)
        self.num_classes = len(json.loads(self.workflow.environment["BOXLOOP_CONFIG"])["labels"])
        self.state_machine_arn = emulator.create_state_machine(
            self.workflow.definition, name="boxloop-e2e"
        )
        self.handlers = {
            name: load_handler(folder) for name, folder in self.workflow.functions.items()
        }
        self.processing = make_processing_runner(work_dir)

    def _register(self, wrap: Mapping[str, Callable[[Handler], Handler]]) -> None:
        unknown = set(wrap) - set(self.workflow.functions.values())
        assert not unknown, f"no Lambda serves {sorted(unknown)}"
        for name, handler in self.handlers.items():
            folder = self.workflow.functions[name]
            emulator.register_lambda(name, wrap[folder](handler) if folder in wrap else handler)

    def _notifications(self) -> list[dict[str, Any]]:
        messages = []
        while True:
            batch = (
                client("sqs")
                .receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
                .get("Messages", [])
            )
            if not batch:
                return messages
            for message in batch:
                messages.append(json.loads(message["Body"]))
                client("sqs").delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def _labeling_jobs(self, runner: LabelingRunner) -> list[LabelingJob]:
        jobs = []
        for name in runner.jobs:
            described = client("sagemaker").describe_labeling_job(LabelingJobName=name)
            output = described.get("LabelingJobOutput", {}).get("OutputDatasetS3Uri")
            jobs.append(
                LabelingJob(
                    name=name,
                    input_manifest=described["InputConfig"]["DataSource"]["S3DataSource"][
                        "ManifestS3Uri"
                    ],
                    output_manifest=output,
                )
            )
        return jobs

    def run(
        self,
        name: str,
        execution_input: dict[str, Any] | None = None,
        *,
        training: StandInTraining | None = None,
        transform: StandInTransform | None = None,
        failure_rate: float = 0.0,
        wrap: Mapping[str, Callable[[Handler], Handler]] | None = None,
    ) -> E2ERun:
        """Run one execution to its end with fresh runners.

        Args:
            name: the execution name (letters, digits, hyphens: it is also the run id).
            execution_input: default: the uploaded manifest with ``SMALL_RUN`` overrides.
            training: default: a stand-in that always succeeds.
            transform: default: a stand-in that always succeeds.
            failure_rate: share of labeling tasks the simulated workforce lets expire.
            wrap: ``lambdas/<folder>`` -> a wrapper of its handler (fault injection).
        """
        training = training or StandInTraining(num_classes=self.num_classes)
        transform = transform or StandInTransform(
            reference=self.reference, num_classes=self.num_classes
        )
        emulator.reset()  # forget the previous run's handlers, runners and skipped delays
        workforce = SimulatedWorkforce(self.reference.items(), failure_rate=failure_rate)
        labeling = make_labeling_runner(workforce, image_dir=self.work_dir / "label-images")
        self._register(wrap or {})
        emulator.register_sagemaker_runner("create_training_job", training)
        emulator.register_sagemaker_runner("create_transform_job", transform)
        emulator.register_sagemaker_runner("create_processing_job", self.processing)
        emulator.register_sagemaker_runner("create_labeling_job", labeling)
        if execution_input is None:
            execution_input = {"manifest": self.input_manifest, "overrides": SMALL_RUN}
        result = emulator.run_execution(
            self.state_machine_arn, execution_input, name=name, timeout_s=120
        )
        paginator = client("stepfunctions").get_paginator("get_execution_history")
        events = [
            event
            for page in paginator.paginate(executionArn=result.execution_arn)
            for event in page["events"]
        ]
        return E2ERun(
            name=name,
            result=result,
            events=events,
            labeling_jobs=self._labeling_jobs(labeling),
            training=training,
            transform=transform,
            notifications=self._notifications(),
            skipped_delays=emulator.skipped_delays(),
        )
