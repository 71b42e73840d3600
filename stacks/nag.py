"""cdk-nag (AwsSolutions) acknowledgements, each on the construct it concerns, with its reason.

cdk-nag 3 has no rule-wide suppression: a finding is acknowledged by its full id, which names the
wildcard action or resource (resources by logical id), on the construct that holds it. Everything
else the AwsSolutions pack checks (bucket logs and TLS, state machine logging and X-Ray, latest
Lambda runtime, topic TLS, ...) is met by the constructs themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import region_info

from stacks.roles import SAGEMAKER_JOB_ACTIONS, SYNC_RULE_PREFIX, job_name_pattern

if TYPE_CHECKING:
    from constructs import IConstruct

    from stacks.boxloop_stack import BoxloopStack

PACK = "AwsSolutions"
GRANT_ACTIONS = ("s3:Abort*", "s3:DeleteObject*", "s3:GetBucket*", "s3:GetObject*", "s3:List*")
KMS_GRANT_ACTIONS = ("kms:GenerateDataKey*", "kms:ReEncrypt*")
BUCKET_DEPLOYMENT_ID = "Custom::CDKBucketDeployment"
_PARTITION_LITERALS = "@aws-cdk/core:enablePartitionLiterals"

_GRANT_REASON = (
    "Bucket.grant_read_write/grant_read actions: s3 object and listing actions (never s3:*) "
    "on the stack's data bucket only"
)
_KMS_REASON = (
    "Bucket grants of the configured customer managed key: data-key generation and re-encryption "
    "on that one key only"
)
_OBJECTS_REASON = (
    "object-level access to every key of the stack's data bucket: run files, ledgers and "
    "SageMaker outputs are written under run-specific prefixes that exist only at run time"
)


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge ``AwsSolutions-<finding>`` on ``scope`` (and only there)."""
    cdk.Validations.of(scope).acknowledge(
        cdk.Acknowledgment(id=f"{PACK}::{PACK}-{finding}", reason=reason)
    )


def acknowledged_reasons(scope: IConstruct) -> dict[tuple[str, str], str]:
    """(construct path, acknowledgement id) -> reason, for ``scope`` and its children."""
    reasons: dict[tuple[str, str], str] = {}
    for construct in scope.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                path = construct.node.path
                reasons.update({(path, rule): reason for rule, reason in entry.data.items()})
    return reasons


def acknowledge_findings(stack: BoxloopStack, *, has_kms_key: bool) -> None:
    """Acknowledge the findings that are accepted by design, each with its reason."""
    bucket_arn = _ref(stack, stack.storage.bucket.node.default_child, "Arn")
    roles = stack.roles
    for role, what in ((roles.sagemaker_role, "SageMaker jobs"), (roles.function_role, "Lambdas")):
        _acknowledge_bucket_grant(role, bucket_arn, what, has_kms_key=has_kms_key)
    partition = _partition(stack)
    for index, bucket in enumerate(stack.config.image_bucket_names):
        acknowledge(
            roles.sagemaker_role,
            f"IAM5[Resource::arn:{partition}:s3:::{bucket}/*]",
            f"read-only access to the image bucket {bucket} (context imageBucketNames[{index}]): "
            "jobs read the images that manifests list",
        )
    acknowledge(
        roles.sagemaker_role,
        "IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:"
        "log-group:/aws/sagemaker/*]",
        "SageMaker writes job logs to /aws/sagemaker/TrainingJobs, /TransformJobs, "
        "/ProcessingJobs and /LabelingJobs with per-job streams",
    )
    acknowledge(
        roles.sagemaker_role,
        "IAM5[Resource::*]",
        "ecr:GetAuthorizationToken and cloudwatch:PutMetricData support no resource-level "
        "permissions; PutMetricData is limited by a namespace condition",
    )
    _acknowledge_workflow(stack, has_kms_key=has_kms_key)
    _acknowledge_bucket_deployment(stack, bucket_arn, has_kms_key=has_kms_key)


def _acknowledge_bucket_grant(
    role: IConstruct, bucket_arn: str, what: str, *, has_kms_key: bool
) -> None:
    for action in GRANT_ACTIONS:
        acknowledge(role, f"IAM5[Action::{action}]", f"{_GRANT_REASON} ({what})")
    if has_kms_key:
        for action in KMS_GRANT_ACTIONS:
            acknowledge(role, f"IAM5[Action::{action}]", f"{_KMS_REASON} ({what})")
    acknowledge(role, f"IAM5[Resource::{bucket_arn}/*]", f"{_OBJECTS_REASON} ({what})")


