"""Roles: one per principal (SageMaker jobs, the Lambdas, the state machine), least privilege."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.storage import WRITABLE_PREFIXES

if TYPE_CHECKING:
    from aws_cdk import aws_kms as kms

    from stacks.config import BoxloopConfig

# SageMaker resource types the state machine creates, with the actions its integrations call
# (those CDK's own SageMaker tasks grant): Create/Describe/Stop for the .sync jobs, CreateModel
# alone for the request-response createModel (nothing describes or deletes a model).
# Job names all start with "<jobPrefix>-", so every action is scoped to those names.
SAGEMAKER_JOB_ACTIONS: dict[str, tuple[str, ...]] = {
    "training-job": ("CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob"),
    "transform-job": ("CreateTransformJob", "DescribeTransformJob", "StopTransformJob"),
    "processing-job": ("CreateProcessingJob", "DescribeProcessingJob", "StopProcessingJob"),
    "labeling-job": ("CreateLabelingJob", "DescribeLabelingJob", "StopLabelingJob"),
    "model": ("CreateModel",),
}
# What the Lambdas that read a job's result may do to the loop's jobs: find and stop the
# earlier attempts a retry superseded (boxloop.aws.sagemaker_jobs), never create one.
SUPERSEDED_JOB_ACTIONS: dict[str, tuple[str, ...]] = {
    kind: tuple(action for action in actions if action.startswith(("Describe", "Stop")))
    for kind, actions in SAGEMAKER_JOB_ACTIONS.items()
    if kind.endswith("-job")
}
LABELING_JOB = "labeling-job"
"""The one kind only humanLabeling=groundtruth creates (see ``sagemaker_job_actions``)."""


def sagemaker_job_actions(config: BoxloopConfig) -> dict[str, tuple[str, ...]]:
    """``SAGEMAKER_JOB_ACTIONS`` of the kinds this variant creates: no labeling job in the app's.

    With humanLabeling=boxloop the state machine still holds the ASL's ``Label`` state, but
    ``LabelWith`` never routes there, and Step Functions does not check a role's permissions
    when it creates a state machine (only when a state runs): so neither role may touch a
    labeling job, and a stray CreateLabelingJob would be refused.
    """
    if config.human_labeling == "groundtruth":
        return dict(SAGEMAKER_JOB_ACTIONS)
    return {
        kind: actions for kind, actions in SAGEMAKER_JOB_ACTIONS.items() if kind != LABELING_JOB
    }


def superseded_job_actions(config: BoxloopConfig) -> dict[str, tuple[str, ...]]:
    """``SUPERSEDED_JOB_ACTIONS`` of the kinds this variant creates (see ``sagemaker_job_actions``).

    MergeHumanLabels describes earlier labeling attempts only for a job named ``<base>-<n>``,
    which the app's jobs never are (they keep PrepareLabeling's name), so it makes no call there.
    """
    kinds = sagemaker_job_actions(config)
    return {kind: actions for kind, actions in SUPERSEDED_JOB_ACTIONS.items() if kind in kinds}


# The EventBridge managed rules Step Functions creates for SageMaker .sync tasks
# (StepFunctionsGetEventsForSageMakerTrainingJobsRule, ...TransformJobsRule, ...ProcessingJobsRule
# are documented; the labeling rule's name is not, hence the prefix).
SYNC_RULE_PREFIX = "StepFunctionsGetEventsForSageMaker"
# Object writes: a plain PutObject, and AbortMultipartUpload because boto3's upload_file /
# upload_fileobj (boxloop.aws.s3) switch to multipart uploads above 8 MB and abort one that
# fails; SageMaker uploads job outputs in parts too. Nothing deletes, tags or sets ACLs.
WRITE_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")
# SSE-KMS with the configured key: Decrypt comes with Bucket.grant_read (reads, and multipart
# uploads); GenerateDataKey for every put; Encrypt because SageMaker requires it of the job role
# when a job's output config names the key (KmsKeyId), as prepare_training/prepare_labeling do.
KMS_WRITE_ACTIONS = ("kms:Encrypt", "kms:GenerateDataKey")


class Roles(Construct):
    """The three roles, each trusted by one service only, from this account only.

    Trust: every role's trust policy names its service and the account's own resources through
    ``aws:SourceArn`` / ``aws:SourceAccount`` (see ``trust_conditions``). Data: the job and Lambda
    roles read the whole data bucket but write only under ``runs/`` and ``tmp/``, and never
    delete; ``code/`` and ``config/`` (deployed by the stack) are read-only to them.

    Attributes:
        sagemaker_role: passed to training, transform (CreateModel), processing and labeling jobs:
            read the data bucket, write under ``runs/`` and ``tmp/``, read the image buckets,
            write /aws/sagemaker/* logs, pull the two algorithm images, use the KMS key when one
            is configured.
        function_role: the Lambdas' role: read the data bucket, write under ``runs/`` and
            ``tmp/``, get objects of the image buckets (Ingest reads each image's header),
            describe and stop (never create) SageMaker jobs named ``<jobPrefix>-*`` (the steps
            that read a job's result stop the attempts a retry superseded); logs are granted per
            log group by ``Functions``.
        workflow_role: the state machine's role: SageMaker actions on ``<jobPrefix>-*`` names only,
            iam:PassRole for ``sagemaker_role`` to SageMaker only, the .sync event rules; Lambda
            invoke and SNS publish are granted by ``Workflow``.
        image_buckets: the buckets of context ``imageBucketNames`` (read by the jobs).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BoxloopConfig,
        bucket: s3.IBucket,
        encryption_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.sagemaker_role = iam.Role(
            self,
            "SageMaker",
            assumed_by=_trusted("sagemaker"),
            description="boxloop SageMaker jobs: training, transform, processing"
            + (", labeling" if config.human_labeling == "groundtruth" else ""),
        )
        grant_run_files(self.sagemaker_role, bucket, encryption_key)
        self.image_buckets: tuple[s3.IBucket, ...] = tuple(
            s3.Bucket.from_bucket_name(self, f"ImageBucket{index}", name)
            for index, name in enumerate(config.image_bucket_names)
        )
        for image_bucket in self.image_buckets:
            image_bucket.grant_read(self.sagemaker_role)
        for statement in _sagemaker_job_statements(config):
            self.sagemaker_role.add_to_policy(statement)

        self.function_role = iam.Role(
            self,
            "Functions",
            assumed_by=_trusted("lambda"),
            description="boxloop Lambdas: read the data bucket, write the run files",
        )
        grant_run_files(self.function_role, bucket, encryption_key)
        if self.image_buckets:
            self.function_role.add_to_principal_policy(
                iam.PolicyStatement(
                    # Ingest checks every image's header (ranged GETs), wherever it lives.
                    sid="ReadImageHeaders",
                    actions=["s3:GetObject"],
                    resources=[b.arn_for_objects("*") for b in self.image_buckets],
                )
            )
        self.function_role.add_to_principal_policy(_superseded_jobs_statement(config))

        self.workflow_role = iam.Role(
            self,
            "Workflow",
            assumed_by=_trusted("states"),
            description="boxloop state machine: SageMaker jobs named <jobPrefix>-*",
        )
        for statement in _workflow_statements(config, self.sagemaker_role):
            self.workflow_role.add_to_policy(statement)


def grant_run_files(role: iam.IRole, bucket: s3.IBucket, encryption_key: kms.IKey | None) -> None:
    """Read every object of ``bucket``; put (never delete) objects under ``WRITABLE_PREFIXES``."""
    bucket.grant_read(role)
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="WriteRunFiles",
            actions=list(WRITE_ACTIONS),
            resources=writable_object_arns(bucket),
        )
    )
    if encryption_key is not None:
        encryption_key.grant(role, *KMS_WRITE_ACTIONS)


def writable_object_arns(bucket: s3.IBucket) -> list[str]:
    """``<bucket ARN>/runs/*`` and ``<bucket ARN>/tmp/*``: the only keys the roles may put."""
    return [bucket.arn_for_objects(f"{prefix}*") for prefix in WRITABLE_PREFIXES]


# Service -> (ARN pattern of the service's resources in this account, strict?). Strict: the
# service documents that it sends both keys when it assumes a role, so a plain ArnLike /
# StringEquals (which deny when the key is missing) cannot lock it out:
# - states: Step Functions' "Prevent cross-service confused deputy issue" gives this very trust
#   policy (aws:SourceArn arn:...:states:<region>:<account>:stateMachine:*, aws:SourceAccount).
# Not strict (ArnLikeIfExists / StringEqualsIfExists: a foreign source is refused, a request
# without the keys is not):
# - sagemaker: SageMaker's confused-deputy page documents aws:SourceArn for training, processing
#   and transform jobs (<kind>-job/*) and inference (arn:...:sagemaker:<region>:<account>:*,
#   which covers CreateModel); this pattern covers all of them. Ground Truth labeling jobs are
#   not on that list, and a strict condition on a key they may not send would fail every
#   labeling job after it was paid for.
# - lambda: Lambda's guide says the keys may go in a role trust policy, but not that Lambda
#   sends them when it assumes a function's execution role (nor when CreateFunction checks that
#   it can); a strict condition that is not met would fail the deployment.
_TRUST: dict[str, tuple[str, bool]] = {
    "states": ("stateMachine:*", True),
    "sagemaker": ("*", False),
    "lambda": ("function:*", False),
}


def trust_conditions(service: str) -> dict[str, dict[str, str]]:
    """The trust policy conditions for ``<service>.amazonaws.com`` (see ``_TRUST``)."""
    resource, strict = _TRUST[service]
    suffix = "" if strict else "IfExists"
    return {
        f"ArnLike{suffix}": {"aws:SourceArn": _arn(service, resource)},
        f"StringEquals{suffix}": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID},
    }


def _trusted(service: str) -> iam.IPrincipal:
    return iam.ServicePrincipal(f"{service}.amazonaws.com", conditions=trust_conditions(service))


def _arn(service: str, resource: str, *, region: str = cdk.Aws.REGION) -> str:
    """An ARN in this account and partition, from pseudo parameters (no literal account)."""
    return f"arn:{cdk.Aws.PARTITION}:{service}:{region}:{cdk.Aws.ACCOUNT_ID}:{resource}"


def job_name_pattern(config: BoxloopConfig) -> str:
    """``<jobPrefix>-*`` in lower case: SageMaker lower-cases job and model names in ARNs."""
    return f"{config.loop.job_prefix.lower()}-*"


def job_arn(kind: str, config: BoxloopConfig) -> str:
    """The ARN pattern of the loop's own SageMaker ``kind`` (``training-job``, ``model``...)."""
    return _arn("sagemaker", f"{kind}/{job_name_pattern(config)}")


def job_log_groups_arn() -> str:
    """The log groups SageMaker jobs write to (/aws/sagemaker/TrainingJobs, ...)."""
    return _arn("logs", "log-group:/aws/sagemaker/*")


def sync_rules_arn() -> str:
    """The EventBridge rules Step Functions manages for SageMaker .sync tasks."""
    return _arn("events", f"rule/{SYNC_RULE_PREFIX}*")


def _workflow_statements(
    config: BoxloopConfig, sagemaker_role: iam.IRole
) -> list[iam.PolicyStatement]:
    table = sagemaker_job_actions(config)
    scoped = [job_arn(kind, config) for kind in table]
    return [
        iam.PolicyStatement(
            sid="SageMakerJobsNamedByPrefix",
            actions=_sagemaker_actions(table),
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
            resources=[sync_rules_arn()],
        ),
    ]


def _sagemaker_actions(table: dict[str, tuple[str, ...]]) -> list[str]:
    """Every action of a resource type -> actions table, as ``sagemaker:<Action>``, sorted."""
    return sorted(f"sagemaker:{action}" for actions in table.values() for action in actions)


def _superseded_jobs_statement(config: BoxloopConfig) -> iam.PolicyStatement:
    """Describe and stop the loop's own jobs (``<jobPrefix>-*``), for ``function_role``."""
    table = superseded_job_actions(config)
    return iam.PolicyStatement(
        sid="StopSupersededJobs",
        actions=_sagemaker_actions(table),
        resources=[job_arn(kind, config) for kind in table],
    )


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
            resources=[job_log_groups_arn()],
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
