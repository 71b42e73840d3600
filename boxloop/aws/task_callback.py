"""Answer a Step Functions task token: success, failure, heartbeat, each at most once in effect.

The ``LabelInApp`` state waits on the token StartHumanLabeling stored with the job. A token
whose task is over (the execution was stopped, timed out, or the task already answered)
makes Step Functions raise ``TaskTimedOut``, ``InvalidToken`` or ``TaskDoesNotExist``; all
three mean the same here: nobody waits on this job any more, so the caller closes it. Any
other error (throttling after botocore's retries, access denied) is raised: the job stays as
it is and the next sweep tries again.
"""

from __future__ import annotations

import json
from typing import Any, Final

from botocore.exceptions import ClientError

from boxloop.aws.clients import client

GONE_CODES: Final = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
"""Errors that say the waiting task is over."""
MAX_OUTPUT_BYTES: Final = 262_144
"""SendTaskSuccess's ``output`` limit."""


def _gone(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in GONE_CODES


def send_success(token: str, output: dict[str, Any]) -> bool:
    """Complete the task with ``output``; ``False`` when nobody waits on the token any more.

    Raises:
        ValueError: the output is over Step Functions' 256 KiB (a bug: outputs carry URIs).
        ClientError: any error other than the task being over.
    """
    text = json.dumps(output, separators=(",", ":"))
    if len(text.encode()) > MAX_OUTPUT_BYTES:
        raise ValueError(f"task output of {len(text.encode())} bytes is over {MAX_OUTPUT_BYTES}")
    try:
        client("stepfunctions").send_task_success(taskToken=token, output=text)
    except ClientError as exc:
        if _gone(exc):
            return False
        raise
    return True


def send_failure(token: str, error: str, cause: str) -> bool:
    """Fail the task with ``error`` and ``cause``; ``False`` when it is over already."""
    try:
        client("stepfunctions").send_task_failure(
            taskToken=token, error=error[:256], cause=cause[:32768]
        )
    except ClientError as exc:
        if _gone(exc):
            return False
        raise
    return True


def send_heartbeat(token: str) -> bool:
    """Tell the task that work goes on; ``False`` when it is over (a stopped execution)."""
    try:
        client("stepfunctions").send_task_heartbeat(taskToken=token)
    except ClientError as exc:
        if _gone(exc):
            return False
        raise
    return True
