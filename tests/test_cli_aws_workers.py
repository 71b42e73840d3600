"""``boxloop aws workers add | list | remove`` on moto: Cognito users found by the stack's outputs.

The stack is a real moto CloudFormation stack whose outputs are the labeling service's
(``UserPoolId``, ``LabelingUrl``), as ``describe_stacks`` returns them; the pool is a moto
Cognito pool with the ``labelers`` group.
"""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from boxloop.aws import clients
from boxloop.aws.labeling_env import LABELING_GROUP
from boxloop.cli import main

URL = "https://d111111abcdef8.cloudfront.net/"


@pytest.fixture
def stack(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    clients.clear()
    with mock_aws():
        cognito = boto3.client("cognito-idp")
        pool = cognito.create_user_pool(
            PoolName="labelers",
            UsernameAttributes=["email"],
            AdminCreateUserConfig={"AllowAdminCreateUserOnly": True},
        )["UserPool"]["Id"]
        cognito.create_group(UserPoolId=pool, GroupName=LABELING_GROUP)
        template = {
            "Resources": {"Nothing": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {"UserPoolId": {"Value": pool}, "LabelingUrl": {"Value": URL}},
        }
        boto3.client("cloudformation").create_stack(
            StackName="Labels", TemplateBody=json.dumps(template)
        )
        yield cognito, pool
    clients.clear()


def _group(cognito, pool) -> list[str]:
    users = cognito.list_users_in_group(UserPoolId=pool, GroupName=LABELING_GROUP)["Users"]
    return sorted(next(a["Value"] for a in u["Attributes"] if a["Name"] == "email") for u in users)


def test_add_invites_labelers_into_the_group(stack, capsys):
    cognito, pool = stack
    assert (
        main(["aws", "workers", "add", "ada@example.com", "grace@example.com", "--stack", "Labels"])
        == 0
    )
    out = capsys.readouterr().out
    assert (
        f"invited ada@example.com: Cognito emails a temporary password; they sign in at {URL}"
        in out
    )
    assert _group(cognito, pool) == ["ada@example.com", "grace@example.com"]
    user = cognito.admin_get_user(UserPoolId=pool, Username="ada@example.com")
    assert user["UserStatus"] == "FORCE_CHANGE_PASSWORD"  # the invitation's temporary password
    # adding again is harmless: the user stays, in the group
    assert main(["aws", "workers", "add", "ada@example.com", "--stack", "Labels"]) == 0
    assert "already has an account" in capsys.readouterr().out
    assert _group(cognito, pool) == ["ada@example.com", "grace@example.com"]


def test_list_and_remove(stack, capsys):
    cognito, pool = stack
    main(["aws", "workers", "add", "ada@example.com", "grace@example.com", "--stack", "Labels"])
    capsys.readouterr()
    assert main(["aws", "workers", "list", "--stack", "Labels"]) == 0
    out = capsys.readouterr().out
    assert "ada@example.com  FORCE_CHANGE_PASSWORD" in out and "grace@example.com" in out
    assert f"2 labeler(s); the app: {URL}" in out
    assert main(["aws", "workers", "remove", "ada@example.com", "--stack", "Labels"]) == 0
    assert _group(cognito, pool) == ["grace@example.com"]
    # an unknown labeler is named, with what to do
    assert main(["aws", "workers", "remove", "nobody@example.com", "--stack", "Labels"]) != 0
    assert "boxloop aws workers list" in capsys.readouterr().err


def test_a_ground_truth_stack_has_no_workers_to_manage(stack, capsys):
    boto3.client("cloudformation").create_stack(
        StackName="GroundTruth",
        TemplateBody=json.dumps(
            {
                "Resources": {"Nothing": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {"WorkteamArn": {"Value": "arn:aws:sagemaker:us-east-1:1:workteam/x"}},
            }
        ),
    )
    assert main(["aws", "workers", "list", "--stack", "GroundTruth"]) != 0
    assert "humanLabeling=groundtruth" in capsys.readouterr().err


def test_a_missing_stack_says_how_to_find_it(stack, capsys):
    assert main(["aws", "workers", "list", "--stack", "Nope"]) != 0
    assert "stack 'Nope' not found" in capsys.readouterr().err
