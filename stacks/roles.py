"""Roles: one per principal (SageMaker jobs, the Lambdas, the state machine), least privilege."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

if TYPE_CHECKING:
    from stacks.config import BoxloopConfig

# SageMaker resource types the state machine creates, with the actions its .sync integrations call.
# Job names all start with "<jobPrefix>-", so every action is scoped to those names.
SAGEMAKER_JOB_ACTIONS: dict[str, tuple[str, ...]] = {
    "training-job": ("CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob"),
    "transform-job": ("CreateTransformJob", "DescribeTransformJob", "StopTransformJob"),
    "processing-job": ("CreateProcessingJob", "DescribeProcessingJob", "StopProcessingJob"),
    "labeling-job": ("CreateLabelingJob", "DescribeLabelingJob", "StopLabelingJob"),
    "model": ("CreateModel", "DescribeModel", "DeleteModel"),
}
# The EventBridge managed rules Step Functions creates for SageMaker .sync tasks
# (StepFunctionsGetEventsForSageMakerTrainingJobsRule, ...TransformJobsRule, ...ProcessingJobsRule
# are documented; the labeling rule's name is not, hence the prefix).
SYNC_RULE_PREFIX = "StepFunctionsGetEventsForSageMaker"


class Roles(Construct):
    """The three roles, each trusted by one service only.

    Attributes:
        sagemaker_role: passed to training, transform (CreateModel), processing and labeling jobs:
            read/write the data bucket, read the image buckets, write /aws/sagemaker/* logs, pull
            the two algorithm images, use the KMS key when one is configured.
        function_role: the Lambdas' role: read/write the data bucket (logs are granted per log
            group by ``Functions``).
        workflow_role: the state machine's role: SageMaker actions on ``<jobPrefix>-*`` names only,
            iam:PassRole for ``sagemaker_role`` to SageMaker only, the .sync event rules; Lambda
            invoke and SNS publish are granted by ``Workflow``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BoxloopConfig,
        bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        self.sagemaker_role = iam.Role(
            self,
            "SageMaker",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="boxloop SageMaker jobs: training, transform, processing, labeling",
        )
        bucket.grant_read_write(self.sagemaker_role)
        for index, name in enumerate(config.image_bucket_names):
            s3.Bucket.from_bucket_name(self, f"ImageBucket{index}", name).grant_read(
                self.sagemaker_role
            )
        for statement in _sagemaker_job_statements(config):
            self.sagemaker_role.add_to_policy(statement)

        self.function_role = iam.Role(
            self,
            "Functions",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="boxloop Lambdas: read and write the run files in the data bucket",
        )
        bucket.grant_read_write(self.function_role)

        self.workflow_role = iam.Role(
            self,
            "Workflow",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="boxloop state machine: SageMaker jobs named <jobPrefix>-*",
        )
        for statement in _workflow_statements(config, self.sagemaker_role):
            self.workflow_role.add_to_policy(statement)


def _arn(service: str, resource: str, *, region: str = cdk.Aws.REGION) -> str:
    """An ARN in this account and partition, from pseudo parameters (no literal account)."""
    return f"arn:{cdk.Aws.PARTITION}:{service}:{region}:{cdk.Aws.ACCOUNT_ID}:{resource}"


def job_name_pattern(config: BoxloopConfig) -> str:
    """``<jobPrefix>-*`` in lower case: SageMaker lower-cases job and model names in ARNs."""
    return f"{config.loop.job_prefix.lower()}-*"


def _workflow_statements(
    config: BoxloopConfig, sagemaker_role: iam.IRole
) -> list[iam.PolicyStatement]:
    pattern = job_name_pattern(config)
    scoped = [_arn("sagemaker", f"{kind}/{pattern}") for kind in SAGEMAKER_JOB_ACTIONS]
    return [
        iam.PolicyStatement(
            sid="SageMakerJobsNamedByPrefix",
            actions=sorted(
                f"sagemaker:{action}"
                for actions in SAGEMAKER_JOB_ACTIONS.values()
                for action in actions
            ),
            resources=scoped,
        ),
        iam.PolicyStatement(
            # .sync tags every job it starts (MANAGED_BY_AWS); CreateModel fails without it.
            sid="TagBoxloopJobs",
            actions=["sagemaker:AddTags"],
            resources=scoped,
        ),
        iam.PolicyStatement(
            # ListTags has no resource-level permissions.
            sid="ListTags",
            actions=["sagemaker:ListTags"],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="PassSageMakerRole",
            actions=["iam:PassRole"],
            resources=[sagemaker_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        ),
        iam.PolicyStatement(
            sid="SyncEventRules",
            actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            resources=[_arn("events", f"rule/{SYNC_RULE_PREFIX}*")],
        ),
    ]


def _sagemaker_job_statements(config: BoxloopConfig) -> list[iam.PolicyStatement]:
    repositories = sorted(
        {_ecr_repository_arn(config.training_image), _ecr_repository_arn(config.processing_image)}
    )
    return [
        iam.PolicyStatement(
            sid="JobLogs",
            actions=[
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:DescribeLogStreams",
                "logs:PutLogEvents",
            ],
            resources=[_arn("logs", "log-group:/aws/sagemaker/*")],
        ),
        iam.PolicyStatement(
            # PutMetricData has no resource-level permissions; the namespace condition scopes it.
            sid="JobMetrics",
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*"]}},
        ),
        iam.PolicyStatement(
            # GetAuthorizationToken has no resource-level permissions.
            sid="EcrLogin",
            actions=["ecr:GetAuthorizationToken"],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="PullAlgorithmImages",
            actions=[
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            resources=repositories,
        ),
    ]


def _ecr_repository_arn(image_uri: str) -> str:
    """``<account>.dkr.ecr.<region>.<domain>/<repo>:<tag>`` -> the repository's ARN."""
    registry, _, repository_tag = image_uri.partition("/")
    account, _, rest = registry.partition(".dkr.ecr.")
    region = rest.split(".", 1)[0]
    repository = repository_tag.rsplit(":", 1)[0]
    return f"arn:{cdk.Aws.PARTITION}:ecr:{region}:{account}:repository/{repository}"
