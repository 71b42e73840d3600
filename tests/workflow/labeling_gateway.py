"""The labeling service's edge on moto: Cognito sign-in and API Gateway's JWT authorizer.

moto serves Cognito (users, groups, ``InitiateAuth`` with RS256 ID tokens and the pool's JWKS
at the real issuer URL) but not HTTP API invocations, so `Gateway` plays API Gateway: it
checks the bearer token exactly as the template's ``AWS::ApiGatewayV2::Authorizer`` is
configured (issuer and audience read from the synthesized template and resolved with moto's
pool and client ids), refuses what the authorizer refuses with its own 401, matches the
request against the template's route keys, and hands the labeling Lambda a payload-format-2.0
event carrying the verified claims as API Gateway does (a list claim as ``[a b]``).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from boxloop.aws.clients import client
from boxloop.aws.labeling_env import LABELING_GROUP
from boxloop.local.emulator import resolve_intrinsics

if TYPE_CHECKING:
    from collections.abc import Callable

REGION: Final = "us-east-1"
ACCOUNT: Final = "123456789012"
PASSWORD: Final = "Str0ng!Passw0rd-42"


@dataclass(frozen=True, slots=True)
class Pool:
    """A moto user pool and app client made from the template's properties."""

    pool_id: str
    client_id: str
    logical_ids: dict[str, str]  # resource type -> logical id

    def add_labeler(self, email: str, *, group: str | None = LABELING_GROUP) -> str:
        """Create a confirmed user (in ``group``); returns its ``sub``."""
        idp = client("cognito-idp")
        user = idp.admin_create_user(
            UserPoolId=self.pool_id,
            Username=email,
            UserAttributes=[{"Name": "email", "Value": email}],
            MessageAction="SUPPRESS",
        )["User"]
        idp.admin_set_user_password(
            UserPoolId=self.pool_id, Username=email, Password=PASSWORD, Permanent=True
        )
        if group:
            idp.admin_add_user_to_group(UserPoolId=self.pool_id, Username=email, GroupName=group)
        return next(a["Value"] for a in user["Attributes"] if a["Name"] == "sub")

    def sign_in(self, email: str) -> str:
        """The ID token a labeler's page gets after signing in."""
        result = client("cognito-idp").initiate_auth(
            ClientId=self.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
        )
        return result["AuthenticationResult"]["IdToken"]


