"""Which botocore failures a Lambda reports as TransientServiceError (the ASL retries those)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from boxloop.aws.transient import is_transient, name_transient_errors
from boxloop.core.errors import BoxloopError, ManifestError, TransientServiceError


def _client_error(code: str, status: int) -> ClientError:
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "GetObject")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        # S3 throttling (503 SlowDown) after botocore's own retries
        (_client_error("SlowDown", 503), True),
        # throttling with a 400 status
        (_client_error("ThrottlingException", 400), True),
        # a service fault
        (_client_error("InternalError", 500), True),
        # a 5xx with an unknown code
        (_client_error("Whatever", 502), True),
        # a request timeout
        (_client_error("RequestTimeout", 400), True),
        # a missing object: retrying cannot help
        (_client_error("NoSuchKey", 404), False),
        # no permission: retrying cannot help
        (_client_error("AccessDenied", 403), False),
        # a bad request
        (_client_error("ValidationException", 400), False),
        # the network
        (EndpointConnectionError(endpoint_url="https://s3.amazonaws.com"), True),
        (ReadTimeoutError(endpoint_url="https://s3.amazonaws.com"), True),
        # a response body cut off mid-read (streaming a manifest)
        (ResponseStreamingError(error="connection reset"), True),
        # no credentials: a deployment problem, not a hiccup
        (NoCredentialsError(), False),
        # not botocore at all
        (ValueError("x"), False),
    ],
)
def test_is_transient_matches_botocore_standard_retry_rules(error, expected):
    assert is_transient(error) is expected


def test_name_transient_errors_renames_a_transient_error_and_chains_it():
    error = _client_error("SlowDown", 503)

    @name_transient_errors
    def handler(event: Any, context: Any) -> None:
        raise error

    with pytest.raises(TransientServiceError, match=r"ClientError: .*SlowDown") as raised:
        handler({}, None)
    assert raised.value.__cause__ is error


@pytest.mark.parametrize(
    "error",
    [
        _client_error("NoSuchKey", 404),  # a botocore error that is not transient
        ManifestError("is not JSON", source="in.manifest", line=2),  # a terminal error
    ],
)
def test_name_transient_errors_passes_other_errors_unchanged(error):
    @name_transient_errors
    def handler(event: Any, context: Any) -> None:
        raise error

    with pytest.raises(type(error)) as raised:
        handler({}, None)
    assert raised.value is error


def test_name_transient_errors_returns_the_handler_result():
    @name_transient_errors
    def handler(event: Any, context: Any) -> dict[str, Any]:
        """Doc."""
        return {"count": event["n"]}

    assert handler({"n": 3}, None) == {"count": 3}
    assert handler.__doc__ == "Doc."


def test_transient_service_error_is_not_terminal():
    # the ASL's terminal Catch lists BoxloopError subclasses; a transient error must not be one
    assert not issubclass(TransientServiceError, BoxloopError)
