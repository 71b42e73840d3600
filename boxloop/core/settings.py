"""Every setting declared once: name, CDK context key, type and range, default, when to change it.

A run setting is a field of ``LoopConfig`` declared with :func:`setting`; the field's metadata is
its declaration, and everything else derives from it: ``LoopConfig``'s checks, the CDK context
key and its default in ``cdk.json`` (``stacks/context.py``), the execution-input ``overrides``
and ``--set`` keys (the field names), the README's settings table and ``boxloop settings``.
A stack setting (``STACK_SETTINGS``) is read only when the stack is built (region, work team,
instance types, ...); ``stacks/config.py`` checks it, since its checks need the region.

Adding a run setting is one ``name: type = setting(...)`` line in ``LoopConfig`` (plus the code
that reads it, and its row in ``tests/steps/test_settings_walk.py``); then
``boxloop settings --write-readme README.md --write-cdk-json cdk.json`` regenerates the two
copies users read (tests check both).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal

from boxloop.core.setting_rules import Number, OneOf, Rule

_METADATA_KEY = "boxloop.setting"
NO_DEFAULT: Any = dataclasses.MISSING
"""The default of a setting every run must give (``labels``)."""
HUMAN_LABELING = ("boxloop", "groundtruth")
"""Who labels on AWS: the stack's own labeling app, or a Ground Truth work team."""

