"""The synthesized boxloop stack: storage, functions, workflow, IAM, monitoring and outputs."""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Capture, Match, Template

from boxloop.aws import regions
from boxloop.aws.regions import CONSOLE_HOSTS
from boxloop.core.errors import ConfigError
from boxloop.steps.run import RunPaths
from stacks.bundling import LAMBDA_RUNTIME
from stacks.functions import FUNCTION_IDS
from stacks.roles import SAGEMAKER_JOB_ACTIONS, SUPERSEDED_JOB_ACTIONS, job_name_pattern
from stacks.storage import (
    LABEL_CONFIG_KEY,
    PROCESSING_CODE_PREFIX,
    UI_TEMPLATE_KEY,
    WRITABLE_PREFIXES,
    render_ui_template,
)
from stacks.workflow import ASL_PATH, SUBSTITUTION_KEYS, check_placeholders

KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
WORKTEAM = "arn:aws:sagemaker:eu-west-1:123456789012:workteam/private-crowd/labelers"
FULL_CONTEXT = {
    # every optional setting on, in another region than the default
    "region": "eu-west-1",
    "kmsKeyArn": KEY_ARN,
    "workteamArn": WORKTEAM,
    "notificationEmail": "ops@example.com",
    "imageBucketNames": "my-images,more.images",
    "jobPrefix": "MyLoop",
}


@pytest.fixture(scope="module")
def default_stack(make_config, make_stack):
    # These tests describe the Ground Truth variant; tests/stacks/test_labeling.py the app's.
    return make_stack(make_config(humanLabeling="groundtruth"))


@pytest.fixture(scope="module")
def template(default_stack) -> Template:
    return Template.from_stack(default_stack)


@pytest.fixture(scope="module")
def full_template(make_config, make_stack) -> Template:
    return Template.from_stack(make_stack(make_config(**FULL_CONTEXT, humanLabeling="groundtruth")))


def _text(value: Any) -> str:
    """A CloudFormation value flattened to text: Refs and GetAtts become ``${Name}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Fn::Join":
            return argument[0].join(_text(part) for part in argument[1])
        if function == "Ref":
            return f"${{{argument}}}"
        if function == "Fn::GetAtt":
            return f"${{{'.'.join(argument)}}}"
        if function == "Fn::Sub":
            return argument if isinstance(argument, str) else argument[0]
    return json.dumps(value, sort_keys=True)


def _statements(template: Template) -> list[dict[str, Any]]:
    return [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


def _resources(statement: dict[str, Any]) -> list[str]:
    resources = statement["Resource"]
    return [_text(r) for r in (resources if isinstance(resources, list) else [resources])]


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return [node] if isinstance(node, str) else []


def _role_logical_id(template: Template, service: str) -> str:
    roles = template.find_resources(
        "AWS::IAM::Role",
        {
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Statement": [Match.object_like({"Principal": {"Service": service}})]
                }
            }
        },
    )
    assert len(roles) == 1, f"expected one role trusted by {service}, got {sorted(roles)}"
    return next(iter(roles))


def _boxloop_role_id(template: Template, service: str) -> str:
    """The boxloop role trusted by ``service`` (CDK's BucketDeployment handler has its own)."""
    roles = template.find_resources(
        "AWS::IAM::Role",
        {
            "Properties": {
                "Description": Match.string_like_regexp("^boxloop "),
                "AssumeRolePolicyDocument": {
                    "Statement": [Match.object_like({"Principal": {"Service": service}})]
                },
            }
        },
    )
    assert len(roles) == 1, f"expected one boxloop role trusted by {service}, got {sorted(roles)}"
    return next(iter(roles))


def _policy_statements_of_role(template: Template, role_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


# --- Storage -----------------------------------------------------------------------------------


def test_storage_bucket_is_encrypted_private_versioned_and_logged(template):
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like({"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}})
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "LoggingConfiguration": {
                "DestinationBucketName": {"Ref": Match.string_like_regexp("^StorageAccessLogs")},
                "LogFilePrefix": "data/",
            },
        },
    )


def test_storage_bucket_uses_configured_kms_key(full_template):
    full_template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {
                        "BucketKeyEnabled": True,
                        "ServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": KEY_ARN,
                        },
                    }
                ]
            }
        },
    )


