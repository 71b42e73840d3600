"""Find an execution of the deployed state machine, its history and its run folder.

Users name an execution the way they see it: its name (``street-1``, what ``boxloop aws start``
printed), its full ARN (from the console), or nothing (the latest). The run's files live under
``runs/<run id>/`` where the run id is ``run_id_for(name, arn)``, the same function the Ingest
Lambda names the folder with, so the terminal never guesses a path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boxloop.aws.clients import client
from boxloop.aws.stack_outputs import AwsSetupError
from boxloop.steps.run import run_id_for

if TYPE_CHECKING:
    from collections.abc import Iterator

    from boxloop.aws.operate.deployment import Deployment


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """One execution as DescribeExecution returns it, plus where its run writes.

    Attributes:
        arn: the execution ARN.
        name: the execution name.
        status: ``RUNNING``, ``SUCCEEDED``, ``FAILED``, ``TIMED_OUT``, ``ABORTED``.
        input: the execution input (``manifest`` or ``ledger``, ``overrides``).
        output: the execution output once it succeeded, else ``None``.
        root: ``s3://<bucket>/runs/<run id>``: the run's folder.
        start_date: when it started.
        stop_date: when it ended, or ``None``.
        error: the failure's error name, or ``None``.
        cause: the failure's cause, or ``None``.
    """

    arn: str
    name: str
    status: str
    input: dict[str, Any]
    output: Any
    root: str
    start_date: datetime | None = None
    stop_date: datetime | None = None
    error: str | None = None
    cause: str | None = None

    @property
    def is_running(self) -> bool:
        """Whether the execution has not ended yet."""
        return self.status == "RUNNING"


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def describe(deployment: Deployment, execution: str | None) -> Execution:
    """The execution named ``execution`` (a name or an ARN), or the latest when ``None``.

    Raises:
        AwsSetupError: no such execution of the stack's state machine (the message says how to
            list them), or the state machine has none yet.
    """
    from botocore.exceptions import ClientError

    sfn = client("stepfunctions")
    if execution is None:
        arn = latest_execution_arn(deployment)
    elif execution.startswith("arn:"):
        arn = execution
    else:
        arn = deployment.execution_arn(execution)
    try:
        described = sfn.describe_execution(executionArn=arn)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("ExecutionDoesNotExist", "InvalidArn"):
            raise AwsSetupError(
                f"no execution {execution!r} of {deployment.state_machine_arn} "
                "(aws stepfunctions list-executions --state-machine-arn <it> lists them; "
                "boxloop aws status with no name shows the latest)"
            ) from None
        raise
    name = described["name"]
    return Execution(
        arn=described["executionArn"],
        name=name,
        status=described["status"],
        input=_loads(described.get("input")) or {},
        output=_loads(described.get("output")),
        root=deployment.uri(f"runs/{run_id_for(name, described['executionArn'])}"),
        start_date=described.get("startDate"),
        stop_date=described.get("stopDate"),
        error=described.get("error"),
        cause=described.get("cause"),
    )


def latest_execution_arn(deployment: Deployment) -> str:
    """The ARN of the state machine's most recently started execution.

    Raises:
        AwsSetupError: the state machine has no execution yet.
    """
    paginator = client("stepfunctions").get_paginator("list_executions")
    latest: dict[str, Any] | None = None
    for page in paginator.paginate(stateMachineArn=deployment.state_machine_arn):
        for item in page.get("executions", []):
            if latest is None or item["startDate"] > latest["startDate"]:
                latest = item
        # ListExecutions answers newest first: the first page holds the latest.
        break
    if latest is None:
        raise AwsSetupError(
            f"{deployment.state_machine_arn} has no execution yet: start one with boxloop aws start"
        )
    return str(latest["executionArn"])


def history(execution_arn: str) -> Iterator[dict[str, Any]]:
    """The execution's history events, oldest first, paginated."""
    paginator = client("stepfunctions").get_paginator("get_execution_history")
    for page in paginator.paginate(executionArn=execution_arn):
        yield from page.get("events", [])
