"""The local Ground Truth bounding-box job, against moto's S3 (and once through the emulator)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from boxloop.core.boxes import Box
from boxloop.core.config import LoopConfig
from boxloop.core.detections import Detections
from boxloop.core.formats.groundtruth import record_to_label
from boxloop.core.labels import LabelConfig
from boxloop.core.manifests import record_id
from boxloop.local import emulator
from boxloop.local.workforce import (
    STATS_FILE,
    AnnotatorNoise,
    LabelTask,
    SimulatedWorkforce,
    TaskResult,
    make_labeling_runner,
)
from boxloop.steps.merge_human_labels import BoxRepairs, _iter_updates

REGION = "us-east-1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
BUCKET = "boxloop-test"
CLASSES = ("cat", "dog", "bird")
ATTR = "boxes"
OUTPUT_PATH = f"s3://{BUCKET}/run/iter-1/labeling/output"
CATEGORIES = f"s3://{BUCKET}/run/iter-1/labeling/label-categories.json"
INPUT = f"s3://{BUCKET}/run/iter-1/labeling/input.manifest"


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """Fake credentials and moto's S3 with the run's bucket and label categories.

    One moto for the module keeps it fast; each test writes the input manifest it needs, and
    image keys are either the same image everywhere or used by one test only.
    """
    with pytest.MonkeyPatch.context() as env:
        for key, value in CREDENTIALS.items():
            env.setenv(key, value)
        with mock_aws():
            client = boto3.client("s3")
            client.create_bucket(Bucket=BUCKET)
            client.put_object(
                Bucket=BUCKET,
                Key=CATEGORIES.split("/", 3)[3],
                Body=json.dumps(LabelConfig(CLASSES).to_label_category_config()),
            )
            yield client


def image_bytes(image_wh: tuple[int, int], fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", image_wh, (90, 120, 30)).save(out, format=fmt)
    return out.getvalue()


def put_image(s3: Any, key: str, image_wh: tuple[int, int]) -> str:
    s3.put_object(Bucket=BUCKET, Key=key, Body=image_bytes(image_wh, "JPEG"))
    return f"s3://{BUCKET}/{key}"


def put_manifest(s3: Any, lines: Sequence[dict[str, Any] | str]) -> None:
    body = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    s3.put_object(Bucket=BUCKET, Key=INPUT.split("/", 3)[3], Body=body.encode())


def input_line(source_ref: str, **extra: Any) -> dict[str, Any]:
    """A line as prepare-labeling writes it: source-ref, id and provenance."""
    return {
        "source-ref": source_ref,
        "id": record_id(source_ref),
        "boxloop": {"role": "pool"},
        **extra,
    }


def request(
    name: str = "run-1-label", *, workers: int = 1, max_concurrent: int | None = None
) -> dict[str, Any]:
    """CreateLabelingJob as the ASL's Label state sends it."""
    human: dict[str, Any] = {
        "WorkteamArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/team",
        "UiConfig": {"UiTemplateS3Uri": f"s3://{BUCKET}/ui.liquid.html"},
        "PreHumanTaskLambdaArn": "arn:aws:lambda:us-east-1:432418664414:function:PRE-BoundingBox",
        "AnnotationConsolidationConfig": {
            "AnnotationConsolidationLambdaArn": (
                "arn:aws:lambda:us-east-1:432418664414:function:ACS-BoundingBox"
            )
        },
        "TaskTitle": "Draw a box around each object",
        "TaskDescription": "Draw a tight box around every visible object.",
        "NumberOfHumanWorkersPerDataObject": workers,
        "TaskTimeLimitInSeconds": 300,
        "TaskAvailabilityLifetimeInSeconds": 864000,
    }
    if max_concurrent is not None:
        human["MaxConcurrentTaskCount"] = max_concurrent
    return {
        "LabelingJobName": name,
        "LabelAttributeName": ATTR,
        "RoleArn": "arn:aws:iam::123456789012:role/sagemaker",
        "LabelCategoryConfigS3Uri": CATEGORIES,
        "InputConfig": {
            "DataSource": {"S3DataSource": {"ManifestS3Uri": INPUT}},
            "DataAttributes": {"ContentClassifiers": ["FreeOfPersonallyIdentifiableInformation"]},
        },
        "OutputConfig": {"S3OutputPath": OUTPUT_PATH},
        "HumanTaskConfig": human,
    }


def read_output(s3: Any, name: str = "run-1-label") -> list[dict[str, Any]]:
    key = f"run/iter-1/labeling/output/{name}/manifests/output/output.manifest"
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines()]


def boxes(*xyxy_class: tuple[float, float, float, float, int]) -> tuple[Box, ...]:
    return tuple(Box.from_xyxy(v[:4], v[4]) for v in xyxy_class)


