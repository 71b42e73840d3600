"""Tests of boxloop.local.reporting: accuracy vs reference and the HTML run report."""

from __future__ import annotations

import base64
import json
import math
import random
import re
from typing import TYPE_CHECKING, Any

import pytest

from boxloop.core.boxes import Box
from boxloop.core.calibration import CalibrationConfig, ImageEvidence
from boxloop.core.cost import PriceTable, all_human_cost, iteration_cost, savings_fraction
from boxloop.core.decision import Decision, decide, estimate
from boxloop.core.detections import Detections
from boxloop.core.errors import ManifestError, NothingUsableError
from boxloop.core.formats.groundtruth import Label
from boxloop.core.manifests import record_id
from boxloop.core.records import Provenance, Record, record_to_json
from boxloop.local.reporting import evaluate_against_reference, write_html_report
from boxloop.steps.filter_low_confidence import calibration_view

if TYPE_CHECKING:
    from pathlib import Path

ATTR = "boxes"
CLASS_MAP = {0: "cat", 1: "dog"}
WH = (200, 100)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _box(
    x: float, y: float, class_id: int = 0, score: float | None = None, size: float = 40
) -> Box:
    return Box.from_xyxy((x, y, x + size, y + size), class_id, score)


def _label(ref: str, boxes: list[Box], *, human: bool, wh: tuple[int, int] = WH) -> Label:
    return Label(
        detections=Detections(record_id(ref), wh, tuple(boxes)),
        confidences=tuple(0.0 if human else (b.score or 0.0) for b in boxes),
        class_map=CLASS_MAP,
        human_annotated=human,
        job_name="job",
        creation_date="2024-01-01T00:00:00.000000",
    )


def _write_jsonl(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines),
        encoding="utf-8",
    )
    return path


def _output_line(
    ref: str,
    boxes: list[Box] | None,
    *,
    human: bool = False,
    iteration: int | None = 0,
    wh: tuple[int, int] = WH,
) -> dict[str, Any]:
    label = None if boxes is None else _label(ref, boxes, human=human, wh=wh)
    provenance = Provenance(role="pool", iteration=None if boxes is None else iteration)
    record = Record(id=record_id(ref), source_ref=ref, label=label, provenance=provenance)
    return record_to_json(record, ATTR)


def _reference_line(ref: str, boxes: list[Box], wh: tuple[int, int] = WH) -> dict[str, Any]:
    record = Record(id=record_id(ref), source_ref=ref, label=_label(ref, boxes, human=True, wh=wh))
    return record_to_json(record, ATTR)


# (name, reference boxes, output boxes, is exact): the per-image cases the evaluation must see.
CASES = [
    # every box matched with its class
    (
        "exact",
        [_box(10, 10), _box(100, 40, 1)],
        [_box(12, 10, 0, 0.9), _box(100, 42, 1, 0.8)],
        True,
    ),
    # one reference box has no prediction
    ("missed", [_box(10, 10), _box(100, 40, 1)], [_box(10, 10, 0, 0.9)], False),
    # a prediction with no reference box
    ("extra", [_box(10, 10)], [_box(10, 10, 0, 0.9), _box(120, 50, 0, 0.6)], False),
    # right place, wrong class
    ("wrong_class", [_box(10, 10)], [_box(10, 10, 1, 0.9)], False),
    # an empty image labeled empty
    ("empty", [], [], True),
    # an empty image with a hallucinated box
    ("empty_extra", [], [_box(50, 50, 0, 0.7)], False),
]


