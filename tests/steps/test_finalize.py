from __future__ import annotations

import json
from pathlib import Path

import pytest

from boxloop.aws.s3 import iter_lines
from boxloop.core.manifests import ValidationReport, validate_manifest
from boxloop.steps.finalize import finalize

ONE = [(0, 10, 10, 20, 20)]


def _ref(name: str) -> str:
    return f"s3://imgs/{name}.jpg"


@pytest.fixture
def finished(make_config, make_run, ledger_line, gt_fields):
    """A run after iteration 2: 2 human labels, 3 machine labels, 1 image left unlabeled."""
    config = make_config()
    machine = gt_fields(
        (640, 480),
        [(2, 1, 2, 30, 40), (0, 5, 5, 5, 5)],
        human=False,
        scores=[0.97, 0.91],
        job="boxloop/bl-abcd-001-train",
    )
    lines = [
        ledger_line(_ref("h-0"), label=gt_fields(boxes=ONE), role="validation", iteration=0),
        ledger_line(_ref("h-1"), label=gt_fields(boxes=[]), role="seed", iteration=0),
        *(
            ledger_line(
                _ref(f"m-{i}"),
                label=machine,
                iteration=1,
                threshold=0.9,
                confidence=0.95,
                model="bl-abcd-001-train",
            )
            for i in range(3)
        ),
        ledger_line(_ref("open"), attempts=2, confidence=0.1),
    ]
    run = make_run(
        lines,
        config,
        iteration=2,
        stop_reason="max_iterations (2) reached",
        model={"name": "bl-abcd-001-train", "threshold": 0.9},
    )
    for k in (0, 1):  # iteration 2 wrote no report: finalize takes the ones that exist
        report = Path(run.paths.step(k, "report", "report.json"))
        report.parent.mkdir(parents=True)
        report.write_text(json.dumps({"iteration": k, "auto_labeled": k * 3}), encoding="utf-8")
    return run, config


def test_finalize_writes_an_output_manifest_that_validates(finished, read_jsonl):
    # GIVEN a finished run with human, machine and missing labels
    run, config = finished
    # WHEN it is finalized
    result = finalize(run, config)
    # THEN every line of the output manifest validates as a Ground Truth manifest
    uri = result["output_manifest"]
    report = ValidationReport(source=uri)
    good = list(
        validate_manifest(iter_lines(uri), source=uri, label_config=config.labels, report=report)
    )
    assert report.errors == []
    assert (report.good, report.labeled) == (6, 5)
    assert {line.label_attribute for line in good if line.label} == {"boxes"}
    machine = [line for line in good if line.label and not line.label.human_annotated]
    assert len(machine) == 3
    assert machine[0].label.confidences == (0.97, 0.91)
    # the unlabeled image is still there, flagged by having no label
    (unlabeled,) = [x for x in read_jsonl(uri) if "boxes" not in x]
    assert unlabeled["boxloop"]["attempts"] == 2


def test_finalize_reports_counts_cost_savings_and_iterations(finished):
    run, config = finished
    result = finalize(run, config)
    report = json.loads(Path(result["report"]).read_text(encoding="utf-8"))
    assert report["counts"]["human"] == 2
    assert report["counts"]["auto"] == 3
    assert report["counts"]["unlabeled"] == 1
    assert report["auto_share"] == pytest.approx(0.5)
    # default prices: $0.26 per human label, $0.08 per auto-label, vs all six by humans
    assert report["cost"]["total_usd"] == pytest.approx(2 * 0.26 + 3 * 0.08)
    assert report["all_human_cost"]["total_usd"] == pytest.approx(6 * 0.26)
    # the unlabeled image still needs a human: savings are judged on the projected cost
    assert report["projected_cost"]["total_usd"] == pytest.approx(0.76 + 0.26)
    assert report["savings_fraction"] == pytest.approx(1 - 1.02 / 1.56)
    assert [r["iteration"] for r in report["per_iteration"]] == [0, 1]
    assert report["stop_reason"] == "max_iterations (2) reached"
    assert report["model"]["name"] == "bl-abcd-001-train"
    assert result["stop_reason"] == report["stop_reason"]
    assert result["counts"] == report["counts"]


def test_finalize_says_all_labeled_when_no_stop_rule_fired(
    make_config, make_run, ledger_line, gt_fields
):
    config = make_config()
    run = make_run([ledger_line(_ref("h"), label=gt_fields(boxes=ONE))], config)
    result = finalize(run, config)
    assert result["stop_reason"] == "all images labeled"
    report = json.loads(Path(result["report"]).read_text(encoding="utf-8"))
    assert report["per_iteration"] == []
    assert report["savings_fraction"] == pytest.approx(0.0)


def test_finalize_counts_unlabeled_test_images_apart(make_config, make_run, ledger_line, gt_fields):
    # GIVEN a run whose images are all labeled but two test images (a role nothing labels)
    config = make_config(test_fraction=0.1)
    lines = [
        ledger_line(_ref("h-0"), label=gt_fields(boxes=ONE), role="validation", iteration=0),
        ledger_line(_ref("h-1"), label=gt_fields(boxes=[]), role="seed", iteration=0),
        ledger_line(_ref("t-0"), role="test"),
        ledger_line(_ref("t-1"), role="test"),
    ]
    run = make_run(lines, config, iteration=1)
    # WHEN it is finalized
    result = finalize(run, config)
    # THEN it says all images were labeled, and the test images are still priced as human work
    assert result["counts"]["unlabeled"] == 0
    assert result["counts"]["unlabeled_test"] == 2
    assert result["stop_reason"].startswith("all images labeled")
    assert "2 test images" in result["stop_reason"]
    report = json.loads(Path(result["report"]).read_text(encoding="utf-8"))
    assert report["projected_cost"] == report["all_human_cost"]  # 2 human + 2 test images
