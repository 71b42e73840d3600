"""The labelers of a deployed stack: Cognito users of its ``labelers`` group.

``boxloop aws workers add | list | remove`` are thin adapters over these functions. The pool
is found from the stack's outputs (``UserPoolId``); adding a labeler creates the user with a
temporary password that Cognito emails, in the invitation the stack configured, with the
app's URL (``LabelingUrl``). Removing one deletes the user: their answers stay in the task
table and in the run's labels, named by the email they signed in with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boxloop.aws.labeling_env import LABELING_GROUP, LABELING_URL_OUTPUT, USER_POOL_ID_OUTPUT
from boxloop.aws.stack_outputs import AwsSetupError
from boxloop.core.errors import BoxloopError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from boxloop.aws.stack_outputs import StackOutputs


class WorkerError(BoxloopError):
    """A labeler cannot be added or removed as asked (the message says why and what to do)."""


@dataclass(frozen=True, slots=True)
class Labeler:
    """One user of the labelers group, as ``workers list`` shows it."""

    email: str
    status: str
    enabled: bool
    created: str

    def line(self) -> str:
        """``email  status  created`` for the terminal."""
        state = self.status if self.enabled else f"{self.status}, disabled"
        return f"{self.email}  {state}  (added {self.created})"


@dataclass(frozen=True, slots=True)
class Workforce:
    """A stack's labeler pool and app URL, from its outputs."""

    user_pool_id: str
    url: str
    cognito: Any

    @classmethod
    def of(cls, outputs: StackOutputs, cognito: Any = None) -> Workforce:
        """The stack's workforce.

        Raises:
            AwsSetupError: the stack was deployed with ``humanLabeling=groundtruth`` (no pool).
        """
        if USER_POOL_ID_OUTPUT not in outputs.values:
            raise AwsSetupError(
                f"stack {outputs.stack_name!r} has no labeling app (it was deployed with "
                "humanLabeling=groundtruth): its labelers are the Ground Truth work team's; "
                "manage them in the SageMaker console, or redeploy with -c humanLabeling=boxloop"
            )
        if cognito is None:
            from boxloop.aws.clients import client

            cognito = client("cognito-idp")
        return cls(
            user_pool_id=outputs.get(USER_POOL_ID_OUTPUT),
            url=outputs.get(LABELING_URL_OUTPUT),
            cognito=cognito,
        )

    def add(self, email: str) -> bool:
        """Invite ``email`` (or put an existing user back in the group); ``True`` when new.

        Raises:
            WorkerError: Cognito refuses the address.
        """
        from botocore.exceptions import ClientError

        email = email.strip()
        try:
            self.cognito.admin_create_user(
                UserPoolId=self.user_pool_id,
                Username=email,
                UserAttributes=[
                    {"Name": "email", "Value": email},
                    {"Name": "email_verified", "Value": "true"},
                ],
                DesiredDeliveryMediums=["EMAIL"],
            )
            new = True
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "UsernameExistsException":
                new = False
            elif code in ("InvalidParameterException", "InvalidPasswordException"):
                raise WorkerError(f"{email!r} cannot be added: {exc}") from None
            else:
                raise
        self.cognito.admin_add_user_to_group(
            UserPoolId=self.user_pool_id, Username=email, GroupName=LABELING_GROUP
        )
        return new

    def labelers(self) -> Iterator[Labeler]:
        """Every member of the labelers group."""
        kwargs = {"UserPoolId": self.user_pool_id, "GroupName": LABELING_GROUP}
        while True:
            page = self.cognito.list_users_in_group(**kwargs)
            for user in page.get("Users", []):
                attributes = {a["Name"]: a["Value"] for a in user.get("Attributes", [])}
                created = user.get("UserCreateDate")
                yield Labeler(
                    email=attributes.get("email", user["Username"]),
                    status=str(user.get("UserStatus", "")),
                    enabled=bool(user.get("Enabled", True)),
                    created=created.date().isoformat() if created else "",
                )
            token = page.get("NextToken")
            if not token:
                return
            kwargs["NextToken"] = token

    def remove(self, email: str) -> None:
        """Delete the labeler ``email`` (their answers stay).

        Raises:
            WorkerError: no such user in the pool.
        """
        from botocore.exceptions import ClientError

        try:
            self.cognito.admin_delete_user(UserPoolId=self.user_pool_id, Username=email.strip())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "UserNotFoundException":
                raise WorkerError(
                    f"no labeler {email!r} in this stack's pool (see: boxloop aws workers list)"
                ) from None
            raise
