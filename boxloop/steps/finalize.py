"""Finalize: the Ground Truth-compatible output manifest and the run report.

The run report's ``audit`` block (``boxloop.steps.audit``) scores the audits of the round that
came straight from merge to Finalize (the last human round, or the audit-only round after the
last auto-labels: no filter ran after them), and adds them to every earlier round's: its
``total`` and ``delivered`` cover every audit of the run, next to the promise.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from boxloop.aws.s3 import try_read_text, write_text
from boxloop.core.cost import PriceTable, all_human_cost, iteration_cost, savings_fraction
from boxloop.steps.audit import audit_report
from boxloop.steps.run import RunState, iter_records, write_records

if TYPE_CHECKING:
    from boxloop.core.config import LoopConfig

OUTPUT_MANIFEST = "output.manifest"
REPORT = "report.json"


def iteration_reports(run: RunState) -> list[dict[str, Any]]:
    """The reports that filter-low-confidence wrote, in iteration order."""
    reports = []
    for k in range(run.iteration + 1):
        text = try_read_text(run.paths.step(k, "report", REPORT))
        if text is not None:
            reports.append(json.loads(text))
    return reports


def all_labeled_reason(counts: dict[str, Any]) -> str | None:
    """The stop reason when every image the loop labels is labeled (test images aside)."""
    if counts["unlabeled"]:
        return None
    test = counts.get("unlabeled_test", 0)
    if not test:
        return "all images labeled"
    return f"all images labeled ({test} test images are left unlabeled: the loop only measures)"


def finalize(run: RunState, config: LoopConfig) -> dict[str, Any]:
    """Write ``output/output.manifest`` and ``output/report.json``; returns the result block."""
    attr = config.label_attribute
    manifest = run.paths.output(OUTPUT_MANIFEST)
    counts = write_records(
        manifest,
        iter_records(run.ledger, attr, trusted=True),
        attr,
        max_attempts=config.max_label_attempts,
    ).to_json()
    prices = PriceTable.from_label_prices(
        human_label_usd=config.price_per_human_label_usd,
        auto_label_usd=config.price_per_auto_label_usd,
    )
    cost = iteration_cost(human_labels=counts["human"], auto_labels=counts["auto"], prices=prices)
    baseline = all_human_cost(counts["total"], prices)
    # Images left unlabeled (test images too) still need humans: savings are judged on the
    # projected cost.
    left = counts["unlabeled"] + counts.get("unlabeled_test", 0)
    projected = cost + all_human_cost(left, prices)
    report = {
        "run_id": run.run_id,
        "iterations": run.iteration,
        "stop_reason": run.stop_reason or all_labeled_reason(counts),
        "counts": counts,
        "auto_share": counts["auto"] / counts["total"] if counts["total"] else 0.0,
        "cost": cost.to_dict(),
        "all_human_cost": baseline.to_dict(),
        "projected_cost": projected.to_dict(),
        "savings_fraction": savings_fraction(projected, baseline),
        "per_iteration": iteration_reports(run),
        "audit": audit_report(run, config),
        "output_manifest": manifest,
        "model": run.model.to_json() if run.model else None,
    }
    report_uri = run.paths.output(REPORT)
    write_text(report_uri, json.dumps(report, indent=2))
    return {
        "output_manifest": manifest,
        "report": report_uri,
        "counts": counts,
        "stop_reason": report["stop_reason"],
    }
