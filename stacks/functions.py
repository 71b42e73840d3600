"""Functions: the seven step Lambdas, each a thin handler bundled with the boxloop package."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from boxloop.aws.asl import LAMBDA_STEPS
from stacks.bundling import LAMBDA_RUNTIME, REPO_ROOT, lambda_code
from stacks.config import LAMBDA_EPHEMERAL_MIB, LAMBDA_MEMORY_MB

if TYPE_CHECKING:
    from aws_cdk import aws_s3 as s3

    from stacks.config import BoxloopConfig

FUNCTION_IDS = LAMBDA_STEPS
"""Folder under lambdas/ -> construct id (also the state machine's substitution key prefix)."""
TIMEOUT = cdk.Duration.minutes(15)


def base_environment(config: BoxloopConfig, bucket: s3.IBucket) -> dict[str, str]:
    """What every boxloop Lambda (steps and labeling) finds in its environment."""
    return {
        "BOXLOOP_BUCKET": bucket.bucket_name,
        "BOXLOOP_CONFIG": config.loop_json,
        "BOXLOOP_KMS_KEY_ARN": config.kms_key_arn,
        "POWERTOOLS_SERVICE_NAME": "boxloop",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


def bundled_function(
    scope: Construct,
    construct_name: str,
    folder: str,
    *,
    description: str,
    role: iam.IRole,
    environment: dict[str, str],
    timeout: cdk.Duration,
    root: Path = REPO_ROOT,
    ephemeral_storage: cdk.Size | None = None,
) -> tuple[lambda_.Function, logs.LogGroup]:
    """The Lambda of ``lambdas/<folder>`` (arm64, bundled with boxloop) and its log group.

    The log group (``<construct_name>Logs``, kept 3 months) is made first so the function
    writes to it, never to an unmanaged one that outlives the stack.
    """
    log_group = logs.LogGroup(
        scope,
        f"{construct_name}Logs",
        retention=logs.RetentionDays.THREE_MONTHS,
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    log_group.grant_write(role)
    function = lambda_.Function(
        scope,
        construct_name,
        description=description,
        runtime=LAMBDA_RUNTIME,
        architecture=lambda_.Architecture.ARM_64,
        handler="app.lambda_handler",
        code=lambda_code(folder, root=root),
        timeout=timeout,
        memory_size=LAMBDA_MEMORY_MB,
        ephemeral_storage_size=ephemeral_storage,
        role=role,
        environment=environment,
        log_group=log_group,
    )
    return function, log_group


class Functions(Construct):
    """One Lambda per step of the loop, sharing one role and the same environment.

    Environment of every function: ``BOXLOOP_BUCKET`` (data bucket name), ``BOXLOOP_CONFIG`` (the
    loop settings as JSON), ``BOXLOOP_KMS_KEY_ARN`` ("" without a key) and the Powertools
    service name and log level. arm64: the bundle is pure Python.

    Attributes:
        by_folder: ``lambdas/<folder>`` name -> function, in the loop's order.
        log_groups: folder name -> the function's log group (kept 3 months).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BoxloopConfig,
        bucket: s3.IBucket,
        role: iam.IRole,
        root: Path = REPO_ROOT,
    ) -> None:
        super().__init__(scope, construct_id)
        environment = base_environment(config, bucket)
        self.by_folder: dict[str, lambda_.Function] = {}
        self.log_groups: dict[str, logs.LogGroup] = {}
        for folder, construct_name in FUNCTION_IDS.items():
            self.by_folder[folder], self.log_groups[folder] = bundled_function(
                self,
                construct_name,
                folder,
                description=f"boxloop step {folder} (lambdas/{folder}/app.py)",
                role=role,
                environment=environment,
                timeout=TIMEOUT,
                root=root,
                ephemeral_storage=cdk.Size.mebibytes(LAMBDA_EPHEMERAL_MIB),
            )
