"""The trained model as one file, and SageMaker's ``model.tar.gz`` packing around it.

The file is a ``torch.save`` dict of tensors and plain values only, so it loads with
``weights_only=True`` (no pickled code runs). SageMaker hands a training job's output to the
next job as ``model.tar.gz``; the local runners use the same shape: a gzip tar holding
``model.pt`` at its root.
"""

from __future__ import annotations

import pickle
import struct
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from boxloop.core.errors import BoxloopError
from boxloop.local.detector.model import Detector

FORMAT = "boxloop-fcos-efficientnet-lite0/1"
"""Identifies the file layout; bump when the architecture or the keys change."""
MODEL_FILENAME = "model.pt"
"""The model file's name inside ``model.tar.gz``."""


class ModelArtifactError(BoxloopError, ValueError):
    """A model file or model.tar.gz is missing, unreadable or not a boxloop detector."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """What a saved detector needs besides its weights.

    Attributes:
        num_classes: Number of classes; predicted class ids are ``0..num_classes-1``.
        image_size: Side of the square network input in pixels (a multiple of 32).
        class_names: Optional names by class id (empty when unknown).
        fpn_channels: FPN and head width.
        head_depth: Convs per head tower.
        metadata: Free-form plain values recorded at training (seed, steps, losses...).
    """

    num_classes: int
    image_size: int
    class_names: tuple[str, ...] = ()
    fpn_channels: int = 64
    head_depth: int = 2
    metadata: dict[str, Any] = field(default_factory=dict)


def save_model(model: Detector, info: ModelInfo, path: Path) -> Path:
    """Write the weights and ``info`` to ``path`` (parents created); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "num_classes": info.num_classes,
        "image_size": info.image_size,
        "class_names": list(info.class_names),
        "fpn_channels": info.fpn_channels,
        "head_depth": info.head_depth,
        "metadata": dict(info.metadata),
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }
    torch.save(payload, path)
    return path


def read_model_file(path: Path) -> tuple[ModelInfo, dict[str, torch.Tensor]]:
    """Read a saved detector's info and state dict without building the network.

    Raises:
        ModelArtifactError: The file is missing, not a torch file, or of another format.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (
        OSError,
        RuntimeError,
        EOFError,
        ValueError,
        pickle.UnpicklingError,
        struct.error,
    ) as error:
        raise ModelArtifactError(f"{path}: cannot read a detector model file ({error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ModelArtifactError(f"{path}: expected model format {FORMAT!r}, found {found!r}")
    info = ModelInfo(
        num_classes=int(payload["num_classes"]),
        image_size=int(payload["image_size"]),
        class_names=tuple(payload["class_names"]),
        fpn_channels=int(payload["fpn_channels"]),
        head_depth=int(payload["head_depth"]),
        metadata=dict(payload["metadata"]),
    )
    return info, payload["state_dict"]


def load_model(path: Path) -> tuple[Detector, ModelInfo]:
    """Rebuild a saved detector in eval mode, its backbone folded for inference (never train it).

    Raises:
        ModelArtifactError: As :func:`read_model_file`, or the weights do not fit the network.
    """
    info, state = read_model_file(path)
    model = Detector(
        info.num_classes,
        fpn_channels=info.fpn_channels,
        head_depth=info.head_depth,
        pretrained_backbone=False,
    )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ModelArtifactError(f"{path}: weights do not fit the detector ({error})") from error
    model.backbone.fold_for_inference()
    return model.eval(), info


def pack_model_tar(model_path: Path, tar_path: Path) -> Path:
    """Pack a model file as SageMaker's ``model.tar.gz`` (``model.pt`` at the root).

    Returns:
        ``tar_path``, whose parents are created.
    """
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "w:gz") as archive:
        archive.add(model_path, arcname=MODEL_FILENAME)
    return tar_path


def unpack_model_tar(tar_path: Path, out_dir: Path) -> Path:
    """Extract ``model.pt`` from a ``model.tar.gz`` into ``out_dir``.

    Only that one regular file is extracted, through tarfile's ``data`` filter, so an archive
    cannot write outside ``out_dir``.

    Returns:
        The path of the extracted model file.

    Raises:
        ModelArtifactError: The archive is unreadable or holds no ``model.pt``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tar_path, "r:*") as archive:
            member = archive.getmember(MODEL_FILENAME)
            if not member.isfile():
                raise ModelArtifactError(f"{tar_path}: {MODEL_FILENAME} is not a regular file")
            archive.extract(member, out_dir, filter="data")
    except KeyError as error:
        raise ModelArtifactError(f"{tar_path}: no {MODEL_FILENAME} in the archive") from error
    except (OSError, tarfile.TarError) as error:
        raise ModelArtifactError(f"{tar_path}: cannot read the model archive ({error})") from error
    return out_dir / MODEL_FILENAME
