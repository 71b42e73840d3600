"""The audit of applied auto-labels, end to end on the synthesized state machine.

Two executions of the 36-image run (stand-in model: right and sure on half the images): one
whose first filter auto-labels every open image (a fixed cut at 0, so the unsure, wrong half
too), after which an audit-only round runs and goes from merge to Finalize without training;
and one with the default recipe (labels deferred to the last model, then a last round of humans
that goes from merge straight to Finalize).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from e2e_harness import ATTR, SMALL_RUN
from e2e_runners import read_json, read_manifest

from boxloop.core.decision import Estimate
from boxloop.core.formats.groundtruth import METADATA_SUFFIX

if TYPE_CHECKING:
    from e2e_harness import E2ERun, WorkflowHarness

AUDIT_SHARE = 0.2


def _run(harness: WorkflowHarness, name: str, **overrides: Any) -> E2ERun:
    overrides = {**SMALL_RUN, "audit_share": AUDIT_SHARE, **overrides}
    run = harness.run(name, {"manifest": harness.input_manifest, "overrides": overrides})
    assert run.result.status == "SUCCEEDED", run.result
    return run


def _applied_audits(run: E2ERun) -> dict[str, dict[str, Any]]:
    """Record id -> input line of every audited applied auto-label, over the run's jobs.

    The input line's provenance names the threshold the auto-label passed; a would-be one has
    none.
    """
    return {
        line["id"]: line
        for job in run.labeling_jobs
        for line in read_manifest(job.input_manifest)
        if line["boxloop"].get("audit") and line["boxloop"].get("threshold") is not None
    }


def _check_delivered(run: E2ERun) -> dict[str, Any]:
    """The run report's audit block, checked against the output manifest; returned."""
    audited = _applied_audits(run)
    assert audited, "no applied auto-label was audited"
    lines = run.output_lines()
    for rid in audited:
        line = lines[rid]
        assert line[ATTR + METADATA_SUFFIX]["human-annotated"] == "yes", rid
        assert line["boxloop"]["audit"] is True
        assert line["boxloop"]["role"] == "validation"
    report = read_json(run.result.output["report"])
    audit = report["audit"]
    assert audit["applied"]["total"] == len(audited)
    delivered = Estimate.from_json(audit["delivered"])
    assert delivered.images == len(audited)
    assert delivered.image_interval is not None
    assert Estimate.from_json(audit["total"]).images >= len(audited)
    assert report["counts"]["unlabeled"] == 0
    return audit


@pytest.fixture(scope="module")
def audit_only(harness: WorkflowHarness) -> E2ERun:
    return _run(harness, "audit-only", fixed_threshold=0.0)


@pytest.fixture(scope="module")
def deferred(harness: WorkflowHarness) -> E2ERun:
    return _run(
        harness,
        "deferred-audit",
        defer_auto_labels=True,
        finish_with_humans=True,
        max_iterations=3,
    )


def test_labels_the_last_filter_applied_are_audited_in_a_round_that_trains_nothing(
    audit_only: E2ERun,
) -> None:
    # GIVEN a run whose first filter auto-labels every open image
    # WHEN it finishes
    audit = _check_delivered(audit_only)
    # THEN one more round sent only the audit (round(0.2 * 19) = 4 of the 19 labels, none of
    # them an open image, as none was left), trained nothing, and went from its merge
    # through AllLabeled to Finalize
    assert audit_only.entered("Train") == audit_only.entered("FilterLowConfidence") == 1
    last_job = read_manifest(audit_only.labeling_jobs[-1].input_manifest)
    assert len(last_job) == 4
    assert all(line["boxloop"]["audit"] for line in last_job)
    states = audit_only.result.visited_states
    end = states.index("Finalize")
    assert tuple(states[end - 3 : end + 1]) == (
        "MergeHumanLabels",
        "MoreToLabel",
        "AllLabeled",
        "Finalize",
    )
    # AND the run report scores them: the unsure half of the labels is wrong, and the
    # audit says so although no reference was read
    assert audit["applied"] == {"round": 4, "total": 4}
    assert audit["would_be"] == {"round": 0, "total": 0}
    assert Estimate.from_json(audit["delivered"]).image_accuracy < 1.0
    assert audit_only.result.output["stop_reason"] == "all images labeled"


def test_deferred_labels_are_audited_in_the_last_human_round(deferred: E2ERun) -> None:
    # GIVEN the default recipe: labels applied by the last model only, then humans finish
    # WHEN the run finishes
    audit = _check_delivered(deferred)
    # THEN every applied audit came in that last round, which Finalize scored
    assert deferred.entered("Train") == 2
    assert audit["applied"]["round"] == audit["applied"]["total"]
    assert audit["for_iteration"] == 1
