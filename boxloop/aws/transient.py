"""Name the AWS failures worth retrying, so that the state machine retries those and nothing else.

Inside a Lambda, botocore retries a throttled or failed call itself first (its default retry
mode, up to 5 attempts with backoff). What is still failing after that surfaces from the handler
as one error type, :class:`~boxloop.core.errors.TransientServiceError`, which every Lambda task
of ``statemachine/boxloop.asl.json`` retries with a longer backoff. Any other botocore error
(``AccessDenied``, ``NoSuchKey``, ``ValidationException``) keeps its own class name: retrying it
cannot help, so the task's ``States.ALL`` catch sends it to ``NotifyFailure`` at once.

The checks mirror botocore's own standard retry mode (``botocore/retries/standard.py``:
``TransientRetryableChecker``, ``ThrottledRetryableChecker``).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Final, TypeVar

from boxloop.core.errors import TransientServiceError

if TYPE_CHECKING:
    from collections.abc import Callable

    Handler = TypeVar("Handler", bound=Callable[..., Any])

THROTTLING_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "EC2ThrottledException",
    }
)
"""Error codes botocore's standard retry mode treats as throttling."""
TRANSIENT_CODES: Final = frozenset(
    {"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete", "InternalError"}
)
"""Error codes of a call that may well succeed when made again."""
TRANSIENT_STATUS: Final = frozenset({500, 502, 503, 504})
"""HTTP statuses of a service-side failure."""


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a botocore failure that a later attempt may not meet.

    True for throttling and transient error codes, HTTP 5xx responses, and connection or
    read failures (``botocore.exceptions.ConnectionError`` and ``HTTPClientError``, which
    cover timeouts and a response stream cut off mid-read).
    """
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in THROTTLING_CODES or code in TRANSIENT_CODES or status in TRANSIENT_STATUS
    return isinstance(exc, BotoConnectionError | HTTPClientError)


def name_transient_errors(handler: Handler) -> Handler:
    """Wrap a Lambda handler: a transient botocore error leaves it as ``TransientServiceError``.

    The original error is chained (``__cause__``) and its class name leads the message, so
    the execution history still says what failed. Every other exception passes unchanged.
    """

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return handler(*args, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            if is_transient(exc):
                raise TransientServiceError(f"{type(exc).__name__}: {exc}") from exc
            raise

    return wrapper  # type: ignore[return-value]
