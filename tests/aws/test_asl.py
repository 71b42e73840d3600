"""The state machine's steps and placeholders, listed once for the stack, the engine and bench."""

from __future__ import annotations

from pathlib import Path

from boxloop.aws.asl import LAMBDA_STEPS, SUBSTITUTION_KEYS, function_arn_key, placeholders
from boxloop.local import engine

REPO = Path(__file__).resolve().parents[2]


def test_every_lambda_step_has_its_handler_folder() -> None:
    for folder in LAMBDA_STEPS:
        assert (REPO / "lambdas" / folder / "app.py").is_file(), folder


def test_local_engine_fills_exactly_the_placeholders_the_stack_offers() -> None:
    # GIVEN the one list of placeholders WHEN the local engine builds its values
    local = engine.substitutions("arn:aws:sns:us-east-1:123456789012:t")
    # THEN it gives one for each, and none the stack does not know
    assert set(local) == SUBSTITUTION_KEYS


def test_local_engine_registers_one_handler_per_lambda_step() -> None:
    assert engine.LAMBDA_STATES == {f: function_arn_key(f) for f in LAMBDA_STEPS}


def test_asl_file_uses_only_listed_placeholders_and_every_step_function() -> None:
    used = placeholders((REPO / "statemachine" / "boxloop.asl.json").read_text())
    assert used <= SUBSTITUTION_KEYS
    assert {function_arn_key(f) for f in LAMBDA_STEPS} <= used
