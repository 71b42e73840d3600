"""Region tables: Ground Truth Lambda ARNs (checked against botocore) and algorithm image URIs."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import botocore
import pytest

from boxloop.aws import regions
from boxloop.core.errors import ConfigError

_BUILT_IN_ARN = re.compile(r"arn:aws:lambda:([a-z0-9-]+):(\d{12}):function:(PRE|ACS)-BoundingBox")


def _botocore_bounding_box_accounts() -> dict[str, dict[str, str]]:
    """Region -> {"PRE": account, "ACS": account}, from the SageMaker service model's docs."""
    models = sorted((Path(botocore.__file__).parent / "data" / "sagemaker").glob("*/service-2.*"))
    model = models[-1]
    text = (
        gzip.decompress(model.read_bytes()).decode()
        if model.suffix == ".gz"
        else (model.read_text())
    )
    found: dict[str, dict[str, str]] = {}
    for region, account, kind in _BUILT_IN_ARN.findall(text):
        found.setdefault(region, {})[kind] = account
    return found


def test_ground_truth_table_matches_botocore_service_model():
    # GIVEN the ARNs botocore documents for PreHumanTaskLambdaArn / AnnotationConsolidation
    documented = _botocore_bounding_box_accounts()
    # THEN our table lists the same regions, with the same account for PRE and ACS
    assert set(documented) == set(regions.GROUND_TRUTH_LAMBDA_ACCOUNTS)
    for region, accounts in documented.items():
        assert accounts == dict.fromkeys(
            ("PRE", "ACS"), regions.GROUND_TRUTH_LAMBDA_ACCOUNTS[region]
        )


def test_ground_truth_lambda_arns_name_the_region_function_pair():
    arns = regions.ground_truth_lambda_arns("eu-west-1")
    assert arns.pre_human_task == "arn:aws:lambda:eu-west-1:568282634449:function:PRE-BoundingBox"
    assert arns.annotation_consolidation.endswith(":568282634449:function:ACS-BoundingBox")


@pytest.mark.parametrize(
    "region",
    [
        "af-south-1",  # has SageMaker and the algorithm image, but no Ground Truth
        "cn-north-1",  # another partition, no Ground Truth
        "xx-nowhere-1",  # no such region
    ],
)
def test_ground_truth_lambda_arns_reject_region_without_ground_truth(region):
    with pytest.raises(
        ConfigError, match=rf"{region}.*supported regions: ap-northeast-1, .*us-west-2"
    ):
        regions.ground_truth_lambda_arns(region)


def test_object_detection_image_uri_differs_per_region():
    us_east = regions.object_detection_image_uri("us-east-1")
    eu_west = regions.object_detection_image_uri("eu-west-1")
    assert us_east == "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"
    assert eu_west == "685385470294.dkr.ecr.eu-west-1.amazonaws.com/object-detection:1"


def test_processing_image_uri_is_the_python_312_sklearn_container():
    uri = regions.processing_image_uri("us-west-2")
    assert ".dkr.ecr.us-west-2.amazonaws.com/sagemaker-scikit-learn:1.4-2-py312-cpu-py3" in uri


@pytest.mark.parametrize(
    "lookup", [regions.object_detection_image_uri, regions.processing_image_uri]
)
def test_image_uri_rejects_unknown_region(lookup):
    with pytest.raises(ConfigError, match="xx-nowhere-1"):
        lookup("xx-nowhere-1")
