"""Lambda for the PrepareLabeling state.

Choose the images humans label next and write the input manifest of the next part (at most
``max_objects_per_labeling_job`` images per labeling job).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from boxloop.aws.transient import name_transient_errors
from boxloop.steps.prepare_labeling import prepare_labeling
from boxloop.steps.run import KMS_ENV, RunState, load_config

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@name_transient_errors
def lambda_handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    """Thin adapter: state input -> one boxloop step -> state output (URIs and counts)."""
    run = RunState.from_json(event["run"])
    labeling = prepare_labeling(run, load_config(run), kms_key_arn=os.environ.get(KMS_ENV, ""))
    logger.info(
        "labeling prepared",
        extra={k: labeling[k] for k in ("count", "job_name", "part", "parts", "remaining")},
    )
    return labeling
