"""Labeling: boxloop's own labeling app on AWS, for accounts without Ground Truth.

The same static app and the same API implementation (``boxloop.labeling``) the local run
serves, behind a login:

- a Cognito user pool is the private workforce (admin-created users only, group ``labelers``);
- an API Gateway HTTP API with a JWT authorizer on every route forwards ``/api/v1/*`` to one
  Lambda (``lambdas/labeling_api``), a thin adapter over ``LabelingApi``;
- tasks, leases and answers live in one DynamoDB table (``boxloop.aws.labeling_store``);
- the static app is served from a private bucket through CloudFront with origin access control
  and security headers; CloudFront also forwards ``/api/*`` to the HTTP API, so the page and its
  API share one origin (no CORS);
- ``StartHumanLabeling`` registers a batch for the ``LabelInApp`` state (task token) and
  ``FinishHumanLabeling`` runs every few minutes: it sends heartbeats, closes jobs whose
  deadline passed or whose execution ended.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import aws_cdk as cdk
import jsii
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from boxloop.aws.labeling_env import (
    LABELING_GROUP,
    LABELING_TABLE_ENV,
    LABELING_URL_ENV,
    SWEEP_MINUTES,
)
from stacks.bundling import REPO_ROOT
from stacks.functions import base_environment, bundled_function
from stacks.roles import grant_run_files, trust_conditions

if TYPE_CHECKING:
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_stepfunctions as sfn

    from stacks.config import BoxloopConfig

STATIC_DIR = Path("boxloop") / "labeling" / "static"
API_PREFIX = "/api/v1"
# Folder under lambdas/ -> construct id (StartHumanLabeling is also a substitution key prefix).
LABELING_FUNCTION_IDS: dict[str, str] = {
    "labeling_api": "LabelingApi",
    "start_human_labeling": "StartHumanLabeling",
    "finish_human_labeling": "FinishHumanLabeling",
}
API_THROTTLE_RATE = 50
"""Requests per second the API stage takes (burst 100): a few dozen labelers, never a bill spike."""
MIN_PASSWORD_LENGTH = 12


def content_security_policy(region: str) -> str:
    """The page's CSP: its own files and API; Cognito for sign-in; images from presigned S3 URLs."""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob: https://*.amazonaws.com",
            f"connect-src 'self' https://cognito-idp.{region}.amazonaws.com "
            f"https://*.auth.{region}.amazoncognito.com",
            "font-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


@jsii.implements(apigw.IAccessLogSettings)
class _AccessLogs:
    """The API stage's access logs: ``destination`` in CDK's default (Common Log) format."""

    def __init__(self, destination: apigw.IAccessLogDestination) -> None:
        self._destination = destination

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        """Where the stage writes one line per request."""
        return self._destination

    @property
    def format(self) -> None:
        """CDK's default: the Common Log Format with the request id."""
        return None


