"""cdk-nag (AwsSolutions) and cfn-lint on the synthesized stack: zero findings left."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from cdk_nag import AwsSolutionsChecks
from cfnlint.api import ManualArgs, Match, lint

from stacks.nag import acknowledged_reasons

FULL_CONTEXT = {
    # every optional branch that adds resources or grants
    "kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "workteamArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/labelers",
    "notificationEmail": "ops@example.com",
    "imageBucketNames": ["my-images", "more.images"],
}


@pytest.fixture(scope="module", params=["defaults", "all-options"])
def nag_result(request, make_app, make_config, make_stack, tmp_path_factory):
    """Synth with the AwsSolutions pack on its own App; returns (stack, report, template)."""
    outdir = tmp_path_factory.mktemp(f"nag-{request.param}")
    app = make_app(outdir=str(outdir))
    config = make_config(**(FULL_CONTEXT if request.param == "all-options" else {}))
    stack = make_stack(config, app=app)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    try:
        app.synth()
    except RuntimeError as exc:  # ValidationFailed: the report below says why
        failure = str(exc)
    else:
        failure = ""
    report = json.loads((outdir / "validation-report.json").read_text())
    template = (outdir / f"{stack.artifact_id}.template.json").read_text()
    return stack, report, template, failure


def _plugin(report: dict, name: str) -> dict:
    (plugin,) = [p for p in report["pluginReports"] if p["pluginName"] == name]
    return plugin


def test_nag_finds_nothing_unacknowledged(nag_result):
    _, report, _, failure = nag_result
    plugin = _plugin(report, "AwsSolutions")
    open_findings = [
        f"{v['ruleName']} at {c['constructPath']}"
        for v in plugin["violations"]
        for c in v["violatingConstructs"]
    ]
    assert open_findings == []
    assert plugin["conclusion"] == "success"
    assert failure == ""


def test_nag_acknowledgements_each_give_a_reason(nag_result):
    stack, _, _, _ = nag_result
    reasons = acknowledged_reasons(stack)
    assert reasons, "expected acknowledged findings (IAM5 on grants at least)"
    short = {rule: reason for rule, reason in reasons.items() if len(reason) < 20}
    assert short == {}


def test_nag_acknowledgements_each_match_a_finding(nag_result):
    # GIVEN what was acknowledged, and what cdk-nag found and let through
    stack, report, _, _ = nag_result
    suppressed = [
        (c["constructPath"], v["acknowledgedId"])
        for v in _plugin(report, "AwsSolutions").get("suppressedViolations", [])
        for c in v["violatingConstructs"]
    ]
    # THEN no acknowledgement is stale: each covers a finding at or below its construct
    stale = [
        (path, rule)
        for path, rule in acknowledged_reasons(stack)
        if not any(p.startswith(f"{path}/") and r == rule for p, r in suppressed)
    ]
    assert stale == []


def _is_known_false_positive(match: Match) -> bool:
    """cfn-lint 1.58 findings on the ASL that Step Functions itself accepts.

    - A ``${Key}`` placeholder: cfn-lint checks the definition before CloudFormation applies
      DefinitionSubstitutions, so ``arn:${Partition}:states:::sns:publish`` cannot match yet.
    - ``OutputPath`` on a Succeed state: allowed by the States Language (and by CDK's own
      ``sfn.Succeed(output_path=...)``), missing from cfn-lint's schema.
    """
    if "DefinitionString" not in match.path:
        return False
    return "${" in match.message or "'OutputPath' was unexpected" in match.message


def test_cfn_lint_reports_no_errors_or_warnings(nag_result):
    _, _, template, _ = nag_result
    # W3005 (DependsOn already implied by GetAtt) is how CDK writes IAM policy dependencies.
    matches = lint(template, config=ManualArgs(ignore_checks=["W3005"], regions=["us-east-1"]))
    findings = [m for m in matches if not _is_known_false_positive(m)]
    assert [f"{m.rule.id} {m.message} ({m.path})" for m in findings] == []


def test_nag_report_is_written_next_to_the_template(nag_result):
    stack, _, _, _ = nag_result
    assert Path(stack.node.root.outdir, "validation-report.json").is_file()
