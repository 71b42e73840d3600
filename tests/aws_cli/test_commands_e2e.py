"""``boxloop aws start | status | report | export`` on a moto deployment, end to end.

One run, started from a local folder the way a user starts one: the first ``start`` loses its
connection part-way through the upload, the second uploads only what is missing and starts the
execution; ``status`` is read at several points while the execution runs (from inside its
steps), ``status --watch`` follows it to the end; ``report`` and ``export`` read the result.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from conftest import N_IMAGES, SMALL_RUN_SETS, Deployed, RecordedRequests, run_cli
from e2e_harness import BUCKET

from boxloop.aws.clients import client
from boxloop.aws.operate import upload
from boxloop.aws.operate.deployment import load_deployment
from boxloop.aws.operate.executions import describe
from boxloop.aws.operate.status import run_status, status_lines
from boxloop.aws.s3 import try_read_text
from boxloop.cli import main

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

NAME = "street-1"
DROP_AFTER = 7  # the first start's connection drops after this many files


@dataclass
class StreetRun:
    """What the CLI printed and what status said at each point of the run."""

    first: tuple[int, str, str]
    second: tuple[int, str, str]
    watch: tuple[int, str, str]
    snapshots: dict[str, list[list[str]]] = field(default_factory=dict)
    requests: RecordedRequests = field(default_factory=RecordedRequests)
    manifest_after_first: bool = False


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _snapshot(run: StreetRun, point: str) -> None:
    """Record ``boxloop aws status NAME`` as it reads now (called from the execution's thread)."""
    lines = status_lines(run_status(describe(load_deployment(), NAME)))
    run.snapshots.setdefault(point, []).append(lines)


def _wrap(run: StreetRun, point: str) -> Callable[[Any], Any]:
    def wrapper(handler: Any) -> Any:
        def wrapped(event: Any, context: Any) -> Any:
            _snapshot(run, point)
            return handler(event, context)

        return wrapped

    return wrapper


@pytest.fixture(scope="module")
def street(deployed: Deployed) -> StreetRun:
    """Start NAME from the image folder (an interrupted upload, then the re-run) and finish it.

    The folder's place under ``inputs/`` is pinned: it hashes the folder's absolute path, a new
    temporary one per session, and the images' ids (so the run's roles and picks) hash their
    keys; pinned, the run is the same in every session.
    """
    pin = pytest.MonkeyPatch()
    pin.setattr(upload, "upload_name", lambda folder: f"{folder.name}-pinned")
    plan = upload.plan_upload(deployed.images_dir, bucket=BUCKET)
    for path, key in plan.files:  # the simulated workforce knows the uploaded copies too
        deployed.reference[f"s3://{BUCKET}/{key}"] = deployed.reference[
            f"s3://{BUCKET}/images/{path.name}"
        ]
    run = StreetRun(first=(0, "", ""), second=(0, "", ""), watch=(0, "", ""))
    deployed.arm(
        wrap={
            "prepare_labeling": _wrap(run, "PrepareLabeling"),
            "filter_low_confidence": _wrap(run, "FilterLowConfidence"),
        },
        labeling=lambda runner: _opened(run, runner),
    )
    start = ("aws", "start", "--images", str(deployed.images_dir), "--name", NAME)
    sets = tuple(f"--set={s}" for s in SMALL_RUN_SETS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(upload, "_upload_one", _DroppingConnection(upload._upload_one, DROP_AFTER))
        run.first = run_cli(*start, *sets)
    run.manifest_after_first = try_read_text(plan.manifest_uri) is not None
    with RecordedRequests(all_threads=True) as recorder:  # the upload's workers too
        run.second = run_cli(*start, *sets)
    with RecordedRequests() as watching:  # the CLI's own, not the execution's
        run.watch = run_cli("aws", "status", NAME, "--watch", "--interval", "0.05")
    recorder.calls += watching.calls
    run.requests = recorder
    pin.undo()
    return run


@dataclass
class _DroppingConnection:
    """``_upload_one`` whose connection drops once ``limit`` files went through."""

    real: Callable[..., int]
    limit: int
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, *args: Any) -> int:
        with self.lock:
            self.sent += 1
            if self.sent > self.limit:
                raise ConnectionResetError("connection reset by peer")
        return self.real(*args)


def _opened(run: StreetRun, runner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def labeling(request: Any) -> Any:
        _snapshot(run, "Label")
        return runner(request)

    return labeling


def test_interrupted_upload_fails_with_the_cause_and_writes_no_manifest(street: StreetRun):
    code, out, err = street.first
    assert code == 2, (out, err)
    assert "connection reset by peer" in err
    assert "execution:" not in out
    assert not street.manifest_after_first


def test_rerun_uploads_only_what_is_missing_and_starts(street: StreetRun, deployed: Deployed):
    code, out, err = street.second
    assert code == 0, err
    n = len(upload.plan_upload(deployed.images_dir, bucket=BUCKET).files)
    assert f"{n} images under s3://{BUCKET}/inputs/" in out
    assert f"{n - DROP_AFTER} uploaded" in out
    assert f"{DROP_AFTER} already there" in out
    manifest = next(line for line in out.splitlines() if line.startswith("input manifest: "))
    lines = (
        client("s3")
        .get_object(Bucket=BUCKET, Key=manifest.split(f"s3://{BUCKET}/", 1)[1])["Body"]
        .read()
        .decode()
        .splitlines()
    )
    assert len(lines) == n
    arn = deployed.harness.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{NAME}"
    assert f"execution: {arn}" in out
    assert (
        f"console:   https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1"
        f"#/v2/executions/details/{arn}"
    ) in out


def test_every_request_the_commands_sent_is_valid(street: StreetRun):
    assert {
        ("cloudformation", "DescribeStacks"),
        ("s3", "ListObjectsV2"),
        ("s3", "PutObject"),
        ("stepfunctions", "StartExecution"),
        ("stepfunctions", "GetExecutionHistory"),
    } <= street.requests.operations()
    assert street.requests.problems() == []


def test_status_before_the_first_model(street: StreetRun):
    first = street.snapshots["PrepareLabeling"][0]
    assert first[0].startswith(f"execution  {NAME}  RUNNING")
    assert first[1].startswith("step       PrepareLabeling (iteration 0): choosing images")
    assert f"images     {N_IMAGES}: 0 human, 0 auto, {N_IMAGES} open" in first
    assert not any(line.startswith("threshold") for line in first)


def test_status_while_humans_label(street: StreetRun):
    label = street.snapshots["Label"][0]
    assert label[1].startswith("step       Label (iteration 0): humans labeling")
    batch = next(line for line in label if line.startswith("labeling   "))
    assert batch.endswith("answered (InProgress)")
    answered, total = batch.split(": ", 1)[1].split(" answered")[0].split(" / ")
    assert answered == "0" and int(total) > 0


def test_status_after_a_calibration_shows_threshold_promise_and_cost(street: StreetRun):
    later = street.snapshots["FilterLowConfidence"][1]  # iteration 1: iteration 0's report
    assert later[1].startswith("step       FilterLowConfidence (iteration 1)")
    assert any(line.startswith("threshold  ") for line in later)
    promise = next(line for line in later if line.startswith("promise    "))
    assert "auto-labels meet " in promise and "validation images" in promise
    cost = next(line for line in later if line.startswith("cost       "))
    assert float(cost.split("$", 1)[1].split(" ", 1)[0]) > 0


def test_watch_follows_the_run_to_its_end(street: StreetRun):
    code, out, err = street.watch
    assert code == 0, err
    blocks = out.split("\n\n")
    assert len(blocks) > 1, out  # one status per change, the running ones first
    assert blocks[0].startswith(f"execution  {NAME}  RUNNING")
    assert blocks[-1].startswith(f"execution  {NAME}  SUCCEEDED")
    assert "ended in   Done (iteration " in blocks[-1]
    assert f"output     s3://{BUCKET}/runs/{NAME}-" in blocks[-1]
    # the run auto-labeled (see the report test), so its last round audited some of those labels
    audited = next(line for line in blocks[-1].splitlines() if line.startswith("audited    "))
    assert " applied auto-labels re-labeled by humans at random, 90% interval [" in audited


def test_status_of_the_latest_execution(street: StreetRun, capsys):
    code, out, _ = _cli(capsys, "aws", "status")
    assert code == 0
    assert out.startswith(f"execution  {NAME}  SUCCEEDED")


def test_report_renders_the_local_html_page(street: StreetRun, capsys, tmp_path: Path):
    code, out, err = _cli(capsys, "aws", "report", NAME, "--out", str(tmp_path))
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    html = (tmp_path / "report.html").read_text()
    assert report["run_id"] in html
    assert "<img" in html  # the plots, inline
    execution = describe(load_deployment(), NAME)
    key = execution.output["output_manifest"].split("/", 3)[3]
    lines = client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read().splitlines()
    auto = [
        line
        for line in map(json.loads, lines)
        if line.get("boxes-metadata", {}).get("human-annotated") == "no"
    ]
    assert auto, f"the run auto-labeled nothing: {execution.output['counts']}"
    gallery = html.split("Least confident auto-labels", 1)[1].split("<h2>", 1)[0]
    thumbnails = gallery.count('src="data:image/jpeg;base64,')
    assert thumbnails == min(len(auto), 12)  # each drawn from its presigned URL's bytes
    assert f"report: {tmp_path / 'report.html'}" in out


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo", "groundtruth"])
def test_export_streams_the_output_manifest_through_the_local_exporters(
    street: StreetRun, capsys, tmp_path: Path, fmt: str
):
    out_path = tmp_path / ("coco.json" if fmt == "coco" else "out")
    if fmt == "groundtruth":
        out_path = tmp_path / "output.manifest"
    code, out, err = _cli(capsys, "aws", "export", NAME, "--format", fmt, "--out", str(out_path))
    assert code == 0, err
    execution = describe(load_deployment(), NAME)
    manifest = (
        client("s3")
        .get_object(
            Bucket=BUCKET, Key=execution.output["output_manifest"].split(f"s3://{BUCKET}/", 1)[1]
        )["Body"]
        .read()
        .decode()
        .splitlines()
    )
    labeled = [json.loads(line) for line in manifest if '"boxes"' in line]
    if fmt == "coco":
        coco = json.loads(out_path.read_text())
        assert len(coco["images"]) == len(labeled) > 0
        assert sum(len(line["boxes"]["annotations"]) for line in labeled) == len(
            coco["annotations"]
        )
        assert {c["name"] for c in coco["categories"]} == {"car", "person", "bicycle"}
    elif fmt == "voc":
        assert len(list(out_path.glob("*.xml"))) == len(labeled)
    elif fmt == "yolo":
        assert len(list((out_path / "labels").glob("*.txt"))) == len(labeled)
        assert (out_path / "classes.txt").read_text().split() == ["car", "person", "bicycle"]
    else:
        assert out_path.read_text().splitlines() == manifest
    assert out.startswith(f"{fmt}: ")


def test_export_of_a_local_run_folder_writes_the_same_files(street: StreetRun, capsys, tmp_path):
    run_out = tmp_path / "run"
    code, _, err = _cli(
        capsys,
        "aws",
        "export",
        NAME,
        "--format",
        "groundtruth",
        "--out",
        str(run_out / "output.manifest"),
    )
    assert code == 0, err
    code, _, err = _cli(
        capsys, "aws", "export", NAME, "--format", "coco", "--out", str(tmp_path / "aws.json")
    )
    assert code == 0, err
    code, _, err = _cli(
        capsys, "export", str(run_out), "--format", "coco", "--out", str(tmp_path / "local.json")
    )
    assert code == 0, err
    assert (tmp_path / "local.json").read_bytes() == (tmp_path / "aws.json").read_bytes()
