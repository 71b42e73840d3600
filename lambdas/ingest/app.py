"""Lambda for the Ingest state.

Validate the input manifest (or resume a ledger) and write the run's first ledger.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from boxloop.aws.transient import name_transient_errors
from boxloop.steps.ingest import IngestRequest, ingest
from boxloop.steps.run import BUCKET_ENV, default_config

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@name_transient_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    """Thin adapter: state input -> one boxloop step -> state output (URIs and counts)."""
    request = IngestRequest.from_event(event, bucket=os.environ[BUCKET_ENV])
    config = default_config().with_overrides(request.overrides or {})
    run = ingest(request, config)
    logger.info("ingested", extra={"run_id": run.run_id, "counts": run.counts})
    return run.to_json()
