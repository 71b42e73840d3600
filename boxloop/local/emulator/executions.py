"""Create a state machine in moto and run one execution to its end, with a bounded wait."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final

import boto3

_FINISHED: Final = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
_TASK_FAILED_EVENTS: Final = frozenset({"TaskFailed", "LambdaFunctionFailed"})


class ExecutionTimeoutError(TimeoutError):
    """An execution was still running when the caller's time limit ran out (it is then stopped)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionResult:
    """How one execution ended.

    Attributes:
        execution_arn: the execution.
        status: ``SUCCEEDED``, ``FAILED``, ``TIMED_OUT`` or ``ABORTED``.
        output: the execution output, parsed from JSON; None unless it succeeded.
        error: the execution's error name when it did not succeed (``States.TaskFailed``, ...).
        cause: the execution's error cause when it did not succeed.
        visited_states: names of the states entered, in order, repeats included.
        task_errors: the error name of every failed task attempt, in order (each one a Retry or
            Catch saw), e.g. ``("FlakyError", "Lambda.TooManyRequestsException")``.
    """

    execution_arn: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    visited_states: tuple[str, ...]
    task_errors: tuple[str, ...]


def create_state_machine(
    definition: str,
    *,
    name: str = "boxloop-local",
    role_arn: str | None = None,
    region: str | None = None,
) -> str:
    """Create (validating the ASL, as moto's engine does) and return the state machine's ARN."""
    client = boto3.client("stepfunctions", region_name=region)
    if role_arn is None:
        account = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
        role_arn = f"arn:aws:iam::{account}:role/boxloop-local-states"
    response = client.create_state_machine(name=name, definition=definition, roleArn=role_arn)
    return response["stateMachineArn"]


def _history(client: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn}
    while True:
        page = client.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def _visited(events: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(
        e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
    )


def _task_errors(events: list[dict[str, Any]]) -> tuple[str, ...]:
    errors = []
    for event in events:
        if event["type"] in _TASK_FAILED_EVENTS:
            details = event.get("taskFailedEventDetails") or event.get(
                "lambdaFunctionFailedEventDetails", {}
            )
            errors.append(details.get("error", ""))
    return tuple(errors)


def _parse_output(output: str | None) -> Any:
    """The output as a JSON value; moto 5.2.5 returns a top-level string output unquoted."""
    if output is None:
        return None
    try:
        return json.loads(output)
    except json.JSONDecodeError:
        return output


def run_execution(
    state_machine_arn: str,
    execution_input: Any,
    *,
    name: str | None = None,
    timeout_s: float = 60.0,
    poll_s: float = 0.02,
    region: str | None = None,
) -> ExecutionResult:
    """Start an execution and poll it until it ends (moto runs it on a background thread).

    Args:
        state_machine_arn: the state machine to run.
        execution_input: the execution input, any JSON value.
        name: the execution name (a random one by default).
        timeout_s: wall-clock seconds to wait for the end before giving up.
        poll_s: seconds between ``DescribeExecution`` calls.
        region: the region of the state machine (boto3's default if None).

    Raises:
        ExecutionTimeoutError: still running after ``timeout_s``; the execution is stopped
            first, and the message names the states visited so far.
    """
    client = boto3.client("stepfunctions", region_name=region)
    execution_arn = client.start_execution(
        stateMachineArn=state_machine_arn,
        name=name or f"run-{uuid.uuid4().hex[:12]}",
        input=json.dumps(execution_input),
    )["executionArn"]
    deadline = time.monotonic() + timeout_s
    described = client.describe_execution(executionArn=execution_arn)
    while described["status"] not in _FINISHED:
        if time.monotonic() >= deadline:
            client.stop_execution(executionArn=execution_arn, error="boxloop.LocalTimeout")
            visited = " -> ".join(_visited(_history(client, execution_arn))) or "none"
            raise ExecutionTimeoutError(
                f"execution {execution_arn} still running after {timeout_s:g} s "
                f"(states visited: {visited}); it was stopped. A Wait or Retry that really "
                "sleeps? apply(instant_delays=True) skips them."
            )
        time.sleep(poll_s)
        described = client.describe_execution(executionArn=execution_arn)
    events = _history(client, execution_arn)
    error, cause = described.get("error"), described.get("cause")
    for event in events:
        details = event.get("executionFailedEventDetails")
        if details and error is None:
            error, cause = details.get("error"), details.get("cause")
    output = described.get("output")
    return ExecutionResult(
        execution_arn=execution_arn,
        status=described["status"],
        output=_parse_output(output),
        error=error,
        cause=cause,
        visited_states=_visited(events),
        task_errors=_task_errors(events),
    )


def run_definition(
    definition: str,
    execution_input: Any,
    *,
    name: str | None = None,
    timeout_s: float = 60.0,
    region: str | None = None,
) -> ExecutionResult:
    """Create a state machine from ``definition`` and run one execution of it to its end.

    The state machine gets ``name`` or a fresh random one (moto refuses a second, different
    definition under a name already taken).

    Raises:
        ExecutionTimeoutError: see :func:`run_execution`.
    """
    arn = create_state_machine(
        definition, name=name or f"boxloop-local-{uuid.uuid4().hex[:8]}", region=region
    )
    return run_execution(arn, execution_input, timeout_s=timeout_s, region=region)
