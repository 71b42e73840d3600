"""The compared configurations: boxloop's calibrated policy vs the references' fixed rules."""

from __future__ import annotations

from typing import Any

#: name -> loop settings on top of the defaults (LoopConfig's, the measured recipe). Selection
#: strategies share boxloop's policy; the policies share least-confidence selection, except the
#: AWS sample's, which selects at random as the sample does.
CONFIGS: dict[str, dict[str, Any]] = {
    "boxloop/least_confidence": {},
    "boxloop/closest_to_threshold": {"selection_strategy": "closest_to_threshold"},
    "boxloop/random": {"selection_strategy": "random"},
    # aws-samples OD workflows: a detection counts at score >= 0.5 and an image is auto-labeled
    # when every kept box does; no calibration, random human selection.
    "aws-sample/fixed-0.5": {
        "defer_auto_labels": False,  # the sample auto-labels in every round,
        "last_model_epochs_factor": 1.0,  # with one training budget
        "fixed_threshold": 0.5,
        "aggregator": "min",
        "keep_threshold": 0.5,
        "selection_strategy": "random",
    },
    # Ground Truth's rule: the lowest threshold whose validation auto-labels reach an expected
    # mean IoU of 0.6 in every round, no confidence bound.
    "ground-truth/mean-iou-0.6": {
        "defer_auto_labels": False,  # Ground Truth auto-labels in every round,
        "last_model_epochs_factor": 1.0,  # with one training budget
        "target_metric": "mean_iou",
        "target_value": 0.6,
        "confidence_level": None,
    },
}


def overrides_for(name: str) -> dict[str, Any]:
    """The full loop settings of one configuration."""
    if name not in CONFIGS:
        raise KeyError(f"unknown configuration {name!r}; choose from {sorted(CONFIGS)}")
    return dict(CONFIGS[name])
