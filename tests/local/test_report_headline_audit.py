"""The summary a local run prints names what the audit says the applied auto-labels deliver."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from rich.console import Console

from boxloop.core.calibration import ImageEvidence
from boxloop.core.decision import estimate
from boxloop.local.app import LocalRunResult
from boxloop.local.progress import print_headline

if TYPE_CHECKING:
    from pathlib import Path


def _printed(report: dict[str, Any], tmp_path: Path) -> str:
    out = io.StringIO()
    result = LocalRunResult(out_dir=tmp_path, files={}, report=report, reference_eval=None)
    print_headline(result, Console(file=out, width=400, highlight=False))
    return out.getvalue()


def test_headline_prints_the_audited_accuracy_of_the_applied_labels(tmp_path: Path) -> None:
    # GIVEN a run report whose audit scored 4 applied auto-labels, 3 of them right
    evidence = [ImageEvidence(confidence=0.9, score=s) for s in (1.0, 1.0, 1.0, 0.0)]
    report = {
        "iterations": 3,
        "counts": {"total": 10, "human": 6, "auto": 4},
        "audit": {
            "promise": {"metric": "exact_match", "target": 0.9, "confidence_level": 0.9},
            "delivered": estimate(evidence, "exact_match").to_json(),
        },
    }
    # WHEN the summary is printed THEN it says so, with the interval and the promise
    assert (
        "audited auto-labels: 75.0% exact match over 4 applied auto-labels re-labeled by humans "
        "at random, 90% interval [24.9%, 98.7%]; promised exact match >= 0.9 with 90% "
        "probability"
    ) in _printed(report, tmp_path)


def test_headline_is_silent_about_audits_when_none_was_made(tmp_path: Path) -> None:
    report = {"iterations": 1, "counts": {"total": 10, "human": 10, "auto": 0}, "audit": {}}
    assert "audited" not in _printed(report, tmp_path)
