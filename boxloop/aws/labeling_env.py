"""Names the labeling service's stack, Lambdas and terminal commands agree on.

Here, without CDK or boto3 imports, so ``stacks/labeling.py``, the Lambda handlers and
``boxloop aws workers`` read the same values.
"""

from __future__ import annotations

from typing import Final

LABELING_GROUP: Final = "labelers"
"""The Cognito group whose members the labeling API admits (the ``cognito:groups`` claim)."""
LABELING_TABLE_ENV: Final = "BOXLOOP_LABELING_TABLE"
"""The labeling Lambdas' environment variable naming the DynamoDB task table."""
LABELING_URL_ENV: Final = "BOXLOOP_LABELING_URL"
"""The app's ``https://`` URL (CloudFront), for messages to labelers."""
SWEEP_MINUTES: Final = 5
"""How often ``FinishHumanLabeling`` sweeps open jobs: heartbeats, deadlines, stopped runs."""
HEARTBEAT_SECONDS: Final = 3600
"""The ``LabelInApp`` state's ``HeartbeatSeconds``: many sweeps fit in it (a test checks)."""
LABELING_URL_OUTPUT: Final = "LabelingUrl"
USER_POOL_ID_OUTPUT: Final = "UserPoolId"
"""Stack outputs of the labeling service (``stacks/boxloop_stack.py``)."""
