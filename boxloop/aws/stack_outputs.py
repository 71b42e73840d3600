"""A deployed boxloop stack's outputs, read from CloudFormation by stack name.

The terminal commands (``boxloop aws ...``) find the bucket, the state machine and the rest
through the stack's ``CfnOutput`` values rather than asking the user to copy ARNs around: the
stack is the one source of truth for what was deployed where. Errors say what to do next
(configure credentials, deploy, pass ``--stack``), because they are the first thing a new user
meets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from boxloop.core.errors import BoxloopError

DEFAULT_STACK_NAME = "Boxloop"
"""The stack name ``app.py`` deploys (``BoxloopStack(app, "Boxloop", ...)``)."""

BUCKET_NAME = "BucketName"
STATE_MACHINE_ARN = "StateMachineArn"
LABELING_TABLE_OUTPUT = "LabelingTableName"
"""The stack's outputs the terminal commands read (``stacks/boxloop_stack.py`` ``_outputs``)."""

LOOP_CONFIG_KEY = "config/loop.json"
"""Where the stack deploys its loop settings (``BOXLOOP_CONFIG``) in the data bucket, so that
``boxloop aws start`` checks a run's overrides against them before it starts anything."""

NO_CREDENTIALS = "no AWS credentials: run aws configure / set AWS_PROFILE"


class AwsSetupError(BoxloopError):
    """The terminal cannot reach the deployed stack: no credentials, no stack, missing output."""


@dataclass(frozen=True, slots=True)
class StackOutputs:
    """The ``OutputKey -> OutputValue`` map of one deployed stack.

    Attributes:
        stack_name: the CloudFormation stack the values came from (named in errors).
        values: every output, as ``describe_stacks`` returns them.
        region: the region the stack was read in (clients for the run must use the same one).
    """

    stack_name: str
    values: dict[str, str]
    region: str = ""

    def get(self, key: str) -> str:
        """The value of output ``key``.

        Raises:
            AwsSetupError: when the stack has no such output (an older deployment): the message
                lists the outputs it has and says to redeploy.
        """
        try:
            return self.values[key]
        except KeyError:
            have = ", ".join(sorted(self.values)) or "none"
            raise AwsSetupError(
                f"stack {self.stack_name!r} has no output {key!r} (it has: {have}); "
                "redeploy it with this version of boxloop: cdk deploy"
            ) from None

    @property
    def bucket(self) -> str:
        """The data bucket's name."""
        return self.get(BUCKET_NAME)

    @property
    def state_machine_arn(self) -> str:
        """The workflow's state machine ARN."""
        return self.get(STATE_MACHINE_ARN)


def outputs_from_description(stack: dict[str, Any], *, region: str = "") -> StackOutputs:
    """``StackOutputs`` from one ``describe_stacks`` ``Stacks[]`` element."""
    values = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    return StackOutputs(stack_name=stack["StackName"], values=values, region=region)


def load_stack_outputs(
    stack_name: str = DEFAULT_STACK_NAME, *, cloudformation: Any | None = None
) -> StackOutputs:
    """Read ``stack_name``'s outputs with the standard credential chain and region.

    Args:
        stack_name: the deployed stack's name (``--stack``).
        cloudformation: a CloudFormation client (default: one from ``boxloop.aws.clients``).

    Raises:
        AwsSetupError: no credentials, no region, or no such stack; each message names the fix.
    """
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    try:
        if cloudformation is None:
            from boxloop.aws.clients import client

            cloudformation = client("cloudformation")
        response = cloudformation.describe_stacks(StackName=stack_name)
    except NoCredentialsError:
        raise AwsSetupError(NO_CREDENTIALS) from None
    except NoRegionError:
        raise AwsSetupError(
            "no AWS region: run aws configure / set AWS_REGION (the region you deployed to)"
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in error.get("Message", ""):
            region = cloudformation.meta.region_name
            raise AwsSetupError(
                f"stack {stack_name!r} not found in {region}: deploy it (cdk deploy), or pass "
                "--stack NAME / set AWS_REGION to where it is"
            ) from None
        raise
    stacks = response.get("Stacks", [])
    if not stacks:
        raise AwsSetupError(f"stack {stack_name!r} not found: deploy it (cdk deploy)")
    return outputs_from_description(stacks[0], region=cloudformation.meta.region_name)
