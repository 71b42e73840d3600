"""Lambda for the Ingest and CheckImages states.

Validate the input manifest (or resume a ledger) and write the run's first ledger; or, called
again with the run block, check the images the last pass left unchecked.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from boxloop.aws.transient import name_transient_errors
from boxloop.steps.ingest import ingest_step
from boxloop.steps.run import BUCKET_ENV

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@name_transient_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    """Thin adapter: state input -> one boxloop step -> state output (URIs and counts)."""
    remaining_ms = context.get_remaining_time_in_millis if context is not None else None
    run = ingest_step(event, bucket=os.environ[BUCKET_ENV], remaining_ms=remaining_ms)
    logger.info("ingested", extra={"run_id": run.run_id, "counts": run.counts})
    return run.to_json()
