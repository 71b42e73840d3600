"""Context values as the CDK CLI passes them: converted to types, checked, problems collected."""

from __future__ import annotations

import difflib
import json
import re
from typing import TYPE_CHECKING, Any

from boxloop.core.config import SETTINGS, LoopConfig
from boxloop.core.errors import ConfigError
from boxloop.core.settings import HUMAN_LABELING, default_context

__all__ = ["DEFAULT_CONTEXT", "HUMAN_LABELING", "LOOP_FIELDS", "ContextReader"]

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

DEFAULT_CONTEXT: dict[str, Any] = default_context()
"""Every context key and its default, from the settings' declarations (boxloop.core.settings);
cdk.json's "context" block repeats them for users to read and edit (tests/stacks/test_config.py
keeps the two equal). Every `cdk deploy -c key=value` value arrives as a string."""
LOOP_FIELDS: dict[str, str] = {s.context_key: s.name for s in SETTINGS}
"""Context key -> LoopConfig field, for the keys the loop (the Lambdas) reads."""
_RULES = {s.context_key: s.rule for s in SETTINGS}

_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
_GPU_INSTANCE_TYPE = re.compile(r"^ml\.[pg]\d")
WORKTEAM_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:([a-z0-9-]+):(\d{12}):workteam/.+$")
KMS_KEY_ARN = re.compile(
    r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):key/"
    r"(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ContextReader:
    """Reads context values by key, converting CLI strings and collecting every problem."""

    def __init__(self, context: Mapping[str, Any]) -> None:
        self.context = context
        self.problems: list[str] = []

    def _bad(self, key: str, expected: str) -> None:
        self.problems.append(f"context {key!r} must be {expected}, got {self.context[key]!r}")

    def text(self, key: str) -> str:
        """The value as a stripped string ("" for null)."""
        value = self.context[key]
        if value is None:
            return ""
        if isinstance(value, str):
            return value.strip()
        self._bad(key, "a string")
        return ""

    def matching(self, key: str, pattern: re.Pattern[str], *, expected: str = "") -> str:
        """A string that is empty or matches ``pattern``."""
        value = self.text(key)
        if value and not pattern.match(value):
            self._bad(key, expected or f'"" or a value matching {pattern.pattern}')
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        """One of ``allowed`` (the first is the default for "" or null)."""
        value = self.text(key) or allowed[0]
        if value not in allowed:
            self._bad(key, " or ".join(repr(a) for a in allowed))
        return value

    def arn(self, key: str, pattern: re.Pattern[str], region: str) -> str:
        """Empty, or an ARN matching ``pattern`` (region in group 1) that lies in ``region``."""
        value = self.matching(key, pattern)
        match = pattern.match(value)
        if match and match.group(1) != region:
            self.problems.append(
                f"context {key!r} is in {match.group(1)}, but the stack deploys to {region}: "
                "it must be in the same region"
            )
        return value

    def instance_type(self, key: str, *, gpu: bool = False) -> str:
        """A SageMaker instance type (``ml.<family>.<size>``); a GPU family if ``gpu``."""
        value = self.text(key)
        if not _INSTANCE_TYPE.match(value):
            self._bad(key, "a SageMaker instance type such as ml.m5.xlarge")
        elif gpu and not _GPU_INSTANCE_TYPE.match(value):
            self._bad(key, "a GPU type (ml.p*/ml.g*): the built-in Object Detection trains on GPU")
        return value

    def integer(self, key: str, *, low: int | None = None, high: int | None = None) -> int:
        """A whole number in ``[low, high]`` (numeric strings accepted)."""
        value = _number(self.context[key], int)
        if value is None:
            self._bad(key, "a whole number")
            return 0
        if (low is not None and value < low) or (high is not None and value > high):
            self._bad(key, f"in [{low}, {high}]")
        return value

    def names(self, key: str) -> tuple[str, ...]:
        """A list of strings, given as a list, a JSON list or comma-separated text."""
        value = self.context[key]
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError:
                    self._bad(key, "a JSON list or comma-separated names")
                    return ()
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self._bad(key, "a list of strings (or comma-separated names)")
            return ()
        return tuple(value)

    def bucket_names(self, key: str) -> tuple[str, ...]:
        """Names that are valid S3 bucket names."""
        names = self.names(key)
        for name in names:
            if not _BUCKET_NAME.match(name):
                self.problems.append(f"context {key!r}: {name!r} is not a valid S3 bucket name")
        return names

    def loop_config(self) -> LoopConfig | None:
        """The LoopConfig of the loop keys, or None with the problems recorded."""
        # Each value as its rule reads text (-c gives strings); LoopConfig names what is wrong.
        data = {field: _RULES[key].parse(self.context[key]) for key, field in LOOP_FIELDS.items()}
        try:
            return LoopConfig.from_dict(data, source="context")
        except ConfigError as exc:
            self.problems.extend(_name_context_keys(p) for p in exc.problems)
            return None


_KEY_OF_FIELD = {field: key for key, field in LOOP_FIELDS.items()}


def _number(value: Any, kind: Callable[[Any], Any]) -> Any:
    """``value`` as an int or float (strings from ``-c key=value`` included), None if it is not."""
    if isinstance(value, bool):
        return None
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int | float if kind is float else int):
        return kind(value)
    if isinstance(value, str):
        try:
            return kind(value.strip())
        except ValueError:
            # "3.0" is a whole number too, as 3.0 from JSON is (LoopConfig takes both as 3)
            return _number(float(value), kind) if kind is int and _is_float(value) else None
    return None


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _name_context_keys(problem: str) -> str:
    """Prefix a LoopConfig problem (which names its field) with the context key to fix."""
    # "target_value must be", "labels[1]: ...", "hyperparameters.epochs ...": the field leads.
    field = re.split(r"[\s\[:.]", problem.removeprefix("context:").strip(), maxsplit=1)[0]
    key = _KEY_OF_FIELD.get(field)
    return f"context {key!r}: {problem}" if key else problem


def unknown_key_problems(context: Mapping[str, Any]) -> list[str]:
    """Keys that look like a misspelt boxloop key (``workTeamArn``), which would else be ignored.

    Other unknown keys are left alone: the CLI and cdk.context.json add their own (feature flags,
    ``aws:cdk:*``, ``acknowledged-issue-numbers``).
    """
    problems = []
    for key in sorted(context):
        if key in DEFAULT_CONTEXT or any(c in key for c in ":@/"):
            continue
        close = difflib.get_close_matches(key, DEFAULT_CONTEXT, n=1)
        if close:
            problems.append(f"unknown context key {key!r} (did you mean {close[0]!r}?)")
    return problems
