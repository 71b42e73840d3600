"""Stand-ins for the built-in Object Detection algorithm's training and batch transform jobs.

The real detector is exercised by ``tests/local/test_local_run.py``; here the jobs must be fast
and their outcome controlled, so that the loop's own logic (selection, calibration, merging,
failure handling) is what the e2e tests observe. Both stand-ins honour the jobs' contracts as the
state machine relies on them: training reads its channels and writes a real ``model.tar.gz``
at ``<S3OutputPath>/<job>/output/model.tar.gz`` with a ``validation:mAP`` metric; transform
writes ``<S3OutputPath>/<key>.out`` for every key of the ManifestFile in the algorithm's format.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from boxloop.aws.clients import client
from boxloop.aws.s3 import S3Uri, iter_lines, read_text, write_text
from boxloop.core.boxes import Box
from boxloop.core.formats.od_prediction import detections_to_od_prediction
from boxloop.local.emulator import JobResult, SageMakerApiError
from boxloop.local.runners import MODEL_TAR, iter_manifest_file

if TYPE_CHECKING:
    from collections.abc import Mapping

    from boxloop.core.detections import Detections

MODEL_MEMBER: Final = "stand-in-model.json"
CONFIDENT_SCORE: Final = 0.95  # every box kept: image confidence 0.95 (1.0 when empty)
UNSURE_SCORE: Final = 0.6  # kept, but wrong: image confidence 0.6, auto-label scores 0
VALIDATION_MAP: Final = 0.5
_ITERATION_IN_JOB: Final = re.compile(r"-(\d{3})-train-\d+$")  # <run>-<iter>-train-<attempt>


def _lines(uri: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in iter_lines(uri) if line.strip()]


def _exists(uri: str) -> bool:
    parsed = S3Uri.parse(uri)
    found = client("s3").list_objects_v2(Bucket=parsed.bucket, Prefix=parsed.key, MaxKeys=1)
    return any(item["Key"] == parsed.key for item in found.get("Contents", []))


def training_request_problems(request: dict[str, Any], *, num_classes: int) -> list[str]:
    """What is wrong with a CreateTrainingJob request, as the built-in algorithm would see it.

    Checked: ``num_classes``; ``num_training_samples`` equals the train manifest's lines (the
    algorithm fails otherwise); train and validation share no image; train holds human labels
    only; the ``model`` channel (warm start) is absent in iteration 0 and names an existing
    artifact from iteration 1 on.
    """
    job = request["TrainingJobName"]
    hyper = request["HyperParameters"]
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in request["InputDataConfig"]
    }
    train = _lines(channels["train"]["S3Uri"])
    validation = _lines(channels["validation"]["S3Uri"])
    attr = channels["train"]["AttributeNames"][1]
    problems = []
    if hyper["num_classes"] != str(num_classes):
        problems.append(f"num_classes {hyper['num_classes']} != {num_classes}")
    if hyper["num_training_samples"] != str(len(train)):
        problems.append(f"num_training_samples {hyper['num_training_samples']} != {len(train)}")
    shared = {line["source-ref"] for line in train} & {line["source-ref"] for line in validation}
    if shared:
        problems.append(f"{len(shared)} images in both train and validation")
    if any(line[f"{attr}-metadata"]["human-annotated"] != "yes" for line in train):
        problems.append("machine labels in the train channel")
    found = _ITERATION_IN_JOB.search(job)
    iteration = int(found.group(1)) if found else -1
    model = channels.get("model")
    if iteration == 0 and model is not None:
        problems.append("a model channel in iteration 0")
    if iteration >= 1 and (model is None or not _exists(model["S3Uri"])):
        problems.append(f"iteration {iteration} has no model channel with an existing artifact")
    return [f"{job}: {problem}" for problem in problems]


class TrainingRequestError(Exception):
    """The training request broke the algorithm's contract (the job then fails)."""


