"""The model state the run carries between iterations, typed: what the last round trained and chose.

filter-low-confidence writes it into the run state at the end of an iteration; the next
prepare-labeling reads its thresholds (for the audit and ``closest_to_threshold``),
prepare-training its artifacts (warm start), finalize reports it. One type with one
``to_json``/``from_json`` pair, so the keys are spelt once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from boxloop.core.errors import ConfigError

_THRESHOLDS = ("threshold", "deferred_threshold")
_LEGACY_KEYS = frozenset({"would_be_threshold"})
"""Keys older run states carry that are now derived: read and dropped, so such a run resumes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelState:
    """The last trained model and the thresholds its iteration chose.

    Attributes:
        name: The SageMaker model's name ("" before one exists, or when a step set only the
            artifacts, as a warm start from ``initial_model_uri`` does).
        artifacts: ``s3://.../model.tar.gz`` of the training job; the next training warm
            starts from it.
        threshold: The confidence threshold applied this iteration (``None``: nothing was
            auto-labeled).
        deferred_threshold: A threshold chosen but held back until the last model
            (``defer_auto_labels``).
        gate: Whether the model passed the quality gate (``None``: not known).
    """

    name: str = ""
    artifacts: str | None = None
    threshold: float | None = None
    deferred_threshold: float | None = None
    gate: bool | None = None

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ConfigError(problems)

    @property
    def would_be_threshold(self) -> float | None:
        """From which confidence an open image is a would-be auto-label: the decision's threshold.

        It is the applied threshold or the deferred one (the filter sets at most one of them),
        so it is derived rather than carried: the next round's audit draws the open images at
        or above it (all of them while the threshold is held back; none once it is applied).
        """
        return self.threshold if self.threshold is not None else self.deferred_threshold

    def to_json(self) -> dict[str, Any]:
        """The ``run.model`` block of the state payload."""
        return {
            "name": self.name,
            "artifacts": self.artifacts,
            "threshold": self.threshold,
            "deferred_threshold": self.deferred_threshold,
            "gate": self.gate,
        }

    @classmethod
    def from_json(cls, data: Any, *, source: str = "run.model") -> ModelState:
        """Parse the ``run.model`` block; every unknown key and bad value is reported at once.

        A block from an older run may carry ``would_be_threshold``, now derived: it is dropped.

        Raises:
            ConfigError: naming ``source`` and each bad key.
        """
        if not isinstance(data, dict):
            raise ConfigError([f"{source}: expected an object, got {type(data).__name__}"])
        known = {"name", "artifacts", *_THRESHOLDS, "gate", *_LEGACY_KEYS}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError([f"{source}: unknown key {k!r}" for k in unknown])
        values = {k: v for k, v in data.items() if k not in _LEGACY_KEYS}
        if values.get("name") is None:
            values["name"] = ""
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError([f"{source}.{p}" for p in exc.problems]) from None


def _problems(state: ModelState) -> list[str]:
    problems = []
    if not isinstance(state.name, str):
        problems.append(f"name must be a string, got {state.name!r}")
    if state.artifacts is not None and not (isinstance(state.artifacts, str) and state.artifacts):
        problems.append(f"artifacts must be a model.tar.gz URI or null, got {state.artifacts!r}")
    for key in _THRESHOLDS:
        value = getattr(state, key)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0.0 <= value <= 1.0
        ):
            problems.append(f"{key} must be a confidence in [0, 1] or null, got {value!r}")
    if state.gate is not None and not isinstance(state.gate, bool):
        problems.append(f"gate must be true, false or null, got {state.gate!r}")
    return problems
