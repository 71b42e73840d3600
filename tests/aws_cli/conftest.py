"""A deployed boxloop stack on moto, for the ``boxloop aws`` commands to operate.

The stack is the synthesized one (``tests/workflow``'s harness runs its state machine with
the real Lambda handlers), and a real moto CloudFormation stack named ``Boxloop`` carries the
synthesized template's ``Outputs``, resolved to the moto resources: the commands find the
bucket and the state machine exactly as they would on AWS, through ``describe_stacks``.

No ``__init__.py`` here (as in ``tests/workflow``): the harness modules are imported by name
from ``tests/workflow``, put on ``sys.path`` below.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from e2e_harness import BUCKET, SMALL_RUN, WorkflowHarness
from e2e_runners import StandInTraining, StandInTransform
from e2e_stack import ACCOUNT, REGION, STACK_NAME, synth_template
from moto import mock_aws

from boxloop.aws import clients
from boxloop.aws.stack_outputs import LOOP_CONFIG_KEY
from boxloop.local import emulator
from boxloop.local.emulator import resolve_intrinsics
from boxloop.local.workforce import SimulatedWorkforce, make_labeling_runner

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from boxloop.core.detections import Detections

N_IMAGES = 36
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
SMALL_RUN_SETS = tuple(f"{key}={json.dumps(value)}" for key, value in SMALL_RUN.items())
"""``tests/workflow``'s run settings for a few dozen images, as ``--set`` arguments."""


def _stand_in(resource_type: str, logical_id: str, given: Mapping[str, str]) -> str:
    return given.get(resource_type, f"moto-{logical_id}")


def _output_refs(outputs: dict[str, Any], resources: dict[str, Any], given: Mapping[str, str]):
    """Ref / GetAtt values for the logical ids the outputs use (``given`` by resource type)."""
    refs: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if set(node) == {"Ref"} and not node["Ref"].startswith("AWS::"):
                kind = resources[node["Ref"]]["Type"]
                refs[node["Ref"]] = _stand_in(kind, node["Ref"], given)
            elif set(node) == {"Fn::GetAtt"}:
                logical_id, attribute = node["Fn::GetAtt"]
                refs[f"{logical_id}.{attribute}"] = f"moto-{logical_id}-{attribute}"
            else:
                for value in node.values():
                    walk(value)

    walk(outputs)
    return refs


