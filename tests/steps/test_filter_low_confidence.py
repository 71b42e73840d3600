from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from boxloop.core.decision import Decision, Estimate
from boxloop.core.errors import ManifestError
from boxloop.core.manifests import record_id
from boxloop.core.model_state import ModelState
from boxloop.steps.filter_low_confidence import HISTOGRAM_BINS, filter_low_confidence
from boxloop.steps.merge_human_labels import merge_human_labels
from boxloop.steps.postprocess import PREDICTIONS_FILE
from boxloop.steps.prepare_labeling import prepare_labeling

MODEL = "bl-abcd-000-train"
WH = [640, 480]
N_GOOD = N_BAD = 20
"""Validation: 20 exact predictions at confidence 0.95, 20 wrong ones at 0.5 -> threshold 0.95."""


def _ref(name: str) -> str:
    return f"s3://imgs/{name}.jpg"


def _prediction(name: str, confidence: float, kept: list[list[float]], **extra: Any) -> dict:
    return {
        "id": record_id(_ref(name)),
        "image_wh": WH,
        "confidence": confidence,
        "is_empty": not kept,
        "n_ambiguous": 0,
        "kept": kept,
        **extra,
    }


class Scenario:
    """A ledger and the post-processed predictions of one iteration, built line by line."""

    def __init__(self, ledger_line, gt_fields) -> None:
        self._line, self._gt = ledger_line, gt_fields
        self.lines: list[dict[str, Any]] = []
        self.predictions: list[dict[str, Any]] = []

    def validation(self, n_good: int = N_GOOD, n_bad: int = N_BAD) -> Scenario:
        for i in range(n_good):
            name = f"val-good-{i}"
            label = self._gt(tuple(WH), [(0, 100, 100, 100, 100)])
            self.lines.append(self._line(_ref(name), label=label, role="validation"))
            self.predictions.append(_prediction(name, 0.95, [[0, 0.95, 100, 100, 200, 200]]))
        for i in range(n_bad):
            name = f"val-bad-{i}"
            label = self._gt(tuple(WH), [(1, 300, 300, 100, 100)])
            self.lines.append(self._line(_ref(name), label=label, role="validation"))
            self.predictions.append(_prediction(name, 0.5, [[0, 0.6, 0, 0, 50, 50]]))
        return self

    def pool(self, name: str, confidence: float | None, **provenance: Any) -> Scenario:
        self.lines.append(self._line(_ref(name), **provenance))
        if confidence is not None:
            kept = [[2, 0.97, 10, 20, 110, 220], [0, 0.91, 300, 200, 400, 260]]
            self.predictions.append(_prediction(name, confidence, kept))
        return self

    def add(self, line: dict[str, Any], prediction: dict[str, Any] | None = None) -> Scenario:
        self.lines.append(line)
        if prediction is not None:
            self.predictions.append(prediction)
        return self

    def inference(self, tmp_path: Path, *, passed: bool = True) -> dict[str, Any]:
        """The ``inference`` block, with predictions.jsonl written sorted by id."""
        folder = tmp_path / "post"
        folder.mkdir(exist_ok=True)
        ordered = sorted(self.predictions, key=lambda p: p["id"])
        (folder / PREDICTIONS_FILE).write_text(
            "".join(json.dumps(p) + "\n" for p in ordered), encoding="utf-8"
        )
        return {
            "count": len(ordered),
            "gate": {"metric": "validation:mAP", "value": 0.5, "floor": 0.3, "passed": passed},
            "model_name": MODEL,
            "model_artifacts": "s3://b/model.tar.gz",
            "postprocess": {"output_path": f"{folder}/"},
        }


@pytest.fixture
def make_config(make_config):
    """The shared builder with the settings these tests were written for pinned.

    (The defaults follow the measured recipe, which defers auto-labels to the last model.)
    """

    def build(**overrides: Any):
        pinned = {
            "target_metric": "exact_match",
            "target_value": 0.6,
            "confidence_level": 0.9,
            "min_accepted": 20,
            "defer_auto_labels": False,
            "finish_with_humans": False,
            "max_iterations": 10,
        }
        return make_config(**{**pinned, **overrides})

    return build


