"""The labeling service (context humanLabeling=boxloop): every resource, and the Label variant."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match, Template

from boxloop.aws.labeling_env import HEARTBEAT_SECONDS, LABELING_GROUP, SWEEP_MINUTES
from boxloop.core.errors import ConfigError
from stacks.labeling import API_PREFIX, MIN_PASSWORD_LENGTH, content_security_policy

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture(scope="module")
def template(make_config, make_stack) -> Template:
    return Template.from_stack(make_stack(make_config()))


@pytest.fixture(scope="module")
def keyed_template(make_config, make_stack) -> Template:
    return Template.from_stack(make_stack(make_config(kmsKeyArn=KEY_ARN)))


@pytest.fixture(scope="module")
def groundtruth_template(make_config, make_stack) -> Template:
    return Template.from_stack(make_stack(make_config(humanLabeling="groundtruth")))


def _only(template: Template, kind: str) -> dict[str, Any]:
    found = template.find_resources(kind)
    assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
    return next(iter(found.values()))


def _logical_id(template: Template, kind: str, description_part: str) -> str:
    found = [
        lid
        for lid, r in template.find_resources(kind).items()
        if description_part in r["Properties"].get("Description", "")
    ]
    assert len(found) == 1, found
    return found[0]


def _definition(template: Template) -> tuple[dict[str, Any], dict[str, Any]]:
    machine = _only(template, "AWS::StepFunctions::StateMachine")["Properties"]
    return json.loads(machine["DefinitionString"]), machine["DefinitionSubstitutions"]


# --- context ------------------------------------------------------------------------------------


def test_human_labeling_defaults_to_boxloop_and_rejects_other_values(make_config):
    assert make_config().human_labeling == "boxloop"
    assert make_config(humanLabeling="groundtruth").human_labeling == "groundtruth"
    with pytest.raises(ConfigError, match="'humanLabeling' must be 'boxloop' or 'groundtruth'"):
        make_config(humanLabeling="labelstudio")


# --- workforce ----------------------------------------------------------------------------------


def test_user_pool_admits_admin_created_users_with_a_strong_password(template):
    pool = _only(template, "AWS::Cognito::UserPool")["Properties"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert pool["Policies"]["PasswordPolicy"] == {
        "MinimumLength": MIN_PASSWORD_LENGTH,
        "RequireLowercase": True,
        "RequireUppercase": True,
        "RequireNumbers": True,
        "RequireSymbols": True,
        "TemporaryPasswordValidityDays": 7,
    }
    assert pool["MfaConfiguration"] == "OPTIONAL"
    assert pool["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]
    assert pool["UsernameAttributes"] == ["email"]
    # the invitation (boxloop aws workers add) carries the app's URL and the temporary password
    invitation = json.dumps(pool["AdminCreateUserConfig"]["InviteMessageTemplate"])
    distribution = next(iter(template.find_resources("AWS::CloudFront::Distribution")))
    assert distribution in invitation and "{####}" in invitation and "{username}" in invitation
    template.has_resource("AWS::Cognito::UserPool", {"DeletionPolicy": "Retain"})
    template.has_resource_properties("AWS::Cognito::UserPoolGroup", {"GroupName": LABELING_GROUP})


def test_app_client_is_public_and_returns_to_the_distribution(template):
    client = _only(template, "AWS::Cognito::UserPoolClient")["Properties"]
    assert client["GenerateSecret"] is False
    assert client["AllowedOAuthFlowsUserPoolClient"] is True
    assert client["AllowedOAuthFlows"] == ["code"]  # the app's PKCE flow, no implicit grant
    assert set(client["AllowedOAuthScopes"]) == {"openid", "email"}
    (callback,) = client["CallbackURLs"]
    distribution = next(iter(template.find_resources("AWS::CloudFront::Distribution")))
    assert json.dumps(callback).count(distribution) == 1
    assert client["PreventUserExistenceErrors"] == "ENABLED"
    template.resource_count_is("AWS::Cognito::UserPoolDomain", 1)


# --- API ----------------------------------------------------------------------------------------


def test_every_api_route_requires_the_cognito_jwt(template):
    routes = template.find_resources("AWS::ApiGatewayV2::Route")
    assert {r["Properties"]["RouteKey"] for r in routes.values()} == {
        f"GET {API_PREFIX}/{{proxy+}}",
        f"POST {API_PREFIX}/{{proxy+}}",
    }
    (authorizer_id,) = template.find_resources("AWS::ApiGatewayV2::Authorizer")
    for route in routes.values():
        assert route["Properties"]["AuthorizationType"] == "JWT"
        assert route["Properties"]["AuthorizerId"] == {"Ref": authorizer_id}
    authorizer = _only(template, "AWS::ApiGatewayV2::Authorizer")["Properties"]
    assert authorizer["AuthorizerType"] == "JWT"
    (pool_id,) = template.find_resources("AWS::Cognito::UserPool")
    (client_id,) = template.find_resources("AWS::Cognito::UserPoolClient")
    assert authorizer["JwtConfiguration"]["Audience"] == [{"Ref": client_id}]
    assert {"Ref": pool_id} in authorizer["JwtConfiguration"]["Issuer"]["Fn::Join"][1]
    assert "https://cognito-idp." in json.dumps(authorizer["JwtConfiguration"]["Issuer"])


def test_api_stage_logs_every_request_and_is_throttled(template):
    stage = _only(template, "AWS::ApiGatewayV2::Stage")["Properties"]
    assert stage["StageName"] == "$default"
    assert stage["AutoDeploy"] is True
    assert "DestinationArn" in stage["AccessLogSettings"]
    assert "$context.requestId" in stage["AccessLogSettings"]["Format"]
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0


def test_api_routes_go_to_the_labeling_api_function(template):
    integration = _only(template, "AWS::ApiGatewayV2::Integration")["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "2.0"
    api_fn = _logical_id(template, "AWS::Lambda::Function", "(lambdas/labeling_api/app.py)")
    assert json.dumps(integration["IntegrationUri"]).count(api_fn) == 1


# --- table --------------------------------------------------------------------------------------


def test_task_table_is_on_demand_with_recovery_and_kept(template):
    table = _only(template, "AWS::DynamoDB::Table")
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert properties["TimeToLiveSpecification"] == {
        "AttributeName": "expires_at",
        "Enabled": True,
    }
    assert table["DeletionPolicy"] == "Retain"


def test_task_table_uses_the_stack_key_when_one_is_given(keyed_template):
    sse = _only(keyed_template, "AWS::DynamoDB::Table")["Properties"]["SSESpecification"]
    assert sse == {"KMSMasterKeyId": KEY_ARN, "SSEEnabled": True, "SSEType": "KMS"}


# --- static app ---------------------------------------------------------------------------------


def test_site_bucket_is_private_and_read_through_origin_access_control(template):
    distribution = _only(template, "AWS::CloudFront::Distribution")["Properties"][
        "DistributionConfig"
    ]
    s3_origin = next(o for o in distribution["Origins"] if "S3OriginConfig" in o)
    assert "OriginAccessControlId" in s3_origin
    template.resource_count_is("AWS::CloudFront::OriginAccessControl", 1)
    sites = [
        b["Properties"]
        for b in template.find_resources("AWS::S3::Bucket").values()
        if b["Properties"].get("LoggingConfiguration", {}).get("LogFilePrefix") == "labeling-site/"
    ]
    (site,) = sites
    assert site["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert site["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert distribution["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    assert distribution["DefaultRootObject"] == "index.html"


def test_api_is_served_from_the_same_origin_uncached(template):
    distribution = _only(template, "AWS::CloudFront::Distribution")["Properties"][
        "DistributionConfig"
    ]
    (api_behavior,) = distribution["CacheBehaviors"]
    assert api_behavior["PathPattern"] == "/api/*"
    assert api_behavior["ViewerProtocolPolicy"] == "https-only"
    assert "POST" in api_behavior["AllowedMethods"]
    api_origin = next(
        o for o in distribution["Origins"] if o["Id"] == api_behavior["TargetOriginId"]
    )
    assert api_origin["CustomOriginConfig"]["OriginSSLProtocols"] == ["TLSv1.2"]
    (api_id,) = template.find_resources("AWS::ApiGatewayV2::Api")
    assert json.dumps(api_origin["DomainName"]).count(api_id) == 1


def test_every_response_carries_the_security_headers(template):
    policy = _only(template, "AWS::CloudFront::ResponseHeadersPolicy")["Properties"]
    headers = policy["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    csp = headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    assert csp == content_security_policy("us-east-1")
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["FrameOptions"]["FrameOption"] == "DENY"
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31_536_000
    assert headers["ContentTypeOptions"]["Override"] is True
    distribution = _only(template, "AWS::CloudFront::Distribution")["Properties"][
        "DistributionConfig"
    ]
    (policy_id,) = template.find_resources("AWS::CloudFront::ResponseHeadersPolicy")
    for behavior in (distribution["DefaultCacheBehavior"], *distribution["CacheBehaviors"]):
        assert behavior["ResponseHeadersPolicyId"] == {"Ref": policy_id}


def test_app_config_points_at_the_api_and_the_user_pool(template):
    deployments = template.find_resources("Custom::CDKBucketDeployment")
    site = [
        d["Properties"]
        for d in deployments.values()
        if "config.json" in json.dumps(d["Properties"].get("SourceMarkers", ""))
        or any("cognito" in json.dumps(m) for m in d["Properties"].get("SourceMarkers", []))
    ]
    assert len(site) == 1
    markers = json.dumps(site[0]["SourceMarkers"])
    (pool_id,) = template.find_resources("AWS::Cognito::UserPool")
    (client_id,) = template.find_resources("AWS::Cognito::UserPoolClient")
    assert pool_id in markers and client_id in markers
    assert site[0]["Prune"] is True


# --- functions, sweep and task tokens -----------------------------------------------------------


def test_labeling_functions_share_a_role_with_the_table_and_token_grants(template):
    for folder in ("labeling_api", "start_human_labeling", "finish_human_labeling"):
        _logical_id(template, "AWS::Lambda::Function", f"(lambdas/{folder}/app.py)")
    statements = Capture()
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "AnswerTaskTokens",
                                "Action": [
                                    "states:SendTaskFailure",
                                    "states:SendTaskHeartbeat",
                                    "states:SendTaskSuccess",
                                ],
                                "Resource": statements,
                            }
                        )
                    ]
                )
            }
        },
    )
    (machine_id,) = template.find_resources("AWS::StepFunctions::StateMachine")
    assert statements.as_object() == {"Ref": machine_id}
    table_id = next(iter(template.find_resources("AWS::DynamoDB::Table")))
    assert table_id in json.dumps(template.find_resources("AWS::IAM::Policy"))


def test_sweep_runs_the_finisher_every_few_minutes(template):
    rule = _only(template, "AWS::Events::Rule")["Properties"]
    assert rule["ScheduleExpression"] == f"rate({SWEEP_MINUTES} minutes)"
    finisher = _logical_id(
        template, "AWS::Lambda::Function", "(lambdas/finish_human_labeling/app.py)"
    )
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [finisher, "Arn"]}
    assert HEARTBEAT_SECONDS >= 3 * SWEEP_MINUTES * 60


def test_outputs_name_the_app_and_the_user_pool(template):
    outputs = template.to_json()["Outputs"]
    assert {"LabelingUrl", "UserPoolId"} <= set(outputs)
    assert "WorkteamArn" not in outputs
    (pool_id,) = template.find_resources("AWS::Cognito::UserPool")
    assert outputs["UserPoolId"]["Value"] == {"Ref": pool_id}
    assert "https://" in json.dumps(outputs["LabelingUrl"]["Value"])


# --- the Label variant --------------------------------------------------------------------------


def test_label_routes_to_the_app_task_with_the_start_function(template):
    definition, substitutions = _definition(template)
    assert substitutions["HumanLabeling"] == "boxloop"
    start = _logical_id(template, "AWS::Lambda::Function", "(lambdas/start_human_labeling/app.py)")
    assert substitutions["StartHumanLabelingFunctionArn"] == {"Fn::GetAtt": [start, "Arn"]}
    state = definition["States"]["LabelInApp"]
    assert state["Resource"] == "arn:${Partition}:states:::lambda:invoke.waitForTaskToken"
    assert state["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert state["TimeoutSecondsPath"] == "$.labeling.task.availability_s"
    assert state["HeartbeatSeconds"] == HEARTBEAT_SECONDS
    # the same result block as the Ground Truth task: MergeHumanLabels reads it unchanged
    label = definition["States"]["Label"]
    assert state["ResultSelector"] == label["ResultSelector"]
    assert state["ResultPath"] == label["ResultPath"] == "$.labeling.result"
    assert state["Next"] == label["Next"] == "MergeHumanLabels"
    workflow_policies = json.dumps(
        {
            lid: p
            for lid, p in template.find_resources("AWS::IAM::Policy").items()
            if "RolesWorkflow" in json.dumps(p["Properties"]["Roles"])
        }
    )
    assert start in workflow_policies


def test_groundtruth_has_no_labeling_service_and_routes_to_ground_truth(groundtruth_template):
    for kind in (
        "AWS::Cognito::UserPool",
        "AWS::DynamoDB::Table",
        "AWS::ApiGatewayV2::Api",
        "AWS::CloudFront::Distribution",
    ):
        groundtruth_template.resource_count_is(kind, 0)
    _, substitutions = _definition(groundtruth_template)
    assert substitutions["HumanLabeling"] == "groundtruth"
    assert "not-deployed" in json.dumps(substitutions["StartHumanLabelingFunctionArn"])
    outputs = groundtruth_template.to_json()["Outputs"]
    assert "WorkteamArn" in outputs and "LabelingUrl" not in outputs


def test_groundtruth_variant_passes_cdk_nag_too(make_app, make_config, make_stack, tmp_path):
    # the compliance tests synthesize cdk.json's default (boxloop); Ground Truth's must pass too
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks

    app = make_app(outdir=str(tmp_path))
    make_stack(make_config(humanLabeling="groundtruth", kmsKeyArn=KEY_ARN), app=app)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    (plugin,) = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    assert plugin["violations"] == [] and plugin["conclusion"] == "success"
