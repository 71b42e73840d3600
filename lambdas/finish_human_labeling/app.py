"""Lambda run every few minutes (EventBridge): the open labeling jobs' sweep.

Thin adapter over ``boxloop.aws.human_labeling.sweep``: a heartbeat for each open job; a job
whose deadline passed is finished with its unanswered images expired; a job whose execution
ended (stopped, failed) is closed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from boxloop.aws.human_labeling import sweep
from boxloop.aws.transient import name_transient_errors

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@name_transient_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    """Scheduled event -> what the sweep did to each open job."""
    result = sweep()
    logger.info("labeling sweep", extra=result)
    return result
