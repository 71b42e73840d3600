"""Monitoring: alarms on the state machine's failed and timed-out executions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from constructs import Construct

if TYPE_CHECKING:
    from aws_cdk import aws_sns as sns
    from aws_cdk import aws_stepfunctions as sfn


class Monitoring(Construct):
    """Alarms that publish to the notification topic when an execution fails or times out.

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