@pytest.fixture
def scenario(ledger_line, gt_fields) -> Scenario:
    return Scenario(ledger_line, gt_fields)


def _by_name(read_jsonl, ledger: str) -> dict[str, dict[str, Any]]:
    return {Path(x["source-ref"]).stem: x for x in read_jsonl(ledger)}


def _report(run) -> dict[str, Any]:
    path = Path(run.paths.step(run.iteration - 1, "report", "report.json"))
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def iteration(tmp_path, scenario, make_config, make_run, gt_fields, ledger_line):
    """Validation set, 3 confident and 2 unsure pool images, and images that must stay as is."""
    human = gt_fields(tuple(WH), [(1, 5, 5, 50, 50)], job="labeling-job/humans")
    scenario.validation()
    for i in range(3):
        scenario.pool(f"pool-hi-{i}", 0.95)
    scenario.pool("pool-lo-0", 0.5).pool("pool-lo-1", 0.12, attempts=1)
    scenario.pool("pool-unpredicted", None)
    scenario.add(ledger_line(_ref("val-open"), role="validation"))
    scenario.add(
        ledger_line(_ref("pool-human"), label=human, iteration=0),
        _prediction("pool-human", 0.99, [[0, 0.99, 1, 1, 9, 9]]),
    )
    scenario.add(
        ledger_line(_ref("test-0"), label=human, role="test"),
        _prediction("test-0", 0.99, [[0, 0.99, 1, 1, 9, 9]]),
    )
    scenario.add(
        ledger_line(_ref("pool-missing")),
        {"id": record_id(_ref("pool-missing")), "image_wh": WH, "missing": True},
    )
    config = make_config(min_validation=20, target_value=0.6, confidence_level=0.9)
    run = make_run(scenario.lines, config, iteration=1)
    return run, config, scenario


def test_filter_low_confidence_auto_labels_pool_images_above_the_calibrated_threshold(
    tmp_path, iteration, read_jsonl
):
    # GIVEN validation images that calibrate to 0.9 and pool images at 0.95, 0.5 and 0.12
    run, config, scenario = iteration
    # WHEN the filter runs
    after = filter_low_confidence(run, config, scenario.inference(tmp_path))
    # THEN the confident pool images carry machine labels, the others only their confidence
    lines = _by_name(read_jsonl, after.ledger)
    for i in range(3):
        line = lines[f"pool-hi-{i}"]
        meta = line["boxes-metadata"]
        assert meta["human-annotated"] == "no"
        assert meta["job-name"] == f"boxloop/{MODEL}"
        assert meta["objects"] == [{"confidence": 0.97}, {"confidence": 0.91}]
        assert meta["class-map"] == {"0": "car", "2": "bike"}
        assert line["boxes"]["annotations"] == [
            {"class_id": 2, "left": 10, "top": 20, "width": 100, "height": 200},
            {"class_id": 0, "left": 300, "top": 200, "width": 100, "height": 60},
        ]
        assert line["boxes"]["image_size"][0]["width"] == 640
        assert line["boxloop"] == {
            "iteration": 1,
            "confidence": 0.95,
            "threshold": 0.95,
            "model": MODEL,
        }
    assert "boxes" not in lines["pool-lo-0"]
    # the size post-processing read is kept, so the next round's inference reads no header
    assert lines["pool-lo-0"]["boxloop"] == {"confidence": 0.5, "image_wh": WH}
    assert lines["pool-lo-1"]["boxloop"] == {"confidence": 0.12, "attempts": 1, "image_wh": WH}
    assert after.counts["auto"] == 3
    assert after.model.to_json() == {
        "name": MODEL,
        "artifacts": "s3://b/model.tar.gz",
        "threshold": 0.95,
        "deferred_threshold": None,
        "gate": True,
    }
    assert (after.iteration, after.decision, after.stop_reason) == (2, "continue", None)


