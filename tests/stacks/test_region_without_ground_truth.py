"""The labeling app deploys where Ground Truth does not; the Ground Truth variant names the fix.

The regions come from data, never from a list here: botocore's endpoint data names the
commercial SageMaker regions, ``boxloop.aws.regions`` the Ground Truth ones, and sagemaker-core
(through ``regions``) the regions that publish the two images the stack needs.
"""

from __future__ import annotations

import json
import re
from typing import Any

import aws_cdk as cdk
import boto3
import pytest
from cdk_nag import AwsSolutionsChecks
from cfnlint.api import ManualArgs, lint

from boxloop.aws import regions
from boxloop.core.errors import ConfigError

ACCOUNT = "123456789012"
GROUND_TRUTH_ACCOUNTS = frozenset(regions.GROUND_TRUTH_LAMBDA_ACCOUNTS.values())


def _without_ground_truth() -> list[str]:
    """The commercial SageMaker regions that Ground Truth does not serve, sorted."""
    sagemaker = boto3.session.Session().get_available_regions("sagemaker")
    return sorted(set(sagemaker) - set(regions.GROUND_TRUTH_REGIONS))


def _has_images(region: str) -> bool:
    try:
        regions.object_detection_image_uri(region)
        regions.processing_image_uri(region)
    except ConfigError:
        return False
    return True


def _cli_environ(region: str) -> dict[str, str]:
    """What the CDK CLI exports once credentials resolve."""
    return {"CDK_DEFAULT_ACCOUNT": ACCOUNT, "CDK_DEFAULT_REGION": region}


@pytest.fixture(scope="module")
def app_region() -> str:
    """The first region with both images and without Ground Truth."""
    candidates = [r for r in _without_ground_truth() if _has_images(r)]
    assert candidates, "no commercial region has the images but not Ground Truth any more"
    return candidates[0]


@pytest.fixture(scope="module")
def app_synth(app_region, make_app, make_config, make_stack, tmp_path_factory):
    """The default (app) variant synthesized there with cdk-nag: (stack, report, template)."""
    outdir = tmp_path_factory.mktemp("app-without-ground-truth")
    app = make_app(outdir=str(outdir))
    config = make_config(environ=_cli_environ(app_region))
    stack = make_stack(config, app=app)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()  # raises (ValidationFailed) on an unacknowledged finding
    report = json.loads((outdir / "validation-report.json").read_text())
    template = (outdir / f"{stack.artifact_id}.template.json").read_text()
    return stack, report, template


def _statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for resource in template["Resources"].values()
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::Role")
        for document in (
            [resource["Properties"].get("PolicyDocument")]
            + [p["PolicyDocument"] for p in resource["Properties"].get("Policies", [])]
        )
        if document
        for statement in document["Statement"]
    ]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- the app variant ----------------------------------------------------------------------------


def test_app_config_needs_only_the_images_in_every_region_without_ground_truth(make_config):
    # GIVEN each commercial region that Ground Truth does not serve
    for region in _without_ground_truth():
        if _has_images(region):
            # THEN the app variant (the default) builds there, without Ground Truth's ARNs
            config = make_config(environ=_cli_environ(region))
            assert (config.region, config.human_labeling) == (region, "boxloop")
            assert config.ground_truth is None
            assert region in config.training_image and region in config.processing_image
        else:
            # AND where an image is missing, only the images are named, never Ground Truth
            with pytest.raises(ConfigError) as raised:
                make_config(environ=_cli_environ(region))
            assert raised.value.problems
            assert all("image" in p and "Ground Truth" not in p for p in raised.value.problems)


def test_app_variant_synthesizes_there_with_cdk_nag_clean(app_synth, app_region):
    stack, report, _ = app_synth
    assert (stack.region, stack.account) == (app_region, ACCOUNT)
    (plugin,) = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    assert plugin["violations"] == [] and plugin["conclusion"] == "success"


def test_app_variant_there_passes_cfn_lint(app_synth, app_region):
    _, _, template = app_synth
    matches = lint(template, config=ManualArgs(ignore_checks=["W3005"], regions=[app_region]))
    # the two findings test_compliance.py documents as cfn-lint's, on the ASL before the
    # substitutions are applied (a ${Key} in an ARN; OutputPath on a Succeed state)
    findings = [
        f"{m.rule.id} {m.message} ({m.path})"
        for m in matches
        if not (
            "DefinitionString" in m.path
            and ("${" in m.message or "'OutputPath' was unexpected" in m.message)
        )
    ]
    assert findings == []


def test_app_variant_there_holds_no_ground_truth_arn_or_permission(app_synth):
    _, _, text = app_synth
    template = json.loads(text)
    # THEN no Ground Truth function, and no account of one, appears anywhere
    assert "BoundingBox" not in text
    assert not GROUND_TRUTH_ACCOUNTS & set(re.findall(r"\b\d{12}\b", text))
    # AND the definition keeps its Label state, whose placeholders get a function of the
    # stack's own account that no stack creates
    (machine,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    label = json.loads(machine["DefinitionString"])["States"]["Label"]
    human_task = label["Parameters"]["HumanTaskConfig"]
    assert human_task["PreHumanTaskLambdaArn"] == "${PreHumanTaskLambdaArn}"
    for key in ("PreHumanTaskLambdaArn", "AnnotationConsolidationLambdaArn"):
        value = json.dumps(machine["DefinitionSubstitutions"][key])
        assert "function:boxloop-ground-truth-not-used" in value
        assert '{"Ref": "AWS::AccountId"}' in value
    # AND no policy grants a labeling-job action or names a labeling job
    statements = _statements(template)
    actions = [a for s in statements for a in _as_list(s["Action"])]
    assert [a for a in actions if "LabelingJob" in a] == []
    assert [s for s in statements if "labeling-job/" in json.dumps(s.get("Resource"))] == []
    # while the jobs the app variant runs are still granted
    assert {"sagemaker:CreateTrainingJob", "sagemaker:StopProcessingJob"} <= set(actions)


# --- the Ground Truth variant -------------------------------------------------------------------


def test_groundtruth_variant_there_fails_naming_the_fix_with_the_other_problems(
    make_config, app_region
):
    # GIVEN humanLabeling=groundtruth in a region without Ground Truth, and a bad loop key
    with pytest.raises(ConfigError) as raised:
        make_config(environ=_cli_environ(app_region), humanLabeling="groundtruth", seedSize=0)
    problems = raised.value.problems
    # THEN one error lists both problems
    assert any("seedSize" in p for p in problems)
    (ground_truth,) = [p for p in problems if "Ground Truth" in p]
    # AND the Ground Truth one names the region, the fix and the regions that would do
    assert repr(app_region) in ground_truth
    assert "-c humanLabeling=boxloop" in ground_truth
    assert all(r in ground_truth for r in regions.GROUND_TRUTH_REGIONS)
