"""The local stand-in for SageMaker's built-in Object Detection: train, predict, evaluate, pack.

A pure-PyTorch FCOS detector on an ImageNet EfficientNet-Lite0 backbone, sized for a few hundred
images on two CPU cores. ``predict_images`` yields the built-in algorithm's batch-transform rows.
"""

from boxloop.local.detector.artifact import (
    ModelArtifactError,
    ModelInfo,
    load_model,
    pack_model_tar,
    unpack_model_tar,
)
from boxloop.local.detector.data import AugmentConfig
from boxloop.local.detector.evaluate import evaluate, mean_average_precision
from boxloop.local.detector.predict import predict_images
from boxloop.local.detector.train import Hyperparameters, TrainResult, train_detector

__all__ = [
    "AugmentConfig",
    "Hyperparameters",
    "ModelArtifactError",
    "ModelInfo",
    "TrainResult",
    "evaluate",
    "load_model",
    "mean_average_precision",
    "pack_model_tar",
    "predict_images",
    "train_detector",
    "unpack_model_tar",
]