@dataclass(slots=True, kw_only=True)
class StandInTraining:
    """CreateTrainingJob: checks the request, writes a real model.tar.gz, reports mAP.

    Attributes:
        num_classes: what ``num_classes`` must be.
        fail_on_calls: 1-based call numbers that end ``Failed`` (an algorithm error).
        api_errors: 1-based call number -> the API error that answers that CreateTrainingJob.
        requests: every request received, in order.
        problems: contract violations found (each also fails its job).
    """

    num_classes: int
    fail_on_calls: frozenset[int] = frozenset()
    api_errors: Mapping[int, SageMakerApiError] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __call__(self, request: dict[str, Any]) -> JobResult:
        """Run one training job."""
        self.requests.append(request)
        job = request["TrainingJobName"]
        if len(self.requests) in self.api_errors:
            raise self.api_errors[len(self.requests)]
        if len(self.requests) in self.fail_on_calls:
            return JobResult(
                status="Failed", failure_reason=f"AlgorithmError: injected failure of {job}"
            )
        problems = training_request_problems(request, num_classes=self.num_classes)
        if problems:
            self.problems.extend(problems)
            raise TrainingRequestError("; ".join(problems))
        train = request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
        artifact = S3Uri.parse(request["OutputDataConfig"]["S3OutputPath"]).join(
            job, "output", MODEL_TAR
        )
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            payload = json.dumps({"job": job, "train": train}).encode()
            member = tarfile.TarInfo(MODEL_MEMBER)
            member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload))
        client("s3").put_object(Bucket=artifact.bucket, Key=artifact.key, Body=buffer.getvalue())
        return JobResult(
            status="Completed",
            outputs={"ModelArtifacts": {"S3ModelArtifacts": str(artifact)}},
            metrics={"validation:mAP": VALIDATION_MAP},
        )


def is_unsure(key: str) -> bool:
    """Whether the stand-in model is unsure (and wrong) on an image: half of all keys."""
    return hashlib.blake2b(key.encode(), digest_size=1).digest()[0] % 2 == 0


def stand_in_prediction(reference: Detections, key: str, num_classes: int) -> dict[str, Any]:
    """The ``.out`` document: right and confident, or (``is_unsure``) wrong and unsure.

    A confident prediction is the reference at score 0.95. An unsure one shifts every class
    id by one (an auto-label scoring mean IoU 0) at score 0.6, or, on an empty image, claims
    one box: calibration must refuse it and selection send the image to humans.
    """
    if not is_unsure(key):
        boxes = [box.with_score(CONFIDENT_SCORE) for box in reference.boxes]
    elif reference.boxes:
        boxes = [
            Box.from_xyxy(box.xyxy, (box.class_id + 1) % num_classes, UNSURE_SCORE)
            for box in reference.boxes
        ]
    else:
        width, height = reference.image_wh
        boxes = [Box.from_xyxy((0.1 * width, 0.1 * height, 0.4 * width, 0.4 * height), 0, 0.6)]
    return detections_to_od_prediction(reference.with_boxes(boxes))


@dataclass(slots=True, kw_only=True)
class StandInTransform:
    """CreateTransformJob: one ``.out`` per ManifestFile key, derived from reference boxes.

    Attributes:
        reference: image URI -> its true boxes.
        num_classes: classes of the run.
        fail_on_calls: 1-based call numbers that end ``Failed``.
        requests: every request received.
        models: the training job each transform's model came from (read from its artifact).
    """

    reference: Mapping[str, Detections]
    num_classes: int
    fail_on_calls: frozenset[int] = frozenset()
    requests: list[dict[str, Any]] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    def __call__(self, request: dict[str, Any]) -> JobResult:
        """Run one transform job."""
        self.requests.append(request)
        if len(self.requests) in self.fail_on_calls:
            return JobResult(
                status="Failed",
                failure_reason=f"ClientError: injected failure of {request['TransformJobName']}",
            )
        model = client("sagemaker").describe_model(ModelName=request["ModelName"])
        artifact = S3Uri.parse(model["PrimaryContainer"]["ModelDataUrl"])
        body = client("s3").get_object(Bucket=artifact.bucket, Key=artifact.key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            member = tar.extractfile(MODEL_MEMBER)
            assert member is not None, f"{artifact} holds no {MODEL_MEMBER}"
            self.models.append(json.loads(member.read())["job"])
        source = request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        output = S3Uri.parse(request["TransformOutput"]["S3OutputPath"])
        for uri, key in iter_manifest_file(source):
            document = stand_in_prediction(self.reference[uri], key, self.num_classes)
            write_text(str(output.join(key + ".out")), json.dumps(document))
        return JobResult(status="Completed")


def read_manifest(uri: str) -> list[dict[str, Any]]:
    """The objects of a JSON Lines manifest in S3."""
    return _lines(uri)


def read_json(uri: str) -> Any:
    """A JSON document in S3."""
    return json.loads(read_text(uri))
