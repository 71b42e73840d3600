"""Settings declared once: the table, the context keys, the CLI and the README derive from it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from boxloop.cli import main
from boxloop.core.config import SETTINGS, LoopConfig
from boxloop.core.errors import ConfigError
from boxloop.core.labels import LabelConfig
from boxloop.core.setting_rules import Number
from boxloop.core.settings import (
    STACK_SETTINGS,
    TABLE_END,
    TABLE_START,
    all_settings,
    camel_case,
    declared_settings,
    default_context,
    markdown_table,
    setting,
    with_context,
    with_table,
)

REPO = Path(__file__).resolve().parents[2]
REGENERATE = (
    "regenerate: .venv/bin/boxloop settings --write-readme README.md --write-cdk-json cdk.json"
)


def test_every_loop_config_field_is_a_declared_setting_with_a_doc() -> None:
    # GIVEN LoopConfig's fields WHEN their declarations are read THEN each has one, documented
    assert [s.name for s in SETTINGS] == [f.name for f in dataclasses.fields(LoopConfig)]
    for s in SETTINGS:
        assert s.doc and len(s.doc) <= 130 and "\n" not in s.doc, s.name
        assert s.rule.text, s.name


def test_a_field_without_a_declaration_is_refused() -> None:
    @dataclasses.dataclass
    class Partly:
        declared: int = setting(1, Number(int, 0, 2), "a declared one")
        undeclared: int = 2

    with pytest.raises(TypeError, match=r"Partly\.undeclared is not declared with setting"):
        declared_settings(Partly)


def test_context_keys_are_unique_and_camel_case_unless_declared_otherwise() -> None:
    keys = [s.context_key for s in all_settings()]
    assert len(keys) == len(set(keys))
    renamed = {s.name: s.context_key for s in SETTINGS if s.context_key != camel_case(s.name)}
    # the keys that kept their names from before the declarations
    assert renamed == {
        "label_attribute": "labelAttributeName",
        "task_time_limit_s": "taskTimeLimitSeconds",
        "task_availability_s": "taskAvailabilitySeconds",
        "max_concurrent_tasks": "maxConcurrentTaskCount",
    }


def test_declared_defaults_are_the_loop_config_defaults() -> None:
    config = LoopConfig(labels=LabelConfig(("car",)))
    for s in SETTINGS:
        if not s.is_required:
            assert getattr(config, s.name) == s.default, s.name


def _context_text(value: object) -> str:
    """How a user writes ``value`` on the command line (``-c key=TEXT``, ``--set key=TEXT``)."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


@pytest.mark.parametrize("declared", SETTINGS, ids=lambda s: s.name)
def test_each_setting_reads_back_from_its_command_line_text(declared) -> None:
    # GIVEN the setting's cdk.json value written as `-c key=value` text
    text = _context_text(declared.context_default)
    # WHEN its rule parses it THEN LoopConfig takes it as the declared default
    data = {"labels": ["car"], declared.name: declared.rule.parse(text)}
    config = LoopConfig.from_dict(data)
    value = getattr(config, declared.name)
    if declared.name == "labels":
        assert list(value.class_names) == declared.context_default
    else:
        assert value == declared.default


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("seed_size", "many"),  # not a number: LoopConfig names it
        ("defer_auto_labels", "maybe"),
        ("target_value", "high"),
    ],
)
def test_text_that_does_not_parse_is_refused_by_the_setting_it_was_for(name, text) -> None:
    declared = {s.name: s for s in SETTINGS}[name]
    with pytest.raises(ConfigError) as caught:
        LoopConfig.from_dict({"labels": ["car"], name: declared.rule.parse(text)})
    assert caught.value.problems[0].startswith(f"{name} must be")


def test_readme_settings_table_is_the_generated_one() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert with_table(readme, markdown_table(all_settings())) == readme, REGENERATE


def test_cdk_json_context_is_the_declared_defaults() -> None:
    cdk_json = json.loads((REPO / "cdk.json").read_text(encoding="utf-8"))
    assert with_context(cdk_json) == cdk_json, REGENERATE
    assert {k for k in cdk_json["context"] if "@" not in k} == set(default_context())


def test_boxloop_settings_rewrites_a_stale_readme_table_and_cdk_json(tmp_path, capsys) -> None:
    # GIVEN a README whose table lacks a setting, and a cdk.json with a retired key
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{TABLE_START}\n| old |\n{TABLE_END}\n\n## after\n")
    cdk_json = tmp_path / "cdk.json"
    flags = {"@aws-cdk/core:checkSecretUsage": True}
    cdk_json.write_text(json.dumps({"app": "x", "context": {"shadowValidation": False, **flags}}))
    # WHEN the command rewrites them
    code = main(["settings", "--write-readme", str(readme), "--write-cdk-json", str(cdk_json)])
    # THEN the table is the generated one, the rest of the README and CDK's flags are kept
    assert code == 0
    text = readme.read_text()
    assert (
        text == f"# x\n\n{TABLE_START}\n{markdown_table(all_settings())}{TABLE_END}\n\n## after\n"
    )
    written = json.loads(cdk_json.read_text())
    assert written == {"app": "x", "context": {**default_context(), **flags}}
    assert "rewritten" in capsys.readouterr().out


def test_a_document_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no .* block to replace"):
        with_table("# no table here\n", "| x |\n")


def test_markdown_table_has_a_row_per_setting_in_declaration_order() -> None:
    rows = markdown_table(all_settings()).splitlines()[2:]
    assert len(rows) == len(SETTINGS) + len(STACK_SETTINGS)
    assert [row.split(" | ")[1].strip("`") for row in rows] == [
        s.context_key for s in all_settings()
    ]


def test_boxloop_settings_prints_the_table(capsys) -> None:
    assert main(["settings"]) == 0
    assert capsys.readouterr().out == markdown_table(all_settings())


def test_boxloop_settings_json_declares_every_setting(capsys) -> None:
    assert main(["settings", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [row["context_key"] for row in printed] == [s.context_key for s in all_settings()]
    by_name = {row["name"]: row for row in printed}
    assert by_name["labels"]["required"] is True
    assert by_name["seed_size"] == {
        "name": "seed_size",
        "context_key": "seedSize",
        "scope": "run",
        "type": "int in [1, 1000000000]",
        "default": 60,
        "context_default": 60,
        "required": False,
        "doc": by_name["seed_size"]["doc"],
    }
    assert by_name["region"]["scope"] == "stack"
