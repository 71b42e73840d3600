"""ASL definitions for the local engine: CDK's synthesized DefinitionString and ${Substitutions}."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from boxloop.aws.asl import PLACEHOLDER, placeholders
from boxloop.core.errors import ConfigError


def substitute_definition(template: str, substitutions: Mapping[str, Any]) -> str:
    """Replace each ``${Name}`` in an ASL file the way Step Functions' DefinitionSubstitutions do.

    Values are inserted as text, so a value meant to be a JSON string must sit inside quotes in
    the file (``"FunctionName": "${PrepareFunction}"``). Extra substitutions are ignored, as AWS
    ignores them.

    Raises:
        ConfigError: the file names placeholders missing from ``substitutions`` (all listed).
    """
    missing = sorted(placeholders(template) - set(substitutions))
    if missing:
        given = ", ".join(sorted(substitutions)) or "none"
        raise ConfigError(
            [
                f"definition uses ${{{name}}} but no substitution is given (given: {given})"
                for name in missing
            ]
        )
    return PLACEHOLDER.sub(lambda m: str(substitutions[m.group(1)]), template)


def resolve_intrinsics(
    value: Any,
    refs: Mapping[str, str],
    *,
    region: str,
    account_id: str,
    partition: str = "aws",
    url_suffix: str = "amazonaws.com",
    mappings: Mapping[str, Any] | None = None,
) -> Any:
    """Evaluate the CloudFormation intrinsics CDK puts into a state machine's properties.

    Supports ``Ref`` (logical ids and the pseudo parameters ``AWS::Partition``, ``AWS::Region``,
    ``AWS::AccountId``, ``AWS::URLSuffix``), ``Fn::GetAtt``, ``Fn::Join`` and, given the
    template's ``mappings``, ``Fn::FindInMap``; other values are walked and returned as they are.

    Args:
        value: a property value from a synthesized template.
        refs: what each logical id stands for: ``{"Bucket": "my-bucket"}`` for ``Ref`` and
            ``{"PrepareFn.Arn": "arn:aws:lambda:..."}`` for ``Fn::GetAtt``.
        region: ``AWS::Region``.
        account_id: ``AWS::AccountId``.
        partition: ``AWS::Partition``.
        url_suffix: ``AWS::URLSuffix``.
        mappings: the template's ``Mappings`` section, for ``Fn::FindInMap``.

    Raises:
        ConfigError: references with no entry in ``refs`` or unsupported intrinsics (all listed).
    """
    pseudo = {
        "AWS::Partition": partition,
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::URLSuffix": url_suffix,
    }
    problems: list[str] = []

    def lookup(key: str, shown: str) -> str:
        if key in pseudo:
            return pseudo[key]
        if key in refs:
            return refs[key]
        problems.append(f"{shown}: no value given for {key!r} in refs")
        return ""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return lookup(arg, "Ref")
            if key == "Fn::GetAtt":
                logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                return lookup(f"{logical_id}.{attribute}", "Fn::GetAtt")
            if key == "Fn::Join":
                delimiter, parts = arg
                return delimiter.join(str(walk(part)) for part in parts)
            if key == "Fn::FindInMap" and mappings is not None:
                name, top, second = (str(walk(part)) for part in arg)
                try:
                    return mappings[name][top][second]
                except KeyError:
                    problems.append(f"Fn::FindInMap: no {name}.{top}.{second} in the mappings")
                    return ""
            if key.startswith("Fn::"):
                problems.append(f"{key}: intrinsic not supported by the local engine")
                return ""
        return {k: walk(v) for k, v in node.items()}

    resolved = walk(value)
    if problems:
        raise ConfigError(sorted(set(problems)))
    return resolved


def _read_asset(location: Mapping[str, Any], asset_dir: str | Path | None) -> str:
    """The text of a definition file asset staged in the cloud assembly."""
    key = location.get("Key")
    if asset_dir is None or not isinstance(key, str):
        raise ConfigError(
            [
                f"DefinitionS3Location (Key {key!r}) needs the cloud assembly "
                "directory: pass asset_dir=<cdk.out>"
            ]
        )
    path = Path(asset_dir) / f"asset.{key}"
    if not path.is_file():
        raise ConfigError([f"definition asset {path} not found in the cloud assembly"])
    return path.read_text(encoding="utf-8")


def definition_from_template(
    template: Mapping[str, Any],
    refs: Mapping[str, str],
    *,
    region: str,
    account_id: str,
    logical_id: str | None = None,
    asset_dir: str | Path | None = None,
    partition: str = "aws",
    url_suffix: str = "amazonaws.com",
) -> str:
    """The plain ASL JSON of a state machine in a synthesized CloudFormation template.

    Takes the definition from ``DefinitionString``, ``Definition``, or ``DefinitionS3Location``
    (what CDK's ``DefinitionBody.from_file`` synthesizes: the file is staged in the cloud
    assembly as ``asset.<Key>``), resolves it and ``DefinitionSubstitutions`` with
    :func:`resolve_intrinsics`, then applies the substitutions.

    Args:
        template: the synthesized template (a dict).
        refs: see :func:`resolve_intrinsics`.
        region: ``AWS::Region``.
        account_id: ``AWS::AccountId``.
        logical_id: which ``AWS::StepFunctions::StateMachine``; needed only if there are several.
        asset_dir: the cloud assembly directory (``cdk.out``); needed for
            ``DefinitionS3Location``.
        partition: ``AWS::Partition``.
        url_suffix: ``AWS::URLSuffix``.
        mappings: the template's ``Mappings`` section, for ``Fn::FindInMap``.

    Raises:
        ConfigError: no (or no single) state machine, no definition, an asset without
            ``asset_dir``, unresolved references, missing substitutions, or a result that is
            not JSON.
    """
    machines = {
        lid: resource
        for lid, resource in template.get("Resources", {}).items()
        if resource.get("Type") == "AWS::StepFunctions::StateMachine"
        and (logical_id is None or lid == logical_id)
    }
    if len(machines) != 1:
        wanted = logical_id or "exactly one"
        raise ConfigError([f"template must hold {wanted} state machine, found {sorted(machines)}"])
    properties = next(iter(machines.values())).get("Properties", {})
    context = {
        "region": region,
        "account_id": account_id,
        "partition": partition,
        "url_suffix": url_suffix,
    }
    if "DefinitionString" in properties:
        definition = resolve_intrinsics(properties["DefinitionString"], refs, **context)
    elif "Definition" in properties:
        definition = json.dumps(resolve_intrinsics(properties["Definition"], refs, **context))
    elif "DefinitionS3Location" in properties:
        definition = _read_asset(properties["DefinitionS3Location"], asset_dir)
    else:
        raise ConfigError(
            ["the state machine has no Definition, DefinitionString or DefinitionS3Location"]
        )
    substitutions = resolve_intrinsics(
        properties.get("DefinitionSubstitutions", {}), refs, **context
    )
    definition = substitute_definition(definition, substitutions)
    try:
        json.loads(definition)
    except json.JSONDecodeError as exc:
        raise ConfigError([f"resolved definition is not JSON: {exc}"]) from exc
    return definition
