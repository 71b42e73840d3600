"""Per-region values the stack needs at synth time: algorithm image URIs and Ground Truth ARNs.

The images are needed in every region; the Ground Truth ARNs only with humanLabeling=groundtruth
(the labeling app, the default, calls no Ground Truth), so ``GROUND_TRUTH_REGIONS`` limits that
variant alone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from boxloop.core.errors import ConfigError

# The AWS accounts that own Ground Truth's built-in PRE-/ACS- Lambda functions, per region. Source:
# the HumanTaskConfig.PreHumanTaskLambdaArn documentation in botocore's SageMaker service model
# (botocore 1.44.5, data/sagemaker/2017-07-24/service-2.json); tests/aws/test_regions.py parses
# that file, so the table fails its test when botocore lists a region or account that is not here.
GROUND_TRUTH_LAMBDA_ACCOUNTS: dict[str, str] = {
    "ap-northeast-1": "477331159723",
    "ap-northeast-2": "845288260483",
    "ap-south-1": "565803892007",
    "ap-southeast-1": "377565633583",
    "ap-southeast-2": "454466003867",
    "ca-central-1": "918755190332",
    "eu-central-1": "203001061592",
    "eu-west-1": "568282634449",
    "eu-west-2": "487402164563",
    "us-east-1": "432418664414",
    "us-east-2": "266458841044",
    "us-west-2": "081040173940",
}
GROUND_TRUTH_REGIONS: tuple[str, ...] = tuple(sorted(GROUND_TRUTH_LAMBDA_ACCOUNTS))

CONSOLE_HOSTS: dict[str, str] = {
    "aws": "console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}
"""The AWS console's host per partition (a region's console is ``<region>.<host>``): the stack's
``ConsoleUrl`` output and ``boxloop aws start`` both build their links from it."""

OBJECT_DETECTION_VERSION = "1"
# The processing job runs processing/ and the boxloop package with the container's own python3 and
# boto3. The py312 build of the scikit-learn container is the one whose tag names its Python, and
# boxloop needs 3.10+ (slotted kw_only dataclasses); the 1.2-1 build still ships Python 3.8.
PROCESSING_FRAMEWORK = "sklearn"
PROCESSING_FRAMEWORK_VERSION = "1.4-2-py312"


@dataclass(frozen=True, slots=True)
class GroundTruthLambdas:
    """The built-in bounding-box Lambda ARNs that CreateLabelingJob needs in one region.

    Attributes:
        pre_human_task: ``PreHumanTaskLambdaArn`` (PRE-BoundingBox).
        annotation_consolidation: ``AnnotationConsolidationLambdaArn`` (ACS-BoundingBox).
    """

    pre_human_task: str
    annotation_consolidation: str


def ground_truth_problems(region: str) -> list[str]:
    """Why Ground Truth's bounding-box task cannot run in ``region`` (empty when it can)."""
    if region in GROUND_TRUTH_LAMBDA_ACCOUNTS:
        return []
    return [
        f"region {region!r} has no Ground Truth bounding-box Lambdas; supported regions: "
        f"{', '.join(GROUND_TRUTH_REGIONS)}"
    ]


def ground_truth_lambda_arns(region: str) -> GroundTruthLambdas:
    """The PRE-/ACS-BoundingBox Lambda ARNs of ``region``.

    Raises:
        ConfigError: when Ground Truth does not serve ``region``; the message lists the regions
            that it serves.
    """
    problems = ground_truth_problems(region)
    if problems:
        raise ConfigError(problems)
    account = GROUND_TRUTH_LAMBDA_ACCOUNTS[region]
    prefix = f"arn:aws:lambda:{region}:{account}:function"
    return GroundTruthLambdas(
        pre_human_task=f"{prefix}:PRE-BoundingBox",
        annotation_consolidation=f"{prefix}:ACS-BoundingBox",
    )


def object_detection_image_uri(region: str) -> str:
    """The built-in Object Detection algorithm image (training and inference) in ``region``.

    Resolved by sagemaker-core's image table (installed with the ``cdk`` extra, never in a Lambda).

    Raises:
        ConfigError: when the algorithm is not published in ``region``.
    """
    return _retrieve("object-detection", region, version=OBJECT_DETECTION_VERSION)


def processing_image_uri(region: str, *, instance_type: str = "ml.m5.xlarge") -> str:
    """The scikit-learn framework container that runs ``processing/`` in ``region``.

    Raises:
        ConfigError: when that container is not published in ``region``.
    """
    return _retrieve(
        PROCESSING_FRAMEWORK,
        region,
        version=PROCESSING_FRAMEWORK_VERSION,
        py_version="py3",
        instance_type=instance_type,
        image_scope="training",
    )


@functools.cache  # each lookup re-reads botocore's endpoint data (~0.2 s)
def _retrieve(framework: str, region: str, **kwargs: str) -> str:
    from sagemaker.core import image_uris  # local import: heavy, and absent from Lambda bundles

    try:
        return str(image_uris.retrieve(framework, region, **kwargs))
    except ValueError as exc:
        raise ConfigError(
            [f"region {region!r}: no {framework} image ({kwargs.get('version')}): {exc}"]
        ) from exc
