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
        # the last iteration trains, predicts and labels
        ({"max_iterations": 6, "finish_with_humans": False}, 5),
        ({"max_iterations": 6, "finish_with_humans": True}, 4),  # the last one only sends to humans
        ({"max_iterations": 1, "finish_with_humans": False}, 0),
        ({}, 3),  # the defaults: five rounds, the fifth for humans
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


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        # a target of 0 certifies any threshold: every image would be auto-labeled
        ({"target_value": 0}, "target_value must be in (0, 1]"),
        ({"target_value": 1.5}, "target_value must be in (0, 1]"),
        # a size of images must be whole
        ({"min_accepted": 1.5}, "min_accepted must be a whole number"),
        ({"seed_size": 2.5}, "seed_size must be a whole number"),
        ({"batch_size": "10"}, "batch_size must be a whole number"),
        ({"human_label_budget": 10.5}, "human_label_budget must be a whole number"),
        ({"patience": True}, "patience must be a whole number"),
        # keep_threshold 0 keeps every box, even score 0
        ({"keep_threshold": 0, "score_floor": 0}, "keep_threshold must be in (0, 1]"),
        ({"keep_threshold": 0.3, "score_floor": 0.4}, "keep_threshold must be >= score_floor"),
        ({"confidence_level": 1.0}, "confidence_level must be in [0.5, 1)"),
        ({"confidence_level": "high"}, "confidence_level must be a number"),
        ({"fixed_threshold": "0.5"}, "fixed_threshold must be a number"),
        ({"cost_cap_usd": -1}, "cost_cap_usd must be in"),
        ({"validation_fraction": float("nan")}, "validation_fraction must be in"),
        # SageMaker's job-name pattern is ASCII and starts with a letter or digit
        ({"job_prefix": "-loop"}, "job_prefix must be 1-20 ASCII letters"),
        ({"job_prefix": "loop-"}, "job_prefix must be 1-20 ASCII letters"),
        ({"job_prefix": "läufer"}, "job_prefix must be 1-20 ASCII letters"),
        ({"job_prefix": "٣loop"}, "job_prefix must be 1-20 ASCII letters"),  # an Arabic digit
        ({"job_prefix": 7}, "job_prefix must be 1-20 ASCII letters"),
        # HumanTaskConfig.TaskTitle: 1-128 characters, no control characters
        ({"task_title": "x" * 129}, "task_title must be 1-128 characters"),
        ({"task_title": ""}, "task_title must be 1-128 characters"),
        ({"task_title": "Box\x00it"}, "task_title must be 1-128 characters"),
        ({"task_title": "Box 🚗"}, "task_title must be 1-128 characters"),
        # HumanTaskConfig.TaskDescription: 1-255 characters on one line
        ({"task_description": "x" * 256}, "task_description must be 1-255 characters"),
        ({"task_description": "two\nlines"}, "task_description must be 1-255 characters"),
        # the label attribute is a manifest key: Ground Truth's pattern, and not a key of its own
        ({"label_attribute": "boxes-metadata"}, "label_attribute must"),
        ({"label_attribute": "source-ref"}, "label_attribute must"),
        ({"label_attribute": "boxloop"}, "label_attribute must"),
        ({"label_attribute": "my boxes"}, "label_attribute must"),
        ({"initial_model_uri": "/tmp/model.tar.gz"}, "initial_model_uri must be an s3:// URI"),
        ({"quality_gate_metric": ""}, "quality_gate_metric must be"),
        ({"hyperparameters": {"epochs": 5}}, "hyperparameters values must be strings"),
        ({"labels": ["car"]}, "labels must be a LabelConfig"),
    ],
)
def test_loop_config_refuses_what_a_later_step_would_refuse(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        LoopConfig(**{"labels": LABELS, **settings})
    assert message in str(caught.value)


def test_loop_config_lists_every_problem_at_once() -> None:
    # GIVEN three independent mistakes WHEN the config is built THEN all three are reported
    with pytest.raises(ConfigError) as caught:
        LoopConfig(labels=LABELS, target_value=0, min_accepted=1.5, keep_threshold=0.01)
    problems = caught.value.problems
    assert [p.split(" ", 1)[0] for p in problems] == [
        "target_value",
        "min_accepted",
        "keep_threshold",
    ]


def test_loop_config_takes_whole_floats_as_ints() -> None:
    # JSON writers may send 3.0 for 3 (as `-c seedSize=3.0` reads as 3 in stacks/context.py)
    config = LoopConfig.from_dict({"labels": ["car"], "min_accepted": 3.0, "seed_size": 40.0})
    assert (config.min_accepted, config.seed_size) == (3, 40)
    assert isinstance(config.min_accepted, int)


@pytest.mark.parametrize(
    ("settings", "target"),
    [
        ({}, 0.9),  # the default, the measured recipe: 90 % of images exactly right
        ({"target_metric": "mean_iou"}, 0.6),  # Ground Truth's expected mean IoU for boxes
        ({"target_metric": "exact_match"}, 0.9),
        ({"target_metric": "exact_match", "target_value": 0.8}, 0.8),
        ({"target_metric": "mean_iou", "target_value": 0.7}, 0.7),
    ],
)
def test_target_metric_brings_its_own_default_target(settings: dict, target: float) -> None:
    config = LoopConfig(labels=LABELS, **settings)
    assert config.calibration.resolved_target == target
    assert config.resolved_target_value == target


def test_target_value_round_trip_keeps_an_explicit_value_explicit() -> None:
    # GIVEN a stack that left the target at the metric's default, and one that set it
    default = LoopConfig(labels=LABELS)
    explicit = LoopConfig(labels=LABELS, target_value=0.8)
    # WHEN a run switches the metric
    switched_default = default.with_overrides({"target_metric": "mean_iou"})
    switched_explicit = explicit.with_overrides({"target_metric": "mean_iou"})
    # THEN the default follows the metric and the explicit value stays
    assert switched_default.resolved_target_value == 0.6
    assert switched_explicit.resolved_target_value == 0.8
    assert LoopConfig.from_dict(default.to_dict()) == default
    assert LoopConfig.from_dict(explicit.to_dict()) == explicit


def test_run_hyperparameters_merge_over_the_stack_values() -> None:
    # GIVEN a stack that trains resnet-101 for 50 epochs
    stack = LoopConfig.from_dict(
        {"labels": ["car"], "hyperparameters": {"base_network": "resnet-101", "epochs": "50"}}
    )
    # WHEN a run overrides only the learning rate
    run = stack.with_overrides({"hyperparameters": {"learning_rate": "0.01"}})
    # THEN the stack's values stay and the built-in defaults fill the rest
    assert run.hyperparameters["base_network"] == "resnet-101"
    assert run.hyperparameters["epochs"] == "50"
    assert run.hyperparameters["learning_rate"] == "0.01"
    assert run.hyperparameters["optimizer"] == "sgd"


def test_hyperparameter_numbers_from_json_become_strings() -> None:
    # an execution input written by hand: {"hyperparameters": {"epochs": 5}}
    config = LoopConfig.from_dict({"labels": ["car"], "hyperparameters": {"epochs": 5}})
    assert config.hyperparameters["epochs"] == "5"


@pytest.mark.parametrize("prefix", ["a", "boxloop", "My-Loop-2", "a1b2c3d4e5f6g7h8i9j0", "x--y"])
def test_job_prefix_accepts_ascii_names(prefix: str) -> None:
    assert LoopConfig(labels=LABELS, job_prefix=prefix).job_prefix == prefix


def test_loop_config_builds_the_confidence_settings_of_post_processing() -> None:
    config = LoopConfig(labels=LABELS, aggregator="margin", score_floor=0.1, keep_threshold=0.6)
    confidence = config.confidence
    assert (confidence.aggregator, confidence.score_floor, confidence.keep_threshold) == (
        "margin",
        0.1,
        0.6,
    )


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        # Ground Truth: label category names cannot exceed 256 characters
        (["car", "x" * 257], r"labels\[1\]: Ground Truth allows at most 256 characters"),
        # ... and a bounding-box job takes at most 50 categories
        ([f"c{i}" for i in range(51)], "at most 50 box classes"),
    ],
)
def test_labels_are_checked_against_ground_truth_limits(labels: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LoopConfig.from_dict({"labels": labels})


def test_labels_of_256_characters_are_accepted() -> None:
    assert LoopConfig.from_dict({"labels": ["x" * 256]}).labels.class_names == ("x" * 256,)


@pytest.mark.parametrize("epochs", ["ten", "2.5", "0", ""])
def test_epochs_hyperparameter_must_be_a_whole_number(epochs: str) -> None:
    # prepare-training multiplies it (last_model_epochs_factor) and the local runner reads it
    with pytest.raises(ConfigError, match=r"hyperparameters\.epochs must be a whole number >= 1"):
        LoopConfig(labels=LABELS, hyperparameters={"epochs": epochs})


def test_validation_fraction_zero_is_refused_as_training_needs_a_validation_channel() -> None:
    # prepare-training raises NotEnoughLabelsError without validation images, after the seed
    # labels are paid for
    with pytest.raises(ConfigError, match=r"validation_fraction must be in \(0, 0.9\]"):
        LoopConfig(labels=LABELS, validation_fraction=0)
