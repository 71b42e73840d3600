"""What a setting may hold: each rule checks a value, reads it from text and describes itself.

One rule object serves three readers of a setting's declaration (``boxloop.core.settings``):
``LoopConfig`` asks ``problem`` (every problem named by the setting, collected), the CDK
context and ``--set`` ask ``parse`` (``-c key=value`` gives every value as a string), and the
settings table prints ``text``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from boxloop.core.labels import LabelConfig
from boxloop.core.manifests import SOURCE_REF
from boxloop.core.records import ID_KEY, PROVENANCE_KEY

MAX_COUNT = 1e9
"""The upper end of counts that have no natural limit."""
DERIVED_HYPERPARAMETERS = frozenset({"num_classes", "num_training_samples", "label_width"})
"""Set by prepare-training from each iteration's data: never a setting."""
_NULL_TEXT = frozenset({"", "null", "none"})
_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False}


class Rule:
    """A setting's type and range."""

    __slots__ = ()
    text: str = ""
    """The type and range, for the settings table (``int in [1, 100]``)."""

    def problem(self, name: str, value: Any) -> str | None:
        """What is wrong with ``value`` for setting ``name``, or None."""
        raise NotImplementedError

    def parse(self, value: Any) -> Any:
        """``value`` as this setting's type when it came as text; else unchanged.

        Text that does not convert is returned as it is, so that ``problem`` names it.
        """
        return value.strip() if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class Number(Rule):
    """A whole number or a number in a range (each end closed unless ``open_*``), null or not."""

    kind: type[int] | type[float]
    low: float
    high: float
    open_low: bool = False
    open_high: bool = False
    optional: bool = False

    @property
    def span(self) -> str:
        """The range as ``[low, high]``, with ``(`` / ``)`` for open ends."""
        low = "(" if self.open_low else "["
        high = ")" if self.open_high else "]"
        return f"{low}{_number_text(self.low)}, {_number_text(self.high)}{high}"

    @property
    def text(self) -> str:  # type: ignore[override]
        """``int in [1, 100]`` / ``float in (0, 1] or null``."""
        null = " or null" if self.optional else ""
        return f"{self.kind.__name__} in {self.span}{null}"

    def problem(self, name: str, value: Any) -> str | None:
        """What is wrong with ``value`` for setting ``name``, or None."""
        if value is None and self.optional:
            return None
        null = " or null" if self.optional else ""
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return f"{name} must be a whole number in {self.span}{null}, got {value!r}"
        elif isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name} must be a number in {self.span}{null}, got {value!r}"
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        if not (above and below):  # NaN fails both
            return f"{name} must be in {self.span}{null}, got {value!r}"
        return None

    def parse(self, value: Any) -> Any:
        """Numbers from text (``"3"``, ``"3.0"``, ``"0.5"``); null from ``""``/``"null"``."""
        if self.kind is int and isinstance(value, float) and value.is_integer():
            return int(value)  # 3.0, as some JSON writers send 3
        if not isinstance(value, str):
            return value
        text = value.strip()
        if self.optional and text.lower() in _NULL_TEXT:
            return None
        try:
            number = float(text)
        except ValueError:
            return value
        if self.kind is int and number.is_integer() and math.isfinite(number):
            return int(number)
        return number if self.kind is float else value


@dataclass(frozen=True, slots=True)
class OneOf(Rule):
    """One of a closed set of names."""

    options: tuple[str, ...]

    @property
    def text(self) -> str:  # type: ignore[override]
        """The choices, ``a | b | c``."""
        return " | ".join(self.options)

    def problem(self, name: str, value: Any) -> str | None:
        """What is wrong with ``value`` for setting ``name``, or None."""
        if value not in self.options:
            return f"{name} must be one of {self.options}, got {value!r}"
        return None


@dataclass(frozen=True, slots=True)
class Flag(Rule):
    """True or false."""

    text: str = "bool"

    def problem(self, name: str, value: Any) -> str | None:
        """What is wrong with ``value`` for setting ``name``, or None."""
        return None if isinstance(value, bool) else f"{name} must be true or false, got {value!r}"

    def parse(self, value: Any) -> Any:
        """``true``/``false``/``1``/``0`` from text."""
        if isinstance(value, str):
            return _BOOL_TEXT.get(value.strip().lower(), value)
        return value


@dataclass(frozen=True, slots=True)
class Labels(Rule):
    """The class names (a list; LabelConfig checks count, length and uniqueness)."""

    text: str = "list of 1-50 names, each <= 256 characters"

    def problem(self, name: str, value: Any) -> str | None:
        """What is wrong with ``value`` for setting ``name``, or None."""
        if isinstance(value, LabelConfig):
            return None
        return f"{name} must be a LabelConfig (from_dict takes a list of names), got {value!r}"

    def parse(self, value: Any) -> Any:
        """A list from a JSON list or comma-separated text (``-c labels=car,person``)."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return value
        return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True, slots=True)
class Pattern(Rule):
    """A string matching a pattern, with a message that states the rule in words."""

    pattern: re.Pattern[str]
    expected: str
    text: str = "string"
    reserved: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()

    def problem(self, name: str, value: Any) -> str | None:
        """What is wrong with ``value`` for setting ``name``, or None."""
        if (
            isinstance(value, str)
            and self.pattern.fullmatch(value)
            and not (self.suffixes and value.endswith(self.suffixes))
            and value not in self.reserved
        ):
            return None
        return f"{name} must be {self.expected}, got {_shown(value)}"


@dataclass(frozen=True, slots=True)
class TaskText(Rule):
    """A worker-facing line of text within SageMaker's HumanTaskConfig limits."""

    max_length: int
    field: str
    one_line: bool = False
    text: str = "string"

    def problem(self, name: str, value: Any) -> str | None:
        """What is wrong with ``value`` for setting ``name``, or None."""
        if isinstance(value, str) and value.strip():
            if self.one_line:  # TaskDescription: ".+" of at most 255 UTF-16 units
                if _utf16_length(value) <= self.max_length and not _LINE_BREAKS & set(value):
                    return None
            elif len(value) <= self.max_length and _TASK_TITLE.fullmatch(value):
                return None
        what = "on one line" if self.one_line else "without control characters or emoji"
        return (
            f"{name} must be 1-{self.max_length} characters {what}, not blank "
            f"(SageMaker's {self.field}), got {_shown(value)}"
        )


