"""The stack's settings: CDK context read once into one frozen value, all bad keys reported."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boxloop.aws import regions
from boxloop.core.config import LoopConfig
from boxloop.core.errors import ConfigError
from stacks.context import (
    DEFAULT_CONTEXT,
    EMAIL,
    HUMAN_LABELING,
    KMS_KEY_ARN,
    WORKTEAM_ARN,
    ContextReader,
    unknown_key_problems,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

# Lambda allows 4 KB for all environment variables of a function together.
MAX_LOOP_CONFIG_BYTES = 3500
LAMBDA_MEMORY_MB = 1769
"""One full vCPU: every step is a single-threaded stream over the ledger (bench/scale)."""
LAMBDA_EPHEMERAL_MIB = 10_240
"""Outputs are spooled to /tmp before upload; a 1M-image ledger is ~0.6 GB (512 MB default).
Here, without CDK imports, so the scale benchmark reads the same figure."""
DEFAULT_REGION = "us-east-1"
"""The region when neither context ``region`` nor CDK_DEFAULT_REGION names one."""
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


@dataclass(frozen=True, slots=True, kw_only=True)
class BoxloopConfig:
    """Everything the stack is built from; made only by ``from_context``.

    Attributes:
        region: the deployment region (see ``resolve_region``); concrete because image URIs and
            Ground Truth ARNs differ per region. Any region with both images will do for the
            labeling app; Ground Truth serves only ``regions.GROUND_TRUTH_REGIONS``.
        overridden_region: CDK_DEFAULT_REGION when an explicit context ``region`` overrode it
            (the stack warns about it), else "".
        account: CDK_DEFAULT_ACCOUNT, or None for an account-agnostic template.
        loop: the loop's own settings, passed to every Lambda as ``BOXLOOP_CONFIG``.
        workteam_arn: the Ground Truth work team; "" means the account's private team "boxloop".
        human_labeling: ``boxloop`` (the stack's own labeling app: Cognito, HTTP API, DynamoDB,
            CloudFront; the Label state waits on a task token) or ``groundtruth`` (a Ground
            Truth labeling job per batch, for accounts that still have Ground Truth).
        training_image: the built-in Object Detection image of ``region``.
        processing_image: the scikit-learn container that runs ``processing/``.
        ground_truth: the PRE-/ACS-BoundingBox Lambda ARNs of ``region`` with
            ``groundtruth``; None with ``boxloop``, which never calls Ground Truth (so a region
            that Ground Truth does not serve is no obstacle to the app).
        training_instance_type: a GPU type (the built-in Object Detection trains on GPU only).
        transform_instance_type: batch transform instances.
        processing_instance_type: post-processing instances.
        notification_email: subscribed to the notification topic when not "".
        kms_key_arn: customer managed key for the bucket and topic; "" = S3-managed keys.
        image_bucket_names: buckets holding the images that the manifests point at (read only).
        tmp_expiration_days: days before objects under ``tmp/`` expire.
    """

    region: str
    overridden_region: str
    account: str | None
    loop: LoopConfig
    workteam_arn: str
    human_labeling: str
    training_image: str
    processing_image: str
    ground_truth: regions.GroundTruthLambdas | None
    training_instance_type: str
    transform_instance_type: str
    processing_instance_type: str
    notification_email: str
    kms_key_arn: str
    image_bucket_names: tuple[str, ...]
    tmp_expiration_days: int

    @property
    def loop_json(self) -> str:
        """``BOXLOOP_CONFIG``: the loop settings as compact JSON."""
        return json.dumps(self.loop.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_context(
        cls, context: Mapping[str, Any], *, environ: Mapping[str, str]
    ) -> BoxloopConfig:
        """Read and check every context key; missing keys take ``DEFAULT_CONTEXT``.

        Args:
            context: the CDK context (``app.node.get_all_context()``); keys with ``:``, ``@`` or
                ``/`` belong to CDK and are ignored, any other unknown key is reported.
            environ: the process environment (CDK_DEFAULT_REGION, CDK_DEFAULT_ACCOUNT).

        Raises:
            ConfigError: listing every bad or unknown key, and the loop settings' own problems.
        """
        reader = ContextReader({**DEFAULT_CONTEXT, **context})
        reader.problems.extend(unknown_key_problems(context))
        region, overridden_region = resolve_region(
            reader.text("region"), environ.get("CDK_DEFAULT_REGION", "")
        )
        loop = reader.loop_config()
        values: dict[str, Any] = {
            "workteam_arn": reader.arn("workteamArn", WORKTEAM_ARN, region),
            "human_labeling": reader.choice("humanLabeling", HUMAN_LABELING),
            "training_instance_type": reader.instance_type("trainingInstanceType", gpu=True),
            "transform_instance_type": reader.instance_type("transformInstanceType"),
            "processing_instance_type": reader.instance_type("processingInstanceType"),
            "notification_email": reader.matching("notificationEmail", EMAIL),
            "kms_key_arn": reader.arn("kmsKeyArn", KMS_KEY_ARN, region),
            "image_bucket_names": reader.bucket_names("imageBucketNames"),
            "tmp_expiration_days": reader.integer("tmpExpirationDays", low=1, high=3650),
        }
        resolved = _resolve_region(region, values["human_labeling"], reader.problems)
        if loop is not None:
            size = len(json.dumps(loop.to_dict(), separators=(",", ":")))
            if size > MAX_LOOP_CONFIG_BYTES:
                reader.problems.append(
                    f"the loop settings take {size} bytes of JSON; Lambda allows 4 KB of "
                    "environment per function: shorten labels or taskDescription"
                )
        if reader.problems or loop is None or resolved is None:
            raise ConfigError(reader.problems)
        return cls(
            region=region,
            overridden_region=overridden_region,
            account=environ.get("CDK_DEFAULT_ACCOUNT") or None,
            loop=loop,
            **resolved,
            **values,
        )


def resolve_region(context_region: str, environment_region: str) -> tuple[str, str]:
    """The region to deploy to, and the CLI's region it overrides ("" when none).

    An explicit context ``region`` (``-c region=...``, or set in cdk.json or cdk.context.json)
    wins over CDK_DEFAULT_REGION. The CDK CLI always exports CDK_DEFAULT_REGION (the profile's or
    AWS_REGION's region, else us-east-1), so letting it win would make ``-c region`` a silent
    no-op; failing whenever the two differ would leave no way to deploy to another region than
    the profile's without editing the environment. The stack carries its region in its
    environment, and ``cdk deploy`` deploys a stack to its own region whatever the profile says,
    so the explicit value is the one that is honoured end to end; the stack adds a synth warning
    naming both values. Without a context region the CLI's region is used, and without either
    ``DEFAULT_REGION`` (plain ``python app.py``, tests).

    Args:
        context_region: context ``region``; "" (cdk.json's value) means not chosen.
        environment_region: CDK_DEFAULT_REGION; "" when unset.
    """
    if context_region:
        overridden = environment_region if environment_region != context_region else ""
        return context_region, overridden
    return environment_region or DEFAULT_REGION, ""


def _resolve_region(region: str, human_labeling: str, problems: list[str]) -> dict[str, Any] | None:
    """The region's image URIs, and its Ground Truth ARNs when Ground Truth labels.

    Every problem goes to ``problems`` (None is returned then), so one error lists the missing
    images and the missing Ground Truth together with the other context problems.
    """
    if not _REGION.match(region):
        problems.append(f"region must look like us-east-1, got {region!r}")
        return None
    found = len(problems)
    resolved: dict[str, Any] = {"ground_truth": None}
    for field, lookup in (
        ("training_image", regions.object_detection_image_uri),
        ("processing_image", regions.processing_image_uri),
    ):
        try:
            resolved[field] = lookup(region)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if human_labeling == "groundtruth":
        gt_problems = regions.ground_truth_problems(region)
        if gt_problems:
            problems.extend(
                f"context humanLabeling is 'groundtruth', but {problem}: deploy the labeling app "
                "instead (-c humanLabeling=boxloop, the default) or to one of those regions "
                "(-c region=...)"
                for problem in gt_problems
            )
        else:
            resolved["ground_truth"] = regions.ground_truth_lambda_arns(region)
    return None if len(problems) > found else resolved