Scope = Literal["run", "stack"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Setting:
    """One setting's declaration.

    Attributes:
        name: The name a run uses (``LoopConfig`` field, execution ``overrides`` key, ``--set``
            key); for a stack setting, its context key.
        context_key: The CDK context key (``-c key=value``, ``cdk.json``).
        default: The value when none is given (``NO_DEFAULT``: required).
        context_default: What ``cdk.json`` holds for the key, when it differs from ``default``
            (an example class list for ``labels``; ``{}`` for hyperparameter overrides).
        rule: Type and range (``boxloop.core.setting_rules``).
        doc: One line: what it is and when to change it.
        scope: ``run`` (the loop reads it; a run may override it) or ``stack`` (deploy time).
    """

    name: str
    context_key: str
    default: Any
    context_default: Any
    rule: Rule
    doc: str
    scope: Scope

    @property
    def is_required(self) -> bool:
        """No default: every run gives it."""
        return self.default is NO_DEFAULT

    def to_json(self) -> dict[str, Any]:
        """The declaration as ``boxloop settings --json`` prints it."""
        return {
            "name": self.name,
            "context_key": self.context_key,
            "scope": self.scope,
            "type": self.rule.text,
            "default": None if self.is_required else self.default,
            "context_default": self.context_default,
            "required": self.is_required,
            "doc": self.doc,
        }


@dataclass(frozen=True, slots=True)
class _Declared:
    """What ``setting`` stores in a dataclass field's metadata."""

    rule: Rule
    doc: str
    context_key: str | None
    context_default: Any


def setting(
    default: Any,
    rule: Rule,
    doc: str,
    *,
    context_key: str | None = None,
    context_default: Any = NO_DEFAULT,
) -> Any:
    """Declare a ``LoopConfig`` field as a setting (a ``dataclasses.field`` with its metadata).

    Args:
        default: The default; a ``dict`` or ``list`` is copied for each instance.
        rule: Type and range.
        doc: One line: what it is and when to change it (the settings table shows it).
        context_key: The CDK context key; camelCase of the field name when not given.
        context_default: ``cdk.json``'s value when it differs from ``default``.
    """
    metadata = {_METADATA_KEY: _Declared(rule, doc, context_key, context_default)}
    if isinstance(default, dict | list):
        return dataclasses.field(default_factory=lambda: json.loads(json.dumps(default)),
                                 metadata=metadata)  # fmt: skip
    return dataclasses.field(default=default, metadata=metadata)


def declared_settings(cls: type) -> tuple[Setting, ...]:
    """The run settings a dataclass declares with :func:`setting`, in field order."""
    found = []
    for f in dataclasses.fields(cls):
        declared = f.metadata.get(_METADATA_KEY)
        if declared is None:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with setting()")
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = NO_DEFAULT
        found.append(
            Setting(
                name=f.name,
                context_key=declared.context_key or camel_case(f.name),
                default=default,
                context_default=(
                    default if declared.context_default is NO_DEFAULT else declared.context_default
                ),
                rule=declared.rule,
                doc=declared.doc,
                scope="run",
            )
        )
    return tuple(found)


def camel_case(name: str) -> str:
    """``seed_size`` -> ``seedSize``: the CDK context's spelling of a run setting."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass(frozen=True, slots=True)
class Checked(Rule):
    """A stack setting's type as the table shows it; ``stacks/config.py`` checks the value."""

    text: str

    def problem(self, name: str, value: Any) -> str | None:
        """Never a problem here: the stack checks it (with the region it needs)."""
        return None


def _stack(key: str, default: Any, rule: Rule, doc: str) -> Setting:
    return Setting(
        name=key,
        context_key=key,
        default=default,
        context_default=default,
        rule=rule,
        doc=doc,
        scope="stack",
    )


STACK_SETTINGS: tuple[Setting, ...] = (
    _stack("region", "", Checked("region or \"\""),
           "deploy region; empty = the CLI's (CDK_DEFAULT_REGION), else us-east-1"),
    _stack("workteamArn", "", Checked("work team ARN or \"\""),
           "Ground Truth work team (humanLabeling groundtruth); empty = the account's private "
           "team boxloop"),
    _stack("humanLabeling", HUMAN_LABELING[0], OneOf(HUMAN_LABELING),
           "who labels: boxloop's own labeling app, or groundtruth for accounts that still "
           "have Ground Truth"),
    _stack("trainingInstanceType", "ml.p3.2xlarge", Checked("GPU instance type (ml.p*, ml.g*)"),
           "training instances; the built-in Object Detection trains on GPU only"),
    _stack("transformInstanceType", "ml.c5.xlarge", Checked("instance type"),
           "batch transform instances; a GPU type for large pools"),
    _stack("processingInstanceType", "ml.m5.xlarge", Checked("instance type"),
           "post-processing instances; more vCPUs score more images at once"),
    _stack("notificationEmail", "", Checked("email or \"\""),
           "subscribe an email to the run's notification topic"),
    _stack("kmsKeyArn", "", Checked("KMS key ARN or \"\""),
           "customer managed key for bucket, topic and jobs; empty = S3-managed keys"),
    _stack("imageBucketNames", [], Checked("list of bucket names"),
           "buckets the jobs may read images from, besides the stack's own"),
    _stack("tmpExpirationDays", 30, Number(int, 1, 3650),
           "days before objects under tmp/ (transform output) expire"),
)  # fmt: skip
"""The settings the stack alone reads, when it is built."""


TABLE_START = "<!-- settings table: boxloop settings (tests/core/test_config_settings.py) -->"
TABLE_END = "<!-- end of settings table -->"
"""The markers around the generated table in a Markdown document (the README)."""


def default_context() -> dict[str, Any]:
    """Every CDK context key with its default, as ``cdk.json``'s ``context`` block holds them."""
    return {s.context_key: s.context_default for s in all_settings()}


def with_table(document: str, table: str) -> str:
    """``document`` with the text between ``TABLE_START`` and ``TABLE_END`` replaced by ``table``.

    Raises:
        ValueError: when the document lacks the markers.
    """
    start, end = document.find(TABLE_START), document.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"no {TABLE_START!r} ... {TABLE_END!r} block to replace")
    return document[: start + len(TABLE_START)] + "\n" + table + document[end:]


def with_context(cdk_json: dict[str, Any]) -> dict[str, Any]:
    """``cdk.json``'s content with its boxloop keys set to the defaults, CDK's own keys kept."""
    ours = default_context()
    kept = {k: v for k, v in cdk_json.get("context", {}).items() if any(c in k for c in ":@/")}
    return {**cdk_json, "context": {**ours, **kept}}


def markdown_table(settings: tuple[Setting, ...]) -> str:
    """The README's settings table: one row per setting, in declaration order."""
    rows = [
        "| setting | context key | type | default | when to change it |",
        "|---|---|---|---|---|",
    ]
    for s in settings:
        name = f"`{s.name}`" if s.scope == "run" else "(stack)"
        default = "required" if s.is_required else _shown(s.context_default)
        rows.append(
            f"| {name} | `{s.context_key}` | {_cell(s.rule.text)} | {default} | {_cell(s.doc)} |"
        )
    return "\n".join(rows) + "\n"


def _shown(value: Any) -> str:
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def all_settings() -> tuple[Setting, ...]:
    """Every setting: the run settings (``LoopConfig``'s fields), then the stack settings."""
    from boxloop.core.config import SETTINGS  # config declares its fields with setting()

    return (*SETTINGS, *STACK_SETTINGS)
