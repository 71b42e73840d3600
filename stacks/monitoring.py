"""Monitoring: alarms on the state machine's failed and timed-out executions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from constructs import Construct

if TYPE_CHECKING:
    from aws_cdk import aws_sns as sns
    from aws_cdk import aws_stepfunctions as sfn


class Monitoring(Construct):
    """Alarms that publish to the notification topic when an execution fails or times out.

    The topic's policy lets CloudWatch (``cloudwatch.amazonaws.com``) publish for these two
    alarms only (``aws:SourceArn``, ``aws:SourceAccount``): a topic with a resource policy
    admits no service that the policy does not name. With a customer managed key on the topic,
    the key's own policy must also let CloudWatch use it (README, "Deploy on AWS").

    Attributes:
        failed_alarm: ExecutionsFailed >= 1 in 5 minutes.
        timed_out_alarm: ExecutionsTimedOut >= 1 in 5 minutes.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine: sfn.StateMachine,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        period = cdk.Duration.minutes(5)
        self.failed_alarm = self._alarm(
            "ExecutionsFailed", state_machine.metric_failed(period=period), topic
        )
        self.timed_out_alarm = self._alarm(
            "ExecutionsTimedOut", state_machine.metric_timed_out(period=period), topic
        )
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "ArnEquals": {
                        "aws:SourceArn": [
                            self.failed_alarm.alarm_arn,
                            self.timed_out_alarm.alarm_arn,
                        ]
                    },
                    "StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID},
                },
            )
        )

    def _alarm(
        self, construct_id: str, metric: cloudwatch.Metric, topic: sns.ITopic
    ) -> cloudwatch.Alarm:
        alarm = metric.create_alarm(
            self,
            construct_id,
            alarm_description=f"boxloop: a run ended with {construct_id}; see the execution",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(actions.SnsAction(topic))
        return alarm