@pytest.fixture
def manifests(tmp_path: Path) -> tuple[Path, Path]:
    """Output and reference manifests over CASES (auto, iteration 1) plus special lines."""
    output, reference = [], []
    for name, ref_boxes, out_boxes, _ in CASES:
        uri = f"s3://bucket/images/{name}.jpg"
        output.append(_output_line(uri, out_boxes, iteration=1))
        reference.append(_reference_line(uri, ref_boxes))
    # human labels: one faithful, one noisy (a box shifted below IoU 0.5), made in iteration 0
    for name, shift in (("human_ok", 0), ("human_noisy", 25)):
        uri = f"s3://bucket/images/{name}.jpg"
        output.append(_output_line(uri, [_box(10 + shift, 10)], human=True, iteration=0))
        reference.append(_reference_line(uri, [_box(10, 10)]))
    # an auto label of iteration 2, exact
    output.append(_output_line("s3://bucket/images/late.jpg", [_box(5, 5, 1, 0.95)], iteration=2))
    reference.append(_reference_line("s3://bucket/images/late.jpg", [_box(5, 5, 1)]))
    # never labeled
    output.append(_output_line("s3://bucket/images/unlabeled.jpg", None))
    reference.append(_reference_line("s3://bucket/images/unlabeled.jpg", [_box(1, 1)]))
    # labeled but absent from the reference
    output.append(_output_line("s3://bucket/images/noref.jpg", [_box(1, 1, 0, 0.9)]))
    # the reference was labeled on a different image size
    output.append(_output_line("s3://bucket/images/resized.jpg", [_box(1, 1, 0, 0.9)]))
    reference.append(_reference_line("s3://bucket/images/resized.jpg", [_box(1, 1)], wh=(400, 200)))
    # in the reference only
    reference.append(_reference_line("s3://bucket/images/refonly.jpg", [_box(1, 1)]))
    # a bad reference line, reported and skipped
    reference.append('{"source-ref": 3}')
    return (
        _write_jsonl(tmp_path / "output.manifest", output),
        _write_jsonl(tmp_path / "reference.manifest", reference),
    )


@pytest.mark.parametrize(
    ("name", "ref_boxes", "out_boxes", "exact"), CASES, ids=[c[0] for c in CASES]
)
def test_evaluate_against_reference_exact_match_per_image_case(
    tmp_path: Path, name: str, ref_boxes: list[Box], out_boxes: list[Box], exact: bool
) -> None:
    uri = f"s3://bucket/{name}.jpg"
    output = _write_jsonl(tmp_path / "out.manifest", [_output_line(uri, out_boxes)])
    reference = _write_jsonl(tmp_path / "ref.manifest", [_reference_line(uri, ref_boxes)])

    result = evaluate_against_reference(output, reference, ATTR)

    assert result["auto"]["count"] == 1
    assert result["auto"]["exact_match"] == (1.0 if exact else 0.0)


def test_evaluate_against_reference_groups_and_counts(manifests: tuple[Path, Path]) -> None:
    output, reference = manifests

    result = evaluate_against_reference(output, reference, ATTR)

    n_exact_cases = sum(c[3] for c in CASES)
    assert result["images"] == len(CASES) + 6
    assert (result["unlabeled"], result["no_reference"], result["size_mismatch"]) == (1, 1, 1)
    assert result["reference_only"] == 1 + 1  # refonly, plus unlabeled (never compared)
    assert result["auto"]["count"] == len(CASES) + 1
    assert result["auto"]["exact"] == n_exact_cases + 1
    assert result["human"] == {**result["human"], "count": 2, "exact": 1, "exact_match": 0.5}
    assert result["all"]["count"] == len(CASES) + 3
    assert result["all"]["exact"] == n_exact_cases + 2
    assert result["reference"]["bad_lines"] == 1
    assert "source-ref" in result["reference"]["errors"][0]
    json.dumps(result)  # JSON-ready


def test_evaluate_against_reference_groups_auto_labels_by_iteration(
    manifests: tuple[Path, Path],
) -> None:
    result = evaluate_against_reference(*manifests, ATTR)

    by_iteration = {r["iteration"]: r for r in result["auto_by_iteration"]}
    assert sorted(by_iteration) == [1, 2]
    assert by_iteration[1]["count"] == len(CASES)
    assert by_iteration[1]["exact_match"] == pytest.approx(sum(c[3] for c in CASES) / len(CASES))
    assert (by_iteration[2]["exact_match"], by_iteration[2]["mean_iou"]) == (1.0, 1.0)


def test_evaluate_against_reference_mean_iou_and_map_when_labels_are_perfect(
    tmp_path: Path,
) -> None:
    refs = [f"s3://b/{k}.jpg" for k in range(3)]
    boxes = [[_box(10, 10), _box(100, 50, 1)], [_box(30, 20, 1)], []]
    output = _write_jsonl(
        tmp_path / "o",
        [
            _output_line(r, [b.with_score(0.9) for b in bs])
            for r, bs in zip(refs, boxes, strict=True)
        ],
    )
    reference = _write_jsonl(
        tmp_path / "r", [_reference_line(r, bs) for r, bs in zip(refs, boxes, strict=True)]
    )

    result = evaluate_against_reference(output, reference, ATTR)

    assert result["auto"] == {"count": 3, "exact": 3, "exact_match": 1.0, "mean_iou": 1.0}
    assert result["auto_map"] == pytest.approx({"map50": 1.0, "map50_95": 1.0})
    assert result["human"] == {"count": 0, "exact": 0, "exact_match": None, "mean_iou": None}


