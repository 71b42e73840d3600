"""Lambda for the Finalize state: write the output manifest and the run report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from boxloop.aws.transient import name_transient_errors
from boxloop.steps.finalize import finalize
from boxloop.steps.run import RunState, load_config

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@name_transient_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    """Thin adapter: state input -> one boxloop step -> state output (URIs and counts)."""
    run = RunState.from_json(event["run"])
    result = finalize(run, load_config(run))
    logger.info("finalized", extra=result)
    return result