class RecordingWorkforce:
    """Answers like a simulated crowd but records each batch, and can stop early."""

    name = "recording"

    def __init__(self, inner: SimulatedWorkforce, *, answer_first: int | None = None) -> None:
        self.inner = inner
        self.answer_first = answer_first
        self.batches: list[list[LabelTask]] = []

    def label(self, tasks: Sequence[LabelTask]) -> Iterator[TaskResult]:
        self.batches.append(list(tasks))
        results = list(self.inner.label(tasks))
        yield from results[: self.answer_first]


# --- the job's output ---------------------------------------------------------------------


def test_labeling_runner_writes_ground_truth_output_manifest(s3, tmp_path):
    wide = put_image(s3, "images/wide.jpg", (64, 40))
    empty = put_image(s3, "images/empty.jpg", (32, 48))
    local = tmp_path / "local.png"
    local.write_bytes(image_bytes((50, 50)))
    reference = {
        wide: Detections("w", (64, 40), boxes((0, 0, 10, 8, 0), (40, 20, 64, 40, 2))),
        empty: Detections.empty("e", (32, 48)),
        str(local): Detections("l", (50, 50), boxes((5, 5, 20, 20, 1))),
    }
    relabel = {ATTR: {"stale": True}, ATTR + "-metadata": {"stale": True}}
    put_manifest(
        s3, [input_line(wide, note="kept"), input_line(empty, **relabel), input_line(str(local))]
    )
    workforce = SimulatedWorkforce(reference, noise=AnnotatorNoise.none())
    result = make_labeling_runner(workforce, image_dir=tmp_path / "cache")(request())
    assert result.status == "Completed"
    assert result.outputs["LabelCounters"] == {
        "TotalLabeled": 3,
        "HumanLabeled": 3,
        "MachineLabeled": 0,
        "FailedNonRetryableError": 0,
        "Unlabeled": 0,
    }
    uri = result.outputs["LabelingJobOutput"]["OutputDatasetS3Uri"]
    assert uri == f"{OUTPUT_PATH}/run-1-label/manifests/output/output.manifest"
    lines = read_output(s3)
    assert [line["source-ref"] for line in lines] == [wide, empty, str(local)]
    assert lines[0]["note"] == "kept" and lines[0]["boxloop"] == {"role": "pool"}
    assert all(line["id"] == record_id(line["source-ref"]) for line in lines)
    for line, truth in zip(lines, reference.values(), strict=True):
        label = record_to_label(line, ATTR, image_id=line["id"])
        assert label.detections.image_wh == truth.image_wh
        assert label.detections.boxes == truth.boxes
        assert label.human_annotated and label.job_name == "labeling-job/run-1-label"
        assert set(label.class_map.items()) <= set(enumerate(CLASSES))
    assert lines[1][ATTR]["annotations"] == [] and "stale" not in lines[1][ATTR]
    assert lines[0][ATTR + "-metadata"]["class-map"] == {"0": "cat", "2": "bird"}


def test_labeling_runner_reports_worker_time_and_uses_the_requested_workers(s3, tmp_path):
    ref = put_image(s3, "images/timed.jpg", (80, 60))
    put_manifest(s3, [input_line(ref)])
    reference = {ref: Detections("a", (80, 60), boxes((1, 1, 30, 30, 0), (40, 10, 70, 50, 1)))}
    runner = make_labeling_runner(SimulatedWorkforce(reference), image_dir=tmp_path)
    runner(request(workers=3))
    stats = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"run/iter-1/labeling/output/run-1-label/{STATS_FILE}")[
            "Body"
        ].read()
    )
    assert stats["workforce"] == "simulated" and stats["worker_tasks"] == 3
    assert stats["worker_seconds"] == pytest.approx(
        35.0
        * sum(len(d) for d in SimulatedWorkforce(reference).draw(record_id(ref), reference[ref], 3))
    )
    assert runner.jobs["run-1-label"].labeled == 1


# --- failures -----------------------------------------------------------------------------


def test_labeling_runner_failures_round_trip_through_merge_human_labels(s3, tmp_path):
    refs = [put_image(s3, f"images/{i}.jpg", (40, 30)) for i in range(12)]
    missing = f"s3://{BUCKET}/images/deleted.jpg"  # listed, but not in the bucket
    reference = {ref: Detections(ref, (40, 30), boxes((2, 2, 20, 20, 1))) for ref in refs}
    put_manifest(s3, [input_line(ref) for ref in [*refs, missing]])
    workforce = SimulatedWorkforce(reference, failure_rate=0.4, seed=3)
    result = make_labeling_runner(workforce, image_dir=tmp_path)(request())
    lines = read_output(s3)
    failed = [line for line in lines if ATTR not in line]
    counters = result.outputs["LabelCounters"]
    assert result.status == "Completed" and len(lines) == 13
    assert counters["FailedNonRetryableError"] == len(failed) >= 2
    assert counters["TotalLabeled"] == 13 - len(failed)
    reasons = {line["source-ref"]: line[ATTR + "-metadata"]["failure-reason"] for line in failed}
    assert reasons[missing].endswith("deleted.jpg: no such object")
    assert any("expired" in reason for reason in reasons.values())

    config = LoopConfig(labels=LabelConfig(CLASSES), label_attribute=ATTR)
    merged = {
        r.id: r
        for r in _iter_updates(
            result.outputs["LabelingJobOutput"]["OutputDatasetS3Uri"],
            config,
            1,
            set(),
            io.StringIO(),
            BoxRepairs(),
        )
    }
    for line in lines:
        record = merged[line["id"]]
        if line in failed:
            assert record.label is None and record.provenance.attempts == 1
        else:
            assert record.is_human_labeled and record.provenance.iteration == 1