def test_storage_bucket_has_ground_truth_cors_rule(template):
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "CorsConfiguration": {
                "CorsRules": [
                    {
                        "AllowedMethods": ["GET"],
                        "AllowedOrigins": ["*"],
                        "ExposedHeaders": ["Access-Control-Allow-Origin"],
                    }
                ]
            }
        },
    )


def test_storage_bucket_expires_tmp_prefix_and_old_versions(template):
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like(
                            {"Prefix": "tmp/", "ExpirationInDays": 30, "Status": "Enabled"}
                        ),
                        Match.object_like(
                            {
                                "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                            }
                        ),
                    ]
                )
            }
        },
    )


def test_storage_buckets_refuse_plain_http(template):
    deny_http = Match.object_like(
        {
            "Effect": "Deny",
            "Action": "s3:*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )
    policies = template.find_resources(
        "AWS::S3::BucketPolicy",
        {"Properties": {"PolicyDocument": {"Statement": Match.array_with([deny_http])}}},
    )
    buckets = {_text(p["Properties"]["Bucket"]) for p in policies.values()}
    assert len(buckets) == 2  # the data bucket and the access-log bucket


def test_storage_deploys_config_files_and_processing_code(template):
    prefixes = {
        resource["Properties"]["DestinationBucketKeyPrefix"]
        for resource in template.find_resources("Custom::CDKBucketDeployment").values()
    }
    assert prefixes == {"config/", "code/processing/"}


def test_render_ui_template_fills_header_and_keeps_liquid(make_config):
    html = render_ui_template(make_config(taskDescription='Box every <car> & "truck"'))
    assert 'header="Box every &lt;car&gt; &amp; &quot;truck&quot;"' in html
    assert '<crowd-bounding-box\n    name="boundingBox"' in html
    assert 'src="{{ task.input.taskObject | grant_read_access }}"' in html
    assert 'labels="{{ task.input.labels | to_json | escape }}"' in html
    assert "${" not in html


# --- Functions ---------------------------------------------------------------------------------


def test_functions_are_seven_with_newest_python_runtime_and_environment(template):
    newest = max(
        (
            getattr(lambda_.Runtime, name)
            for name in dir(lambda_.Runtime)
            if name.startswith("PYTHON_3")
        ),
        key=lambda runtime: int(runtime.name.split(".")[1]),
    )
    assert LAMBDA_RUNTIME.name == newest.name
    functions = template.find_resources(
        "AWS::Lambda::Function",
        {
            "Properties": {
                "Handler": "app.lambda_handler",
                "Runtime": newest.name,
                "Timeout": 900,
                "MemorySize": 1769,
                "EphemeralStorage": {"Size": 10240},
                "Architectures": ["arm64"],
            }
        },
    )
    assert len(functions) == len(FUNCTION_IDS) == 7
    descriptions = sorted(f["Properties"]["Description"] for f in functions.values())
    assert descriptions == sorted(f"boxloop step {n} (lambdas/{n}/app.py)" for n in FUNCTION_IDS)
    for function in functions.values():
        variables = function["Properties"]["Environment"]["Variables"]
        assert set(variables["BOXLOOP_BUCKET"]) == {"Ref"}
        assert json.loads(variables["BOXLOOP_CONFIG"])["labels"] == ["car", "person", "bicycle"]
        assert variables["BOXLOOP_KMS_KEY_ARN"] == ""
        assert variables["POWERTOOLS_SERVICE_NAME"] == "boxloop"
        assert variables["POWERTOOLS_LOG_LEVEL"] == "INFO"


def test_functions_get_kms_key_arn_when_configured(full_template):
    full_template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Environment": {"Variables": Match.object_like({"BOXLOOP_KMS_KEY_ARN": KEY_ARN})}},
    )


# --- Workflow ----------------------------------------------------------------------------------


def test_workflow_state_machine_logs_all_events_with_xray(template):
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineType": "STANDARD",
            "LoggingConfiguration": {
                "Level": "ALL",
                "IncludeExecutionData": True,
                "Destinations": [Match.any_value()],
            },
            "TracingConfiguration": {"Enabled": True},
        },
    )


