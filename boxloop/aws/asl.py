"""The ``${Name}`` placeholders of an ASL file, which DefinitionSubstitutions fill, and its steps.

One pattern and one list of the loop's Lambda steps for the places that build or run the
state machine: the stack (CDK's ``definition_substitutions``, one function per step), the local
engine (:func:`boxloop.local.emulator.substitute_definition`, one handler per step) and the
scale benchmark (one child process per step).
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Final

PLACEHOLDER: Final = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
"""A placeholder; group 1 is its name."""


LAMBDA_STEPS: Final = MappingProxyType(
    {
        "ingest": "Ingest",
        "prepare_labeling": "PrepareLabeling",
        "merge_human_labels": "MergeHumanLabels",
        "prepare_training": "PrepareTraining",
        "prepare_inference": "PrepareInference",
        "filter_low_confidence": "FilterLowConfidence",
        "finalize": "Finalize",
    }
)
"""The loop's Lambda steps, in the order they run: ``lambdas/<folder>`` -> the function's name
(the stack's construct id, and ``${<name>FunctionArn}`` in the ASL file)."""


def function_arn_key(folder: str) -> str:
    """The placeholder that carries the ARN of the function of ``lambdas/<folder>``."""
    return f"{LAMBDA_STEPS[folder]}FunctionArn"


SUBSTITUTION_KEYS: Final = frozenset(
    {function_arn_key(folder) for folder in LAMBDA_STEPS}
    | {
        "SageMakerRoleArn",
        "BucketName",
        "TrainingImage",
        "ProcessingImage",
        "TrainingInstanceType",
        "TransformInstanceType",
        "ProcessingInstanceType",
        "WorkteamArn",
        "PreHumanTaskLambdaArn",
        "AnnotationConsolidationLambdaArn",
        "UiTemplateS3Uri",
        "LabelCategoryConfigS3Uri",
        "ProcessingCodeS3Uri",
        "TopicArn",
        "LabelAttributeName",
        "Partition",
        "HumanLabeling",
        "StartHumanLabelingFunctionArn",
    }
)
"""Every placeholder the ASL file may use: the stack offers a value for each, and so does the
local engine (``boxloop.local.engine.substitutions``), each with its own values."""


def placeholders(definition: str) -> set[str]:
    """The names of every placeholder ``definition`` uses."""
    return set(PLACEHOLDER.findall(definition))


STEP_TEXT: Final = MappingProxyType(
    {
        "Ingest": "validating the input and writing the ledger",
        "CheckImages": "reading the image headers ingest had no time for",
        "PrepareLabeling": "choosing images for humans",
        "Label": "humans labeling (Ground Truth)",
        "LabelInApp": "humans labeling in the boxloop app",
        "MergeHumanLabels": "merging human labels",
        "PrepareTraining": "writing training manifests",
        "Train": "training the detector",
        "CreateModel": "registering the model",
        "PrepareInference": "quality gate and inference manifest",
        "Transform": "predicting boxes (batch transform)",
        "PostProcess": "scoring each image",
        "FilterLowConfidence": "calibrating and auto-labeling",
        "Finalize": "writing the output manifest and report",
        "NotifySuccess": "notifying",
        "NotifyFailure": "notifying the failure",
    }
)
"""What each state of the ASL file does, in the words a user watching a run wants: the AWS
status command reads it as is, the local progress line with its own runners' words for the
states they stand in for (``boxloop.local.progress``)."""
