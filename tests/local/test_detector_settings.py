"""The local detector's training budget follows the epochs the loop asks for."""

from __future__ import annotations

from boxloop.local.runners import DetectorSettings


def test_image_steps_scale_with_the_requested_epochs_against_the_runs_own() -> None:
    settings = DetectorSettings(image_steps=1024, reference_epochs=30)

    assert settings.steps_for({"epochs": "30"}) == 1024
    assert settings.steps_for({"epochs": "75"}) == 2560  # the longer last model
    assert settings.steps_for({}) == 1024


def test_without_the_runs_epochs_the_budget_is_fixed() -> None:
    assert DetectorSettings(image_steps=1024).steps_for({"epochs": "75"}) == 1024
