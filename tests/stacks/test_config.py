"""BoxloopConfig: context parsing, defaults, and every bad key reported at once."""

from __future__ import annotations

import json

import pytest

from boxloop.core.config import LoopConfig
from boxloop.core.errors import ConfigError
from stacks.config import BoxloopConfig, resolve_region
from stacks.context import DEFAULT_CONTEXT

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
WORKTEAM = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/labelers"


def test_cdk_json_context_documents_exactly_the_defaults(cdk_context):
    # GIVEN cdk.json's context block WHEN the boxloop keys are taken THEN they are the defaults
    boxloop_keys = {k: v for k, v in cdk_context.items() if not k.startswith("@")}
    assert boxloop_keys == DEFAULT_CONTEXT


def test_from_context_builds_defaults_when_context_is_empty():
    config = BoxloopConfig.from_context({}, environ={})
    assert config.region == "us-east-1"
    assert config.account is None
    assert config.loop.labels.class_names == ("car", "person", "bicycle")
    assert config.loop.job_prefix == "boxloop"
    assert config.workteam_arn == ""
    assert config.training_instance_type == "ml.p3.2xlarge"
    assert config.image_bucket_names == ()


def test_from_context_reads_region_and_account_from_cdk_environment_without_context_region():
    config = BoxloopConfig.from_context(
        {"region": ""},  # cdk.json's value: no region chosen
        environ={"CDK_DEFAULT_REGION": "eu-west-1", "CDK_DEFAULT_ACCOUNT": "123456789012"},
    )
    assert (config.region, config.account) == ("eu-west-1", "123456789012")
    assert config.overridden_region == ""
    assert "eu-west-1" in config.training_image
    assert config.ground_truth is None  # the labeling app (the default) calls no Ground Truth


def test_from_context_prefers_explicit_context_region_over_cdk_default_region():
    # GIVEN `-c region=us-west-2` under a CLI whose profile region is eu-west-1
    config = BoxloopConfig.from_context(
        {"region": "us-west-2", "humanLabeling": "groundtruth"},
        environ={"CDK_DEFAULT_REGION": "eu-west-1", "CDK_DEFAULT_ACCOUNT": "123456789012"},
    )
    # THEN the context region wins and the overridden one is kept for the synth warning
    assert (config.region, config.overridden_region) == ("us-west-2", "eu-west-1")
    assert ".us-west-2." in config.training_image
    assert config.ground_truth is not None
    assert ":us-west-2:" in config.ground_truth.pre_human_task


@pytest.mark.parametrize(
    ("context_region", "environment_region", "expected"),
    [
        ("", "", ("us-east-1", "")),  # plain `python app.py`: the documented default
        ("", "ap-southeast-2", ("ap-southeast-2", "")),  # the CLI's (profile's) region
        ("eu-west-1", "", ("eu-west-1", "")),  # context only
        ("eu-west-1", "eu-west-1", ("eu-west-1", "")),  # both agree: nothing overridden
        ("eu-west-1", "us-east-1", ("eu-west-1", "us-east-1")),  # explicit context wins
    ],
)
def test_resolve_region_lets_an_explicit_context_region_win(
    context_region, environment_region, expected
):
    assert resolve_region(context_region, environment_region) == expected


@pytest.mark.parametrize(
    ("overrides", "field", "expected"),
    [
        # every `cdk deploy -c key=value` value arrives as a string
        ({"labels": "car, person"}, "labels", ("car", "person")),
        ({"labels": '["a","b"]'}, "labels", ("a", "b")),
        ({"seedSize": "50"}, "seed_size", 50),
        ({"targetValue": "0.7"}, "target_value", 0.7),
        ({"humanLabelBudget": "500"}, "human_label_budget", 500),
        ({"humanLabelBudget": "null"}, "human_label_budget", None),
        ({"costCapUsd": ""}, "cost_cap_usd", None),
        ({"initialModelUri": ""}, "initial_model_uri", None),
        # numbers in hyperparameter overrides become the strings SageMaker wants
        ({"hyperparameters": '{"epochs": 50}'}, "hyperparameters", "50"),
        ({"jobPrefix": "my-loop"}, "job_prefix", "my-loop"),
        ({"deferAutoLabels": "true"}, "defer_auto_labels", True),
        ({"deferAutoLabels": False}, "defer_auto_labels", False),
        ({"lastModelEpochsFactor": "2.5"}, "last_model_epochs_factor", 2.5),
    ],
)
def test_from_context_converts_cli_strings_into_loop_settings(overrides, field, expected):
    loop = BoxloopConfig.from_context(overrides, environ={}).loop
    value = getattr(loop, field)
    if field == "labels":
        value = value.class_names
    if field == "hyperparameters":
        value = value["epochs"]
    assert value == expected


