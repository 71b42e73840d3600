"""cdk-nag (AwsSolutions) acknowledgements, each on the construct it concerns, with its reason.

cdk-nag 3 has no rule-wide suppression: a finding is acknowledged by its full id, which names the
wildcard action or resource (resources by logical id), on the construct that holds it. Everything
else the AwsSolutions pack checks (bucket logs and TLS, state machine logging and X-Ray, latest
Lambda runtime, topic TLS, ...) is met by the constructs themselves.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets

from stacks.roles import (
    job_arn,
    job_log_groups_arn,
    job_name_pattern,
    sagemaker_job_actions,
    superseded_job_actions,
    sync_rules_arn,
    writable_object_arns,
)

if TYPE_CHECKING:
    from aws_cdk import aws_s3 as s3
    from constructs import IConstruct

    from stacks.boxloop_stack import BoxloopStack

PACK = "AwsSolutions"
READ_GRANT_ACTIONS = ("s3:GetBucket*", "s3:GetObject*", "s3:List*")
GRANT_ACTIONS = ("s3:Abort*", "s3:DeleteObject*", *READ_GRANT_ACTIONS)
KMS_GRANT_ACTIONS = ("kms:GenerateDataKey*", "kms:ReEncrypt*")
BUCKET_DEPLOYMENT_ID = "Custom::CDKBucketDeployment"

_READ_REASON = (
    "Bucket.grant_read actions: s3 object reads and listing (never s3:*, no write or delete) on "
    "the stack's data bucket only"
)
_OBJECTS_REASON = (
    "read access to every key of the stack's data bucket: input manifests, images, ledgers and "
    "run files live under run-specific keys that exist only at run time"
)
_WRITE_REASON = (
    "s3:PutObject and s3:AbortMultipartUpload (no delete) under one run-file prefix of the data "
    "bucket; run and job names exist only at run time"
)
_DEPLOYMENT_GRANT_REASON = (
    "Bucket.grant_read_write of the data bucket to the deploy-time handler: it syncs the "
    "deployed config/ and code/ files (s3 object and listing actions, never s3:*)"
)
_KMS_REASON = (
    "Bucket grants of the configured customer managed key: data-key generation and re-encryption "
    "on that one key only"
)


def nag_text(scope: IConstruct, value: Any) -> str:
    """``value`` (a string with tokens, or a CloudFormation value) as cdk-nag prints it.

    cdk-nag (``flattenCfnReference``) resolves the value in the stack and flattens it: a ``Ref``
    becomes ``<Name>``, an ``Fn::GetAtt`` ``<LogicalId.Attribute>``, an ``Fn::Join`` the joined
    parts. Computing an acknowledgement id from the very value a policy holds makes it match
    whether account, region and partition are tokens or literals (they are literals once the CLI
    passes CDK_DEFAULT_ACCOUNT and cdk.json's enablePartitionLiterals flag is on).
    """
    return _flatten(cdk.Stack.of(scope).resolve(value))


def _flatten(node: Any) -> str:
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return delimiter.join(_flatten(item) for item in items)
        if "Fn::Sub" in node:
            return _flatten(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{_flatten(resource)}.{_flatten(attribute)}>"
        if "Fn::ImportValue" in node:
            return _flatten(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{_flatten(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge ``AwsSolutions-<finding>`` on ``scope`` (and only there)."""
    cdk.Validations.of(scope).acknowledge(
        cdk.Acknowledgment(id=f"{PACK}::{PACK}-{finding}", reason=reason)
    )


def acknowledge_resource(scope: IConstruct, resource: Any, reason: str) -> None:
    """Acknowledge the wildcard-resource finding (IAM5) for ``resource`` (an ARN with tokens)."""
    acknowledge(scope, f"IAM5[Resource::{nag_text(scope, resource)}]", reason)


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
    bucket = stack.storage.bucket
    roles = stack.roles
    for role, what in ((roles.sagemaker_role, "SageMaker jobs"), (roles.function_role, "Lambdas")):
        _acknowledge_run_files(role, bucket, what)
    for index, image_bucket in enumerate(roles.image_buckets):
        name = stack.config.image_bucket_names[index]
        images = image_bucket.arn_for_objects("*")
        acknowledge_resource(
            roles.sagemaker_role,
            images,
            f"read-only access to the image bucket {name} (context imageBucketNames[{index}]): "
            "jobs read the images that manifests list",
        )
        acknowledge_resource(
            roles.function_role,
            images,
            f"s3:GetObject only, on the image bucket {name} (context imageBucketNames[{index}]): "
            "Ingest reads the header of each image that the input manifest lists",
        )
    pattern = job_name_pattern(stack.config)
    for kind in superseded_job_actions(stack.config):
        acknowledge_resource(
            roles.function_role,
            job_arn(kind, stack.config),
            f"Describe and Stop only (never Create) of the loop's own {kind}s, all named "
            f"{pattern}: the step that reads a job's result stops the attempts a retry "
            "superseded, whose names exist only at run time",
        )
    acknowledge_resource(
        roles.sagemaker_role,
        job_log_groups_arn(),
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
    _acknowledge_bucket_deployment(stack, has_kms_key=has_kms_key)
    if stack.labeling is not None:
        _acknowledge_labeling(stack, has_kms_key=has_kms_key)


def _acknowledge_run_files(role: iam.IRole, bucket: s3.IBucket, what: str) -> None:
    """The read grant on the whole data bucket and the put grant under runs/ and tmp/."""
    for action in READ_GRANT_ACTIONS:
        acknowledge(role, f"IAM5[Action::{action}]", f"{_READ_REASON} ({what})")
    acknowledge_resource(
        role,
        bucket.arn_for_objects("*"),
        f"{_OBJECTS_REASON} ({what})",
    )
    for arn in writable_object_arns(bucket):
        acknowledge_resource(role, arn, f"{_WRITE_REASON} ({what})")


def _acknowledge_workflow(stack: BoxloopStack, *, has_kms_key: bool) -> None:
    role = stack.roles.workflow_role
    if has_kms_key:
        acknowledge(
            role,
            "IAM5[Action::kms:GenerateDataKey*]",
            "Topic.grant_publish on the encrypted topic: data keys of the configured key only",
        )
    pattern = job_name_pattern(stack.config)
    for kind in sagemaker_job_actions(stack.config):
        acknowledge_resource(
            role,
            job_arn(kind, stack.config),
            f"job names are generated per run and iteration; every {kind} the loop creates is "
            f"named {pattern}, so access is limited to the loop's own",
        )
    acknowledge_resource(
        role,
        sync_rules_arn(),
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
        acknowledge_resource(
            role,
            f"{function.function_arn}:*",
            "Function.grant_invoke also allows the function's versions and aliases (ARN:*); "
            "only this stack's functions",
        )


def _acknowledge_bucket_deployment(stack: BoxloopStack, *, has_kms_key: bool) -> None:
    """The BucketDeployment custom resource is CDK's singleton; its role and runtime are CDK's."""
    handlers = [c for c in stack.node.children if c.node.id.startswith(BUCKET_DEPLOYMENT_ID)]
    what = "CDK BucketDeployment handler, run only at deploy time"
    bucket = stack.storage.bucket
    # The files both deployments stage in the bootstrap asset bucket (named after the account
    # and region: literals under the CLI with credentials, tokens without).
    staged = sorted(
        {
            nag_text(stack, asset.bucket.arn_for_objects("*"))
            for asset in stack.storage.node.find_all()
            if isinstance(asset, s3_assets.Asset)
        }
    )
    basic_execution = iam.ManagedPolicy.from_aws_managed_policy_name(
        "service-role/AWSLambdaBasicExecutionRole"
    )
    for handler in handlers:
        for action in GRANT_ACTIONS:
            acknowledge(handler, f"IAM5[Action::{action}]", _DEPLOYMENT_GRANT_REASON)
        if has_kms_key:
            for action in KMS_GRANT_ACTIONS:
                acknowledge(handler, f"IAM5[Action::{action}]", f"{_KMS_REASON} ({what})")
        acknowledge_resource(
            handler,
            bucket.arn_for_objects("*"),
            f"{_DEPLOYMENT_GRANT_REASON} ({what})",
        )
        acknowledge(
            handler,
            f"IAM4[Policy::{nag_text(stack, basic_execution.managed_policy_arn)}]",
            f"{what}: CDK attaches the basic execution role (its own CloudWatch Logs)",
        )
        for arn in staged:
            acknowledge(
                handler,
                f"IAM5[Resource::{arn}]",
                f"{what}: reads the staged config and code files from the CDK bootstrap asset "
                "bucket",
            )
        acknowledge(
            handler,
            "L1",
            f"{what}: CDK pins the handler's runtime (with the AWS CLI layer) per release",
        )


def _acknowledge_labeling(stack: BoxloopStack, *, has_kms_key: bool) -> None:
    """The labeling service: its role's grants, and what needs money or a custom domain."""
    labeling = stack.labeling
    assert labeling is not None
    role = labeling.role
    _acknowledge_run_files(role, stack.storage.bucket, "labeling Lambdas")
    for index, image_bucket in enumerate(stack.roles.image_buckets):
        acknowledge_resource(
            role,
            image_bucket.arn_for_objects("*"),
            f"read-only access to the image bucket {stack.config.image_bucket_names[index]} "
            f"(context imageBucketNames[{index}]): the labeling API presigns GET URLs of the "
            "images that a job's manifest lists",
        )
    if has_kms_key:
        for action in KMS_GRANT_ACTIONS:
            acknowledge(
                role,
                f"IAM5[Action::{action}]",
                f"{_KMS_REASON} (labeling Lambdas: run files and the task table)",
            )
    acknowledge_resource(
        stack.roles.workflow_role,
        f"{labeling.start_function.function_arn}:*",
        "Function.grant_invoke also allows the function's versions and aliases (ARN:*); "
        "only this stack's StartHumanLabeling function",
    )
    for handler in stack.node.children:
        if handler.node.id.startswith(BUCKET_DEPLOYMENT_ID):
            acknowledge_resource(
                handler,
                labeling.site_bucket.arn_for_objects("*"),
                "CDK BucketDeployment handler, run only at deploy time: it syncs the labeling "
                "app's static files into their own bucket",
            )
    pool = labeling.user_pool
    acknowledge(
        pool,
        "COG8",
        "the Plus feature plan (threat protection) costs per monthly active user; a handful of "
        "admin-created labelers with a strong password policy and optional TOTP MFA is served "
        "by the Essentials plan",
    )
    acknowledge(
        pool,
        "COG2",
        "MFA is available (TOTP) and labelers are encouraged to turn it on; requiring it would "
        "block a labeler invited by email from the first sign-in until they set up an "
        "authenticator app",
    )
    distribution = labeling.distribution
    acknowledge(
        distribution,
        "CFR4",
        "the distribution uses CloudFront's default *.cloudfront.net certificate, which allows "
        "TLSv1 for viewers; a minimum of TLSv1.2_2021 needs a custom domain and an ACM "
        "certificate in us-east-1, which a new account does not have",
    )
    acknowledge(
        distribution,
        "CFR3",
        "every API call is logged by the HTTP API stage's access log; the distribution itself "
        "serves only the app's public static files, and CloudFront standard logs need a bucket "
        "with ACLs enabled, which this stack does not create",
    )
    acknowledge(
        distribution,
        "CFR1",
        "labelers may work from any country; the app and API admit signed-in Cognito users only",
    )
    acknowledge(
        distribution,
        "CFR2",
        "a WAF web ACL costs a monthly fee per ACL and rule; the API requires a Cognito JWT on "
        "every route and the stage is throttled, which bounds abuse without WAF",
    )