def test_evaluate_against_reference_map_penalizes_a_missed_box(tmp_path: Path) -> None:
    uri = "s3://b/x.jpg"
    output = _write_jsonl(tmp_path / "o", [_output_line(uri, [_box(10, 10, 0, 0.9)])])
    reference = _write_jsonl(tmp_path / "r", [_reference_line(uri, [_box(10, 10), _box(100, 50)])])

    result = evaluate_against_reference(output, reference, ATTR)

    assert result["auto_map"]["map50"] == pytest.approx(0.5, abs=0.01)
    assert result["auto"]["mean_iou"] == pytest.approx(0.5)


def test_evaluate_against_reference_reads_another_reference_attribute(tmp_path: Path) -> None:
    uri = "s3://b/x.jpg"
    output = _write_jsonl(tmp_path / "o", [_output_line(uri, [_box(10, 10, 0, 0.9)])])
    line = _reference_line(uri, [_box(10, 10)])
    renamed = {("truth" + k[len(ATTR) :] if k.startswith(ATTR) else k): v for k, v in line.items()}
    reference = _write_jsonl(tmp_path / "r", [renamed])

    result = evaluate_against_reference(output, reference, ATTR, reference_attribute="truth")

    assert result["auto"]["exact_match"] == 1.0


def test_evaluate_against_reference_raises_when_reference_has_no_label(tmp_path: Path) -> None:
    output = _write_jsonl(tmp_path / "o", [_output_line("s3://b/x.jpg", [])])
    reference = _write_jsonl(tmp_path / "r", [{"source-ref": "s3://b/x.jpg"}, "not json"])

    with pytest.raises(NothingUsableError, match="no line labeled under 'boxes'"):
        evaluate_against_reference(output, reference, ATTR)


def test_evaluate_against_reference_raises_naming_a_bad_output_line(tmp_path: Path) -> None:
    output = _write_jsonl(tmp_path / "o", [_output_line("s3://b/x.jpg", []), "{broken"])
    reference = _write_jsonl(tmp_path / "r", [_reference_line("s3://b/x.jpg", [])])

    with pytest.raises(ManifestError, match=r"o:2: "):
        evaluate_against_reference(output, reference, ATTR)


# --- HTML report --------------------------------------------------------------------------


def sample_report(n_iterations: int = 3) -> dict[str, Any]:
    """A final report.json as finalize writes it: 600 images, ``n_iterations`` iterations.

    Calibrations and costs come from the real core functions on seeded synthetic data (image
    accuracy rising with confidence, the model improving each iteration), so curves and
    numbers have the shapes a real run produces. Humans label 50 images per iteration.
    """
    rng = random.Random(7)
    prices = PriceTable.from_label_prices(human_label_usd=0.26, auto_label_usd=0.08)
    config = CalibrationConfig(
        metric="exact_match", target=0.85, confidence_level=0.8, min_validation=50
    )
    total, human, auto = 600, 100, 0
    per_iteration = []
    for k in range(n_iterations):
        pairs = []
        for _ in range(80):
            confidence = rng.betavariate(3 + k, 2)
            p_exact = 1 / (1 + math.exp(-14 * (confidence - 0.62 + 0.04 * k)))
            pairs.append(ImageEvidence(confidence=confidence, score=float(rng.random() < p_exact)))
        pool = sorted(rng.betavariate(3 + k, 2) for _ in range(total - human - auto))
        decision = decide(pairs, pool, config)
        threshold = decision.threshold
        newly_auto = sum(c >= threshold for c in pool) if threshold is not None else 0
        auto += newly_auto
        counts = {
            "total": total,
            "human": human,
            "auto": auto,
            "unlabeled": total - human - auto,
            "unlabeled_pool": total - human - auto,
            "exhausted": 0,
            "by_role": {"pool": 500, "seed": 20, "validation": 80},
        }
        bins = [0] * 20
        for c in pool:
            bins[min(19, int(c * 20))] += 1
        last = k == n_iterations - 1
        per_iteration.append(
            {
                "iteration": k,
                "counts": counts,
                "auto_labeled": newly_auto,
                "gate": {"passed": True},
                "auto_label": decision.to_json(),
                "calibration": calibration_view(decision, applied=threshold, deferred=False),
                "confidence_histogram": bins,
                "cost_to_date": iteration_cost(
                    human_labels=human, auto_labels=auto, prices=prices
                ).to_dict(),
                "decision": "finalize" if last else "continue",
                "stop_reason": f"max_iterations ({n_iterations}) reached" if last else None,
            }
        )
        human += 0 if last else min(50, total - human - auto)
    final = per_iteration[-1]["counts"]
    cost = iteration_cost(human_labels=final["human"], auto_labels=final["auto"], prices=prices)
    baseline = all_human_cost(total, prices)
    return {
        "run_id": "demo-run-1",
        "iterations": n_iterations,
        "stop_reason": per_iteration[-1]["stop_reason"],
        "counts": final,
        "auto_share": final["auto"] / total,
        "cost": cost.to_dict(),
        "all_human_cost": baseline.to_dict(),
        "savings_fraction": savings_fraction(cost, baseline),
        "per_iteration": per_iteration,
        "output_manifest": "s3://bucket/runs/demo/output.manifest",
        "model": {"name": f"boxloop-demo-{n_iterations - 1}-train", "gate": True},
    }


