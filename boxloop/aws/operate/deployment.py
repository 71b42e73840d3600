"""The deployed stack as the terminal commands see it: its outputs, region, partition, settings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boxloop.aws.regions import CONSOLE_HOSTS
from boxloop.aws.stack_outputs import (
    DEFAULT_STACK_NAME,
    LABELING_TABLE_OUTPUT,
    LOOP_CONFIG_KEY,
    AwsSetupError,
    StackOutputs,
    load_stack_outputs,
)

if TYPE_CHECKING:
    from boxloop.core.config import LoopConfig


@dataclass(frozen=True, slots=True)
class Deployment:
    """One deployed boxloop stack: where its bucket and state machine are.

    Attributes:
        outputs: the stack's CloudFormation outputs.
    """

    outputs: StackOutputs

    @property
    def bucket(self) -> str:
        """The data bucket's name."""
        return self.outputs.bucket

    @property
    def state_machine_arn(self) -> str:
        """The workflow's ARN."""
        return self.outputs.state_machine_arn

    @property
    def labeling_table(self) -> str | None:
        """The labeling app's task table, or ``None`` (a Ground Truth stack has none)."""
        return self.outputs.values.get(LABELING_TABLE_OUTPUT) or None

    @property
    def partition(self) -> str:
        """``aws``, ``aws-cn``, ``aws-us-gov``: read from the state machine's ARN."""
        return self.state_machine_arn.split(":", 2)[1]

    @property
    def region(self) -> str:
        """The region the state machine (and so every run) lives in."""
        return self.state_machine_arn.split(":", 4)[3]

    def execution_arn(self, name: str) -> str:
        """The ARN of this state machine's execution ``name``."""
        head, _, machine = self.state_machine_arn.rpartition(":stateMachine:")
        return f"{head}:execution:{machine}:{name}"

    def console_url(self, execution_arn: str) -> str:
        """The execution's page in the Step Functions console of its partition and region."""
        host = CONSOLE_HOSTS.get(self.partition, CONSOLE_HOSTS["aws"])
        region = self.region
        return (
            f"https://{region}.{host}/states/home?region={region}"
            f"#/v2/executions/details/{execution_arn}"
        )

    def uri(self, key: str) -> str:
        """``s3://<bucket>/<key>``."""
        return f"s3://{self.bucket}/{key.lstrip('/')}"

    def loop_config(self) -> LoopConfig:
        """The stack's loop settings (``config/loop.json``, the Lambdas' ``BOXLOOP_CONFIG``).

        Raises:
            AwsSetupError: the stack predates ``config/loop.json``: redeploy it.
        """
        from boxloop.aws.s3 import try_read_text
        from boxloop.core.config import LoopConfig

        location = self.uri(LOOP_CONFIG_KEY)
        text = try_read_text(location)
        if text is None:
            raise AwsSetupError(
                f"{location} is missing: the stack {self.outputs.stack_name!r} was deployed by "
                "an older boxloop; redeploy it (cdk deploy) so that runs are checked before they "
                "start"
            )
        data: dict[str, Any] = json.loads(text)
        return LoopConfig.from_dict(data, source=location)


def load_deployment(stack_name: str = DEFAULT_STACK_NAME) -> Deployment:
    """The deployment named ``stack_name``, read with the standard credential chain and region.

    Raises:
        AwsSetupError: no credentials, no such stack, or a missing output.
    """
    return Deployment(load_stack_outputs(stack_name))