def test_workflow_definition_is_the_asl_file_with_contract_substitutions(template, source_root):
    definition, substitutions = Capture(), Capture()
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "DefinitionString": Match.serialized_json(
                Match.object_like({"StartAt": Match.any_value(), "States": Match.any_value()})
            ),
            "DefinitionSubstitutions": substitutions,
        },
    )
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine", {"DefinitionString": definition}
    )
    # the whole file, unchanged: placeholders are resolved by CloudFormation, not by CDK
    assert json.loads(definition.as_string()) == json.loads((source_root / ASL_PATH).read_text())
    values = substitutions.as_object()
    used = set(re.findall(r"\$\{(\w+)\}", (source_root / ASL_PATH).read_text()))
    assert set(values) == used
    assert used <= SUBSTITUTION_KEYS
    assert used >= {f"{name}FunctionArn" for name in FUNCTION_IDS.values()}
    assert values["TrainingImage"] == regions.object_detection_image_uri("us-east-1")
    assert values["ProcessingImage"] == regions.processing_image_uri("us-east-1")
    assert values["PreHumanTaskLambdaArn"].endswith(":function:PRE-BoundingBox")
    assert values["TrainingInstanceType"] == "ml.p3.2xlarge"
    assert _text(values["UiTemplateS3Uri"]).endswith("/config/bounding-box.liquid.html")
    assert _text(values["ProcessingCodeS3Uri"]).endswith("/code/processing/")
    assert _text(values["WorkteamArn"]).endswith(":workteam/private-crowd/boxloop")


def test_check_placeholders_returns_used_and_rejects_unknown(tmp_path):
    asl = tmp_path / "boxloop.asl.json"
    asl.write_text('{"A": "${BucketName}", "B": "arn:${Partition}:states:::x"}')
    assert check_placeholders(asl, set(SUBSTITUTION_KEYS)) == {"BucketName", "Partition"}
    # a placeholder the stack does not provide would reach Step Functions unresolved
    asl.write_text('{"A": "${Unknown}"}')
    with pytest.raises(ConfigError, match=r"uses \$\{Unknown\}"):
        check_placeholders(asl, set(SUBSTITUTION_KEYS))


def test_check_placeholders_rejects_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="state machine definition"):
        check_placeholders(tmp_path / "missing.asl.json", set(SUBSTITUTION_KEYS))


# --- IAM ---------------------------------------------------------------------------------------


def test_roles_are_separate_per_service(template):
    ids = {_role_logical_id(template, f"{s}.amazonaws.com") for s in ("sagemaker", "states")}
    assert len(ids) == 2
    lambda_roles = template.find_resources(
        "AWS::IAM::Role", {"Properties": {"Description": Match.string_like_regexp("^boxloop")}}
    )
    assert len(lambda_roles) == 3  # SageMaker jobs, the Lambdas, the state machine


def test_no_policy_grants_service_wide_wildcard_actions(template, full_template):
    for statement in _statements(template) + _statements(full_template):
        for action in _actions(statement):
            assert action != "*"
            assert not re.fullmatch(r"[a-z0-9-]+:\*", action), action


def test_workflow_passes_only_the_sagemaker_role_to_sagemaker(template):
    sagemaker_role = _role_logical_id(template, "sagemaker.amazonaws.com")
    workflow_role = _role_logical_id(template, "states.amazonaws.com")
    pass_role = [s for s in _statements(template) if "iam:PassRole" in _actions(s)]
    assert pass_role == [
        {
            "Sid": "PassSageMakerRole",
            "Action": "iam:PassRole",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [sagemaker_role, "Arn"]},
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        }
    ]
    assert pass_role[0] in _policy_statements_of_role(template, workflow_role)


