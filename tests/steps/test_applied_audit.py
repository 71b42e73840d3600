"""The audit of APPLIED auto-labels: chosen, sent, merged, scored and reported.

A round that applies auto-labels hands them to the user; the next round sends a uniform random
``audit_share`` of them to humans, whose labels replace them and measure what was delivered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from boxloop.core.decision import Estimate
from boxloop.core.manifests import record_id
from boxloop.core.model_state import ModelState
from boxloop.core.selection import sample_for_audit
from boxloop.labeling.preannotations import PREANNOTATIONS_KEY
from boxloop.steps import prepare_labeling as prepare_labeling_step
from boxloop.steps.audit import audit_report
from boxloop.steps.filter_low_confidence import filter_low_confidence
from boxloop.steps.finalize import finalize
from boxloop.steps.merge_human_labels import merge_human_labels
from boxloop.steps.postprocess import PREDICTIONS_FILE
from boxloop.steps.prepare_labeling import choose_for_humans, prepare_labeling

WH = (640, 480)
TRUE_BOX = (0, 100, 100, 100, 100)
"""(class, left, top, width, height): what the applied auto-labels and the humans agree on."""
MODEL = "bl-abcd-001-train"
N_APPLIED = 10


def _ref(name: str) -> str:
    return f"s3://imgs/{name}.jpg"


def _rid(name: str) -> str:
    return record_id(_ref(name))


def _prediction(name: str, confidence: float, box: tuple[int, ...] = TRUE_BOX) -> dict[str, Any]:
    """A ``predictions.jsonl`` line: one kept box (pixel xyxy) at ``confidence``."""
    c, x, y, w, h = box
    return {
        "id": _rid(name),
        "image_wh": list(WH),
        "confidence": confidence,
        "is_empty": False,
        "n_ambiguous": 0,
        "kept": [[c, confidence, x, y, x + w, y + h]],
    }


def _write_predictions(run, iteration: int, predictions: list[dict[str, Any]]) -> None:
    folder = Path(run.paths.step(iteration, "postprocess"))
    folder.mkdir(parents=True, exist_ok=True)
    ordered = sorted(predictions, key=lambda p: p["id"])
    (folder / PREDICTIONS_FILE).write_text("".join(json.dumps(p) + "\n" for p in ordered))


@pytest.fixture
def after_applying(make_config, make_run, ledger_line, gt_fields):
    """Iteration 2, after iteration 1 applied threshold 0.9 to ``applied-0..9``.

    Also in the ledger: a complete seed, a validation label, two auto-labels of iteration 0
    (audited back then, not now), a human label of iteration 1, and five open pool images
    below the threshold (so no would-be audit). The iteration-1 predictions are written: the
    applied labels came from them, the open images get pre-annotations from them.
    """

    def build(**overrides: Any):
        settings = {"seed_size": 4, "batch_size": 3, "audit_share": 0.25, **overrides}
        config = make_config(**settings)
        machine = gt_fields(WH, [TRUE_BOX], human=False, scores=[0.95], job=f"boxloop/{MODEL}")
        lines = [
            *(
                ledger_line(_ref(f"seed-{i}"), label=gt_fields(WH, [TRUE_BOX]), role="seed")
                for i in range(4)
            ),
            ledger_line(_ref("val-0"), label=gt_fields(WH, [TRUE_BOX]), role="validation"),
            *(
                ledger_line(
                    _ref(f"applied-{i}"),
                    label=machine,
                    iteration=1,
                    confidence=0.95,
                    threshold=0.9,
                    model=MODEL,
                )
                for i in range(N_APPLIED)
            ),
            *(
                ledger_line(_ref(f"older-{i}"), label=machine, iteration=0, threshold=0.9)
                for i in range(2)
            ),
            ledger_line(_ref("human-1"), label=gt_fields(WH, [TRUE_BOX]), iteration=1),
            *(ledger_line(_ref(f"open-{i}"), confidence=0.1 * (i + 1)) for i in range(5)),
        ]
        model = ModelState(name=MODEL, threshold=0.9)
        run = make_run(lines, config, iteration=2, model=model)
        _write_predictions(
            run,
            1,
            [_prediction(f"applied-{i}", 0.95) for i in range(N_APPLIED)]
            + [_prediction(f"open-{i}", 0.1 * (i + 1)) for i in range(5)],
        )
        return run, config

    return build


def _audits(chosen: dict[str, dict[str, Any]]) -> set[str]:
    return {rid for rid, changes in chosen.items() if changes.get("audit")}


APPLIED_IDS = [_rid(f"applied-{i}") for i in range(N_APPLIED)]


# Choose


def test_choose_audits_a_keyed_hash_sample_of_the_labels_the_last_round_applied(after_applying):
    # GIVEN 10 auto-labels applied in iteration 1 and a 25 % audit share
    run, config = after_applying()
    # WHEN iteration 2 chooses its images
    chosen = choose_for_humans(run, config)
    # THEN 3 of them (2.5 rounded half up) are audited: the sample drawn by the audit hash,
    # never an older auto-label or a human label; the batch of 3 learns as before
    audits = _audits(chosen)
    assert audits == set(sample_for_audit(APPLIED_IDS, 3, f"{config.seed}-2"))
    assert len(chosen) == 3 + 3
    assert set(chosen) - audits <= {_rid(f"open-{i}") for i in range(5)}
    # AND a re-run picks the same images
    assert choose_for_humans(run, config) == chosen


@pytest.mark.parametrize(
    ("share", "budget_left", "n_audit", "n_batch"),
    [
        (0.25, None, 3, 3),  # no budget: the audit and the whole batch
        (0.01, None, 1, 3),  # 0.1 rounds to 0: at least one audit
        (0.0, None, 0, 3),  # audit_share 0: no audit
        (1.0, None, 10, 3),  # audit everything applied
        (0.25, 4, 3, 1),  # the budget: audit first, the batch takes what is left
        (0.25, 2, 2, 0),  # the budget does not even cover the audit
        (0.25, 0, 0, 0),  # budget used up: nothing goes
    ],
)
def test_choose_sizes_the_applied_audit_by_share_and_budget(
    after_applying, share, budget_left, n_audit, n_batch
):
    humans_so_far = 4 + 1 + 1  # seed, validation, human-1
    budget = None if budget_left is None else humans_so_far + budget_left
    run, config = after_applying(audit_share=share, human_label_budget=budget)
    chosen = choose_for_humans(run, config)
    assert len(_audits(chosen)) == n_audit
    assert _audits(chosen) <= set(APPLIED_IDS)
    assert len(chosen) - n_audit == n_batch


def test_choose_audits_nothing_applied_when_the_last_round_applied_nothing(
    make_config, make_run, ledger_line, gt_fields
):
    # GIVEN iteration 2 whose only auto-labels came from iteration 0
    config = make_config(seed_size=1, audit_share=1.0)
    machine = gt_fields(WH, [TRUE_BOX], human=False, scores=[0.95])
    lines = [
        ledger_line(_ref("seed"), label=gt_fields(WH, [TRUE_BOX]), role="seed"),
        ledger_line(_ref("old"), label=machine, iteration=0, threshold=0.9),
        ledger_line(_ref("open"), confidence=0.2),
    ]
    run = make_run(lines, config, iteration=2)
    # THEN no audit goes
    assert _audits(choose_for_humans(run, config)) == set()


# Send


def test_input_manifest_sends_the_audited_auto_labels_bare_and_without_suggestions(
    after_applying, read_jsonl
):
    # GIVEN pre-annotations on (the default) and iteration 1's predictions for every image
    run, config = after_applying()
    assert config.preannotate == "pool"
    # WHEN iteration 2's labeling job is prepared
    labeling = prepare_labeling(run, config)
    lines = {line["id"]: line for line in read_jsonl(labeling["input_manifest"])}
    # THEN the audited auto-labels are in it although labeled: no label, no model boxes,
    # marked audit; the pool images of the batch get their suggestions as before
    audits = {rid for rid, line in lines.items() if line["boxloop"].get("audit")}
    assert len(audits) == 3
    assert audits <= set(APPLIED_IDS)
    for rid in audits:
        assert "boxes" not in lines[rid]
        assert "boxes-metadata" not in lines[rid]
        assert PREANNOTATIONS_KEY not in lines[rid]
    assert all(PREANNOTATIONS_KEY in lines[rid] for rid in set(lines) - audits)
    assert labeling["count"] == 6


def test_input_manifest_never_sends_a_human_labeled_image_even_if_chosen_as_an_audit(
    after_applying, read_jsonl, monkeypatch
):
    # GIVEN a selection that (wrongly) names a human label as an audit, an auto-label that is
    # no audit, and an audited auto-label
    run, config = after_applying()
    chosen = {
        _rid("human-1"): {"audit": True},
        _rid("applied-0"): {},
        _rid("applied-1"): {"audit": True},
    }
    monkeypatch.setattr(prepare_labeling_step, "choose_for_humans", lambda run, config: chosen)
    # WHEN the input manifest is written
    labeling = prepare_labeling(run, config)
    # THEN only the audited auto-label goes
    assert [line["id"] for line in read_jsonl(labeling["input_manifest"])] == [_rid("applied-1")]


# Merge


def _job_output(labeling: dict[str, Any], tmp_path: Path, gt_fields, *, fail: set[str]) -> dict:
    """Label every input image with ``TRUE_BOX`` but the ``fail`` ids (failure-reason)."""
    out = []
    for line in map(json.loads, Path(labeling["input_manifest"]).read_text().splitlines()):
        if line["id"] in fail:
            meta = {"failure-reason": "ClientError: expired", "job-name": "labeling-job/j"}
            out.append({**line, "boxes-metadata": meta})
        else:
            out.append({**line, **gt_fields(WH, [TRUE_BOX], job="labeling-job/j")})
    path = tmp_path / "job-output.manifest"
    path.write_text("".join(json.dumps(x) + "\n" for x in out))
    return {**labeling, "result": {"status": "Completed", "output_manifest": str(path)}}


def test_merge_replaces_audited_auto_labels_and_keeps_them_when_the_audit_fails(
    after_applying, tmp_path, gt_fields, read_jsonl
):
    # GIVEN iteration 2's job: 3 audited auto-labels, one of which expired, and a batch of 3
    run, config = after_applying()
    labeling = prepare_labeling(run, config)
    audits = sorted(
        line["id"]
        for line in read_jsonl(labeling["input_manifest"])
        if line["boxloop"].get("audit")
    )
    failed = audits[0]
    # WHEN its output is merged
    merged = merge_human_labels(
        run, config, _job_output(labeling, tmp_path, gt_fields, fail={failed})
    )
    lines = {line["id"]: line for line in read_jsonl(merged.ledger)}
    # THEN a human label replaced each answered audit: validation, audit, iteration 2, and
    # the threshold and model of the auto-label it replaced (which decision it tests)
    for rid in audits[1:]:
        assert lines[rid]["boxes-metadata"]["human-annotated"] == "yes"
        provenance = lines[rid]["boxloop"]
        assert (provenance["role"], provenance["audit"], provenance["iteration"]) == (
            "validation",
            True,
            2,
        )
        assert (provenance["threshold"], provenance["model"]) == (0.9, MODEL)
    # AND the expired audit keeps its auto-label, untouched but for one more attempt
    kept = lines[failed]
    assert kept["boxes-metadata"]["human-annotated"] == "no"
    assert kept["boxes-metadata"]["job-name"] == f"boxloop/{MODEL}"
    assert kept["boxes"]["annotations"] == [
        {"class_id": 0, "left": 100, "top": 100, "width": 100, "height": 100}
    ]
    assert kept["boxloop"].get("audit") is None
    assert (kept["boxloop"]["iteration"], kept["boxloop"]["attempts"]) == (1, 1)
    # AND the counts move: 2 audits and 3 batch images human, 2 auto-labels fewer
    assert merged.counts["human"] == 6 + 2 + 3
    assert merged.counts["auto"] == N_APPLIED + 2 - 2
    assert merged.counts["unlabeled"] == 5 - 3


# Score and report


def _merge_all(after_applying, tmp_path, gt_fields, *, wrong: int = 0, **overrides):
    """Iteration 2 prepared and merged; ``wrong`` audited images labeled with another class."""
    run, config = after_applying(**overrides)
    labeling = prepare_labeling(run, config)
    merged = merge_human_labels(run, config, _job_output(labeling, tmp_path, gt_fields, fail=set()))
    if wrong:
        path = Path(merged.ledger)
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        audited = [x for x in lines if x["boxloop"].get("audit")]
        for line in audited[:wrong]:
            line["boxes"]["annotations"][0]["class_id"] = 1
            line["boxes-metadata"]["class-map"] = {"1": "person"}
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return merged, config


def test_audit_report_scores_applied_audits_against_the_labels_applied(
    after_applying, tmp_path, gt_fields
):
    # GIVEN iteration 2's 3 audited auto-labels merged, humans disagreeing on one, and an
    # iteration-1 report that holds 2 would-be audits in the older five-number rows
    merged, config = _merge_all(after_applying, tmp_path, gt_fields, wrong=1)
    earlier = Path(merged.paths.step(1, "report", "report.json"))
    earlier.parent.mkdir(parents=True)
    earlier.write_text(json.dumps({"audit": {"all_evidence": [[0.8, 1.0, 1, 1.0, False]] * 2}}))
    # WHEN the audit is scored
    block = audit_report(merged, config)
    # THEN this round: 3 applied audits, 2 of them right; in all, 2 would-be ones more
    round_ = Estimate.from_json(block["round"])
    assert (round_.images, round_.image_accuracy) == (3, pytest.approx(2 / 3))
    assert block["applied"] == {"round": 3, "total": 3}
    assert block["would_be"] == {"round": 0, "total": 2}
    assert Estimate.from_json(block["total"]).images == 5
    delivered = Estimate.from_json(block["delivered"])
    assert (delivered.images, delivered.image_accuracy) == (3, pytest.approx(2 / 3))
    assert delivered.image_interval is not None
    assert (block["for_iteration"], block["threshold"]) == (1, 0.9)


def test_finalize_reports_the_last_rounds_applied_audits_next_to_the_promise(
    after_applying, tmp_path, gt_fields
):
    # GIVEN the last human round merged and gone straight to Finalize (no filter after it),
    # iteration 1's report holding one earlier applied audit
    merged, config = _merge_all(after_applying, tmp_path, gt_fields)
    earlier = Path(merged.paths.step(1, "report", "report.json"))
    earlier.parent.mkdir(parents=True)
    earlier.write_text(
        json.dumps({"iteration": 1, "audit": {"all_evidence": [[0.97, 1.0, 1, 1.0, False, True]]}})
    )
    # WHEN the run is finalized
    result = finalize(merged, config)
    report = json.loads(Path(result["report"]).read_text())
    # THEN its audit block scores this round's 3 audits and counts every round's
    audit = report["audit"]
    assert Estimate.from_json(audit["round"]).images == 3
    assert Estimate.from_json(audit["total"]).images == 4
    assert audit["applied"] == {"round": 3, "total": 4}
    delivered = Estimate.from_json(audit["delivered"])
    assert (delivered.images, delivered.image_accuracy) == (4, 1.0)
    assert audit["promise"] == {
        "metric": config.calibration.metric,
        "target": config.calibration.resolved_target,
        "confidence_level": config.calibration.confidence_level,
    }


def test_finalize_after_a_filter_carries_the_last_reports_audit_total(
    make_config, make_run, ledger_line, gt_fields
):
    # GIVEN a run that reached Finalize from a filter (iteration 3; its report is iteration 2)
    config = make_config()
    run = make_run([ledger_line(_ref("a"), label=gt_fields(WH, [TRUE_BOX]))], config, iteration=3)
    report_2 = Path(run.paths.step(2, "report", "report.json"))
    report_2.parent.mkdir(parents=True)
    rows = [[0.97, 1.0, 1, 1.0, False, True], [0.97, 0.0, 1, 0.0, False, False]]
    report_2.write_text(json.dumps({"iteration": 2, "audit": {"all_evidence": rows}}))
    # WHEN it is finalized THEN nothing new is scored and the totals are the report's
    audit = json.loads(Path(finalize(run, config)["report"]).read_text())["audit"]
    assert Estimate.from_json(audit["round"]).images == 0
    assert Estimate.from_json(audit["total"]).images == 2
    assert (audit["applied"], audit["would_be"]) == (
        {"round": 0, "total": 1},
        {"round": 0, "total": 1},
    )


# All auto-labeled: one audit-only round


def _all_confident(make_config, make_run, ledger_line, gt_fields, tmp_path, **overrides):
    """Iteration 1 with every open image confident under a fixed 0.5 cut; its inference block."""
    config = make_config(
        seed_size=1,
        fixed_threshold=0.5,
        defer_auto_labels=False,
        finish_with_humans=False,
        max_iterations=2,
        **overrides,
    )
    lines = [
        ledger_line(_ref("val-0"), label=gt_fields(WH, [TRUE_BOX]), role="validation"),
        ledger_line(_ref("seed-0"), label=gt_fields(WH, [TRUE_BOX]), role="seed"),
    ]
    lines += [ledger_line(_ref(f"pool-{i}")) for i in range(4)]
    run = make_run(lines, config, iteration=1)
    folder = tmp_path / "post"
    folder.mkdir()
    preds = sorted(
        [_prediction("val-0", 0.9)] + [_prediction(f"pool-{i}", 0.9) for i in range(4)],
        key=lambda p: p["id"],
    )
    (folder / PREDICTIONS_FILE).write_text("".join(json.dumps(p) + "\n" for p in preds))
    inference = {
        "count": len(preds),
        "gate": {"passed": True},
        "model_name": MODEL,
        "postprocess": {"output_path": f"{folder}/"},
    }
    return run, config, inference


@pytest.mark.parametrize(
    ("overrides", "decision"),
    [
        ({"audit_share": 0.25}, "continue"),  # the labels it applied still get their audit
        ({"audit_share": 0.0}, "finalize"),  # no audit wanted
        ({"audit_share": 0.25, "human_label_budget": 2}, "finalize"),  # no human label left
        ({"audit_share": 0.25, "cost_cap_usd": 0.01}, "finalize"),  # the cost cap is reached
    ],
)
def test_filter_goes_on_for_the_audit_when_its_labels_leave_nothing_unlabeled(
    make_config, make_run, ledger_line, gt_fields, tmp_path, overrides, decision
):
    # GIVEN the last round (max_iterations 2) auto-labeling every open image
    run, config, inference = _all_confident(
        make_config, make_run, ledger_line, gt_fields, tmp_path, **overrides
    )
    # WHEN the filter decides
    after = filter_low_confidence(run, config, inference)
    # THEN nothing is left unlabeled (the ASL's AllLabeled finalizes after the audit's merge),
    # and the loop goes on only for an audit it may pay for
    assert after.counts["unlabeled"] == 0
    assert after.counts["auto"] == 4
    assert after.decision == decision
    if decision == "continue":
        assert after.stop_reason is None
        # AND the next round sends the audit alone: one of the 4 labels, nothing to train on
        labeling = prepare_labeling(after, config)
        lines = Path(labeling["input_manifest"]).read_text().splitlines()
        assert [json.loads(x)["boxloop"]["audit"] for x in lines] == [True]
    else:
        assert after.stop_reason.startswith(("all images labeled", "human_label", "cost_cap"))