def test_from_context_reports_every_bad_key_at_once():
    # GIVEN several independent mistakes, in stack keys and loop keys
    context = {
        "seedSize": 0,
        "targetMetric": "f1",
        "trainingInstanceType": "ml.m5.xlarge",
        "transformInstanceType": "c5.xlarge",
        "notificationEmail": "not-an-email",
        "kmsKeyArn": "alias/mine",
        "imageBucketNames": "Bad_Bucket",
        "workTeamArn": WORKTEAM,
    }
    # WHEN the config is built THEN one error lists each of them
    with pytest.raises(ConfigError) as raised:
        BoxloopConfig.from_context(context, environ={})
    text = str(raised.value)
    for fragment in (
        "'seedSize'",
        "'targetMetric'",
        "'trainingInstanceType'",
        "'transformInstanceType'",
        "'notificationEmail'",
        "'kmsKeyArn'",
        "'Bad_Bucket'",
        "unknown context key 'workTeamArn' (did you mean 'workteamArn'?)",
    ):
        assert fragment in text
    assert len(raised.value.problems) == len(context)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        # Ground Truth and SSE-KMS need both in the stack's region
        ({"workteamArn": WORKTEAM.replace("us-east-1", "eu-west-1")}, "same region"),
        ({"kmsKeyArn": KEY_ARN.replace("us-east-1", "eu-west-1")}, "same region"),
        # the built-in Object Detection algorithm cannot train on CPU
        ({"trainingInstanceType": "ml.c5.xlarge"}, "GPU"),
        ({"seedSize": "many"}, "'seedSize': seed_size must be a whole number"),
        ({"seedSize": 2.5}, "'seedSize': seed_size must be a whole number"),
        ({"labels": []}, "at least one class name"),
        ({"labels": ["car", "car"]}, "repeated"),
        ({"jobPrefix": "a" * 21}, "'jobPrefix'"),
        ({"hyperparameters": {"num_classes": "3"}}, "derived"),
        ({"hyperparameters": "{not json"}, "'hyperparameters': hyperparameters must be an object"),
        ({"initialModelUri": "https://x/model.tar.gz"}, "s3://"),
        ({"costCapUsd": "-1"}, "'costCapUsd'"),
        (
            {"deferAutoLabels": "maybe"},
            "'deferAutoLabels': defer_auto_labels must be true or false",
        ),
        ({"lastModelEpochsFactor": "0.5"}, "'lastModelEpochsFactor'"),
        ({"tmpExpirationDays": 0}, "'tmpExpirationDays'"),
        ({"region": "mars"}, "region must look like us-east-1"),
        # with Ground Truth, a region it does not serve is named with the ones it does, and
        # the fix (tests/stacks/test_region_without_ground_truth.py: the app deploys there)
        (
            {"region": "af-south-1", "humanLabeling": "groundtruth"},
            r"supported regions: ap-northeast-1, .*us-west-2: deploy the labeling app instead "
            r"\(-c humanLabeling=boxloop",
        ),
        ({"labels": ",".join(f"{i:02d}" + "x" * 200 for i in range(20))}, "4 KB"),
    ],
)
def test_from_context_rejects_bad_value(overrides, match):
    with pytest.raises(ConfigError, match=match):
        BoxloopConfig.from_context(overrides, environ={})


def test_from_context_ignores_keys_of_cdk_and_other_tools():
    context = {
        "@aws-cdk/core:newStyleStackSynthesis": True,
        "aws:cdk:bundling-stacks": [],
        "acknowledged-issue-numbers": [32775],
    }
    assert BoxloopConfig.from_context(context, environ={}).region == "us-east-1"


def test_from_context_accepts_full_optional_settings():
    config = BoxloopConfig.from_context(
        {
            "workteamArn": WORKTEAM,
            "kmsKeyArn": KEY_ARN,
            "notificationEmail": "ops@example.com",
            "imageBucketNames": ["my-images", "more.images"],
        },
        environ={},
    )
    assert config.workteam_arn == WORKTEAM
    assert config.kms_key_arn == KEY_ARN
    assert config.image_bucket_names == ("my-images", "more.images")


def test_loop_json_round_trips_into_the_same_loop_config():
    config = BoxloopConfig.from_context({"labels": "cat,dog", "seedSize": 20}, environ={})
    assert LoopConfig.from_dict(json.loads(config.loop_json)) == config.loop


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        # SageMaker's HumanTaskConfig: TaskTitle 1-128 characters, TaskDescription 1-255
        ({"taskTitle": "x" * 129}, "taskTitle"),
        ({"taskDescription": "x" * 256}, "taskDescription"),
        # Ground Truth: a label category name has at most 256 characters
        ({"labels": f"car,{'x' * 257}"}, "labels"),
        # SageMaker job names are ASCII and start with a letter or digit
        ({"jobPrefix": "-boxloop"}, "jobPrefix"),
        ({"jobPrefix": "läufer"}, "jobPrefix"),
        # a target of 0 certifies any threshold
        ({"targetValue": "0"}, "targetValue"),
    ],
)
def test_from_context_fails_synth_naming_the_key_of_a_value_sagemaker_refuses(overrides, key):
    # GIVEN a value SageMaker would refuse when the first labeling job is created
    # WHEN the stack's settings are read THEN the error names the context key to fix
    with pytest.raises(ConfigError) as raised:
        BoxloopConfig.from_context(overrides, environ={})
    assert any(p.startswith(f"context {key!r}") for p in raised.value.problems), raised.value


def test_from_context_target_metric_alone_brings_its_default_target():
    # GIVEN only `-c targetMetric=exact_match` WHEN read THEN the target is exact_match's 0.9
    loop = BoxloopConfig.from_context({"targetMetric": "exact_match"}, environ={}).loop
    assert loop.target_value is None
    assert loop.resolved_target_value == 0.9
    assert BoxloopConfig.from_context({"targetValue": "null"}, environ={}).loop.target_value is None


@pytest.mark.parametrize(("text", "expected"), [("40", 40), ("40.0", 40), (40.0, 40)])
def test_from_context_takes_whole_numbers_written_as_floats(text, expected):
    # LoopConfig takes 40.0 from JSON as 40; `-c seedSize=40.0` reads the same way
    loop = BoxloopConfig.from_context({"seedSize": text}, environ={}).loop
    assert loop.seed_size == expected
    assert isinstance(loop.seed_size, int)