@pytest.mark.parametrize("fixture", ["template", "full_template"])
def test_workflow_sagemaker_actions_are_scoped_to_job_prefix(request, fixture):
    template = request.getfixturevalue(fixture)
    prefix = "myloop" if fixture == "full_template" else "boxloop"  # ARNs are lower case
    expected = {
        f"arn:${{AWS::Partition}}:sagemaker:${{AWS::Region}}:${{AWS::AccountId}}:{kind}/{prefix}-*"
        for kind in SAGEMAKER_JOB_ACTIONS
    }
    scoped_actions = set()
    workflow_role = _role_logical_id(template, "states.amazonaws.com")
    for statement in _policy_statements_of_role(template, workflow_role):
        actions = [a for a in _actions(statement) if a.startswith("sagemaker:")]
        if not actions or actions == ["sagemaker:ListTags"]:
            continue
        assert set(_resources(statement)) == expected, statement
        scoped_actions.update(actions)
    expected_actions = {f"sagemaker:{a}" for acts in SAGEMAKER_JOB_ACTIONS.values() for a in acts}
    assert scoped_actions == expected_actions | {"sagemaker:AddTags"}


def test_job_name_pattern_is_lower_case_like_sagemaker_arns(make_config):
    assert job_name_pattern(make_config(jobPrefix="MyLoop")) == "myloop-*"


def test_workflow_role_invokes_the_seven_functions_and_publishes_to_topic(template):
    statements = _policy_statements_of_role(
        template, _role_logical_id(template, "states.amazonaws.com")
    )
    invoked = {
        resource
        for s in statements
        if "lambda:InvokeFunction" in _actions(s)
        for resource in _resources(s)
        if not resource.endswith(":*")
    }
    functions = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "app.lambda_handler"}}
    )
    assert invoked == {f"${{{logical_id}.Arn}}" for logical_id in functions}
    published = [s for s in statements if "sns:Publish" in _actions(s)]
    assert [_resources(s) for s in published] == [[_text({"Ref": _topic_id(template)})]]


def test_workflow_role_creates_only_sync_event_rules(template):
    rules = [s for s in _statements(template) if "events:PutRule" in _actions(s)]
    assert [_resources(s) for s in rules] == [
        [
            "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:"
            "rule/StepFunctionsGetEventsForSageMaker*"
        ]
    ]


def test_sagemaker_role_reads_image_buckets_and_uses_kms_key(full_template):
    statements = _policy_statements_of_role(
        full_template, _role_logical_id(full_template, "sagemaker.amazonaws.com")
    )
    resources = {r for s in statements for r in _resources(s)}
    for bucket in ("my-images", "more.images"):
        assert f"arn:aws:s3:::{bucket}/*" in resources
    kms = [s for s in statements if "kms:Decrypt" in _actions(s)]
    assert kms and all(_resources(s) == [KEY_ARN] for s in kms)


def test_function_role_gets_image_headers_from_image_buckets(template, full_template):
    # GIVEN Ingest, which reads each listed image's header with ranged GETs
    def image_reads(template: Template) -> list[dict[str, Any]]:
        statements = _policy_statements_of_role(
            template, _boxloop_role_id(template, "lambda.amazonaws.com")
        )
        return [s for s in statements if any(":::" in r for r in _resources(s))]

    # THEN it may get (only get) objects of the configured image buckets, and of none without
    assert image_reads(template) == []
    (statement,) = image_reads(full_template)
    assert _actions(statement) == ["s3:GetObject"]
    assert sorted(_resources(statement)) == [
        "arn:aws:s3:::more.images/*",
        "arn:aws:s3:::my-images/*",
    ]


def test_sagemaker_role_pulls_only_the_two_algorithm_images(template):
    statements = _policy_statements_of_role(
        template, _role_logical_id(template, "sagemaker.amazonaws.com")
    )
    pulls = [s for s in statements if "ecr:BatchGetImage" in _actions(s)]
    assert [sorted(_resources(s)) for s in pulls] == [
        [
            "arn:${AWS::Partition}:ecr:us-east-1:683313688378:repository/sagemaker-scikit-learn",
            "arn:${AWS::Partition}:ecr:us-east-1:811284229777:repository/object-detection",
        ]
    ]