def test_filter_low_confidence_defers_auto_labels_while_a_later_model_will_be_trained(
    tmp_path, iteration, read_jsonl
):
    # GIVEN the calibrated 0.9 threshold at iteration 1 of 10, with defer_auto_labels
    run, config, scenario = iteration
    config = dataclasses.replace(config, defer_auto_labels=True)
    # WHEN the filter runs
    after = filter_low_confidence(run, config, scenario.inference(tmp_path))
    # THEN no image is auto-labeled, and the report and progress say what was held back
    lines = _by_name(read_jsonl, after.ledger)
    assert all("boxes" not in lines[f"pool-hi-{i}"] for i in range(3))
    assert lines["pool-hi-0"]["boxloop"] == {"confidence": 0.95, "image_wh": WH}
    assert after.counts["auto"] == 0
    assert (after.model.threshold, after.model.deferred_threshold) == (None, 0.95)
    assert after.model.would_be_threshold == 0.95  # the next audit samples the held-back
    calibration = _report(after)["calibration"]
    assert (calibration["threshold"], calibration["applied_threshold"]) == (0.95, None)
    assert calibration["deferred"] is True
    assert after.decision == "continue"


@pytest.mark.parametrize(
    "last",
    [
        # the next iteration only sends the rest to humans: no model after this one
        {"max_iterations": 3, "finish_with_humans": True},
        # this is the last iteration
        {"max_iterations": 2},
        # the human label budget stops the loop here
        {"human_label_budget": N_GOOD + N_BAD},
    ],
)
def test_filter_low_confidence_applies_a_deferred_threshold_with_the_last_model(
    tmp_path, iteration, read_jsonl, last
):
    # GIVEN defer_auto_labels at iteration 1, when no model will be trained after this one
    run, config, scenario = iteration
    config = dataclasses.replace(config, defer_auto_labels=True, **last)
    # WHEN the filter runs
    after = filter_low_confidence(run, config, scenario.inference(tmp_path))
    # THEN it auto-labels as without deferral
    lines = _by_name(read_jsonl, after.ledger)
    assert all(lines[f"pool-hi-{i}"]["boxes-metadata"]["human-annotated"] == "no" for i in range(3))
    assert after.counts["auto"] == 3
    assert (after.model.threshold, after.model.deferred_threshold) == (0.95, None)
    assert _report(after)["calibration"]["deferred"] is False


def test_filter_low_confidence_leaves_human_validation_test_and_missing_images_alone(
    tmp_path, iteration, read_jsonl
):
    run, config, scenario = iteration
    before = _by_name(read_jsonl, run.ledger)
    after = _by_name(
        read_jsonl, filter_low_confidence(run, config, scenario.inference(tmp_path)).ledger
    )
    untouched = [n for n in before if n.startswith(("val-", "test-"))]
    untouched += ["pool-human", "pool-missing", "pool-unpredicted"]
    for name in untouched:
        assert after[name] == before[name], name


def test_filter_low_confidence_writes_the_iteration_report(tmp_path, iteration):
    run, config, scenario = iteration
    after = filter_low_confidence(run, config, scenario.inference(tmp_path))
    report = _report(after)
    calibration = report["calibration"]
    assert (calibration["threshold"], calibration["applied_threshold"]) == (0.95, 0.95)
    assert calibration["n_validation"] == N_GOOD + N_BAD
    assert calibration["n_accepted"] == N_GOOD
    assert calibration["curve"] == [[0.95, 1.0, 0.5], [0.5, 0.5, 1.0]]
    # the typed decision: the fixed sequence passed 0.95 and stopped at 0.5
    decision = Decision.from_json(report["auto_label"])
    assert decision.threshold == 0.95
    assert decision.rule == "fixed_sequence"
    assert [(t.threshold, t.passed) for t in decision.tested] == [(0.95, True), (0.5, False)]
    assert decision.n_pool_accepted == 3
    assert decision.accepted.images == N_GOOD
    assert decision.accepted.box_accuracy == 1.0
    histogram = report["confidence_histogram"]
    assert len(histogram) == HISTOGRAM_BINS
    assert sum(histogram) == 5  # the predicted, unlabeled pool images
    assert (histogram[19], histogram[10], histogram[2]) == (3, 1, 1)
    assert report["auto_labeled"] == 3
    assert report["iteration"] == 1
    assert report["cost_to_date"]["auto_labels"] == 3
    assert report["decision"] == "continue"


