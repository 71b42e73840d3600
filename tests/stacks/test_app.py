"""app.py end to end: the pinned CLI synthesizes offline; bad context exits 2 naming each key.

The CLI runs with no credentials and no network, as ``cdk synth`` on a laptop without AWS access;
the account and region that the CLI exports when credentials resolve (CDK_DEFAULT_ACCOUNT,
CDK_DEFAULT_REGION) are given in the environment instead, as a real account would give them.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from stacks.bundling import REPO_ROOT

CDK_CLI = Path("node_modules") / ".bin" / "cdk"
ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def cdk_cli() -> Path:
    """The pinned CDK CLI; fails (never skips) when ``./setup.sh --dev`` has not installed it."""
    if not (REPO_ROOT / CDK_CLI).is_file():
        pytest.fail(f"{CDK_CLI} is missing: run ./setup.sh --dev (npm ci)", pytrace=False)
    return REPO_ROOT / CDK_CLI


def _offline_env(**extra: str) -> dict[str, str]:
    """No AWS credentials, profile or instance metadata: the CLI resolves no account itself."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "CDK_")) and k != "CDK_CONTEXT_JSON"
    }
    hermetic = {
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    return env | hermetic | extra


def _cli_synth(cli: Path, out: Path, *args: str, **env: str) -> dict[str, Any]:
    """``cdk synth`` into ``out``; returns the template (fails with the CLI's stderr)."""
    result = subprocess.run(
        [str(cli), "synth", "--quiet", "--no-notices", "-o", str(out), *args],
        cwd=REPO_ROOT,
        env=_offline_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # cdk-nag runs inside app.py: an unacknowledged finding fails the synth
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "Boxloop.template.json").read_text())


def _stack_environment(out: Path) -> str:
    manifest = json.loads((out / "manifest.json").read_text())
    return manifest["artifacts"]["Boxloop"]["environment"]


def _training_image(template: dict[str, Any]) -> str:
    (machine,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    return machine["Properties"]["DefinitionSubstitutions"]["TrainingImage"]


@pytest.mark.usefixtures("source_root")  # fails while files the stack deploys are missing
def test_cdk_cli_synth_writes_template_with_cdk_json_defaults(cdk_cli, tmp_path):
    # GIVEN the repository with cdk.json's default context, no credentials and no region
    out = tmp_path / "cdk.out"
    # WHEN the pinned CLI synthesizes THEN it succeeds without an account (us-east-1 by default)
    template = _cli_synth(cdk_cli, out)
    assert "AWS::StepFunctions::StateMachine" in {r["Type"] for r in template["Resources"].values()}
    assert _stack_environment(out) == "aws://unknown-account/us-east-1"


@pytest.mark.usefixtures("source_root")
def test_cdk_cli_synth_passes_nag_with_a_literal_account_and_region(cdk_cli, tmp_path):
    # GIVEN the account and region a configured profile gives the CLI (issue 12: nag failed on
    # the bootstrap asset bucket's ARN once the account was a literal)
    out = tmp_path / "cdk.out"
    env = {"CDK_DEFAULT_ACCOUNT": ACCOUNT, "CDK_DEFAULT_REGION": "eu-west-1"}
    # WHEN the pinned CLI synthesizes (it exports AWS_REGION's region as CDK_DEFAULT_REGION)
    template = _cli_synth(cdk_cli, out, AWS_REGION="eu-west-1", **env)
    # THEN the stack is bound to that account and region, and cdk-nag let it through
    assert _stack_environment(out) == f"aws://{ACCOUNT}/eu-west-1"
    assert ".eu-west-1." in _training_image(template)


@pytest.mark.usefixtures("source_root")
def test_cdk_cli_synth_deploys_to_the_context_region_over_the_profile_region(cdk_cli, tmp_path):
    # GIVEN a profile in us-east-1 and an explicit `-c region=ap-southeast-2`
    out = tmp_path / "cdk.out"
    env = {"CDK_DEFAULT_ACCOUNT": ACCOUNT, "CDK_DEFAULT_REGION": "us-east-1"}
    # WHEN the pinned CLI synthesizes
    template = _cli_synth(
        cdk_cli, out, "-c", "region=ap-southeast-2", AWS_REGION="us-east-1", **env
    )
    # THEN the context region wins: stack environment, algorithm image and nag all agree
    assert _stack_environment(out) == f"aws://{ACCOUNT}/ap-southeast-2"
    assert ".ap-southeast-2." in _training_image(template)


def _run_main(app: cdk.App) -> None:
    runpy.run_path(str(REPO_ROOT / "app.py"))["main"](app)


def test_app_prints_every_context_problem_and_exits_2(capsys):
    # GIVEN two bad context values, as strings the way `cdk synth -c key=value` passes them
    app = cdk.App(context={"seedSize": "0", "trainingInstanceType": "ml.m5.xlarge"})
    # WHEN app.py runs THEN it exits 2 and names both keys, without a traceback
    with pytest.raises(SystemExit) as exited:
        _run_main(app)
    assert exited.value.code == 2
    stderr = capsys.readouterr().err
    assert "'seedSize'" in stderr
    assert "'trainingInstanceType'" in stderr
    assert "Traceback" not in stderr


@pytest.mark.usefixtures("source_root")
def test_app_main_builds_the_stack_in_the_context_region_over_cdk_default_region(
    cdk_context, monkeypatch, tmp_path
):
    # GIVEN the CLI's region and account in the environment, and `-c region=eu-west-1`
    monkeypatch.setenv("CDK_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", ACCOUNT)
    context = {**cdk_context, "region": "eu-west-1", "aws:cdk:bundling-stacks": []}
    app = cdk.App(context=context, outdir=str(tmp_path))
    # WHEN app.py's main synthesizes (cdk-nag included)
    _run_main(app)
    # THEN the stack lives in eu-west-1 with the literal account, and says what it overrode
    stack = app.node.find_child("Boxloop")
    assert (stack.region, stack.account) == ("eu-west-1", ACCOUNT)
    warnings = [
        entry.data
        for entry in stack.node.metadata
        if entry.type == "aws:cdk:warning" and "CDK_DEFAULT_REGION" in str(entry.data)
    ]
    assert len(warnings) == 1
    assert "eu-west-1" in str(warnings[0])
    assert "us-east-1" in str(warnings[0])
