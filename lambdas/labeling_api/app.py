"""Lambda behind the labeling HTTP API (payload format 2.0, JWT authorizer on every route).

Thin adapter: the API Gateway event becomes an ``ApiRequest``, the same ``LabelingApi`` the
local server runs answers it over the DynamoDB task store, and the answer goes back as an HTTP
API response. A submit that completes the job runs the finisher in the same call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from boxloop.aws.labeling_http import handle_http_event

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


def lambda_handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    """HTTP API event -> labeling API -> HTTP API response."""
    response = handle_http_event(event)
    logger.info(
        "labeling api",
        extra={"route": event.get("rawPath"), "status": response.get("statusCode")},
    )
    return response