def create_output_stack(template: dict[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """A moto CloudFormation stack ``Boxloop`` whose outputs are the template's, resolved.

    Args:
        template: the synthesized boxloop template.
        given: resource type -> the moto resource standing in for it (the data bucket, the
            state machine, the topic).

    Returns:
        The outputs, key -> value.
    """
    import boto3

    outputs = template["Outputs"]
    refs = _output_refs(outputs, template["Resources"], given)
    values = {
        key: str(
            resolve_intrinsics(
                output["Value"],
                refs,
                region=REGION,
                account_id=ACCOUNT,
                mappings=template.get("Mappings", {}),
            )
        )
        for key, output in outputs.items()
    }
    body = {
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {
            key: {"Value": value, "Description": outputs[key].get("Description", "")}
            for key, value in values.items()
        },
    }
    boto3.client("cloudformation").create_stack(StackName=STACK_NAME, TemplateBody=json.dumps(body))
    return values


@dataclass
class Deployed:
    """The moto deployment and what the tests need to drive runs on it."""

    harness: WorkflowHarness
    images_dir: Path
    outputs: dict[str, str]
    reference: dict[str, Detections] = field(default_factory=dict)

    def arm(
        self,
        *,
        wrap: Mapping[str, Callable[[Any], Any]] | None = None,
        labeling: Callable[[Any], Any] | None = None,
    ) -> None:
        """Register the handlers and job runners for the next executions (started by the CLI).

        Args:
            wrap: ``lambdas/<folder>`` -> a wrapper of its handler.
            labeling: wraps the labeling runner (called with the real one, returns the runner).
        """
        harness = self.harness
        emulator.reset()
        harness._register(wrap or {})
        runner = make_labeling_runner(
            SimulatedWorkforce(self.reference.items()), image_dir=harness.work_dir / "label-images"
        )
        emulator.register_sagemaker_runner(
            "create_training_job", StandInTraining(num_classes=harness.num_classes)
        )
        emulator.register_sagemaker_runner(
            "create_transform_job",
            StandInTransform(reference=self.reference, num_classes=harness.num_classes),
        )
        emulator.register_sagemaker_runner("create_processing_job", harness.processing)
        emulator.register_sagemaker_runner(
            "create_labeling_job", labeling(runner) if labeling else runner
        )


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """The synthesized stack on moto, its outputs in a CloudFormation stack, images on disk."""
    from boxloop.local.demo_data import generate_demo_dataset

    template = synth_template(  # Ground Truth's Label: the local labeling runner serves it
        outdir=tmp_path_factory.mktemp("cdk.out"), human_labeling="groundtruth"
    )
    data = generate_demo_dataset(
        tmp_path_factory.mktemp("dataset"), n_images=N_IMAGES, n_classes=3, seed=5
    )
    images = dict(data.items)
    images_dir = next(iter(images)).parent
    with pytest.MonkeyPatch.context() as patch:
        for key, value in CREDENTIALS.items():
            patch.setenv(key, value)
        clients.clear()
        with mock_aws(config=emulator.MOTO_CONFIG):
            emulator.apply(instant_delays=True)
            try:
                harness = WorkflowHarness(
                    template, images, tmp_path_factory.mktemp("work"), patch.setenv
                )
                # What the stack's BucketDeployment puts there: the Lambdas' BOXLOOP_CONFIG.
                clients.client("s3").put_object(
                    Bucket=BUCKET,
                    Key=LOOP_CONFIG_KEY,
                    Body=harness.workflow.environment["BOXLOOP_CONFIG"].encode(),
                )
                topic = clients.client("sns").list_topics()["Topics"][0]["TopicArn"]
                outputs = create_output_stack(
                    template,
                    {
                        "AWS::S3::Bucket": BUCKET,
                        "AWS::StepFunctions::StateMachine": harness.state_machine_arn,
                        "AWS::SNS::Topic": topic,
                    },
                )
                yield Deployed(
                    harness=harness,
                    images_dir=images_dir,
                    outputs=outputs,
                    reference=dict(harness.reference),
                )
            finally:
                emulator.remove()
                clients.clear()


@dataclass
class RecordedRequests:
    """Every AWS request the main thread makes while recording (the CLI's, not moto's engine's).

    Use as a context manager: clients created inside it (``clients`` is cleared on entry and
    exit) carry the hook.
    """

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    all_threads: bool = False
    """Also the requests of other threads (the upload's workers): only while no execution runs."""

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self.all_threads or threading.current_thread() is threading.main_thread():
            service = model.service_model.service_name
            self.calls.append((service, model.name, json.loads(json.dumps(params, default=str))))

    def __enter__(self) -> RecordedRequests:
        import boto3

        boto3._get_default_session().events.register("before-parameter-build.*.*", self)
        clients.clear()
        return self

    def __exit__(self, *exc: object) -> None:
        import boto3

        boto3._get_default_session().events.unregister("before-parameter-build.*.*", self)
        clients.clear()

    def operations(self) -> set[tuple[str, str]]:
        """``(service, operation)`` of every recorded request."""
        return {(service, operation) for service, operation, _ in self.calls}

    def problems(self) -> list[str]:
        """What the services would refuse in the recorded requests (botocore's model)."""
        from request_shapes import ServiceRequest, request_problems

        return [
            f"{operation}: {problem}"
            for service, operation, params in self.calls
            for problem in request_problems(
                ServiceRequest(state="cli", service=service, operation=operation, params=params)
            )
        ]


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``boxloop ARGV``: exit code, stdout, stderr (usable where ``capsys`` is not: fixtures)."""
    import contextlib
    import io

    from boxloop.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()