def test_labeling_runner_fails_the_job_when_no_object_is_labeled(s3, tmp_path):
    ref = put_image(s3, "images/a.jpg", (40, 30))
    put_manifest(s3, [input_line(ref)])
    workforce = SimulatedWorkforce({ref: Detections.empty("a", (40, 30))}, failure_rate=1.0)
    result = make_labeling_runner(workforce, image_dir=tmp_path)(request())
    assert result.status == "Failed"
    assert "not one of the 1 data objects was labeled" in result.failure_reason
    assert "expired" in result.failure_reason
    assert result.outputs["LabelCounters"]["FailedNonRetryableError"] == 1


@pytest.mark.parametrize(
    ("share", "status"),
    [
        (None, "Completed"),  # default: only a job that labeled nothing fails
        (0.5, "Completed"),  # 1 of 4 expired: under the share
        (0.2, "Failed"),  # 1 of 4 expired: over the share
    ],
)
def test_labeling_runner_fails_the_job_over_max_failed_share(s3, tmp_path, share, status):
    refs = [put_image(s3, f"images/{i}.jpg", (40, 30)) for i in range(4)]
    reference = {ref: Detections.empty(ref, (40, 30)) for ref in refs}
    put_manifest(s3, [input_line(ref) for ref in refs])
    stopped = RecordingWorkforce(SimulatedWorkforce(reference), answer_first=3)
    result = make_labeling_runner(stopped, image_dir=tmp_path, max_failed_share=share)(request())
    assert result.status == status


def test_labeling_runner_leaves_unreturned_objects_out_as_unlabeled(s3, tmp_path):
    refs = [put_image(s3, f"images/{i}.jpg", (40, 30)) for i in range(3)]
    reference = {ref: Detections.empty(ref, (40, 30)) for ref in refs}
    put_manifest(s3, [input_line(ref) for ref in refs])
    stopped = RecordingWorkforce(SimulatedWorkforce(reference), answer_first=1)  # quit early
    result = make_labeling_runner(stopped, image_dir=tmp_path)(request())
    assert result.status == "Completed"
    assert result.outputs["LabelCounters"]["Unlabeled"] == 2
    assert [line["source-ref"] for line in read_output(s3)] == refs[:1]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing_reference", r"ClientError: .*no reference label for 's3://boxloop-test/images/b"),
        ("unknown_class", r"ClientError: .*class ids \[7\]"),
        ("bad_line", r"ClientError: .*input\.manifest:2: is not valid JSON"),
        ("duplicate", r"ClientError: .*input\.manifest:2: source-ref repeats the image of line 1"),
        ("empty_manifest", r"ClientError: the input manifest .* holds no data objects"),
        ("no_categories", r"ClientError: .*NoSuchKey"),
    ],
)
def test_labeling_runner_fails_the_job_on_bad_input_with_a_client_error(s3, tmp_path, case, reason):
    a, b = put_image(s3, "images/a.jpg", (40, 30)), put_image(s3, "images/b.jpg", (40, 30))
    reference = {
        a: Detections("a", (40, 30), boxes((1, 1, 9, 9, 7 if case == "unknown_class" else 0)))
    }
    lines: list[dict[str, Any] | str] = {
        "missing_reference": [input_line(a), input_line(b)],
        "unknown_class": [input_line(a)],
        "bad_line": [input_line(a), "{not json"],
        "duplicate": [input_line(a), input_line(a)],
        "empty_manifest": [],
        "no_categories": [input_line(a)],
    }[case]
    put_manifest(s3, lines)
    job = request()
    if case == "no_categories":
        job["LabelCategoryConfigS3Uri"] = f"s3://{BUCKET}/nowhere.json"
    result = make_labeling_runner(SimulatedWorkforce(reference), image_dir=tmp_path)(job)
    assert result.status == "Failed"
    assert result.failure_reason is not None
    assert re.search(reason, result.failure_reason), result.failure_reason


# --- images -------------------------------------------------------------------------------