# --- Least privilege: the data bucket and the trust policies --------------------------------

DATA_ROLES = ("sagemaker.amazonaws.com", "lambda.amazonaws.com")
ALLOWED_S3_ACTIONS = {
    # Bucket.grant_read
    "s3:GetObject*",
    "s3:GetBucket*",
    "s3:List*",
    # puts under runs/ and tmp/; AbortMultipartUpload for boto3's multipart uploads
    "s3:PutObject",
    "s3:AbortMultipartUpload",
}


def _data_bucket_id(template: Template) -> str:
    (bucket_id,) = template.find_resources(
        "AWS::S3::Bucket", {"Properties": {"VersioningConfiguration": {"Status": "Enabled"}}}
    )
    return bucket_id


def _put_patterns(template: Template, service: str) -> set[str]:
    """The object keys (glob patterns) the role of ``service`` may put in the data bucket."""
    prefix = f"${{{_data_bucket_id(template)}.Arn}}/"
    statements = _policy_statements_of_role(template, _boxloop_role_id(template, service))
    resources = {
        resource
        for statement in statements
        if "s3:PutObject" in _actions(statement)
        for resource in _resources(statement)
    }
    assert all(r.startswith(prefix) for r in resources), resources
    return {r.removeprefix(prefix) for r in resources}


@pytest.mark.parametrize("fixture", ["template", "full_template"])
@pytest.mark.parametrize("service", DATA_ROLES)
def test_data_roles_read_and_put_but_never_delete(request, fixture, service):
    template = request.getfixturevalue(fixture)
    statements = _policy_statements_of_role(template, _boxloop_role_id(template, service))
    s3_actions = {a for s in statements for a in _actions(s) if a.startswith("s3:")}
    # s3:GetObject alone: the Lambdas' reads of image-bucket headers (full_template has some)
    assert s3_actions - {"s3:GetObject"} == ALLOWED_S3_ACTIONS
    every_action = [a for s in statements for a in _actions(s)]
    assert not [a for a in every_action if "Delete" in a or a.endswith(":Abort*")]


@pytest.mark.parametrize("service", DATA_ROLES)
def test_data_roles_put_only_under_runs_and_tmp(template, service):
    assert _put_patterns(template, service) == {"runs/*", "tmp/*"}


@pytest.mark.parametrize("service", DATA_ROLES)
def test_data_roles_cannot_overwrite_deployed_config_and_code(template, service):
    patterns = _put_patterns(template, service)
    deployed = [LABEL_CONFIG_KEY, UI_TEMPLATE_KEY, f"{PROCESSING_CODE_PREFIX}postprocess.py"]
    for key in deployed:
        assert not any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns), key


def test_run_paths_write_only_under_the_writable_prefixes():
    # GIVEN a run rooted where ingest roots every run (s3://<bucket>/runs/<run id>)
    paths = RunPaths("s3://bucket/runs/run-1")
    written = [
        paths.config(),
        paths.ledger(0, "ingest"),
        paths.step(3, "labeling", "output"),
        paths.step(3, "training", "output"),
        paths.step(3, "postprocess"),
        paths.scratch(3, "transform"),
        paths.output("output.manifest"),
    ]
    # THEN every file a step or a SageMaker job writes lies where the roles may put objects
    for uri in written:
        key = uri.removeprefix("s3://bucket/")
        assert key.startswith(WRITABLE_PREFIXES), uri


@pytest.mark.parametrize("fixture", ["template", "full_template"])
def test_sagemaker_role_uses_kms_key_for_writes_only_when_configured(request, fixture):
    template = request.getfixturevalue(fixture)
    statements = _policy_statements_of_role(
        template, _boxloop_role_id(template, "sagemaker.amazonaws.com")
    )
    kms = {a: _resources(s) for s in statements for a in _actions(s) if a.startswith("kms:")}
    if fixture == "template":
        assert kms == {}
    else:  # SSE-KMS puts, and the KmsKeyId of the jobs' output configs
        actions = ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey")
        assert kms == {a: [KEY_ARN] for a in actions}


