from __future__ import annotations

import json
from typing import Any

import pytest

from boxloop.core.model_state import ModelState
from boxloop.local.progress import threshold_text


@pytest.mark.parametrize(
    ("model", "text"),
    [
        ({}, "none (not enough evidence yet)"),  # no model yet
        ({"threshold": None, "would_be_threshold": None}, "none (not enough evidence yet)"),
        ({"threshold": 0.4, "would_be_threshold": 0.4}, "0.400"),
        ({"threshold": 0.4}, "0.400"),  # without the key older run states carried
        (
            {"threshold": None, "deferred_threshold": 0.3631, "would_be_threshold": 0.2387},
            "none (0.363 certified, held for the last model: defer_auto_labels)",
        ),
    ],
)
def test_threshold_text_says_why_no_threshold_was_applied(model: dict[str, Any], text: str) -> None:
    assert threshold_text(ModelState.from_json(model) if model else None) == text


def test_decision_reason_reads_the_typed_decision_of_the_round(tmp_path) -> None:
    # GIVEN the iteration report filter-low-confidence wrote for iteration 0
    from boxloop.core.calibration import CalibrationConfig, ImageEvidence
    from boxloop.core.decision import decide
    from boxloop.local.progress import decision_reason

    validation = [ImageEvidence(confidence=0.9, score=1.0)] * 50
    decision = decide(validation, [0.9, 0.1], CalibrationConfig(metric="exact_match"))
    folder = tmp_path / "iter-000" / "report"
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps({"auto_label": decision.to_json()}))
    # WHEN the progress line asks after the filter (the run state is at iteration 1)
    # THEN it shows the decision's own reason; without a report, nothing
    assert decision_reason({"root": str(tmp_path), "iteration": 1}) == decision.reason
    assert decision_reason({"root": str(tmp_path / "none"), "iteration": 1}) is None
