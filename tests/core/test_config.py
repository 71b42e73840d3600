"""Loop settings that other steps derive decisions from."""

from __future__ import annotations

import pytest

from boxloop.core.config import LoopConfig
from boxloop.core.errors import ConfigError
from boxloop.core.labels import LabelConfig

LABELS = LabelConfig(("car", "bike"))


@pytest.mark.parametrize(
    ("settings", "iteration"),
    [
        ({"max_iterations": 6}, 5),  # the last iteration trains, predicts and labels
        ({"max_iterations": 6, "finish_with_humans": True}, 4),  # the last one only sends to humans
        ({"max_iterations": 1}, 0),
    ],
)
def test_last_training_iteration_is_the_one_that_trains_the_last_model(
    settings: dict, iteration: int
) -> None:
    assert LoopConfig(labels=LABELS, **settings).last_training_iteration == iteration


@pytest.mark.parametrize("factor", [0.5, 11.0])
def test_last_model_epochs_factor_must_lengthen_training_within_reason(factor: float) -> None:
    with pytest.raises(ConfigError, match="last_model_epochs_factor must be in"):
        LoopConfig(labels=LABELS, last_model_epochs_factor=factor)


def test_defer_auto_labels_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="defer_auto_labels must be true or false"):
        LoopConfig(labels=LABELS, defer_auto_labels="yes")
