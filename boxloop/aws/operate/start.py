"""Start a run: check its input manifest and settings first, then start the execution.

Ingest would reject a bad settings value or a manifest without one usable line, but only after
the execution started; checking here, with the stack's own settings (``config/loop.json``) and
the same parsers Ingest uses (``IngestRequest.from_event``, ``LoopConfig.with_overrides``,
``validate_manifest``), makes a run that would fail at Ingest fail in the terminal, before
anything is paid for.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from boxloop.aws.clients import client
from boxloop.aws.s3 import iter_lines
from boxloop.core.errors import BoxloopError, NothingUsableError
from boxloop.core.manifests import ValidationReport, validate_manifest
from boxloop.steps.ingest import IngestRequest

if TYPE_CHECKING:
    from boxloop.aws.operate.deployment import Deployment
    from boxloop.core.config import LoopConfig

MAX_EXECUTION_NAME = 80
"""Step Functions' limit on an execution name."""
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckedRun:
    """An execution input that passed every check Ingest makes before reading images.

    Attributes:
        name: the execution name.
        execution_input: ``{"manifest" | "ledger": uri, "overrides": {...}}``.
        config: the run's effective settings (the stack's with the overrides).
        report: the manifest's validation counts and bad lines (``None`` for a ledger).
    """

    name: str
    execution_input: dict[str, Any]
    config: LoopConfig
    report: ValidationReport | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StartedRun:
    """A started execution: its ARN and its page in the console."""

    execution_arn: str
    console_url: str


def execution_name(base: str, *, now: datetime | None = None) -> str:
    """``<base>-<UTC time>``, in the characters and length Step Functions takes."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    head = _NAME_CHARS.sub("-", base).strip("-_")[: MAX_EXECUTION_NAME - len(stamp) - 1]
    return f"{head or 'run'}-{stamp}"


def check_name(name: str) -> str:
    """``name`` when Step Functions takes it as an execution name.

    Raises:
        BoxloopError: naming the characters and length allowed.
    """
    if not name or len(name) > MAX_EXECUTION_NAME or _NAME_CHARS.search(name):
        raise BoxloopError(
            f"--name {name!r}: an execution name is 1-{MAX_EXECUTION_NAME} letters, digits, "
            "hyphens and underscores"
        )
    return name


def check_run(
    deployment: Deployment,
    *,
    name: str,
    manifest: str | None = None,
    ledger: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> CheckedRun:
    """Check a run's input as Ingest will, without starting it.

    Args:
        deployment: the stack the run goes to.
        name: the execution name.
        manifest: a new run's input manifest (``s3://``).
        ledger: instead of ``manifest``, the ledger a resumed run starts from (its lines were
            checked when the earlier run wrote them).
        overrides: settings that differ from the stack's for this run.

    Raises:
        ConfigError: a bad execution input or settings value (every one listed).
        NothingUsableError: no line of the manifest is usable.
        AwsSetupError: the stack's settings cannot be read.
    """
    execution_input: dict[str, Any] = {"manifest": manifest} if manifest else {"ledger": ledger}
    if overrides:
        execution_input["overrides"] = overrides
    IngestRequest.from_event(
        {"execution": check_name(name), "input": execution_input}, bucket=deployment.bucket
    )
    config = deployment.loop_config().with_overrides(overrides or {})
    report = None
    if manifest:
        report = ValidationReport(source=manifest)
        for _ in validate_manifest(
            iter_lines(manifest), source=manifest, label_config=config.labels, report=report
        ):
            pass
        if report.good == 0:
            first = f"; first: {report.errors[0]}" if report.errors else ""
            raise NothingUsableError(f"no usable line ({report.summary()}){first}", source=manifest)
    return CheckedRun(name=name, execution_input=execution_input, config=config, report=report)


def start_run(deployment: Deployment, run: CheckedRun) -> StartedRun:
    """Start the checked run's execution.

    Raises:
        BoxloopError: an execution of that name already exists (with another input).
    """
    from botocore.exceptions import ClientError

    try:
        arn = client("stepfunctions").start_execution(**start_request(deployment, run))[
            "executionArn"
        ]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
            raise BoxloopError(
                f"an execution named {run.name!r} already exists: choose another --name"
            ) from None
        raise
    return StartedRun(execution_arn=arn, console_url=deployment.console_url(arn))


def start_request(deployment: Deployment, run: CheckedRun) -> dict[str, Any]:
    """The StartExecution parameters for ``run``."""
    return {
        "stateMachineArn": deployment.state_machine_arn,
        "name": run.name,
        "input": json.dumps(run.execution_input),
    }