def _only(template: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    (found,) = [(k, r) for k, r in template["Resources"].items() if r["Type"] == kind]
    return found


def create_pool(template: dict[str, Any]) -> Pool:
    """The template's user pool, client and group, created in moto from their properties."""
    idp = client("cognito-idp")
    pool_lid, pool = _only(template, "AWS::Cognito::UserPool")
    props = pool["Properties"]
    pool_id = idp.create_user_pool(
        PoolName="boxloop-labelers",
        Policies=props["Policies"],
        AdminCreateUserConfig={
            "AllowAdminCreateUserOnly": props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"]
        },
        UsernameAttributes=props["UsernameAttributes"],
        MfaConfiguration=props["MfaConfiguration"],
    )["UserPool"]["Id"]
    client_lid, app = _only(template, "AWS::Cognito::UserPoolClient")
    # The app signs in through the hosted pages (SRP); USER_PASSWORD_AUTH is the test's way in.
    client_id = idp.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName="app",
        GenerateSecret=app["Properties"]["GenerateSecret"],
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    _, group = _only(template, "AWS::Cognito::UserPoolGroup")
    idp.create_group(UserPoolId=pool_id, GroupName=group["Properties"]["GroupName"])
    return Pool(
        pool_id=pool_id,
        client_id=client_id,
        logical_ids={
            "AWS::Cognito::UserPool": pool_lid,
            "AWS::Cognito::UserPoolClient": client_lid,
        },
    )


@dataclass(frozen=True, slots=True)
class Reply:
    """What the browser gets back: status and JSON body."""

    status: int
    body: Any


def _claim_text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + " ".join(str(v) for v in value) + "]"
    return str(value)


class Gateway:
    """API Gateway in front of the labeling Lambda: routes, the JWT authorizer, events."""

    def __init__(
        self,
        template: dict[str, Any],
        pool: Pool,
        handler: Callable[[dict[str, Any], Any], dict[str, Any]],
    ) -> None:
        """Read the routes and the authorizer's configuration from ``template``."""
        _, authorizer = _only(template, "AWS::ApiGatewayV2::Authorizer")
        refs = {
            pool.logical_ids["AWS::Cognito::UserPool"]: pool.pool_id,
            pool.logical_ids["AWS::Cognito::UserPoolClient"]: pool.client_id,
        }
        jwt_config = resolve_intrinsics(
            authorizer["Properties"]["JwtConfiguration"], refs, region=REGION, account_id=ACCOUNT
        )
        self.issuer: str = jwt_config["Issuer"]
        self.audience: list[str] = jwt_config["Audience"]
        self.routes: list[tuple[str, re.Pattern[str], bool]] = []
        for resource in template["Resources"].values():
            if resource["Type"] != "AWS::ApiGatewayV2::Route":
                continue
            props = resource["Properties"]
            method, path = props["RouteKey"].split(" ", 1)
            pattern = re.escape(path).replace(re.escape("{proxy+}"), ".+")
            self.routes.append((method, re.compile(f"^{pattern}$"), props["AuthorizationType"]))
        self.handler = handler

    def verify(self, authorization: str | None) -> dict[str, str] | None:
        """The claims API Gateway passes on, or ``None`` where its authorizer answers 401."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        keys = KeySet.import_key_set(requests.get(f"{self.issuer}/.well-known/jwks.json").json())
        try:
            token = jwt.decode(authorization.removeprefix("Bearer "), keys)
        except (JoseError, ValueError):
            return None
        claims = token.claims
        audience = claims.get("aud") or claims.get("client_id")
        if claims.get("iss") != self.issuer or audience not in self.audience:
            return None
        if float(claims.get("exp", 0)) <= time.time():
            return None
        return {key: _claim_text(value) for key, value in claims.items()}

    def call(
        self, method: str, path: str, token: str | None, body: Any = None, **query: str
    ) -> Reply:
        """One request from the page, through API Gateway to the Lambda."""
        route = next(
            ((m, auth) for m, pattern, auth in self.routes if m == method and pattern.match(path)),
            None,
        )
        if route is None:
            return Reply(404, {"message": "Not Found"})
        authorization = f"Bearer {token}" if token else None
        claims = self.verify(authorization)
        if route[1] == "JWT" and claims is None:
            return Reply(401, {"message": "Unauthorized"})
        event = {
            "version": "2.0",
            "routeKey": f"{method} {path}",
            "rawPath": path,
            "rawQueryString": "&".join(f"{k}={v}" for k, v in query.items()),
            "queryStringParameters": query or None,
            "headers": {
                "content-type": "application/json",
                **({"authorization": authorization} if authorization else {}),
            },
            "requestContext": {
                "accountId": ACCOUNT,
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1"},
                "authorizer": {"jwt": {"claims": claims, "scopes": None}},
                "stage": "$default",
            },
            "body": json.dumps(body) if body is not None else None,
            "isBase64Encoded": False,
        }
        response = self.handler(event, None)
        return Reply(response["statusCode"], json.loads(response["body"]))


def create_table(template: dict[str, Any], name: str) -> None:
    """The template's task table (its key schema) in moto."""
    _, table = _only(template, "AWS::DynamoDB::Table")
    props = table["Properties"]
    client("dynamodb").create_table(
        TableName=name,
        KeySchema=props["KeySchema"],
        AttributeDefinitions=props["AttributeDefinitions"],
        BillingMode=props["BillingMode"],
    )
