"""The one boxloop stack: storage, roles, functions, notifications, workflow and monitoring."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import aws_cdk as cdk
from constructs import Construct

from boxloop.aws.labeling_env import LABELING_URL_OUTPUT, USER_POOL_ID_OUTPUT
from boxloop.aws.regions import CONSOLE_HOSTS
from boxloop.aws.stack_outputs import LABELING_TABLE_OUTPUT
from stacks.bundling import REPO_ROOT
from stacks.functions import Functions
from stacks.labeling import Labeling
from stacks.monitoring import Monitoring
from stacks.nag import acknowledge_findings
from stacks.notifications import Notifications
from stacks.roles import Roles
from stacks.storage import Storage
from stacks.workflow import Workflow

if TYPE_CHECKING:
    from stacks.config import BoxloopConfig

DEFAULT_WORKTEAM_NAME = "boxloop"


class BoxloopStack(cdk.Stack):
    """Composes one construct per concern and wires them through their public attributes.

    The region is concrete (image URIs and Ground Truth ARNs are chosen per region at synth); a
    context ``region`` that overrides CDK_DEFAULT_REGION is flagged with a warning. The account
    stays ``AWS::AccountId`` unless CDK_DEFAULT_ACCOUNT is set.

    Attributes:
        config: what the stack was built from.
        storage, roles, functions, notifications, workflow, monitoring: the constructs.
        workteam_arn: the configured work team, or the account's private team "boxloop".
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BoxloopConfig,
        root: Path = REPO_ROOT,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=cdk.Environment(account=config.account, region=config.region),
            description="boxloop: active-learning bounding-box labeling (Step Functions, "
            "SageMaker, Ground Truth)",
            **kwargs,
        )
        self.config = config
        if config.overridden_region:
            cdk.Annotations.of(self).add_warning_v2(
                "boxloop:RegionOverride",
                f"context 'region' is {config.region}: the stack deploys there, not to "
                f"{config.overridden_region} (CDK_DEFAULT_REGION, the profile's region); bootstrap "
                f"{config.region} first (cdk bootstrap aws://<account>/{config.region})",
            )
        self.workteam_arn = config.workteam_arn or self._default_workteam_arn(
            warn=config.human_labeling == "groundtruth"
        )
        self.storage = Storage(self, "Storage", config=config, root=root)
        self.roles = Roles(
            self,
            "Roles",
            config=config,
            bucket=self.storage.bucket,
            encryption_key=self.storage.encryption_key,
        )
        self.functions = Functions(
            self,
            "Functions",
            config=config,
            bucket=self.storage.bucket,
            role=self.roles.function_role,
            root=root,
        )
        self.notifications = Notifications(
            self, "Notifications", config=config, encryption_key=self.storage.encryption_key
        )
        self.labeling: Labeling | None = None
        if config.human_labeling == "boxloop":
            self.labeling = Labeling(
                self,
                "Labeling",
                config=config,
                bucket=self.storage.bucket,
                access_log_bucket=self.storage.access_log_bucket,
                encryption_key=self.storage.encryption_key,
                image_buckets=self.roles.image_buckets,
                root=root,
            )
        self.workflow = Workflow(
            self,
            "Workflow",
            config=config,
            role=self.roles.workflow_role,
            functions=dict(self.functions.by_folder),
            storage=self.storage,
            sagemaker_role=self.roles.sagemaker_role,
            topic=self.notifications.topic,
            workteam_arn=self.workteam_arn,
            start_human_labeling=self.labeling.start_function if self.labeling else None,
            root=root,
        )
        if self.labeling is not None:
            self.labeling.allow_task_responses(self.workflow.state_machine)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            state_machine=self.workflow.state_machine,
            topic=self.notifications.topic,
        )
        self._outputs()
        acknowledge_findings(self, has_kms_key=bool(config.kms_key_arn))

    def _default_workteam_arn(self, *, warn: bool) -> str:
        if warn:
            cdk.Annotations.of(self).add_warning_v2(
                "boxloop:DefaultWorkteam",
                f"context 'workteamArn' is empty: labeling jobs will use the private work team "
                f"'{DEFAULT_WORKTEAM_NAME}' of the deploying account, which must exist "
                "(SageMaker console > Ground Truth > Labeling workforces > Private)",
            )
        return (
            f"arn:{cdk.Aws.PARTITION}:sagemaker:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:"
            f"workteam/private-crowd/{DEFAULT_WORKTEAM_NAME}"
        )

    def _outputs(self) -> None:
        state_machine = self.workflow.state_machine
        cdk.CfnOutput(
            self,
            "BucketName",
            value=self.storage.bucket.bucket_name,
            description="Data bucket: upload images and the input manifest here; runs write "
            "under runs/",
        )
        cdk.CfnOutput(
            self,
            "StateMachineArn",
            value=state_machine.state_machine_arn,
            description="Start a run: aws stepfunctions start-execution --state-machine-arn "
            "<this> --input file://run.json",
        )
        cdk.CfnOutput(
            self,
            "TopicArn",
            value=self.notifications.topic.topic_arn,
            description="SNS topic for run results and failure alarms; subscribe to follow runs",
        )
        if self.labeling is None:
            cdk.CfnOutput(
                self,
                "WorkteamArn",
                value=self.workteam_arn,
                description="Ground Truth work team that receives the labeling tasks",
            )
        else:
            cdk.CfnOutput(
                self,
                LABELING_URL_OUTPUT,
                value=self.labeling.url,
                description="The labeling app: labelers sign in here (add them with boxloop "
                "aws workers add EMAIL)",
            )
            cdk.CfnOutput(
                self,
                USER_POOL_ID_OUTPUT,
                value=self.labeling.user_pool.user_pool_id,
                description="Cognito user pool of the labelers (group labelers)",
            )
            cdk.CfnOutput(
                self,
                LABELING_TABLE_OUTPUT,
                value=self.labeling.table.table_name,
                description="DynamoDB table of the labeling app's tasks and answers (boxloop aws "
                "status and stop read the open batch there)",
            )
        console_hosts = cdk.CfnMapping(
            self,
            "ConsoleHosts",
            mapping={partition: {"host": host} for partition, host in CONSOLE_HOSTS.items()},
        )
        console_host = console_hosts.find_in_map(cdk.Aws.PARTITION, "host")
        cdk.CfnOutput(
            self,
            "ConsoleUrl",
            value=(
                f"https://{cdk.Aws.REGION}.{console_host}/states/home?region="
                f"{cdk.Aws.REGION}#/statemachines/view/{state_machine.state_machine_arn}"
            ),
            description="The state machine in the Step Functions console",
        )
