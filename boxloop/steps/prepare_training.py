"""Prepare training: augmented manifests from human labels and the exact hyperparameters.

Every figure the built-in algorithm needs is derived here from the very files it will read:
``num_training_samples`` counts the train manifest's lines, ``num_classes`` comes from the label
config, and ``label_width`` from the most boxes on one image. Validation images are written
to the validation channel only, never to train.

Images humans labeled empty (no box) go to neither channel: the built-in algorithm needs at
least one object per record ("Not enough annotation packed in the list file or the RecordIO
file. Each object requires at least five numbers", aws/amazon-sagemaker-examples#2027; an
empty Ground Truth annotation failed training in #643, and records it cannot parse are
skipped, so the batches it counts no longer match ``num_training_samples``, #1097). They are
written to ``empty.manifest`` beside the channels, which the local detector also reads (it
learns from negatives), and counted; ``num_training_samples`` counts exactly the train lines.
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

LABEL_HEADER = 2
"""Values before the boxes in a label row (the header length the documentation names)."""
VALUES_PER_BOX = 5
"""``[class_id, left, top, width, height]``."""
EMPTY_MANIFEST = "empty.manifest"


class NotEnoughLabelsError(BoxloopError):
    """There are no human-labeled training (or validation) images to train on."""


def label_width(max_boxes: int) -> int:
    """The algorithm's padded label width, with the margin its documentation recommends.

    ``label_width`` must be at least the header plus 5 values per box of the image with the
    most boxes; the hyperparameter documentation recommends "a slightly larger label_width",
    "such as 60" for 10 boxes (which need 52). So: room for one box more, rounded up to the
    next ten (10 boxes: 57 -> 60).
    """
    needed = LABEL_HEADER + VALUES_PER_BOX * (max_boxes + 1)
    return -(-needed // 10) * 10


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
    if run.model and run.model.artifacts:
        return run.model.artifacts
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
    empty_uri = run.paths.step(run.iteration, "training", EMPTY_MANIFEST)
    n_train = n_validation = n_empty = max_boxes = 0
    with (
        open_for_write(train_uri) as train,
        open_for_write(validation_uri) as validation,
        open_for_write(empty_uri) as empty,
    ):
        for record in iter_records(run.ledger, attr, trusted=True):
            if not record.is_human_labeled or record.label is None:
                continue
            role = record.provenance.role
            if role == "test":
                continue
            line = {SOURCE_REF: record.source_ref, **label_to_fields(record.label, attr)}
            if not record.label.detections.boxes:
                if role != "validation":  # validation never trains, not even locally
                    write_json_line(empty, line)
                    n_empty += 1
                continue
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
            "validation images with boxes; both channels need at least one (images labeled "
            f"empty, {n_empty} for training, cannot train the built-in algorithm; check the "
            "labeling job's failed objects, seed_size and validation_fraction)"
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
        "empty_manifest": empty_uri,
        "num_empty_images": n_empty,
        "warm_start": model_uri,
    }