class Labeling(Construct):
    """The labeling service: workforce, API, task table, static app, and the job Lambdas.

    Attributes:
        table: tasks, leases, answers and jobs (on demand, point-in-time recovery, the stack's
            key when one is given).
        user_pool: the workforce; ``labelers`` is the group the API admits.
        user_pool_client: the app's public client (no secret; authorization code + PKCE).
        domain: Cognito's hosted sign-in pages (first sign-in, password reset, MFA set-up).
        api: the HTTP API; every route carries the JWT authorizer.
        distribution: CloudFront: the app at ``/``, the API at ``/api/*``.
        site_bucket: the static app's files (private; CloudFront reads them through OAC).
        role: the labeling Lambdas' role.
        functions: ``lambdas/<folder>`` name -> function.
        url: ``https://<distribution>/``: what labelers open (stack output ``LabelingUrl``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BoxloopConfig,
        bucket: s3.IBucket,
        access_log_bucket: s3.IBucket,
        encryption_key: kms.IKey | None = None,
        image_buckets: tuple[s3.IBucket, ...] = (),
        root: Path = REPO_ROOT,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.table = dynamodb.Table(
            self,
            "Tasks",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=(
                dynamodb.TableEncryption.CUSTOMER_MANAGED
                if encryption_key
                else dynamodb.TableEncryption.AWS_MANAGED
            ),
            encryption_key=encryption_key,
            time_to_live_attribute="expires_at",
            # Human answers cost money: the table outlives the stack.
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "lambda.amazonaws.com", conditions=trust_conditions("lambda")
            ),
            description="boxloop labeling Lambdas: the task table, the data bucket's images "
            "and run files, task tokens of the workflow",
        )
        grant_run_files(self.role, bucket, encryption_key)
        for image_bucket in image_buckets:
            image_bucket.grant_read(self.role)  # presigned image URLs are signed by this role
        self.table.grant_read_write_data(self.role)
        self.site_bucket = s3.Bucket(
            self,
            "Site",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=access_log_bucket,
            server_access_logs_prefix="labeling-site/",
            removal_policy=cdk.RemovalPolicy.DESTROY,
            auto_delete_objects=False,
        )
        self.api = self._api()
        self.distribution = self._distribution(stack.region)
        self.url = f"https://{self.distribution.distribution_domain_name}/"
        self._workforce(config)
        self._functions(config, bucket, root)
        self._client_and_site(stack.region)

    # -- workforce ------------------------------------------------------------------------------

    def _workforce(self, config: BoxloopConfig) -> None:
        self.user_pool = cognito.UserPool(
            self,
            "Workforce",
            self_sign_up_enabled=False,  # admin-created users only: boxloop aws workers add
            sign_in_aliases=cognito.SignInAliases(email=True),
            sign_in_case_sensitive=False,
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            standard_attributes=cognito.StandardAttributes(
                email=cognito.StandardAttribute(required=True, mutable=True)
            ),
            password_policy=cognito.PasswordPolicy(
                min_length=MIN_PASSWORD_LENGTH,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=cdk.Duration.days(7),
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.ESSENTIALS,
            user_invitation=cognito.UserInvitationConfig(
                email_subject="You are invited to label images with boxloop",
                email_body=(
                    f"Open {self.url} and sign in with {{username}} and the temporary "
                    "password {####}; you will choose your own password then."
                ),
            ),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        cognito.CfnUserPoolGroup(
            self,
            "Labelers",
            user_pool_id=self.user_pool.user_pool_id,
            group_name=LABELING_GROUP,
            description="boxloop labelers: may use the labeling app",
        )
        # The hosted sign-in pages (first sign-in sets a password, MFA set-up, reset): a prefix
        # of Cognito's shared domain, unique per account and region.
        self.domain = self.user_pool.add_domain(
            "SignIn",
            cognito_domain=cognito.CognitoDomainOptions(
                domain_prefix=f"{config.loop.job_prefix.lower()}-labeling-{cdk.Aws.ACCOUNT_ID}"
            ),
        )

    # -- API ------------------------------------------------------------------------------------

    def _api(self) -> apigw.HttpApi:
        api = apigw.HttpApi(
            self,
            "HttpApi",
            description="boxloop labeling API (the app's /api/v1 routes)",
            create_default_stage=False,
        )
        access_logs = logs.LogGroup(
            self,
            "ApiAccessLogs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        api.add_stage(
            "Stage",
            stage_name="$default",
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(rate_limit=API_THROTTLE_RATE, burst_limit=100),
            access_log_settings=_AccessLogs(apigw.LogGroupLogDestination(access_logs)),
        )
        return api

    def _add_routes(self, function: lambda_.IFunction) -> None:
        authorizer = authorizers.HttpJwtAuthorizer(
            "Labelers",
            jwt_issuer=(
                f"https://cognito-idp.{cdk.Aws.REGION}.{cdk.Aws.URL_SUFFIX}/"
                f"{self.user_pool.user_pool_id}"
            ),
            jwt_audience=[self.user_pool_client.user_pool_client_id],
        )
        self.api.add_routes(
            path=f"{API_PREFIX}/{{proxy+}}",
            methods=[apigw.HttpMethod.GET, apigw.HttpMethod.POST],
            integration=integrations.HttpLambdaIntegration("Handler", function),
            authorizer=authorizer,
        )

    # -- static app through CloudFront ------------------------------------------------------------

    def _distribution(self, region: str) -> cloudfront.Distribution:
        headers = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="boxloop labeling app: CSP, HSTS, no framing, no sniffing, no referrer",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=content_security_policy(region), override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=cdk.Duration.days(365),
                    include_subdomains=True,
                    override=True,
                ),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True
                ),
            ),
        )
        api_origin = origins.HttpOrigin(
            f"{self.api.api_id}.execute-api.{cdk.Aws.REGION}.{cdk.Aws.URL_SUFFIX}",
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
            origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
        )
        return cloudfront.Distribution(
            self,
            "Distribution",
            comment="boxloop labeling app",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.site_bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                response_headers_policy=headers,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
            ),
            additional_behaviors={
                "/api/*": cloudfront.BehaviorOptions(
                    origin=api_origin,
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                    allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                    cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                    origin_request_policy=(
                        cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER
                    ),
                    response_headers_policy=headers,
                )
            },
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
        )

    def _client_and_site(self, region: str) -> None:
        self.user_pool_client = self.user_pool.add_client(
            "App",
            generate_secret=False,
            auth_flows=cognito.AuthFlow(user_srp=True),
            o_auth=cognito.OAuthSettings(
                # the app signs in with the authorization code and PKCE (no implicit grant)
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL],
                callback_urls=[self.url],
                logout_urls=[self.url],
            ),
            prevent_user_existence_errors=True,
            id_token_validity=cdk.Duration.hours(8),
            access_token_validity=cdk.Duration.hours(8),
            refresh_token_validity=cdk.Duration.days(7),
        )
        self._add_routes(self.functions["labeling_api"])
        site_config = {
            "api": API_PREFIX,
            "auth": "cognito",
            "cognito": {
                "region": region,
                "user_pool_id": self.user_pool.user_pool_id,
                "client_id": self.user_pool_client.user_pool_client_id,
                "domain": self.domain.base_url(),
                "redirect_uri": self.url,
            },
        }
        self.site_deployment = s3deploy.BucketDeployment(
            self,
            "SiteFiles",
            sources=[
                s3deploy.Source.asset(str(REPO_ROOT / STATIC_DIR)),
                s3deploy.Source.json_data("config.json", site_config),
            ],
            destination_bucket=self.site_bucket,
            cache_control=[s3deploy.CacheControl.max_age(cdk.Duration.minutes(5))],
            prune=True,
        )

    # -- Lambdas --------------------------------------------------------------------------------

    def _functions(self, config: BoxloopConfig, bucket: s3.IBucket, root: Path) -> None:
        environment = {
            **base_environment(config, bucket),
            LABELING_TABLE_ENV: self.table.table_name,
            LABELING_URL_ENV: self.url,
        }
        self.functions: dict[str, lambda_.Function] = {}
        self.log_groups: dict[str, logs.LogGroup] = {}
        for folder, construct_name in LABELING_FUNCTION_IDS.items():
            self.functions[folder], self.log_groups[folder] = bundled_function(
                self,
                construct_name,
                folder,
                description=f"boxloop labeling {folder} (lambdas/{folder}/app.py)",
                role=self.role,
                environment=environment,
                # The API answers a person waiting on a page; the finisher writes a manifest.
                timeout=cdk.Duration.seconds(29 if folder == "labeling_api" else 900),
                root=root,
            )
        events.Rule(
            self,
            "Sweep",
            description="boxloop labeling: heartbeats, deadlines and stopped runs of open jobs",
            schedule=events.Schedule.rate(cdk.Duration.minutes(SWEEP_MINUTES)),
            targets=[targets.LambdaFunction(self.functions["finish_human_labeling"])],
        )

    @property
    def start_function(self) -> lambda_.IFunction:
        """What the ``LabelInApp`` state invokes (``StartHumanLabelingFunctionArn``)."""
        return self.functions["start_human_labeling"]

    def allow_task_responses(self, state_machine: sfn.IStateMachine) -> None:
        """Let the labeling Lambdas answer the workflow's task tokens.

        A separate policy, not the role's default one: the functions depend on the default
        policy and the state machine on a function, so a grant there would close a cycle.
        """
        iam.Policy(
            self,
            "TaskResponses",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="AnswerTaskTokens",
                    actions=[
                        "states:SendTaskSuccess",
                        "states:SendTaskFailure",
                        "states:SendTaskHeartbeat",
                    ],
                    resources=[state_machine.state_machine_arn],
                )
            ],
        )
