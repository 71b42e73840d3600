"""Lambda invokes in moto answered by in-process Python handlers, with Lambda's error semantics."""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError
from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.stepfunctions.parser.api import HistoryEventType, LambdaFunctionFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
    CustomErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (  # noqa: E501
    StateTaskServiceLambda,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import (
    StateTaskLambda,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.utilities.utils import get_partition

if TYPE_CHECKING:
    from moto.stepfunctions.parser.asl.eval.environment import Environment

    from boxloop.local.emulator._ledger import PatchLedger

LOG = logging.getLogger(__name__)

#: A Lambda handler as the Python runtime calls it: ``handler(event, context) -> JSON value``.
Handler = Callable[[Any, "LambdaContext"], Any]

_HANDLERS: dict[str, Handler] = {}
_LOCK = threading.Lock()
_DEFAULT_TIMEOUT_S: Final = 900
# moto's own functions, taken before anything is patched (this module is imported before apply()).
_MOTO_INVOKE: Final = LambdaSimpleBackend.invoke
_MOTO_DIRECT_FROM_ERROR: Final = StateTaskLambda._from_error


class LambdaThrottled(Exception):
    """Raise from a handler to make this invoke fail the way a throttled Lambda does.

    Real throttling rejects the Invoke call itself with HTTP 429 ``TooManyRequestsException``
    before any code runs; Step Functions then reports the error ``Lambda.TooManyRequestsException``
    (both for ``arn:aws:states:::lambda:invoke`` and for a plain function ARN resource), which is
    what an ASL ``Retry`` on throttling matches. Raising this from a handler reproduces exactly
    that response, so fault-injection tests can throttle the first N calls.
    """


class _TooManyRequests(LambdaClientError):
    code = 429  # HTTP status of a throttled Invoke

    def __init__(self, message: str) -> None:
        super().__init__("TooManyRequestsException", message)


@dataclass(frozen=True, slots=True, kw_only=True)
class LambdaContext:
    """The parts of the Lambda Python runtime's context object that handlers and powertools read."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 128
    log_group_name: str = ""
    log_stream_name: str = ""
    timeout_s: int = _DEFAULT_TIMEOUT_S
    started_at_s: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the (nominal) function timeout, never negative."""
        elapsed_s = time.monotonic() - self.started_at_s
        return max(0, int((self.timeout_s - elapsed_s) * 1000))


def register_lambda(function_name: str, handler: Handler) -> None:
    """Answer every invoke of ``function_name`` (bare name, ARN or partial ARN) with ``handler``.

    Registering a name again replaces its handler. The function need not exist in moto.
    """
    if not function_name or ":" in function_name:
        raise ValueError(f"register a bare function name, not {function_name!r}")
    with _LOCK:
        _HANDLERS[function_name] = handler


def clear() -> None:
    """Forget every registered handler."""
    with _LOCK:
        _HANDLERS.clear()


def function_name_of(name_or_arn: str) -> str:
    """``Prepare`` from ``Prepare``, ``Prepare:live``, ``123:function:Prepare`` or a full ARN."""
    if ":function:" in name_or_arn:
        name_or_arn = name_or_arn.split(":function:", 1)[1]
    return name_or_arn.split(":", 1)[0]


def _error_envelope(error_type: str, message: str, request_id: str, trace: list[str]) -> bytes:
    """The payload the Lambda Python runtime returns for an unhandled error."""
    return json.dumps(
        {
            "errorMessage": message,
            "errorType": error_type,  # what an ASL ErrorEquals matches
            "requestId": request_id,
            "stackTrace": trace,
        }
    ).encode()


def _invoke(
    self: LambdaSimpleBackend,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: dict[str, str],
) -> bytes | str | None:
    """Replacement for ``LambdaSimpleBackend.invoke``: run the registered handler in process."""
    name = function_name_of(function_name)
    handler = _HANDLERS.get(name)
    if handler is None:
        self.get_function(function_name, qualifier)  # unknown -> 404 ResourceNotFoundException
        LOG.warning("no handler registered for Lambda %r: moto echoes the payload", name)
        return _MOTO_INVOKE(self, function_name, qualifier, body, headers, response_headers)
    raw = body.decode() if isinstance(body, bytes) else body
    event = json.loads(raw) if raw else {}
    context = LambdaContext(
        function_name=name,
        invoked_function_arn=(
            f"arn:{get_partition(self.region_name)}:lambda:{self.region_name}:"
            f"{self.account_id}:function:{name}"
        ),
        aws_request_id=str(uuid.uuid4()),
        log_group_name=f"/aws/lambda/{name}",
    )
    try:
        result = handler(event, context)
    except LambdaThrottled as throttled:
        raise _TooManyRequests(str(throttled) or "Rate Exceeded.") from throttled
    except Exception as exc:  # the runtime turns any exception into the error envelope
        LOG.info("Lambda %s raised %s: %s", name, type(exc).__name__, exc)
        response_headers["x-amz-function-error"] = "Unhandled"
        trace = traceback.format_tb(exc.__traceback__)
        return _error_envelope(type(exc).__name__, str(exc), context.aws_request_id, trace)
    try:
        return json.dumps(result).encode()
    except (TypeError, ValueError) as exc:  # what the runtime reports for a non-JSON result
        response_headers["x-amz-function-error"] = "Unhandled"
        message = f"Unable to marshal response: {exc}"
        return _error_envelope("Runtime.MarshalError", message, context.aws_request_id, [])


def _direct_arn_from_error(self: StateTaskLambda, env: Environment, ex: Exception) -> FailureEvent:
    """Name Invoke API errors ``Lambda.<Code>`` for a plain function-ARN resource, as AWS does.

    moto reports every ``ClientError`` there as ``Exception``, so a Retry on
    ``Lambda.TooManyRequestsException`` would never match.
    """
    if not isinstance(ex, ClientError):
        return _MOTO_DIRECT_FROM_ERROR(self, env, ex)
    error, cause = StateTaskServiceLambda._error_cause_from_client_error(ex)
    return FailureEvent(
        env=env,
        error_name=CustomErrorName(error),
        event_type=HistoryEventType.LambdaFunctionFailed,
        event_details=EventDetails(
            lambdaFunctionFailedEventDetails=LambdaFunctionFailedEventDetails(
                error=error, cause=cause
            )
        ),
    )


def install(ledger: PatchLedger) -> None:
    """Route ``LambdaSimpleBackend.invoke`` to handlers and fix direct-ARN error names."""
    ledger.set(LambdaSimpleBackend, "invoke", _invoke)
    ledger.set(StateTaskLambda, "_from_error", _direct_arn_from_error)