def _acknowledge_workflow(stack: BoxloopStack, *, has_kms_key: bool) -> None:
    role = stack.roles.workflow_role
    if has_kms_key:
        acknowledge(
            role,
            "IAM5[Action::kms:GenerateDataKey*]",
            "Topic.grant_publish on the encrypted topic: data keys of the configured key only",
        )
    pattern = job_name_pattern(stack.config)
    for kind in SAGEMAKER_JOB_ACTIONS:
        acknowledge(
            role,
            f"IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
            f"{kind}/{pattern}]",
            f"job names are generated per run and iteration; every {kind} the loop creates is "
            f"named {pattern}, so access is limited to the loop's own",
        )
    acknowledge(
        role,
        f"IAM5[Resource::arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:"
        f"rule/{SYNC_RULE_PREFIX}*]",
        "the EventBridge managed rules Step Functions creates for SageMaker .sync tasks; the "
        "labeling job rule's exact name is undocumented",
    )
    acknowledge(
        role,
        "IAM5[Resource::*]",
        "sagemaker:ListTags, X-Ray trace segments and CloudWatch Logs delivery (added by CDK for "
        "state machine logging) support no resource-level permissions",
    )
    for function in stack.functions.by_folder.values():
        acknowledge(
            role,
            f"IAM5[Resource::{_ref(stack, function.node.default_child, 'Arn')}:*]",
            "Function.grant_invoke also allows the function's versions and aliases (ARN:*); "
            "only this stack's functions",
        )


def _acknowledge_bucket_deployment(
    stack: BoxloopStack, bucket_arn: str, *, has_kms_key: bool
) -> None:
    """The BucketDeployment custom resource is CDK's singleton; its role and runtime are CDK's."""
    handlers = [c for c in stack.node.children if c.node.id.startswith(BUCKET_DEPLOYMENT_ID)]
    for handler in handlers:
        what = "CDK BucketDeployment handler, run only at deploy time"
        _acknowledge_bucket_grant(handler, bucket_arn, what, has_kms_key=has_kms_key)
        acknowledge(
            handler,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]",
            f"{what}: CDK attaches the basic execution role (its own CloudWatch Logs)",
        )
        acknowledge(
            handler,
            f"IAM5[Resource::{_asset_bucket_arn(stack)}/*]",
            f"{what}: reads the staged config and code files from the CDK bootstrap asset bucket",
        )
        acknowledge(
            handler,
            "L1",
            f"{what}: CDK pins the handler's runtime (with the AWS CLI layer) per release",
        )


def _asset_bucket_arn(stack: BoxloopStack) -> str:
    """The bootstrap asset bucket's ARN as cdk-nag prints it (region literal, account ref)."""
    partition = _partition(stack)
    qualifier = (
        stack.node.try_get_context("@aws-cdk/core:bootstrapQualifier")
        or cdk.DefaultStackSynthesizer.DEFAULT_QUALIFIER
    )
    name = (
        cdk.DefaultStackSynthesizer.DEFAULT_FILE_ASSETS_BUCKET_NAME.replace(
            "${Qualifier}", qualifier
        )
        .replace("${AWS::AccountId}", "<AWS::AccountId>")
        .replace("${AWS::Region}", stack.region)
    )
    return f"arn:{partition}:s3:::{name}"


def _partition(stack: cdk.Stack) -> str:
    """The partition as it appears in ARNs CDK built, as cdk-nag prints it.

    A literal when the region is known and cdk.json's enablePartitionLiterals flag is on, else
    the ``AWS::Partition`` reference.
    """
    if cdk.FeatureFlags.of(stack).is_enabled(_PARTITION_LITERALS):
        return region_info.RegionInfo.get(stack.region).partition or "<AWS::Partition>"
    return "<AWS::Partition>"


def _ref(stack: cdk.Stack, resource: IConstruct | None, attribute: str) -> str:
    """How cdk-nag prints ``Fn::GetAtt``: ``<LogicalId.Attribute>``."""
    return f"<{stack.get_logical_id(resource)}.{attribute}>"  # type: ignore[arg-type]
