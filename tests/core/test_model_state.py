"""The model state in the run state: one type, one to_json/from_json pair."""

from __future__ import annotations

import json

import pytest

from boxloop.core.errors import ConfigError
from boxloop.core.model_state import ModelState
from boxloop.steps.run import RunState


@pytest.mark.parametrize(
    "state",
    [
        # a model that auto-labeled at 0.8
        ModelState(name="bl-1-train", artifacts="s3://b/m/model.tar.gz", threshold=0.8, gate=True),
        # deferred: chosen, held back for the last model
        ModelState(name="m", deferred_threshold=0.9, gate=True),
        # the gate failed: no thresholds at all
        ModelState(name="m", artifacts="s3://b/model.tar.gz", gate=False),
        # nothing known yet
        ModelState(),
    ],
    ids=["applied", "deferred", "gate-failed", "empty"],
)
def test_model_state_round_trips_through_json(state: ModelState) -> None:
    assert ModelState.from_json(json.loads(json.dumps(state.to_json()))) == state


@pytest.mark.parametrize(
    ("block", "would_be"),
    [
        ({"threshold": 0.6}, 0.6),  # applied: the audit finds nothing above it
        ({"deferred_threshold": 0.7}, 0.7),  # held back: the audit draws above it
        ({}, None),  # no decision, no audit
    ],
)
def test_the_would_be_threshold_is_the_decision_s_applied_or_deferred_one(
    block: dict, would_be: float | None
) -> None:
    assert ModelState.from_json({"name": "m", **block}).would_be_threshold == would_be


def test_an_older_run_state_s_would_be_threshold_is_read_and_dropped() -> None:
    # a run state written while would_be_threshold was carried: such a run still resumes
    state = ModelState.from_json({"name": "m", "threshold": 0.6, "would_be_threshold": 0.6})
    assert state == ModelState(name="m", threshold=0.6)
    assert "would_be_threshold" not in state.to_json()


def test_model_state_reports_every_bad_key_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        ModelState.from_json(
            {"threshold": 1.5, "would_be_threshold": None, "gate": "yes", "artifacts": 3}
        )
    assert [p.split(" ")[0] for p in caught.value.problems] == [
        "run.model.artifacts",
        "run.model.threshold",
        "run.model.gate",
    ]


def test_model_state_refuses_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="unknown key 'map'"):
        ModelState.from_json({"name": "m", "map": 0.4})


def test_run_state_carries_the_model_state_through_its_payload() -> None:
    # GIVEN a run state whose model block arrives as JSON (the state machine's payload)
    model = ModelState(name="m", artifacts="s3://b/model.tar.gz", threshold=0.5, gate=True)
    payload = json.loads(
        json.dumps(RunState(run_id="r", root="s3://b/runs/r", ledger="l", model=model).to_json())
    )
    # WHEN the next step parses it
    run = RunState.from_json(payload)
    # THEN it holds the typed value, equal to what was written
    assert run.model == model
    assert set(payload["model"]) == {"name", "artifacts", "threshold", "deferred_threshold", "gate"}