def test_labeling_runner_caches_images_by_key_never_by_file_name(s3, tmp_path):
    first = put_image(s3, "a/img.jpg", (40, 30))
    second = put_image(s3, "b/img.jpg", (30, 40))  # same file name, another image
    reference = {first: Detections.empty("1", (40, 30)), second: Detections.empty("2", (30, 40))}
    put_manifest(s3, [input_line(first), input_line(second)])
    workforce = RecordingWorkforce(SimulatedWorkforce(reference))
    runner = make_labeling_runner(workforce, image_dir=tmp_path)
    assert runner(request("job-1")).status == "Completed"
    s3.delete_object(Bucket=BUCKET, Key="a/img.jpg")  # the second job must use the cache
    assert runner(request("job-2")).status == "Completed"
    for batch in workforce.batches:
        assert [(t.image_path, t.image_wh) for t in batch] == [
            (tmp_path / "s3" / BUCKET / "a" / "img.jpg", (40, 30)),
            (tmp_path / "s3" / BUCKET / "b" / "img.jpg", (30, 40)),
        ]
    assert Image.open(workforce.batches[0][0].image_path).size == (40, 30)


def test_labeling_runner_gives_the_workforce_the_users_source_refs(s3, tmp_path):
    """The local engine stages images under emulated URIs; labels are keyed by the user's."""
    staged = put_image(s3, "images/cat.jpg", (40, 30))
    users = "/data/shoot-1/cat.jpg"
    reference = {users: Detections("1", (40, 30), boxes((1, 2, 20, 25, 0)))}
    put_manifest(s3, [input_line(staged)])
    workforce = RecordingWorkforce(SimulatedWorkforce(reference, noise=AnnotatorNoise.none()))
    runner = make_labeling_runner(workforce, image_dir=tmp_path, source_refs={staged: users})
    assert runner(request("job-users")).status == "Completed"
    assert [t.source_ref for t in workforce.batches[0]] == [users]
    (line,) = read_output(s3, "job-users")
    assert line["source-ref"] == staged
    assert len(line[ATTR]["annotations"]) == 1


def test_labeling_runner_batches_by_max_concurrent_task_count(s3, tmp_path):
    refs = [put_image(s3, f"images/{i}.jpg", (40, 30)) for i in range(5)]
    reference = {ref: Detections.empty(ref, (40, 30)) for ref in refs}
    put_manifest(s3, [input_line(ref) for ref in refs])
    workforce = RecordingWorkforce(SimulatedWorkforce(reference))
    make_labeling_runner(workforce, image_dir=tmp_path)(request(max_concurrent=2))
    assert [len(batch) for batch in workforce.batches] == [2, 2, 1]
    assert all(
        t.job.workers_per_object == 1 and t.job.class_map == dict(enumerate(CLASSES))
        for batch in workforce.batches
        for t in batch
    )


# --- through the emulator -----------------------------------------------------------------


def test_labeling_runner_serves_create_labeling_job_in_the_emulator(s3, tmp_path):
    ref = put_image(s3, "images/a.jpg", (40, 30))
    put_manifest(s3, [input_line(ref)])
    reference = {ref: Detections("a", (40, 30), boxes((1, 1, 9, 9, 1)))}
    with emulator.patched():
        emulator.register_sagemaker_runner(
            "create_labeling_job",
            make_labeling_runner(
                SimulatedWorkforce(reference, noise=AnnotatorNoise.none()), image_dir=tmp_path
            ),
        )
        sagemaker = boto3.client("sagemaker")
        sagemaker.create_labeling_job(**request("via-api"))
        described = sagemaker.describe_labeling_job(LabelingJobName="via-api")
    assert described["LabelingJobStatus"] == "Completed"
    assert described["LabelCounters"]["HumanLabeled"] == 1
    assert described["LabelingJobOutput"]["OutputDatasetS3Uri"] == (
        f"{OUTPUT_PATH}/via-api/manifests/output/output.manifest"
    )
    [line] = read_output(s3, "via-api")
    assert record_to_label(line, ATTR, image_id=line["id"]).detections.boxes == (
        reference[ref].boxes
    )


def test_labeling_runner_hashes_keys_that_could_leave_the_image_dir(s3, tmp_path):
    ref = put_image(s3, "images/../../escape.jpg", (40, 30))
    put_manifest(s3, [input_line(ref)])
    workforce = RecordingWorkforce(SimulatedWorkforce({ref: Detections.empty("x", (40, 30))}))
    make_labeling_runner(workforce, image_dir=tmp_path / "cache")(request())
    [[task]] = workforce.batches
    assert task.image_path.resolve().is_relative_to((tmp_path / "cache").resolve())
    assert task.image_path.suffix == ".jpg" and task.image_wh == (40, 30)
    assert Path(task.image_path).is_file()