@pytest.mark.parametrize(
    ("service", "operators", "source_arn"),
    [
        # documented by Step Functions for state machine roles: strict
        ("states", ("ArnLike", "StringEquals"), "stateMachine:*"),
        # not documented for every caller (Ground Truth, Lambda's own assume): IfExists
        ("sagemaker", ("ArnLikeIfExists", "StringEqualsIfExists"), "*"),
        ("lambda", ("ArnLikeIfExists", "StringEqualsIfExists"), "function:*"),
    ],
)
def test_trust_policies_admit_only_this_account_resources(template, service, operators, source_arn):
    role_id = _boxloop_role_id(template, f"{service}.amazonaws.com")
    (statement,) = template.to_json()["Resources"][role_id]["Properties"][
        "AssumeRolePolicyDocument"
    ]["Statement"]
    arn_operator, account_operator = operators
    assert statement["Action"] == "sts:AssumeRole"
    assert set(statement["Condition"]) == {arn_operator, account_operator}
    assert _text(statement["Condition"][arn_operator]["aws:SourceArn"]) == (
        f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{source_arn}"
    )
    assert statement["Condition"][account_operator] == {
        "aws:SourceAccount": {"Ref": "AWS::AccountId"}
    }


def test_no_boxloop_role_may_delete_anything(full_template):
    statements = [
        statement
        for service in ("sagemaker.amazonaws.com", "lambda.amazonaws.com", "states.amazonaws.com")
        for statement in _policy_statements_of_role(
            full_template, _boxloop_role_id(full_template, service)
        )
    ]
    actions = {a for s in statements for a in _actions(s)}
    assert "sagemaker:CreateModel" in actions
    # the one delete is of CloudWatch Logs' vended log delivery, which Step Functions requires of
    # a state machine role that logs (CDK adds the set); nothing deletes data or SageMaker models
    deletes = {a for a in actions if "Delete" in a}
    assert deletes == {"logs:DeleteLogDelivery"}


# --- Notifications, monitoring, outputs ----------------------------------------------------


def _topic_id(template: Template) -> str:
    (topic_id,) = template.find_resources("AWS::SNS::Topic")
    return topic_id


def test_topic_enforces_tls_and_uses_kms_key_when_configured(template, full_template):
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )
    full_template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": KEY_ARN})
    full_template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"}
    )
    template.resource_count_is("AWS::SNS::Subscription", 0)


@pytest.mark.parametrize("fixture", ["template", "full_template"])
def test_topic_policy_lets_cloudwatch_publish_for_the_stack_alarms_only(request, fixture):
    template = request.getfixturevalue(fixture)
    alarms = sorted(template.find_resources("AWS::CloudWatch::Alarm"))
    assert len(alarms) == 2  # failed and timed-out executions
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [{"Ref": _topic_id(template)}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Sid": "AllowAlarmsToPublish",
                            "Effect": "Allow",
                            "Principal": {"Service": "cloudwatch.amazonaws.com"},
                            "Action": "sns:Publish",
                            "Resource": {"Ref": _topic_id(template)},
                            "Condition": {
                                "ArnEquals": {
                                    "aws:SourceArn": Match.array_equals(
                                        [{"Fn::GetAtt": [alarm, "Arn"]} for alarm in alarms]
                                    )
                                },
                                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                            },
                        }
                    ]
                )
            },
        },
    )


def test_monitoring_alarms_on_failed_executions_to_topic(template):
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ExecutionsFailed",
            "Namespace": "AWS/States",
            "Threshold": 1,
            "AlarmActions": [{"Ref": _topic_id(template)}],
        },
    )


@pytest.mark.parametrize("name", ["BucketName", "StateMachineArn", "TopicArn", "ConsoleUrl"])
def test_outputs_have_descriptions(template, name):
    template.has_output(name, {"Description": Match.string_like_regexp(".{20,}")})