def sample_reference_eval(report: dict[str, Any]) -> dict[str, Any]:
    """An evaluate_against_reference result consistent with ``report`` (`sample_report`)."""
    rows = []
    for r in report["per_iteration"]:
        n = r["auto_labeled"]
        if not n:
            continue
        exact = round(n * (0.86 + 0.02 * r["iteration"]))
        rows.append(
            {
                "iteration": r["iteration"],
                "count": n,
                "exact": exact,
                "exact_match": exact / n,
                "mean_iou": 0.81 + 0.01 * r["iteration"],
            }
        )
    counts = report["counts"]
    auto_exact = sum(r["exact"] for r in rows)
    human_exact = round(counts["human"] * 0.95)
    labeled = counts["human"] + counts["auto"]
    return {
        "label_attribute": ATTR,
        "reference_attribute": ATTR,
        "match_iou": 0.5,
        "images": counts["total"],
        "unlabeled": counts["unlabeled"],
        "no_reference": 0,
        "size_mismatch": 0,
        "reference_only": counts["unlabeled"],
        "auto": {
            "count": counts["auto"],
            "exact": auto_exact,
            "exact_match": auto_exact / counts["auto"],
            "mean_iou": 0.82,
        },
        "human": {
            "count": counts["human"],
            "exact": human_exact,
            "exact_match": human_exact / counts["human"],
            "mean_iou": 0.9,
        },
        "all": {
            "count": labeled,
            "exact": auto_exact + human_exact,
            "exact_match": (auto_exact + human_exact) / labeled,
            "mean_iou": 0.85,
        },
        "auto_by_iteration": rows,
        "auto_map": {"map50": 0.88, "map50_95": 0.61},
        "reference": {
            "source": "ref.manifest",
            "labeled": counts["total"],
            "good_lines": counts["total"],
            "bad_lines": 0,
            "errors": [],
        },
    }


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_write_html_report_embeds_every_plot_and_headline_when_reference_given(
    tmp_path: Path,
) -> None:
    report = sample_report()
    reference_eval = sample_reference_eval(report)

    out = write_html_report(report, tmp_path / "sub" / "report.html", reference_eval=reference_eval)

    html = out.read_text(encoding="utf-8")
    assert html.count("<img ") == 5
    assert all(png.startswith(PNG_SIGNATURE) for png in _images(html))
    assert f"{report['auto_share']:.1%}" in html
    assert f"{report['counts']['human']:,}" in html
    assert f"{reference_eval['all']['exact_match']:.1%}" in html
    assert f"${report['cost']['total_usd']:,.2f}" in html
    assert f"${report['all_human_cost']['total_usd']:,.2f}" in html
    assert report["stop_reason"] in html
    assert html.count("<tr>") == 1 + 3 + 1 + 3 + 1 + 3  # iteration, reference, decision tables


def test_write_html_report_loads_nothing_from_the_network(tmp_path: Path) -> None:
    report = sample_report()

    html = write_html_report(
        report, tmp_path / "r.html", reference_eval=sample_reference_eval(report)
    ).read_text(encoding="utf-8")

    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "@import" not in html


