"""The labeling API's AWS host: HTTP API (payload format 2.0) events in, responses out.

API Gateway's JWT authorizer has checked the Cognito token before the Lambda runs; the claims
arrive in ``requestContext.authorizer.jwt.claims``. The worker is the ``sub`` claim, its name
the ``email``; only members of the ``labelers`` group are admitted (the pool may hold other
users one day). Everything else is `LabelingApi`, the code the local server runs: this module
only translates. A submit that leaves no image unanswered runs the job's finisher in the same
call, so the run goes on without waiting for the next sweep.
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import TYPE_CHECKING, Any, Final

from boxloop.aws.clients import client
from boxloop.aws.human_labeling import finish_if_complete, table_store
from boxloop.aws.labeling_env import LABELING_GROUP
from boxloop.aws.s3 import S3Uri
from boxloop.labeling.api import LabelingApi
from boxloop.labeling.contract import MAX_BODY_BYTES, ApiError, ApiRequest, ApiResponse, Principal

if TYPE_CHECKING:
    from collections.abc import Callable

    from boxloop.aws.labeling_store import DynamoTaskStore
    from boxloop.labeling.contract import TaskInfo

IMAGE_URL_TTL_S: Final = 900
"""How long a presigned image URL works: a labeler opens an image within minutes of claiming it."""
_SUBMIT: Final = re.compile(r"/tasks/[^/]+/submit$")
_JSON_HEADERS: Final = {"content-type": "application/json", "cache-control": "no-store"}


def principal_of(event: dict[str, Any]) -> Principal:
    """The labeler the authorizer vouched for.

    Raises:
        ApiError: ``unauthorized`` without claims (a route left without the authorizer),
            ``forbidden`` for a user outside the ``labelers`` group.
    """
    claims = (
        event.get("requestContext", {}).get("authorizer", {}).get("jwt", {}).get("claims") or {}
    )
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise ApiError("unauthorized", "sign in again: the request carried no valid login")
    groups = claims.get("cognito:groups", "")
    if isinstance(groups, str):  # API Gateway passes a list claim as "[a b]"
        groups = groups.strip("[]").replace(",", " ").split()
    if LABELING_GROUP not in groups:
        raise ApiError(
            "forbidden",
            f"your account is not in the {LABELING_GROUP} group; ask the run's owner to add "
            "you (boxloop aws workers add EMAIL)",
        )
    email = claims.get("email")
    return Principal(sub, email if isinstance(email, str) else None)


def request_of(event: dict[str, Any]) -> ApiRequest:
    """The host-neutral request of a payload-2.0 event.

    Raises:
        ApiError: ``too_large`` over ``MAX_BODY_BYTES``; ``bad_request`` for a body that is not
            JSON.
    """
    raw = event.get("body") or ""
    data = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
    if len(data) > MAX_BODY_BYTES:
        raise ApiError("too_large", f"the request body is over {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(data) if data else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError("bad_request", f"the request body is not JSON: {exc}") from None
    http = event.get("requestContext", {}).get("http", {})
    return ApiRequest(
        method=str(http.get("method", "GET")).upper(),
        path=str(event.get("rawPath", "")),
        query=dict(event.get("queryStringParameters") or {}),
        headers={k.lower(): v for k, v in (event.get("headers") or {}).items()},
        body=body,
    )


def presigner(s3: Any = None, ttl_s: int = IMAGE_URL_TTL_S) -> Callable[[TaskInfo], str]:
    """A task -> a short-lived GET URL of its own image (never a key the client chose)."""

    def url(task: TaskInfo) -> str:
        uri = S3Uri.parse(task.image)
        return (s3 or client("s3")).generate_presigned_url(
            "get_object", Params={"Bucket": uri.bucket, "Key": uri.key}, ExpiresIn=ttl_s
        )

    return url


def _response(response: ApiResponse) -> dict[str, Any]:
    return {
        "statusCode": response.status,
        "headers": {**_JSON_HEADERS, **response.headers},
        "body": json.dumps(response.body, separators=(",", ":")),
    }


def handle_http_event(
    event: dict[str, Any],
    *,
    store: DynamoTaskStore | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Answer one HTTP API event with the labeling API; a completing submit finishes the job."""
    try:
        principal = principal_of(event)
        request = request_of(event)
    except ApiError as error:
        return _response(ApiResponse.error(error))
    store = store or table_store()
    api = LabelingApi(store, lambda _request: principal, image_url=presigner(), clock=clock)
    response = api.handle(request)
    if response.status == 200 and request.method == "POST" and _SUBMIT.search(request.path):
        job = store.job()
        if job is not None:
            finish_if_complete(store, job.name, now=clock())
    return _response(response)