def test_filter_low_confidence_auto_labels_nothing_when_the_quality_gate_failed(
    tmp_path, iteration, read_jsonl
):
    run, config, scenario = iteration
    after = filter_low_confidence(run, config, scenario.inference(tmp_path, passed=False))
    lines = _by_name(read_jsonl, after.ledger)
    assert not any(
        line.get("boxes-metadata", {}).get("human-annotated") == "no" for line in lines.values()
    )
    assert lines["pool-hi-0"]["boxloop"] == {"confidence": 0.95, "image_wh": WH}  # ranked next
    assert after.counts["auto"] == 0
    assert after.model.threshold is None
    assert after.model.would_be_threshold is None  # an untrusted model: nothing to audit
    assert after.model.gate is False
    report = _report(after)
    assert report["calibration"]["threshold"] is None
    assert report["calibration"]["applied_threshold"] is None
    assert "quality gate" in report["auto_label"]["reason"]


def test_filter_low_confidence_auto_labels_nothing_below_min_validation(
    tmp_path, iteration, make_config, read_jsonl
):
    run, _, scenario = iteration
    config = make_config(min_validation=41)  # one more than the 40 validation images
    after = filter_low_confidence(run, config, scenario.inference(tmp_path))
    assert after.counts["auto"] == 0
    assert after.model.threshold is None


@pytest.mark.parametrize(
    ("fixed", "auto"),
    [
        (0.5, 4),  # the AWS samples' fixed cut: the unsure 0.5 image is auto-labeled too
        (0.96, 0),  # a cut above every pool confidence labels nothing
    ],
)
def test_filter_low_confidence_uses_fixed_threshold_instead_of_calibration(
    tmp_path, iteration, make_config, fixed, auto
):
    # GIVEN a run configured with a fixed score cut instead of a calibrated threshold
    run, _, scenario = iteration
    config = make_config(min_validation=20, fixed_threshold=fixed)
    # WHEN the step runs
    after = filter_low_confidence(run, config, scenario.inference(tmp_path))
    # THEN the cut is applied as given, whatever calibration would have chosen
    assert after.model.threshold == fixed
    assert after.model.would_be_threshold == fixed
    assert after.counts["auto"] == auto


def test_filter_low_confidence_runs_without_predictions(
    tmp_path, scenario, make_config, make_run, read_jsonl
):
    # GIVEN an iteration where batch transform had nothing to predict (inference count 0)
    scenario.validation().pool("pool-0", None)
    config = make_config()
    run = make_run(scenario.lines, config)
    inference = {**scenario.inference(tmp_path), "count": 0}
    # WHEN the filter runs THEN nothing is calibrated or auto-labeled, and the loop goes on
    after = filter_low_confidence(run, config, inference)
    assert read_jsonl(after.ledger) == read_jsonl(run.ledger)
    assert _report(after)["calibration"]["n_validation"] == 0
    assert after.decision == "continue"


