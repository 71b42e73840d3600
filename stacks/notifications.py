"""Notifications: the SNS topic that run results and failures are published to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

if TYPE_CHECKING:
    from aws_cdk import aws_kms as kms

    from stacks.config import BoxloopConfig


class Notifications(Construct):
    """The topic, encrypted with the configured key if any, HTTPS-only, with an optional email.

    Attributes:
        topic: receives the state machine's success/failure messages and the alarms.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BoxloopConfig,
        encryption_key: kms.IKey | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name="boxloop",
            master_key=encryption_key,
            enforce_ssl=True,
        )
        if config.notification_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.notification_email))
