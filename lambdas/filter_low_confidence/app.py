"""Lambda for the FilterLowConfidence state.

Calibrate the threshold, auto-label the confident pool, apply the stop rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from boxloop.aws.transient import name_transient_errors
from boxloop.steps.filter_low_confidence import filter_low_confidence
from boxloop.steps.run import RunState, load_config

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@name_transient_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    """Thin adapter: state input -> one boxloop step -> state output (URIs and counts)."""
    run = RunState.from_json(event["run"])
    filtered = filter_low_confidence(run, load_config(run), event["inference"])
    logger.info("filtered", extra={"decision": filtered.decision, "counts": filtered.counts})
    return filtered.to_json()