def test_console_url_takes_the_console_host_of_the_stacks_partition(template):
    # GIVEN the console host of every partition
    # WHEN the stack is synthesized (region and partition are tokens until deploy)
    outputs = template.to_json()["Outputs"]["ConsoleUrl"]["Value"]["Fn::Join"][1]
    mappings = template.to_json()["Mappings"]
    # THEN the output looks the host up by AWS::Partition in a mapping of exactly those hosts
    lookups = [
        part["Fn::FindInMap"]
        for part in outputs
        if isinstance(part, dict) and "Fn::FindInMap" in part
    ]
    assert len(lookups) == 1
    mapping_id, partition, key = lookups[0]
    assert partition == {"Ref": "AWS::Partition"}
    assert mappings[mapping_id] == {p: {key: host} for p, host in CONSOLE_HOSTS.items()}
    assert not any("console.aws.amazon.com" in part for part in outputs if isinstance(part, str))


def test_default_workteam_is_flagged_with_a_warning(default_stack):
    Annotations.from_stack(default_stack).has_warning(
        "/Boxloop", Match.string_like_regexp("workteamArn' is empty")
    )


# --- Region portability ------------------------------------------------------------------------


def test_template_names_region_only_in_aws_owned_image_and_lambda_arns(full_template):
    # GIVEN the accounts that own the region's algorithm images and Ground Truth Lambdas
    aws_owned = {
        regions.object_detection_image_uri("eu-west-1").split(".", 1)[0],
        regions.processing_image_uri("eu-west-1").split(".", 1)[0],
        regions.GROUND_TRUTH_LAMBDA_ACCOUNTS["eu-west-1"],
    }
    for text in _strings(full_template.to_json()):
        # THEN the literal region appears only beside those accounts, or in CDK's bootstrap
        # asset bucket name (cdk-<qualifier>-assets-<account>-<region>)
        if "eu-west-1" in text and "-assets-${AWS::AccountId}-eu-west-1" not in text:
            assert any(account in text for account in aws_owned) or text in (KEY_ARN, WORKTEAM), (
                text
            )


def test_template_has_no_account_literal_beyond_aws_owned_ones(template):
    aws_owned = {
        regions.object_detection_image_uri("us-east-1").split(".", 1)[0],
        regions.processing_image_uri("us-east-1").split(".", 1)[0],
        regions.GROUND_TRUTH_LAMBDA_ACCOUNTS["us-east-1"],
    }
    accounts = {a for text in _strings(template.to_json()) for a in re.findall(r"\b\d{12}\b", text)}
    assert accounts <= aws_owned


# --- Superseded SageMaker jobs ------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["template", "full_template"])
def test_function_role_describes_and_stops_only_the_loops_own_jobs(request, fixture):
    # GIVEN the Lambdas that read a job's result and stop the attempts a retry superseded
    template = request.getfixturevalue(fixture)
    prefix = "myloop" if fixture == "full_template" else "boxloop"  # ARNs are lower case
    statements = _policy_statements_of_role(
        template, _boxloop_role_id(template, "lambda.amazonaws.com")
    )
    sagemaker = [s for s in statements if any(a.startswith("sagemaker:") for a in _actions(s))]
    # THEN one statement allows Describe*Job and Stop*Job of the four job kinds, nothing else
    (statement,) = sagemaker
    assert statement["Effect"] == "Allow"
    assert sorted(_actions(statement)) == sorted(
        f"sagemaker:{verb}{kind}Job"
        for kind in ("Labeling", "Processing", "Training", "Transform")
        for verb in ("Describe", "Stop")
    )
    # AND only on jobs named <jobPrefix>-* in this account and region (no model, no wildcard)
    assert sorted(_resources(statement)) == sorted(
        f"arn:${{AWS::Partition}}:sagemaker:${{AWS::Region}}:${{AWS::AccountId}}:{kind}/{prefix}-*"
        for kind in ("labeling-job", "processing-job", "training-job", "transform-job")
    )


def test_superseded_job_actions_are_the_workflow_roles_describe_and_stop():
    # the Lambdas may do to a job only what Step Functions' own .sync integration does, less
    # the create
    assert SUPERSEDED_JOB_ACTIONS == {
        kind: tuple(a for a in actions if not a.startswith("Create"))
        for kind, actions in SAGEMAKER_JOB_ACTIONS.items()
        if kind != "model"
    }
