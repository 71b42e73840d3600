"""A tiny end-to-end local run: the real ASL, handlers, detector and workforce on moto."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pycocotools.coco import COCO

from boxloop.cli import main
from boxloop.local.demo import DemoSettings, run_demo
from boxloop.local.progress import StepProgress, listening
from boxloop.local.runners import DetectorSettings

TINY_OVERRIDES = {
    "seed_size": 10,
    "batch_size": 10,
    "validation_fraction": 0.2,
    "min_validation": 5,
    "max_iterations": 8,
    "patience": 8,
}
PROGRESS: list[StepProgress] = []
"""What the tiny run reported inside its steps (``step_progress``)."""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("tiny-demo")
    events = []
    settings = DemoSettings(
        n_images=40,
        seed=3,
        overrides=TINY_OVERRIDES,
        detector=DetectorSettings(image_steps=48, batch_size=8),
        keep_run_files=True,
    )
    with listening(PROGRESS.append):
        result = run_demo(out, settings, events.append)
    return result, events


def test_local_run_succeeds_and_labels_every_image(tiny_run):
    result, events = tiny_run
    counts = result.report["counts"]
    assert counts["total"] == 40
    assert counts["unlabeled"] == 0
    assert counts["human"] + counts["auto"] == 40
    visited = [e.state for e in events if e.kind == "entered"]
    assert visited[0] == "Ingest"
    assert visited[-1] == "Done"
    for state in ("Label", "Train", "Transform", "PostProcess", "FilterLowConfidence"):
        assert state in visited


def test_local_run_output_manifest_passes_validate(tiny_run, capsys):
    result, _ = tiny_run
    code = main(["validate", str(result.files["output_manifest"])])
    assert code == 0, capsys.readouterr().out


def test_local_run_coco_export_loads_in_pycocotools(tiny_run):
    result, _ = tiny_run
    coco = COCO(str(result.files["coco"]))
    assert len(coco.getImgIds()) == 40
    boxes = sum(
        len(json.loads(line)["boxes"]["annotations"])
        for line in Path(result.files["output_manifest"]).read_text().splitlines()
    )
    assert len(coco.getAnnIds()) == boxes


def test_local_run_writes_report_model_and_reference_accuracy(tiny_run):
    result, _ = tiny_run
    assert result.files["model"].stat().st_size > 1_000_000
    html = result.files["report_html"].read_text()
    assert html.count("<img") >= 4
    assert result.reference_eval is not None
    assert result.reference_eval["human"]["count"] == result.report["counts"]["human"]
    assert len(result.report["per_iteration"]) == result.report["iterations"]


def test_local_run_keeps_every_file_the_run_wrote(tiny_run):
    # GIVEN a run asked to keep its files WHEN it has finished
    result, _ = tiny_run
    run_files = result.files["run_files"]
    # THEN every ledger version is there, the last one with every image labeled
    ledgers = sorted((run_files / "ledger").glob("iter-*.jsonl"))
    assert ledgers[0].name == "iter-000-0-ingest.jsonl"
    filtered = {path.name[:8] for path in ledgers if path.name.endswith("-filter.jsonl")}
    assert filtered == {f"iter-{i:03d}" for i in range(len(result.report["per_iteration"]))}
    last = [json.loads(line) for line in ledgers[-1].read_text().splitlines()]
    assert len(last) == 40
    assert all("boxes" in line for line in last)
    # AND each iteration's report, and the predictions of each iteration that ran inference
    reports = sorted(run_files.glob("iter-*/report/report.json"))
    assert len(reports) == len(result.report["per_iteration"])
    assert list(run_files.rglob("predictions.jsonl"))


def test_local_run_shows_progress_inside_train_and_transform(tiny_run):
    _, events = tiny_run
    trainings = sum(e.state == "Train" and e.kind == "entered" for e in events)
    train = [p for p in PROGRESS if p.step == "Train"]
    assert {p.unit for p in train} == {"image-steps"}
    assert sum(p.done == 0 for p in train) == trainings  # each round's bar starts at 0
    assert sum(p.finished for p in train) == trainings  # and reaches its budget
    assert any(p.detail and p.detail.endswith("per image-step") for p in train)
    transform = [p for p in PROGRESS if p.step == "Transform"]
    assert transform
    assert {p.unit for p in transform} == {"images"}
    assert transform[-1].finished


def test_local_run_report_names_local_files_and_human_effort(tiny_run):
    result, _ = tiny_run
    text = result.files["report"].read_text()
    assert "s3://" not in text
    report = json.loads(text)
    assert report == result.report
    assert report["output_manifest"] == str(result.files["output_manifest"])
    assert report["model"]["artifacts"] == str(result.files["model"])
    effort = report["human_effort"]
    assert effort["workforces"] == ["simulated"]
    assert effort["labeled_images"] == report["counts"]["human"]
    assert effort["workforce_time"]["simulated"] is True
    assert effort["measured"] is None
    html = result.files["report_html"].read_text()
    assert str(result.files["output_manifest"]) in html
    assert f"boxloop review {result.out_dir}" in html
    assert "<h2>Human effort</h2>" in html
    if report["counts"]["auto"]:
        assert "data:image/jpeg;base64," in html