@dataclass(frozen=True, slots=True)
class ModelUri(Rule):
    """An ``s3://`` URI of a model.tar.gz, or null."""

    text: str = "s3:// URI or null"

    def problem(self, name: str, value: Any) -> str | None:
        """What is wrong with ``value`` for setting ``name``, or None."""
        if value is None or (
            isinstance(value, str) and value.startswith("s3://") and len(value) > 5
        ):
            return None
        return f"{name} must be an s3:// URI of a model.tar.gz or null, got {value!r}"

    def parse(self, value: Any) -> Any:
        """``""`` (cdk.json's "none") is null."""
        if isinstance(value, str) and value.strip().lower() in _NULL_TEXT:
            return None
        return Rule.parse(self, value)


@dataclass(frozen=True, slots=True)
class Hyperparameters(Rule):
    """Object Detection hyperparameters by name, values as the strings SageMaker takes."""

    text: str = "object of name -> string"

    def problem(self, name: str, value: Any) -> str | None:
        """What is wrong with ``value`` for setting ``name``, or None."""
        if not isinstance(value, dict):
            return f"{name} must be an object of names to string values, got {value!r}"
        derived = DERIVED_HYPERPARAMETERS & set(value)
        if derived:
            return (
                f"{name} {sorted(derived)} are derived from the data each iteration; remove "
                "them from the overrides"
            )
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            return f"{name} values must be strings, as SageMaker requires"
        if len(value) > 100 or any(len(k) > 256 or len(v) > 2500 for k, v in value.items()):
            return f"{name} must hold at most 100 names of <= 256 characters, values <= 2500"
        epochs = value.get("epochs")
        if epochs is not None and not (epochs.isascii() and epochs.isdigit() and int(epochs) >= 1):
            # prepare-training scales it for the last model (last_model_epochs_factor)
            return f"{name}.epochs must be a whole number >= 1, got {epochs!r}"
        return None

    def parse(self, value: Any) -> Any:
        """An object from JSON text; numbers as strings (``{"epochs": 5}``)."""
        if isinstance(value, str):
            try:
                value = json.loads(value or "{}")
            except json.JSONDecodeError:
                return value
        return hyperparameter_strings(value) if isinstance(value, dict) else value


def hyperparameter_strings(values: dict[str, Any]) -> dict[str, Any]:
    """Numbers as the strings SageMaker takes (``{"epochs": 5}`` from hand-written JSON)."""
    return {
        name: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
        for name, v in values.items()
    }


JOB_PREFIX = Pattern(
    re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,18}[A-Za-z0-9])?"),
    "1-20 ASCII letters, digits or hyphens, starting and ending with a letter or digit (it "
    "starts every SageMaker job name)",
    text="1-20 ASCII letters, digits, hyphens",
)
# CreateLabelingJob.LabelAttributeName; a key of the ledger line, beside Ground Truth's own
# "source-ref" and boxloop's provenance and id keys.
_RESERVED_KEYS = frozenset({"source", SOURCE_REF, PROVENANCE_KEY, ID_KEY})
LABEL_ATTRIBUTE = Pattern(
    re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}"),
    "1-127 ASCII letters, digits or hyphens, start and end with a letter or digit, not end "
    f"with -metadata or -ref and not be one of {sorted(_RESERVED_KEYS)} (Ground Truth's "
    "LabelAttributeName)",
    reserved=_RESERVED_KEYS,
    suffixes=("-metadata", "-ref"),
    text="Ground Truth label attribute name",
)
METRIC_NAME = Pattern(
    re.compile(r"[^\n]{1,255}"),
    "a training metric name such as 'validation:mAP'",
    text="training metric name",
)
# HumanTaskConfig.TaskTitle's pattern (botocore's SageMaker model): no control characters and
# nothing outside the Basic Multilingual Plane.
_TASK_TITLE = re.compile("[\t\n\r -\ud7ff\ue000-\ufffd]*")
_LINE_BREAKS = frozenset("\n\r\x85\u2028\u2029")  # what TaskDescription's ".+" does not match
TASK_TITLE = TaskText(128, "HumanTaskConfig.TaskTitle", text="text, <= 128 characters")
TASK_DESCRIPTION = TaskText(
    255, "HumanTaskConfig.TaskDescription", one_line=True, text="one line, <= 255 characters"
)


def _number_text(number: float) -> str:
    """``1000000000`` rather than ``1e+09``: a limit as a user would type it."""
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _utf16_length(text: str) -> int:
    """Length as SageMaker counts it (Java chars): a character beyond U+FFFF counts twice."""
    return len(text.encode("utf-16-le")) // 2


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(value)} characters)"
