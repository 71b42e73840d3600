"""cdk-nag (AwsSolutions) and cfn-lint on the synthesized stack: zero findings left."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from cdk_nag import AwsSolutionsChecks
from cfnlint.api import ManualArgs, Match, lint

from stacks.nag import acknowledged_reasons

ACCOUNT = "123456789012"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"


def _full_context(region: str) -> dict[str, object]:
    """Every optional branch that adds resources or grants, with ARNs in ``region``."""
    return {
        "kmsKeyArn": f"arn:aws:kms:{region}:{ACCOUNT}:key/{KEY_ID}",
        "workteamArn": f"arn:aws:sagemaker:{region}:{ACCOUNT}:workteam/private-crowd/labelers",
        "notificationEmail": "ops@example.com",
        "imageBucketNames": ["my-images", "more.images"],
    }


# (options, region, account): each region is synthesized both with the account a token (no
# credentials) and a literal (what the CLI exports once credentials resolve); the options
# alternate so that both option sets meet both account forms.
CASES = [
    ("defaults", "us-east-1", None),
    ("all-options", "us-east-1", ACCOUNT),
    ("all-options", "eu-west-1", None),
    ("defaults", "eu-west-1", ACCOUNT),
    ("defaults", "ap-southeast-2", None),
    ("all-options", "ap-southeast-2", ACCOUNT),
]


@pytest.fixture(
    scope="module",
    params=CASES,
    ids=[
        f"{options}-{region}-{'literal' if account else 'token'}"
        for options, region, account in CASES
    ],
)
def nag_result(request, make_app, make_config, make_stack, tmp_path_factory):
    """Synth with the AwsSolutions pack on its own App; returns (stack, report, template)."""
    options, region, account = request.param
    outdir = tmp_path_factory.mktemp(f"nag-{options}-{region}")
    app = make_app(outdir=str(outdir))
    environ = {"CDK_DEFAULT_REGION": region} | ({"CDK_DEFAULT_ACCOUNT": account} if account else {})
    config = make_config(
        environ=environ, **(_full_context(region) if options == "all-options" else {})
    )
    assert (config.region, config.account) == (region, account)
    stack = make_stack(config, app=app)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    try:
        app.synth()
    except RuntimeError as exc:  # ValidationFailed: the report below says why
        failure = str(exc)
    else:
        failure = ""
    report_file = outdir / "validation-report.json"
    assert report_file.is_file(), failure or f"{report_file} was not written"
    report = json.loads(report_file.read_text())
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
    stack, _, template, _ = nag_result
    # W3005 (DependsOn already implied by GetAtt) is how CDK writes IAM policy dependencies.
    matches = lint(template, config=ManualArgs(ignore_checks=["W3005"], regions=[stack.region]))
    findings = [m for m in matches if not _is_known_false_positive(m)]
    assert [f"{m.rule.id} {m.message} ({m.path})" for m in findings] == []


def test_nag_report_is_written_next_to_the_template(nag_result):
    stack, _, _, _ = nag_result
    assert Path(stack.node.root.outdir, "validation-report.json").is_file()
