"""Lambda for the MergeHumanLabels state: fold a labeling job's output manifest into the ledger."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from boxloop.aws.transient import name_transient_errors
from boxloop.steps.merge_human_labels import merge_human_labels
from boxloop.steps.run import RunState, load_config

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@name_transient_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    """Thin adapter: state input -> one boxloop step -> state output (URIs and counts)."""
    run = RunState.from_json(event["run"])
    merged = merge_human_labels(run, load_config(run), event["labeling"])
    logger.info("human labels merged", extra={"counts": merged.counts})
    return merged.to_json()
