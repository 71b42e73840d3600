"""Lambda for the LabelInApp state (``lambda:invoke.waitForTaskToken``).

Thin adapter: registers the batch's images as tasks of a job in the DynamoDB task store,
keeping the task token the job's finisher answers. Registering again (a retried invoke) keeps
every answer and takes the newest token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from boxloop.aws.human_labeling import start_human_labeling
from boxloop.aws.transient import name_transient_errors

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@name_transient_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    """State payload (labeling block, run, task token, execution) -> the registered job."""
    started = start_human_labeling(event)
    logger.info("labeling job registered", extra=started)
    return started
