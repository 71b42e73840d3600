"""--workforce browser: a scripted labeler answers a batch over HTTP.

The job's output manifest holds exactly its boxes; a killed server resumes from the journal,
asking only for the rest.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from labeling._client import Labeler  # tests/labeling (tests/ is on sys.path)
from PIL import Image

from boxloop.core.formats.groundtruth import record_to_label
from boxloop.core.labels import LabelConfig
from boxloop.core.manifests import record_id
from boxloop.labeling.preannotations import PREANNOTATIONS_KEY
from boxloop.local.workforce import STATS_FILE, make_labeling_runner
from boxloop.local.workforce.browser import BrowserWorkforce

ATTR = "boxes"
CLASSES = ("cat", "dog")


@pytest.fixture(autouse=True)
def _fake_aws(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def _job(tmp: Path, n: int, *, name: str = "job-1", workers: int = 1, roles=None) -> dict[str, Any]:
    images = tmp / "images"
    images.mkdir(exist_ok=True)
    manifest = tmp / f"{name}.manifest"
    with manifest.open("w") as out:
        for i in range(n):
            path = images / f"img{i}.png"
            if not path.exists():
                Image.new("RGB", (80, 60), (10 * i, 100, 30)).save(path)
            line: dict[str, Any] = {"source-ref": str(path), "id": record_id(str(path))}
            role = (roles or {}).get(i, "pool")
            line["boxloop"] = {"role": role} if role != "audit" else {"audit": True}
            if role == "pool":
                line[PREANNOTATIONS_KEY] = {"boxes": [[1, 0.8, 2, 3, 10, 12]]}
            out.write(json.dumps(line) + "\n")
    categories = tmp / "categories.json"
    categories.write_text(json.dumps(LabelConfig(CLASSES).to_label_category_config()))
    return {
        "LabelingJobName": name,
        "LabelAttributeName": ATTR,
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": str(manifest)}}},
        "OutputConfig": {"S3OutputPath": str(tmp / "out")},
        "LabelCategoryConfigS3Uri": str(categories),
        "HumanTaskConfig": {"NumberOfHumanWorkersPerDataObject": workers},
    }


def _boxes_for(task: dict[str, Any]) -> list[dict[str, Any]]:
    """A distinct answer per image, so the manifest can be checked box by box."""
    n = int(task["image_url"].split("/")[-1][:2], 16) % 20
    return [{"class_id": 0, "left": n, "top": 1, "width": 7, "height": 9, "origin": "human"}]


def _label_until(labeler: Labeler, stop: threading.Event, answered: dict, limit: int | None = None):
    while not stop.is_set() and (limit is None or len(answered) < limit):
        try:
            task, _ = labeler.next_task()
        except (OSError, AssertionError):
            stop.wait(0.05)
            continue
        if task is None:
            stop.wait(0.05)
            continue
        boxes = _boxes_for(task)
        status, body = labeler.submit(
            task, boxes, effort={"seconds": 2.0, "boxes_drawn": 1, "model_boxes_deleted": 1}
        )
        assert status == 200, body
        answered[task["task_id"]] = (task, boxes)


def _run_job(workforce: BrowserWorkforce, request: dict[str, Any], tmp: Path):
    runner = make_labeling_runner(workforce, image_dir=tmp / "cache")
    return runner(request)


def _output(tmp: Path, name: str = "job-1") -> dict[str, dict[str, Any]]:
    path = tmp / "out" / name / "manifests" / "output" / "output.manifest"
    return {json.loads(line)["id"]: json.loads(line) for line in path.read_text().splitlines()}


def test_scripted_labeler_labels_a_batch_and_the_manifest_holds_its_boxes(tmp_path):
    request = _job(tmp_path, 4, roles={0: "validation", 1: "audit"})
    announced: list[str] = []
    with BrowserWorkforce(tmp_path / "labeling", announce=announced.append, poll_s=0.05) as wf:
        url = wf.start()
        stop, answered = threading.Event(), {}
        thread = threading.Thread(target=_label_until, args=(Labeler(url), stop, answered))
        thread.start()
        try:
            result = _run_job(wf, request, tmp_path)
        finally:
            stop.set()
            thread.join()
    assert result.status == "Completed", result.failure_reason
    assert len(announced) == 1 and announced[0].endswith(f"#token={wf.token}")
    lines = _output(tmp_path)
    assert set(lines) == set(answered)
    assert not any(PREANNOTATIONS_KEY in line for line in lines.values())  # input-only field
    for rid, (task, boxes) in answered.items():
        assert lines[rid]["boxloop-workers"] == ["w1"]  # who labeled it (no name given)
        label = record_to_label(lines[rid], ATTR, image_id=rid)
        assert label.human_annotated and label.job_name == "labeling-job/job-1"
        (got,) = label.detections.boxes
        want = boxes[0]
        assert (got.x_min, got.y_min, got.x_max - got.x_min, got.y_max - got.y_min) == (
            want["left"],
            want["top"],
            want["width"],
            want["height"],
        )
        # Validation and audit images never show model boxes; pool images do.
        assert bool(task["preannotations"]) == (task["role"] == "pool"), task
    stats = json.loads((tmp_path / "out" / "job-1" / STATS_FILE).read_text())
    assert stats["workforce"] == "browser" and stats["labeled"] == 4
    assert stats["worker_seconds"] == 8.0
    effort = stats["effort"]
    assert effort["images"] == 4 and effort["seconds"] == 8.0 and effort["boxes_drawn"] == 4
    assert effort["preannotated_images"] == 2 and effort["model_boxes_deleted"] == 4
    journal = (tmp_path / "labeling" / "journal.jsonl").read_text().splitlines()
    assert len(journal) == 4


def test_killed_mid_batch_resumes_with_every_answer_kept(tmp_path):
    request = _job(tmp_path, 5)
    # First run: two images answered, then the process "dies" (server stopped, job unfinished).
    first = BrowserWorkforce(tmp_path / "labeling", announce=lambda _: None, poll_s=0.05)
    url = first.start()
    stop, before = threading.Event(), {}
    labeler = threading.Thread(target=_label_until, args=(Labeler(url), stop, before, 2))
    labeler.start()
    results = []
    runner = threading.Thread(
        target=lambda: results.append(_run_job(first, request, tmp_path)), daemon=True
    )
    runner.start()
    labeler.join(timeout=20)
    assert len(before) == 2
    first.close()  # the server goes away mid-batch (Ctrl-C): the waiting job ends, failed
    runner.join(timeout=10)
    (failed,) = results
    assert failed.status == "Failed" and "3 of 5 images unanswered" in failed.failure_reason

    # Second run (a resumed run: new job name): only the three left are served.
    request2 = _job(tmp_path, 5, name="job-1-resumed")
    stop2, after = threading.Event(), {}
    with BrowserWorkforce(tmp_path / "labeling", announce=lambda _: None, poll_s=0.05) as wf:
        url2 = wf.start()
        thread = threading.Thread(target=_label_until, args=(Labeler(url2, "w2"), stop2, after))
        thread.start()
        try:
            result = _run_job(wf, request2, tmp_path)
        finally:
            stop2.set()
            thread.join()
    assert result.status == "Completed", result.failure_reason
    assert len(after) == 3 and not set(after) & set(before)
    lines = _output(tmp_path, "job-1-resumed")
    assert len(lines) == 5
    for rid, (_, boxes) in {**before, **after}.items():
        (got,) = record_to_label(lines[rid], ATTR, image_id=rid).detections.boxes
        assert got.x_min == boxes[0]["left"]


def test_two_workers_per_image_are_consolidated(tmp_path):
    request = _job(tmp_path, 2, workers=2)
    with BrowserWorkforce(tmp_path / "labeling", announce=lambda _: None, poll_s=0.05) as wf:
        url = wf.start()
        stop = threading.Event()
        seen: dict[str, dict] = {"a": {}, "b": {}}
        assert Labeler(url, "a").request("POST", "/api/v1/worker", {"name": "Ada"})[0] == 200
        threads = [
            threading.Thread(target=_label_until, args=(Labeler(url, w), stop, seen[w]))
            for w in ("a", "b")
        ]
        for t in threads:
            t.start()
        try:
            result = _run_job(wf, request, tmp_path)
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert result.status == "Completed"
    assert set(seen["a"]) == set(seen["b"]) and len(seen["a"]) == 2
    stats = json.loads((tmp_path / "out" / "job-1" / STATS_FILE).read_text())
    assert stats["worker_tasks"] == 4 and stats["effort"]["images"] == 4
    for rid, line in _output(tmp_path).items():
        assert sorted(line["boxloop-workers"]) == ["Ada", "b"]  # names kept, else the ids
        label = record_to_label(line, ATTR, image_id=rid)
        assert len(label.detections.boxes) == 1  # both drew the same box: one consolidated
        assert label.confidences[0] == 1.0
