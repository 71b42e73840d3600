"""Storage: the data bucket (ledger, runs, configs, code), its access logs and deployed files."""

from __future__ import annotations

import html
import json
import string
from pathlib import Path
from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from boxloop.aws.stack_outputs import LOOP_CONFIG_KEY
from stacks.bundling import REPO_ROOT, processing_code_bundler

if TYPE_CHECKING:
    from stacks.config import BoxloopConfig

UI_TEMPLATE = Path(__file__).resolve().parent / "assets" / "bounding-box.liquid.html"
LABEL_CONFIG_KEY = "config/label-categories.json"
UI_TEMPLATE_KEY = "config/bounding-box.liquid.html"
PROCESSING_CODE_PREFIX = "code/processing/"
RUNS_PREFIX = "runs/"
TMP_PREFIX = "tmp/"
WRITABLE_PREFIXES = (RUNS_PREFIX, TMP_PREFIX)
"""Where runs write (``boxloop.steps.run.RunPaths``: ``runs/<run>/...``, scratch under
``tmp/<run>/...``); the job and Lambda roles may put objects there and nowhere else."""
ACCESS_LOG_RETENTION_DAYS = 365
NONCURRENT_VERSION_RETENTION_DAYS = 30
_LOGS_USE_BUCKET_POLICY = "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"


class Storage(Construct):
    """The bucket every run reads and writes, with secure defaults and its deployed files.

    The bucket is SSE-KMS with the configured key (S3-managed keys without one), blocks public
    access, refuses plain HTTP, is versioned (a bad merge of the ledger can be undone), logs access
    to a separate bucket and carries the CORS rule Ground Truth's worker UI needs to show images.
    Lifecycle: objects under ``tmp/`` expire after ``tmp_expiration_days`` days; non-current
    versions after 30 days; incomplete multipart uploads after 7 days.

    Attributes:
        bucket: the data bucket.
        access_log_bucket: receives the data bucket's server access logs (kept 365 days).
        encryption_key: the imported customer managed key, or None.
        label_config_uri: ``s3://`` URI of the label category config (from context ``labels``).
        ui_template_uri: ``s3://`` URI of the worker UI (crowd-bounding-box Liquid template).
        processing_code_uri: ``s3://`` prefix holding ``processing/`` and the boxloop package.
        config_deployment: puts the label config, the UI template and the loop settings
            under ``config/``.
        code_deployment: puts the processing code under ``code/processing/``.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, config: BoxloopConfig, root: Path = REPO_ROOT
    ) -> None:
        super().__init__(scope, construct_id)
        # Log delivery through a bucket policy (not the LogDeliveryWrite ACL, which would need
        # ACLs enabled): set here so it holds even when the app runs without cdk.json's flags.
        self.node.set_context(_LOGS_USE_BUCKET_POLICY, True)
        self.encryption_key: kms.IKey | None = (
            kms.Key.from_key_arn(self, "Key", config.kms_key_arn) if config.kms_key_arn else None
        )
        self.access_log_bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # the only one S3 log delivery supports
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAccessLogs", expiration=cdk.Duration.days(ACCESS_LOG_RETENTION_DAYS)
                )
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.bucket = s3.Bucket(
            self,
            "Data",
            encryption=(
                s3.BucketEncryption.KMS if self.encryption_key else s3.BucketEncryption.S3_MANAGED
            ),
            encryption_key=self.encryption_key,
            bucket_key_enabled=self.encryption_key is not None,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix="data/",
            cors=[
                # Ground Truth's worker UI fetches images from the browser (sms-cors-update).
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.GET],
                    allowed_origins=["*"],
                    exposed_headers=["Access-Control-Allow-Origin"],
                )
            ],
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireTemporaryObjects",
                    prefix=TMP_PREFIX,
                    expiration=cdk.Duration.days(config.tmp_expiration_days),
                    noncurrent_version_expiration=cdk.Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="ExpireNoncurrentVersions",
                    noncurrent_version_expiration=cdk.Duration.days(
                        NONCURRENT_VERSION_RETENTION_DAYS
                    ),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
                ),
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        name = self.bucket.bucket_name
        self.label_config_uri = f"s3://{name}/{LABEL_CONFIG_KEY}"
        self.ui_template_uri = f"s3://{name}/{UI_TEMPLATE_KEY}"
        self.processing_code_uri = f"s3://{name}/{PROCESSING_CODE_PREFIX}"
        self.config_deployment = s3deploy.BucketDeployment(
            self,
            "ConfigFiles",
            sources=[
                s3deploy.Source.data(
                    Path(LABEL_CONFIG_KEY).name,
                    json.dumps(config.loop.labels.to_label_category_config(), indent=2),
                ),
                s3deploy.Source.data(Path(UI_TEMPLATE_KEY).name, render_ui_template(config)),
                s3deploy.Source.data(Path(LOOP_CONFIG_KEY).name, config.loop_json),
            ],
            destination_bucket=self.bucket,
            destination_key_prefix=str(Path(LABEL_CONFIG_KEY).parent) + "/",
        )
        processing_dir, bundling = processing_code_bundler(root=root)
        self.code_deployment = s3deploy.BucketDeployment(
            self,
            "ProcessingCode",
            sources=[
                s3deploy.Source.asset(
                    str(processing_dir),
                    asset_hash_type=cdk.AssetHashType.OUTPUT,
                    bundling=bundling,
                )
            ],
            destination_bucket=self.bucket,
            destination_key_prefix=PROCESSING_CODE_PREFIX,
        )


def render_ui_template(config: BoxloopConfig) -> str:
    """The worker UI with its header set to the task description (HTML-escaped)."""
    template = string.Template(UI_TEMPLATE.read_text())
    return template.substitute(header=html.escape(config.loop.task_description, quote=True))
