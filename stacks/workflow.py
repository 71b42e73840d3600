"""Workflow: the state machine, built from the one ASL file with ``${Substitutions}``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from boxloop.aws.asl import SUBSTITUTION_KEYS, function_arn_key, placeholders
from boxloop.core.errors import ConfigError
from stacks.bundling import REPO_ROOT

if TYPE_CHECKING:
    from aws_cdk import aws_iam as iam
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_sns as sns

    from stacks.config import BoxloopConfig
    from stacks.storage import Storage

__all__ = ["ASL_PATH", "SUBSTITUTION_KEYS", "Workflow", "check_placeholders"]

ASL_PATH = Path("statemachine") / "boxloop.asl.json"
NO_LABELING_FUNCTION = (
    f"arn:{cdk.Aws.PARTITION}:lambda:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:function:"
    "boxloop-labeling-app-not-deployed"
)
"""``StartHumanLabelingFunctionArn`` with humanLabeling=groundtruth: a name no stack creates."""
NO_GROUND_TRUTH_FUNCTION = (
    f"arn:{cdk.Aws.PARTITION}:lambda:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:function:"
    "boxloop-ground-truth-not-used"
)
"""``PreHumanTaskLambdaArn`` and ``AnnotationConsolidationLambdaArn`` with humanLabeling=boxloop.

The one ASL file keeps its ``Label`` state in both variants, and a definition needs a value for
every placeholder; the app variant never reaches ``Label`` (``LabelWith`` routes on the
``HumanLabeling`` substitution) and its roles may not call CreateLabelingJob. So it gets a
well-formed Lambda ARN of its own account that no stack creates, rather than Ground Truth's
functions of the region, which need not exist there."""


class Workflow(Construct):
    """The STANDARD state machine: logs ALL events (with data) to its log group, X-Ray on.

    Its definition is ``statemachine/boxloop.asl.json``, the same file the local engine runs; the
    stack fills in the ``${Key}`` placeholders (ARNs, names, images, instance types). It offers
    every key of ``SUBSTITUTION_KEYS`` and passes those the file uses.

    Attributes:
        state_machine: the loop.
        log_group: execution history log group (kept one year).
        substitutions: placeholder -> value given to the definition (only the used ones).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BoxloopConfig,
        role: iam.IRole,
        functions: dict[str, lambda_.IFunction],
        storage: Storage,
        sagemaker_role: iam.IRole,
        topic: sns.ITopic,
        workteam_arn: str,
        start_human_labeling: lambda_.IFunction | None = None,
        root: Path = REPO_ROOT,
    ) -> None:
        super().__init__(scope, construct_id)
        gt = config.ground_truth  # None with humanLabeling=boxloop
        offered: dict[str, str] = {
            function_arn_key(folder): function.function_arn
            for folder, function in functions.items()
        } | {
            "SageMakerRoleArn": sagemaker_role.role_arn,
            "BucketName": storage.bucket.bucket_name,
            "TrainingImage": config.training_image,
            "ProcessingImage": config.processing_image,
            "TrainingInstanceType": config.training_instance_type,
            "TransformInstanceType": config.transform_instance_type,
            "ProcessingInstanceType": config.processing_instance_type,
            "WorkteamArn": workteam_arn,
            "PreHumanTaskLambdaArn": gt.pre_human_task if gt else NO_GROUND_TRUTH_FUNCTION,
            "AnnotationConsolidationLambdaArn": (
                gt.annotation_consolidation if gt else NO_GROUND_TRUTH_FUNCTION
            ),
            "UiTemplateS3Uri": storage.ui_template_uri,
            "LabelCategoryConfigS3Uri": storage.label_config_uri,
            "ProcessingCodeS3Uri": storage.processing_code_uri,
            "TopicArn": topic.topic_arn,
            "LabelAttributeName": config.loop.label_attribute,
            "Partition": cdk.Aws.PARTITION,
            "HumanLabeling": config.human_labeling,
            "StartHumanLabelingFunctionArn": (
                start_human_labeling.function_arn
                if start_human_labeling
                else NO_LABELING_FUNCTION  # groundtruth: LabelWith never routes to LabelInApp
            ),
        }
        asl_file = root / ASL_PATH
        used = check_placeholders(asl_file, set(offered))
        self.substitutions = {key: offered[key] for key in sorted(used)}
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            # Inline (DefinitionString) rather than from_file's S3 asset: the template then holds
            # the whole definition, which tests and the local engine read back as is.
            definition_body=sfn.DefinitionBody.from_string(asl_file.read_text()),
            definition_substitutions=self.substitutions,
            state_machine_type=sfn.StateMachineType.STANDARD,
            role=role,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
            comment="boxloop: active-learning bounding-box labeling loop",
        )
        for function in functions.values():
            function.grant_invoke(role)
        if start_human_labeling is not None:
            start_human_labeling.grant_invoke(role)
        topic.grant_publish(role)


def check_placeholders(asl_file: Path, offered: set[str]) -> set[str]:
    """The placeholders ``asl_file`` uses, all of which the stack must offer.

    Fails at synth rather than at run time, where Step Functions would get a literal ``${Key}``.

    Raises:
        ConfigError: the file is missing or uses placeholders the stack does not offer.
    """
    if not asl_file.is_file():
        raise ConfigError([f"{asl_file} not found: it is the state machine definition"])
    used = placeholders(asl_file.read_text())
    unknown = sorted(used - offered)
    if unknown:
        raise ConfigError(
            [
                f"{asl_file.name} uses ${{{key}}}, which the stack does not provide"
                for key in unknown
            ]
        )
    return used
