"""The synthesized boxloop stack, resolved into what the e2e tests run on moto.

The tests run the state machine exactly as ``cdk synth`` writes it: its ``DefinitionString``
and ``DefinitionSubstitutions`` are resolved with ``definition_from_template`` once every
``Ref``/``Fn::GetAtt`` they use has a value. Each Lambda function of the template is found by
its own properties (never by the substitution key that points at it, which would hide a
miswired ARN): ``Handler`` must be ``app.lambda_handler`` and ``Description`` names its folder
(``... (lambdas/<folder>/app.py)``, written by ``stacks/functions.py``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from boxloop.local.emulator import definition_from_template, resolve_intrinsics
from stacks.bundling import REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path

REGION: Final = "us-east-1"  # cdk.json's region, and moto's
ACCOUNT: Final = "123456789012"  # moto's default account
STACK_NAME: Final = "Boxloop"
HANDLER: Final = "app.lambda_handler"
_FOLDER_IN_DESCRIPTION: Final = re.compile(r"\(lambdas/(\w+)/app\.py\)")
_NO_BUNDLING: Final = {"aws:cdk:bundling-stacks": []}


def synth_template(*, outdir: Path, human_labeling: str = "groundtruth") -> dict[str, Any]:
    """The stack synthesized from cdk.json's context (bundling skipped: no Lambda zips).

    ``human_labeling`` picks the Label variant (context ``humanLabeling``): these tests run the
    Ground Truth one unless asked (``tests/workflow/test_boxloop_labeling*.py`` ask for boxloop).
    """
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from stacks.boxloop_stack import BoxloopStack
    from stacks.config import BoxloopConfig

    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    context["humanLabeling"] = human_labeling
    app = cdk.App(context={**context, **_NO_BUNDLING}, outdir=str(outdir))
    config = BoxloopConfig.from_context(context, environ={})
    stack = BoxloopStack(app, STACK_NAME, config=config, root=REPO_ROOT)
    return Template.from_stack(stack).to_json()


def lambda_folders(template: dict[str, Any]) -> dict[str, str]:
    """Logical id -> ``lambdas/<folder>`` of every Lambda function of the template.

    Raises:
        AssertionError: a function without a readable folder or handler, a folder without
            ``app.py``, or a folder served by two functions.
    """
    folders: dict[str, str] = {}
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] != "AWS::Lambda::Function" or properties.get("Handler") != HANDLER:
            continue  # CDK's own helpers (bucket deployment) are not boxloop steps
        found = _FOLDER_IN_DESCRIPTION.search(properties.get("Description", ""))
        assert found, f"{logical_id}: Description names no lambdas/<folder>/app.py"
        folder = found.group(1)
        assert (REPO_ROOT / "lambdas" / folder / "app.py").is_file(), f"{logical_id}: {folder}"
        assert folder not in folders.values(), f"two functions serve lambdas/{folder}"
        folders[logical_id] = folder
    return folders


def _logical_ids(value: Any) -> set[tuple[str, str | None]]:
    """Every ``(logical id, attribute)`` a property value refers to (``None`` for a Ref)."""
    if isinstance(value, list):
        return set().union(*map(_logical_ids, value)) if value else set()
    if not isinstance(value, dict):
        return set()
    if set(value) == {"Ref"} and not value["Ref"].startswith("AWS::"):
        return {(value["Ref"], None)}
    if set(value) == {"Fn::GetAtt"}:
        logical_id, attribute = value["Fn::GetAtt"]
        return {(logical_id, attribute)}
    return set().union(*map(_logical_ids, value.values())) if value else set()


def function_name(logical_id: str) -> str:
    """The name the tests give a function (CloudFormation names it ``<stack>-<id>-<suffix>``)."""
    return f"{STACK_NAME}-{logical_id}"


def _fake_value(
    resource_type: str,
    logical_id: str,
    attribute: str | None,
    given: dict[tuple[str, str | None], str],
) -> str:
    """What a Ref or GetAtt stands for on moto."""
    if (resource_type, attribute) == ("AWS::Lambda::Function", "Arn"):
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name(logical_id)}"
    if (resource_type, attribute) == ("AWS::IAM::Role", "Arn"):
        return f"arn:aws:iam::{ACCOUNT}:role/{function_name(logical_id)}"
    if (resource_type, attribute) in given:
        return given[(resource_type, attribute)]
    raise AssertionError(f"no moto stand-in for {logical_id} ({resource_type}, {attribute})")


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedWorkflow:
    """The synthesized state machine and Lambdas with moto's names filled in.

    Attributes:
        definition: plain ASL JSON, as Step Functions receives it after substitution.
        functions: function name (in the definition's ARNs) -> ``lambdas/<folder>``.
        environment: the environment every boxloop function gets (one shared block).
    """

    definition: str
    functions: dict[str, str]
    environment: dict[str, str]


def resolve_workflow(
    template: dict[str, Any],
    *,
    bucket_name: str,
    topic_arn: str,
    stand_ins: dict[tuple[str, str | None], str] | None = None,
) -> ResolvedWorkflow:
    """Resolve the template's state machine and Lambda environment for moto.

    Args:
        template: the synthesized template.
        bucket_name: the moto bucket standing in for the stack's data bucket (every
            ``AWS::S3::Bucket`` Ref the definition or the functions use).
        topic_arn: the moto topic standing in for the stack's topic.
        stand_ins: more ``(resource type, attribute or None) -> value`` stand-ins (the
            labeling service's table and distribution).

    Raises:
        AssertionError: a reference with no stand-in, or functions whose environments give
            one variable two values (the tests run all handlers in one process, with one
            environment: the union of theirs).
    """
    resources = template["Resources"]
    folders = lambda_folders(template)
    machine = next(r for r in resources.values() if r["Type"] == "AWS::StepFunctions::StateMachine")
    environments = [
        resources[logical_id]["Properties"]["Environment"]["Variables"] for logical_id in folders
    ]
    shared: dict[str, Any] = {}
    for env in environments:
        for key, value in env.items():
            assert shared.setdefault(key, value) == value, f"functions differ in {key}"
    properties = machine["Properties"]
    used = (
        _logical_ids(properties.get("DefinitionString"))
        | _logical_ids(properties.get("DefinitionSubstitutions"))
        | _logical_ids(shared)
    )
    given = {
        ("AWS::S3::Bucket", None): bucket_name,
        ("AWS::SNS::Topic", None): topic_arn,
        **(stand_ins or {}),
    }
    refs = {
        logical_id if attribute is None else f"{logical_id}.{attribute}": _fake_value(
            resources[logical_id]["Type"], logical_id, attribute, given
        )
        for logical_id, attribute in used
    }
    definition = definition_from_template(template, refs, region=REGION, account_id=ACCOUNT)
    environment = resolve_intrinsics(shared, refs, region=REGION, account_id=ACCOUNT)
    return ResolvedWorkflow(
        definition=definition,
        functions={function_name(lid): folder for lid, folder in folders.items()},
        environment={key: str(value) for key, value in environment.items()},
    )