def test_write_html_report_has_four_plots_without_reference(tmp_path: Path) -> None:
    html = write_html_report(sample_report(), tmp_path / "r.html", reference_eval=None).read_text(
        encoding="utf-8"
    )

    assert html.count("<img ") == 4
    assert "Accuracy vs reference" not in html


def test_write_html_report_notes_missing_plots_when_no_iteration_ran(tmp_path: Path) -> None:
    report = {**sample_report(1), "per_iteration": [], "iterations": 0, "stop_reason": None}

    html = write_html_report(report, tmp_path / "r.html", reference_eval=None).read_text(
        encoding="utf-8"
    )

    assert html.count("<img ") == 0
    assert html.count("nothing to plot") == 4


def test_write_html_report_escapes_text_from_the_report(tmp_path: Path) -> None:
    report = {**sample_report(1), "run_id": "<script>alert(1)</script>"}

    html = write_html_report(report, tmp_path / "r.html", reference_eval=None).read_text(
        encoding="utf-8"
    )

    assert "<script>" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize(
    ("applied", "found", "gate_passed"),
    [
        (0.62, 0.62, True),  # applied threshold inside a histogram bin
        (None, 0.6, False),  # found but the quality gate failed: drawn, not applied
        (None, None, True),  # no threshold met the target
    ],
)
def test_write_html_report_renders_every_threshold_state(
    tmp_path: Path, applied: float | None, found: float | None, gate_passed: bool
) -> None:
    report = sample_report(2)
    last = report["per_iteration"][-1]
    last["calibration"].update(applied_threshold=applied, threshold=found)
    last["gate"] = {"passed": gate_passed}

    html = write_html_report(report, tmp_path / "r.html", reference_eval=None).read_text(
        encoding="utf-8"
    )

    assert html.count("<img ") == 4
    assert all(png.startswith(PNG_SIGNATURE) for png in _images(html))
    assert ("<td>failed</td>" in html) is not gate_passed


def test_write_html_report_shows_each_decision_with_its_promise_and_the_audit(
    tmp_path: Path,
) -> None:
    # GIVEN a report whose last iteration audited four would-be auto-labels (three right)
    report = sample_report()
    evidence = [ImageEvidence(confidence=0.9, score=s) for s in (1.0, 1.0, 1.0, 0.0)]
    report["per_iteration"][-1]["audit"] = {
        "round": estimate(evidence, "exact_match").to_json(),
        "total": estimate(evidence, "exact_match").to_json(),
    }
    # WHEN the page is written
    html = write_html_report(report, tmp_path / "r.html", reference_eval=None).read_text(
        encoding="utf-8"
    )
    # THEN every decision's reason and promise show, and the audit's estimate with its interval
    assert "Auto-label decisions" in html
    for row in report["per_iteration"]:
        assert Decision.from_json(row["auto_label"]).reason.split(":")[0] in html
    assert "exact match &gt;= 0.85 with 80% probability" in html
    assert "75.0% of 4 [24.9%, 98.7%]" in html


def test_write_html_report_shows_the_audit_finalize_scored_and_the_labels_delivered(
    tmp_path: Path,
) -> None:
    # GIVEN a run whose last human round went straight to Finalize: its 4 audits of applied
    # auto-labels (3 right) are only in the run report's audit block, next to the promise
    report = sample_report()
    evidence = [ImageEvidence(confidence=0.9, score=s) for s in (1.0, 1.0, 1.0, 0.0)]
    scored = estimate(evidence, "exact_match").to_json()
    report["audit"] = {
        "promise": {"metric": "exact_match", "target": 0.85, "confidence_level": 0.8},
        "round": scored,
        "total": scored,
        "applied": {"round": 4, "total": 4},
        "would_be": {"round": 0, "total": 0},
        "delivered": scored,
    }
    # WHEN the page is written
    html = write_html_report(report, tmp_path / "r.html", reference_eval=None).read_text(
        encoding="utf-8"
    )
    # THEN a last decision row shows that round's audit, and a card what the labels deliver
    assert "no model: the last round&#x27;s human labels, audits scored at Finalize" in html
    assert "<td>4 / 4</td>" in html
    assert "Auto-labels, audited" in html
    assert (
        "75.0% exact match over 4 applied auto-labels re-labeled by humans at random, 90% "
        "interval [24.9%, 98.7%]; promised exact match &gt;= 0.85 with 80% probability"
    ) in html
    assert html.count("75.0% of 4 [24.9%, 98.7%]") == 2  # the round and the total
