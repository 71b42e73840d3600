"""Prepare training: augmented manifests from human labels and the exact hyperparameters.

Every figure the built-in algorithm needs is derived here from the very files it will read:
``num_training_samples`` counts the train manifest's lines, ``num_classes`` comes from the label
config, and ``label_width`` from the most boxes on one image. Validation images are written
to the validation channel only, never to train.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from boxloop.aws.s3 import open_for_write
from boxloop.core.errors import BoxloopError
from boxloop.core.formats.groundtruth import label_to_fields
from boxloop.core.manifests import SOURCE_REF, write_json_line
from boxloop.steps.run import RunState, iter_records

if TYPE_CHECKING:
    from boxloop.core.config import LoopConfig

MIN_LABEL_WIDTH = 7  # header (2) + one box (5)


class NotEnoughLabelsError(BoxloopError):
    """There are no human-labeled training (or validation) images to train on."""


def label_width(max_boxes: int) -> int:
    """The algorithm's padded label width: a 2-value header plus 5 values per box."""
    return max(MIN_LABEL_WIDTH, 2 + 5 * max_boxes)


def _channel(name: str, uri: str, attr: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "AugmentedManifestFile",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
                "AttributeNames": [SOURCE_REF, attr],
            }
        },
        "ContentType": "application/x-recordio",
        "RecordWrapperType": "RecordIO",
        "CompressionType": "None",
    }


def _model_channel(model_uri: str) -> dict[str, Any]:
    return {
        "ChannelName": "model",
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": model_uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "ContentType": "application/x-sagemaker-model",
        "InputMode": "File",
    }


def warm_start_uri(run: RunState, config: LoopConfig) -> str | None:
    """The previous iteration's model, else the configured initial model, else none."""
    if run.model and run.model.get("artifacts"):
        return str(run.model["artifacts"])
    return config.initial_model_uri


def _last_model_epochs(run: RunState, config: LoopConfig) -> dict[str, str]:
    """``epochs`` times ``last_model_epochs_factor`` for the last model, else nothing to change."""
    epochs = config.hyperparameters.get("epochs")
    if (
        config.last_model_epochs_factor == 1.0
        or epochs is None
        or run.iteration < config.last_training_iteration
    ):
        return {}
    return {"epochs": str(max(1, round(int(epochs) * config.last_model_epochs_factor)))}


def prepare_training(run: RunState, config: LoopConfig, *, kms_key_arn: str = "") -> dict[str, Any]:
    """Write train/validation manifests; returns the ``training`` block of the state payload.

    Raises:
        NotEnoughLabelsError: when there is no human-labeled training or validation image.
    """
    attr = config.label_attribute
    train_uri = run.paths.step(run.iteration, "training", "train.manifest")
    validation_uri = run.paths.step(run.iteration, "training", "validation.manifest")
    n_train = n_validation = max_boxes = 0
    with open_for_write(train_uri) as train, open_for_write(validation_uri) as validation:
        for record in iter_records(run.ledger, attr, trusted=True):
            if not record.is_human_labeled or record.label is None:
                continue
            role = record.provenance.role
            if role == "test":
                continue
            line = {SOURCE_REF: record.source_ref, **label_to_fields(record.label, attr)}
            if role == "validation":
                write_json_line(validation, line)
                n_validation += 1
            else:
                write_json_line(train, line)
                n_train += 1
            max_boxes = max(max_boxes, len(record.label.detections.boxes))
    if n_train == 0 or n_validation == 0:
        raise NotEnoughLabelsError(
            f"iteration {run.iteration}: {n_train} human-labeled training and {n_validation} "
            "validation images; both channels need at least one (check the labeling job's "
            "failed objects, seed_size and validation_fraction)"
        )
    hyperparameters = {
        **config.hyperparameters,
        **_last_model_epochs(run, config),
        "num_classes": str(config.labels.num_classes),
        "num_training_samples": str(n_train),
        "label_width": str(label_width(max_boxes)),
    }
    channels = [_channel("train", train_uri, attr), _channel("validation", validation_uri, attr)]
    model_uri = warm_start_uri(run, config)
    if model_uri:
        channels.append(_model_channel(model_uri))
    output: dict[str, Any] = {"S3OutputPath": run.paths.step(run.iteration, "training", "output")}
    if kms_key_arn:
        output["KmsKeyId"] = kms_key_arn
    return {
        "job_name": run.job_name(config, "train"),
        "hyperparameters": hyperparameters,
        "channels": channels,
        "output_config": output,
        "num_training_samples": n_train,
        "num_validation_samples": n_validation,
        "warm_start": model_uri,
    }
