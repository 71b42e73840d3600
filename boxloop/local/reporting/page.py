"""The run report as one self-contained HTML page: headline figures, a table, embedded plots."""

from __future__ import annotations

import base64
from html import escape
from typing import TYPE_CHECKING, Any

from boxloop.core.decision import Decision, Estimate
from boxloop.core.model_state import ModelState
from boxloop.local.reporting import plots

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from boxloop.local.reporting.gallery import GalleryItem

DASH = "\u2014"
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid
#ddd;padding-bottom:.2em}.sub{color:#666;margin-top:0}.small{color:#555;font-size:.8em}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:.8em;
margin:1.2em 0}.card{border:1px solid #ddd;border-radius:6px;padding:.6em .9em}
.card .v{font-size:1.45em;font-weight:600;overflow-wrap:anywhere}
.card .v.t{font-size:1.05em}.card .k{color:#666;font-size:.85em}
.card .d{color:#444;font-size:.8em;margin-top:.2em}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.8em;width:100%}
th,td{border-bottom:1px solid #e5e5e5;padding:.35em .45em;text-align:right;white-space:nowrap}
th{background:#f6f6f6;white-space:normal;vertical-align:bottom}
td:first-child,th:first-child{text-align:left}
figure{margin:1.5em 0}img{max-width:100%;height:auto}
figcaption{color:#555;font-size:.85em}.note{color:#888;font-style:italic}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;font-size:.85em}
dt{color:#666}dd{margin:0;word-break:break-all}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:.8em}
.gallery figure{margin:0;border:1px solid #ddd;border-radius:6px;padding:.4em}
.gallery figcaption{overflow-wrap:anywhere}code{background:#f3f3f3;padding:.1em .3em}
"""


def _pct(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value:.{digits}%}"


def _num(value: float | None, digits: int = 3) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _usd(value: float | None) -> str:
    return DASH if value is None else f"${value:,.2f}"


def _card(key: str, value: str, detail: str = "", *, is_text: bool = False) -> str:
    extra = f'<div class="d">{escape(detail)}</div>' if detail else ""
    kind = "v t" if is_text else "v"
    return (
        f'<div class="card"><div class="k">{escape(key)}</div>'
        f'<div class="{kind}">{escape(value)}</div>{extra}</div>'
    )


def audited_line(estimate: Estimate, kind: str, metric: str = "") -> str | None:
    """One audit's estimate as a line; ``None`` when no image of that ``kind`` was audited.

    ``"85.2% exact match over 27 applied auto-labels re-labeled by humans at random, 90%
    interval [69.2%, 94.8%]"``: the run page, the local summary and ``boxloop aws status``.
    """
    if not estimate.images or estimate.image_interval is None:
        return None
    low, high = estimate.image_interval
    measured = f"{_pct(estimate.image_accuracy)} {metric}".rstrip()
    return (
        f"{measured} over {estimate.images:,} {kind} auto-labels re-labeled by humans at "
        f"random, {estimate.level:.0%} interval [{_pct(low)}, {_pct(high)}]"
    )


def delivered_text(audit: dict[str, Any] | None) -> str | None:
    """What the audit says the applied auto-labels deliver, next to the promise (or ``None``).

    ``None`` when no applied auto-label was audited. ``audit`` is the run report's ``audit``
    block (``boxloop.steps.audit``); the run page's card and the summary a local run prints
    share this line.
    """
    promise = (audit or {}).get("promise") or {}
    metric = str(promise.get("metric", "accuracy"))
    delivered = Estimate.from_json((audit or {}).get("delivered") or {})
    line = audited_line(delivered, "applied", metric.replace("_", " "))
    if line is None:
        return None
    promised = _promise(
        metric, float(promise.get("target") or 0.0), promise.get("confidence_level")
    )
    return f"{line}; promised {promised}"


def _cards(report: dict[str, Any], reference_eval: dict[str, Any] | None) -> str:
    counts = report.get("counts") or {}
    total = counts.get("total", 0)
    cost = (report.get("cost") or {}).get("total_usd")
    baseline = (report.get("all_human_cost") or {}).get("total_usd")
    savings = report.get("savings_fraction")
    cards = [
        _card(
            "Auto-labeled",
            _pct(report.get("auto_share")),
            f"{counts.get('auto', 0):,} of {total:,} images",
        ),
        _card(
            "Human labels used",
            f"{counts.get('human', 0):,}",
            f"{counts.get('unlabeled', 0):,} images left unlabeled",
        ),
    ]
    if reference_eval is not None:
        every, auto = reference_eval.get("all") or {}, reference_eval.get("auto") or {}
        cards.append(
            _card(
                "Accuracy vs reference",
                _pct(every.get("exact_match")),
                f"final data set, exact match; auto-labels {_pct(auto.get('exact_match'))} "
                f"of {auto.get('count', 0):,}",
            )
        )
    audit = report.get("audit") or {}
    delivered = delivered_text(audit)
    if delivered:
        accuracy = Estimate.from_json(audit["delivered"]).image_accuracy
        cards.append(_card("Auto-labels, audited", _pct(accuracy), delivered))
    review = report.get("review") or {}
    if review.get("auto_reviewed"):
        checked, wrong = review["auto_reviewed"], review.get("auto_wrong", 0)
        cards.append(
            _card(
                "Auto-labels reviewed",
                _pct(review.get("auto_exact_share")),
                f"right of {checked:,} checked in boxloop review ({wrong:,} corrected); "
                f"corrections in all: {review.get('corrections', 0):,}",
            )
        )
    cards += [
        _card(
            "Simulated cost", _usd(cost), f"vs {_usd(baseline)} all-human ({_pct(savings)} saved)"
        ),
        _card(
            "Stopped",
            str(report.get("stop_reason") or DASH),
            f"after {report.get('iterations', len(report.get('per_iteration') or ())):,} "
            f"iterations",
            is_text=True,
        ),
    ]
    return '<div class="cards">' + "".join(cards) + "</div>"


def _row(cells: list[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{escape(c)}</{tag}>" for c in cells) + "</tr>"


def _iteration_table(report: dict[str, Any], reference_eval: dict[str, Any] | None) -> str:
    rows = report.get("per_iteration") or []
    if not rows:
        return '<p class="note">No iteration reports.</p>'
    metric = str(((rows[-1].get("calibration") or {}).get("metric")) or "accuracy")
    head = [
        "Iteration",
        "Human (cum.)",
        "Auto (cum.)",
        "Auto-labeled",
        "Unlabeled",
        "Validation",
        "Threshold",
        f"Expected {metric.replace('_', ' ')}",
        "Lower bound",
        "Coverage",
        "Gate",
        "Cost to date",
        "Decision",
    ]
    accuracy: dict[Any, dict[str, Any]] = {}
    if reference_eval is not None:
        head.append("Auto exact match")
        accuracy = {r["iteration"]: r for r in reference_eval.get("auto_by_iteration", ())}
    body = []
    for r in rows:
        counts, calibration = r.get("counts") or {}, r.get("calibration") or {}
        gate = r.get("gate") or {}
        cells = [
            str(r.get("iteration")),
            f"{counts.get('human', 0):,}",
            f"{counts.get('auto', 0):,}",
            f"{r.get('auto_labeled', 0):,}",
            f"{counts.get('unlabeled', 0):,}",
            str(calibration.get("n_validation", DASH)),
            _num(calibration.get("applied_threshold")),
            _num(calibration.get("expected_accuracy")),
            _num(calibration.get("lower_bound")),
            _pct(calibration.get("coverage")),
            "passed" if gate.get("passed", True) else "failed",
            _usd((r.get("cost_to_date") or {}).get("total_usd")),
            str(r.get("decision") or DASH),
        ]
        if reference_eval is not None:
            hit = accuracy.get(r.get("iteration"))
            cells.append(DASH if hit is None else f"{_pct(hit['exact_match'])} of {hit['count']}")
        body.append(_row(cells))
    return '<div class="scroll"><table>' + _row(head, "th") + "".join(body) + "</table></div>"


def _interval(estimate: Estimate) -> str:
    """``"75.0% of 4 [24.9%, 98.7%]"``, or a dash when nothing was audited."""
    if not estimate.images or estimate.image_interval is None:
        return DASH
    low, high = estimate.image_interval
    return f"{_pct(estimate.image_accuracy)} of {estimate.images} [{_pct(low)}, {_pct(high)}]"


def _promise(metric: str, target: float, level: float | None) -> str:
    """``"exact match >= 0.9 with 90% probability"``: what a decision promised."""
    return f"{metric.replace('_', ' ')} >= {target:g}" + (
        f" with {level:.0%} probability" if level is not None else " (plain mean)"
    )


def _applied(audit: dict[str, Any]) -> str:
    """``"3 / 5"``: audited images that were applied auto-labels, this round / in all."""
    applied = audit.get("applied") or {}
    if not audit:
        return DASH
    return f"{applied.get('round', 0):,} / {applied.get('total', 0):,}"


def _decision_table(report: dict[str, Any]) -> str:
    """Per iteration: the auto-label decision and why, its promise, and what the audit measured.

    Reads the typed values the filter wrote (``auto_label``: ``Decision``; ``audit``:
    ``Estimate`` per round and in total), the ones the progress line and report share. When
    the run's last round went from merge straight to Finalize, its audits are in the run
    report's own ``audit`` block: a last row shows them.
    """
    rows = [r for r in report.get("per_iteration") or [] if r.get("auto_label")]
    final = report.get("audit") or {}
    final_round = Estimate.from_json(final.get("round") or {})
    if not rows and not final_round.images:
        return ""
    head = [
        "Iteration",
        "Threshold",
        "Why",
        "Promise",
        "Audited (round)",
        "Audited (total)",
        "Applied (round / total)",
    ]
    body = []
    for r in rows:
        decision = Decision.from_json(r["auto_label"])
        audit = r.get("audit") or {}
        body.append(
            _row(
                [
                    str(r.get("iteration")),
                    _num(decision.threshold),
                    decision.reason,
                    _promise(decision.metric, decision.target, decision.confidence_level),
                    _interval(Estimate.from_json(audit.get("round") or {})),
                    _interval(Estimate.from_json(audit.get("total") or {})),
                    _applied(audit),
                ]
            )
        )
    if final_round.images:
        promise = final.get("promise") or {}
        body.append(
            _row(
                [
                    str(report.get("iterations", DASH)),
                    DASH,
                    "no model: the last round's human labels, audits scored at Finalize",
                    _promise(
                        str(promise.get("metric", "accuracy")),
                        float(promise.get("target") or 0.0),
                        promise.get("confidence_level"),
                    ),
                    _interval(final_round),
                    _interval(Estimate.from_json(final.get("total") or {})),
                    _applied(final),
                ]
            )
        )
    return (
        '<p class="note">Audited: auto-labels of the previous round (applied ones, which the '
        "run delivers, and would-be ones while a threshold is held back) sent to humans at "
        "random and scored against the model's labels; 90 % intervals. An audited image keeps "
        "its human label.</p>"
        '<div class="scroll"><table>' + _row(head, "th") + "".join(body) + "</table></div>"
    )


def _reference_table(reference_eval: dict[str, Any]) -> str:
    head = ["Labels", "Images", "Exact match", "Mean IoU"]
    names = (
        ("auto", "auto-labels"),
        ("human", "human labels (annotator noise)"),
        ("all", "final data set"),
    )
    body = []
    for key, name in names:
        group = reference_eval.get(key) or {}
        body.append(
            _row(
                [
                    name,
                    f"{group.get('count', 0):,}",
                    _pct(group.get("exact_match")),
                    _num(group.get("mean_iou")),
                ]
            )
        )
    mean_ap = reference_eval.get("auto_map") or {}
    notes = (
        f"Exact match: every box matched at IoU >= {reference_eval.get('match_iou', 0.5)} with "
        f"the right class, none missing or extra. Auto-labels mAP@0.5 "
        f"{_num(mean_ap.get('map50'))}, mAP@[.5:.95] {_num(mean_ap.get('map50_95'))}. "
        f"Not compared: {reference_eval.get('unlabeled', 0):,} unlabeled, "
        f"{reference_eval.get('no_reference', 0):,} without reference label, "
        f"{reference_eval.get('size_mismatch', 0):,} with a different image size; "
        f"{(reference_eval.get('reference') or {}).get('bad_lines', 0):,} bad reference lines."
    )
    return (
        "<table>" + _row(head, "th") + "".join(body) + "</table>"
        f'<p class="small">{escape(notes)}</p>'
    )


def _figure(render: Callable[[], bytes | None], alt: str, caption: str) -> str:
    png = render()
    if png is None:
        return f'<p class="note">{escape(alt)}: nothing to plot.</p>'
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _figures(report: dict[str, Any], reference_eval: dict[str, Any] | None) -> str:
    per_iteration = report.get("per_iteration") or []
    parts = [
        _figure(
            lambda: plots.labels_plot(per_iteration),
            "Labels per iteration",
            "Human and auto labels in the ledger after each iteration; grey is still unlabeled.",
        ),
        _figure(
            lambda: plots.cost_plot(per_iteration, report.get("all_human_cost") or {}),
            "Cost per iteration",
            "Simulated labeling cost to date (labels only, at the configured prices) vs "
            "labeling everything by humans.",
        ),
        _figure(
            lambda: plots.confidence_plot(per_iteration),
            "Confidence histogram",
            "Image confidence of the pool images scored in the last iteration; images at or "
            "above the threshold were auto-labeled.",
        ),
        _figure(
            lambda: plots.calibration_plot(per_iteration),
            "Calibration curve",
            "On human-labeled validation images: the accuracy of the images a threshold "
            "accepts, and their share. The threshold is the last of the fixed sequence "
            "(most confident first) whose lower confidence bound meets the target.",
        ),
    ]
    if reference_eval is not None:
        parts.append(
            _figure(
                lambda: plots.accuracy_plot(reference_eval),
                "Accuracy vs reference",
                "Auto-labels compared with the reference labels, grouped by the iteration that "
                "made them; lines are the whole labeled data set and the human labels alone.",
            )
        )
    return "".join(parts)


def _seconds(value: float | None) -> str:
    return DASH if value is None else f"{value:,.1f} s"


def _effort_section(report: dict[str, Any]) -> str:
    """Human time per image and per box, measured or simulated, and what pre-annotations saved."""
    effort = report.get("human_effort")
    if not effort:
        return '<p class="note">No images went to humans in this run.</p>'
    worked = effort.get("workforce_time") or {}
    kind = "simulated" if worked.get("simulated") else "reported by the workforce"
    rows = [_row(["", "Images", "Boxes", "Seconds", "Per image", "Per box"], "th")]
    measured = effort.get("measured")
    groups: list[tuple[str, dict[str, Any]]] = []
    if measured:
        groups += [
            ("measured: all images", measured),
            ("measured: with pre-annotations", measured.get("preannotated") or {}),
            ("measured: from scratch", measured.get("from_scratch") or {}),
        ]
    groups.append((f"workforce time ({kind})", worked))
    for name, group in groups:
        rows.append(
            _row(
                [
                    name,
                    f"{group.get('images', 0):,}",
                    f"{group.get('boxes', 0):,}",
                    f"{group.get('seconds', 0):,.0f}",
                    _seconds(group.get("seconds_per_image")),
                    _seconds(group.get("seconds_per_box")),
                ]
            )
        )
    notes = [
        f"{effort.get('labeled_images', 0):,} images labeled by "
        f"{', '.join(effort.get('workforces') or ()) or DASH} annotators in "
        f"{effort.get('jobs', 0):,} labeling jobs. Images count once per annotator."
    ]
    if measured:
        saving = measured.get("preannotation_saving")
        if saving:
            notes.append(
                f"Pre-annotations saved {_seconds(saving['seconds_per_image'])} per image "
                f"({_pct(saving['fraction'], 0)} of the time from scratch)."
            )
        else:
            notes.append(
                "No saving measured: it needs images both with and without pre-annotations."
            )
        notes.append(
            f"Boxes drawn: {measured.get('boxes_drawn', 0):,}; model boxes accepted "
            f"{measured.get('model_boxes_accepted', 0):,}, moved "
            f"{measured.get('model_boxes_moved', 0):,}, deleted "
            f"{measured.get('model_boxes_deleted', 0):,}."
        )
    else:
        notes.append(
            "No human time was measured (label in the browser, --workforce browser, to "
            "measure it); the cost above is simulated at the configured price per label."
        )
    return (
        '<div class="scroll"><table>' + "".join(rows) + "</table></div>"
        f'<p class="small">{escape(" ".join(notes))}</p>'
    )


def _gallery_section(gallery: Sequence[GalleryItem] | None, review_dir: str) -> str:
    """The least confident auto-labels as thumbnails, and how to open the run for review."""
    review = (
        f"<p>To look at every label and correct any, open the run in the labeling app: "
        f"<code>boxloop review {escape(review_dir)}</code> (corrections become human labels "
        f"in the output manifest).</p>"
    )
    if not gallery:
        return review + '<p class="note">No auto-labels to show.</p>'
    figures = []
    for item in gallery:
        uri = item.data_uri()
        name = item.source_ref.rsplit("/", 1)[-1]
        image = (
            f'<img alt="{escape(name)}" src="{uri}">'
            if uri
            else f'<p class="note">{escape(name)}: image not readable</p>'
        )
        threshold = "" if item.threshold is None else f" (threshold {item.threshold:.3f})"
        iteration = "" if item.iteration is None else f", iteration {item.iteration}"
        boxes = "1 box" if item.boxes == 1 else f"{item.boxes} boxes"
        caption = f"confidence {item.confidence:.3f}{threshold}{iteration}, {boxes}: {name}"
        figures.append(
            f'<figure title="{escape(item.source_ref)}">{image}'
            f"<figcaption>{escape(caption)}</figcaption></figure>"
        )
    return (
        '<p class="small">The auto-labels the model was least sure of, lowest confidence '
        "first: where a wrong label is likeliest.</p>"
        f'<div class="gallery">{"".join(figures)}</div>' + review
    )


def _details(report: dict[str, Any]) -> str:
    model = ModelState.from_json(report["model"]) if report.get("model") else None
    items = [
        ("Run", report.get("run_id")),
        ("Output manifest", report.get("output_manifest")),
        ("Last model", model.name if model else None),
        ("Model file", model.artifacts if model else None),
    ]
    return (
        "<dl>"
        + "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v or DASH))}</dd>" for k, v in items)
        + "</dl>"
    )


def render_html_report(
    report: dict[str, Any],
    *,
    reference_eval: dict[str, Any] | None,
    gallery: Sequence[GalleryItem] | None = None,
    review_dir: str = "OUT",
) -> str:
    """The report page as a string; see `write_html_report`."""
    title = f"boxloop run {report.get('run_id') or ''}".strip()
    measured = (report.get("human_effort") or {}).get("measured")
    sections = [
        f"<h1>{escape(title)}</h1>",
        '<p class="sub">Active-learning bounding-box labeling: '
        f"{'run' if measured else 'simulated run'} report.</p>",
        _cards(report, reference_eval),
        _details(report),
        "<h2>Iterations</h2>",
        _iteration_table(report, reference_eval),
        "<h2>Auto-label decisions</h2>",
        _decision_table(report),
        "<h2>Human effort</h2>",
        _effort_section(report),
        "<h2>Least confident auto-labels</h2>",
        _gallery_section(gallery, review_dir),
    ]
    if reference_eval is not None:
        sections += ["<h2>Accuracy vs reference</h2>", _reference_table(reference_eval)]
    sections += ["<h2>Plots</h2>", _figures(report, reference_eval)]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )


def write_html_report(
    report: dict[str, Any],
    out_html: Path,
    *,
    reference_eval: dict[str, Any] | None = None,
    gallery: Sequence[GalleryItem] | None = None,
) -> Path:
    """Write the run report as a single self-contained HTML file.

    Everything is inline (CSS, PNG plots and JPEG thumbnails as base64 data URIs) and nothing
    loads from the network, so the file can be mailed or opened offline. Sections: headline
    figures, the output files, the iteration table, human effort (measured seconds per image
    and per box and what pre-annotations saved, next to the simulated workforce time), the
    least confident auto-labels, and plots: cumulative human and auto labels per iteration,
    cost to date vs the all-human baseline, the last confidence histogram with its threshold,
    the last calibration curve with its target, and (with ``reference_eval``) accuracy vs
    reference per iteration; a plot with no data is replaced by a note.

    Args:
        report: The run's ``report.json``: Finalize's, or the local one (``local_report``)
            with ``human_effort`` and local file names.
        out_html: Where to write; parent folders are created.
        reference_eval: ``evaluate_against_reference``'s result, or ``None`` when the run has
            no reference labels.
        gallery: The least confident auto-labels (``least_confident_auto_labels``), shown as
            thumbnails above the line that names ``boxloop review <out_html's folder>``.

    Returns:
        ``out_html``.
    """
    out_html.parent.mkdir(parents=True, exist_ok=True)
    page = render_html_report(
        report, reference_eval=reference_eval, gallery=gallery, review_dir=str(out_html.parent)
    )
    out_html.write_text(page, encoding="utf-8")
    return out_html