def _stop_case(scenario: Scenario, case: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ledger additions, config overrides and run-state keywords for one stop rule."""
    scenario.validation()
    if case == "all labeled":
        scenario.pool("pool-hi", 0.95)
        return {}, {}
    if case == "exhausted":
        scenario.pool("pool-tired", 0.5, attempts=2)
        return {"max_label_attempts": 2}, {}
    scenario.pool("pool-lo", 0.5)
    human = N_GOOD + N_BAD
    no_progress = {"counts": {"human_before_iteration": human, "auto_before_iteration": 0}}
    return {
        "continue": ({}, no_progress),
        "max_iterations": ({"max_iterations": 3}, {"iteration": 2}),
        "budget": ({"human_label_budget": human}, {}),
        "cost cap": ({"cost_cap_usd": 10.0}, {}),  # 40 human labels at $0.26 = $10.40
        "patience": ({"patience": 2}, {**no_progress, "stalled": 1}),
    }[case]


@pytest.mark.parametrize(
    ("case", "decision", "reason", "stalled"),
    [
        # no rule fires: one iteration without progress is within patience 2
        ("continue", "continue", None, 1),
        # the last pool image was auto-labeled
        ("all labeled", "finalize", "all images labeled", 0),
        # what is left failed labeling max_label_attempts times
        ("exhausted", "finalize", "failed labeling too often", 0),
        # iteration 2 is the third of max_iterations 3
        ("max_iterations", "finalize", "max_iterations (3) reached", 0),
        # as many human labels as the budget
        ("budget", "finalize", "human_label_budget (40) used", 0),
        # the labels so far cost more than the cap
        ("cost cap", "finalize", "cost_cap_usd (10.0) reached", 0),
        # the second iteration in a row without a new label
        ("patience", "finalize", "no new labels for 2 iterations", 2),
    ],
)
def test_filter_low_confidence_applies_stop_rules(
    tmp_path, scenario, make_config, make_run, case, decision, reason, stalled
):
    overrides, state = _stop_case(scenario, case)
    config = make_config(**overrides)
    run = make_run(scenario.lines, config, **state)
    after = filter_low_confidence(run, config, scenario.inference(tmp_path))
    assert after.decision == decision
    assert (after.stop_reason is None) == (reason is None)
    if reason is not None:
        assert reason in after.stop_reason
    assert after.stalled == stalled
    assert _report(after)["stop_reason"] == after.stop_reason


def test_filter_low_confidence_counts_a_stalled_iteration_after_a_fruitless_merge(
    tmp_path, scenario, make_config, make_run
):
    # GIVEN an iteration that ends with one open pool image the model is unsure about
    scenario.validation().pool("pool-lo", 0.5)
    config = make_config(patience=1)
    first = filter_low_confidence(
        make_run(scenario.lines, config), config, scenario.inference(tmp_path)
    )
    assert first.decision == "continue"  # its labels were new in iteration 0
    # WHEN the next labeling job returns nothing (the task expired) and the model stays unsure
    job = tmp_path / "job.manifest"
    job.write_text(
        json.dumps({"source-ref": _ref("pool-lo"), "boxloop": {}}) + "\n", encoding="utf-8"
    )
    merged = merge_human_labels(first, config, {"input_manifest": str(job), "result": {}})
    second = filter_low_confidence(merged, config, scenario.inference(tmp_path))
    # THEN the iteration counts as one without progress, and patience 1 stops the loop
    assert second.stalled == 1
    assert second.decision == "finalize"
    assert "no new labels" in second.stop_reason


def test_filter_low_confidence_rejects_an_auto_label_class_outside_the_label_config(
    tmp_path, scenario, make_config, make_run, ledger_line
):
    # GIVEN a confident pool image whose prediction has class 5 (the run has 3 classes)
    scenario.validation()
    scenario.add(
        ledger_line(_ref("pool-odd")), _prediction("pool-odd", 0.95, [[5, 0.99, 1, 1, 9, 9]])
    )
    config = make_config(min_validation=20, target_value=0.6, confidence_level=0.9)
    run = make_run(scenario.lines, config)
    # WHEN / THEN the filter refuses to write that auto-label, naming the image and the file
    with pytest.raises(ManifestError, match=r"predictions\.jsonl: kept\[0\] image .*: class 5"):
        filter_low_confidence(run, config, scenario.inference(tmp_path))


def test_filter_low_confidence_leaves_deferred_would_be_labels_to_the_next_audit(
    tmp_path, scenario, make_config, make_run, gt_fields, ledger_line
):
    # GIVEN a deferred 0.95 threshold over 3 open images at 0.95 and 3 at 0.1, a complete
    # seed, and a batch of 4 with a 50 % audit share
    scenario.validation()
    scenario.add(ledger_line(_ref("seed-0"), label=gt_fields(tuple(WH), [(0, 5, 5, 9, 9)])))
    for i in range(3):
        scenario.pool(f"pool-hi-{i}", 0.95).pool(f"pool-low-{i}", 0.1)
    config = make_config(
        defer_auto_labels=True, seed_size=1, batch_size=4, audit_share=0.5, min_validation=20
    )
    run = make_run(scenario.lines, config, iteration=1)
    after = filter_low_confidence(run, config, scenario.inference(tmp_path))
    assert (after.model.threshold, after.model.would_be_threshold) == (None, 0.95)
    # WHEN the next batch is prepared
    labeling = prepare_labeling(after, config)
    # THEN two would-be auto-labels are audited, and two of the least confident images learn
    chosen = {Path(x["source-ref"]).stem: x["boxloop"] for x in _read(labeling["input_manifest"])}
    audited = {name for name, provenance in chosen.items() if provenance.get("audit")}
    assert len(audited) == 2
    assert all(name.startswith("pool-hi-") for name in audited)
    learning = set(chosen) - audited
    assert len(learning) == 2
    assert all(name.startswith("pool-low-") for name in learning)


def _read(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def test_filter_low_confidence_reports_what_the_audit_measured(
    tmp_path, scenario, make_config, make_run, gt_fields, ledger_line
):
    # GIVEN four audited images humans labeled in iteration 2, whose would-be auto-labels
    # (the iteration-1 model's predictions) were right for three of them
    config = make_config(min_validation=20, target_metric="exact_match", target_value=0.9)
    scenario.validation()
    previous = []
    for i in range(4):
        name = f"audit-{i}"
        truth = (0, 100, 100, 100, 100) if i < 3 else (1, 300, 300, 100, 100)
        scenario.add(
            ledger_line(
                _ref(name),
                label=gt_fields(tuple(WH), [truth]),
                role="validation",
                audit=True,
                iteration=2,
            ),
            _prediction(name, 0.9, [[0, 0.9, 100, 100, 200, 200]]),
        )
        previous.append(_prediction(name, 0.97, [[0, 0.97, 100, 100, 200, 200]]))
    scenario.pool("pool-0", 0.95)
    run = make_run(
        scenario.lines, config, iteration=2, model=ModelState(name="m1", deferred_threshold=0.96)
    )
    folder = Path(run.paths.step(1, "postprocess"))
    folder.mkdir(parents=True)
    ordered = sorted(previous, key=lambda p: p["id"])
    (folder / PREDICTIONS_FILE).write_text("".join(json.dumps(p) + "\n" for p in ordered))
    # WHEN the filter runs
    after = filter_low_confidence(run, config, scenario.inference(tmp_path))
    # THEN the report sets the audit's estimate (3 of 4 exact, Clopper-Pearson 90 % interval)
    # against iteration 1's promise, and the audited images stay out of the decision
    audit = _report(after)["audit"]
    assert (audit["for_iteration"], audit["threshold"]) == (1, 0.96)
    assert audit["promise"] == {"metric": "exact_match", "target": 0.9, "confidence_level": 0.9}
    round_ = Estimate.from_json(audit["round"])
    assert (round_.images, round_.image_accuracy) == (4, 0.75)
    low, high = round_.image_interval
    assert low == pytest.approx(0.2486, abs=1e-3)
    assert high == pytest.approx(0.9873, abs=1e-3)
    assert (round_.boxes, round_.box_accuracy) == (5, 0.6)  # 3 pairs, 1 missed, 1 extra
    assert Estimate.from_json(audit["total"]).images == 4
    assert _report(after)["auto_label"]["n_validation"] == N_GOOD + N_BAD


def test_filter_low_confidence_finalizes_when_only_unlabeled_test_images_are_left(
    tmp_path, scenario, make_config, make_run, ledger_line
):
    # GIVEN a run with test_fraction > 0: test images only measure, nothing ever labels them,
    # and the last open pool image is confident
    scenario.validation().pool("pool-hi", 0.95)
    for i in range(3):
        scenario.add(ledger_line(_ref(f"test-{i}"), role="test"))
    config = make_config(test_fraction=0.1)
    run = make_run(scenario.lines, config)
    # WHEN the filter auto-labels it
    after = filter_low_confidence(run, config, scenario.inference(tmp_path))
    # THEN every image the loop labels is labeled: "all labeled" fires (the ASL's AllLabeled
    # Choice reads counts.unlabeled), and the test images are counted on their own
    assert after.counts["unlabeled"] == 0
    assert after.counts["unlabeled_test"] == 3
    assert after.decision == "finalize"
    assert after.stop_reason.startswith("all images labeled")
