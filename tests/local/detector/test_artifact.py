"""Model file and model.tar.gz round trips."""

from __future__ import annotations

import io
import tarfile
from typing import TYPE_CHECKING

import pytest
import torch

from boxloop.local.detector.artifact import (
    MODEL_FILENAME,
    ModelArtifactError,
    ModelInfo,
    load_model,
    pack_model_tar,
    read_model_file,
    save_model,
    unpack_model_tar,
)
from boxloop.local.detector.model import Detector

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    model = Detector(2, pretrained_backbone=False)
    info = ModelInfo(
        num_classes=2, image_size=192, class_names=("cat", "dog"), metadata={"seed": 3}
    )
    return save_model(model, info, tmp_path_factory.mktemp("model") / "nested" / "model.pt")


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_load_model_restores_weights_and_info(saved: Path) -> None:
    _, state = read_model_file(saved)
    trained = Detector(2, pretrained_backbone=False)
    trained.load_state_dict(state)
    images = torch.rand(1, 3, 192, 192, generator=torch.Generator().manual_seed(0))

    model, info = load_model(saved)

    assert info.num_classes == 2
    assert info.image_size == 192
    assert info.class_names == ("cat", "dog")
    assert info.metadata == {"seed": 3}
    assert not model.training
    assert _same_weights(model.head.state_dict(), trained.head.state_dict())
    with torch.inference_mode():
        ours, reference = model(images), trained.eval()(images)
    assert torch.allclose(ours.class_logits, reference.class_logits, atol=1e-4)
    assert torch.allclose(ours.box_regression, reference.box_regression, atol=1e-4)


def test_model_tar_round_trip_gives_back_the_same_model(saved: Path, tmp_path: Path) -> None:
    tar_path = pack_model_tar(saved, tmp_path / "out" / "model.tar.gz")

    unpacked = unpack_model_tar(tar_path, tmp_path / "unpacked")

    with tarfile.open(tar_path) as archive:
        assert archive.getnames() == [MODEL_FILENAME]
    assert unpacked == tmp_path / "unpacked" / MODEL_FILENAME
    assert _same_weights(read_model_file(unpacked)[1], read_model_file(saved)[1])


def _tar_with(path: Path, name: str, data: bytes) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        member = tarfile.TarInfo(name)
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("other.pt", "no model.pt"),  # SageMaker tar of another algorithm
        ("../model.pt", "no model.pt"),  # path escaping the target folder is never extracted
    ],
)
def test_unpack_model_tar_rejects_archives_without_model_file(
    tmp_path: Path, name: str, message: str
) -> None:
    tar_path = _tar_with(tmp_path / "model.tar.gz", name, b"x")

    with pytest.raises(ModelArtifactError, match=message):
        unpack_model_tar(tar_path, tmp_path / "out")
    assert not (tmp_path / "model.pt").exists()


def test_unpack_model_tar_rejects_a_file_that_is_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "model.tar.gz").write_bytes(b"not a tar")

    with pytest.raises(ModelArtifactError, match="cannot read the model archive"):
        unpack_model_tar(tmp_path / "model.tar.gz", tmp_path / "out")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"format": "yolo/1"}, "expected model format"),  # another kind of model
        ([1, 2, 3], "found 'list'"),  # a tensor file that is not a dict
    ],
)
def test_read_model_file_rejects_foreign_files(
    tmp_path: Path, payload: object, message: str
) -> None:
    torch.save(payload, tmp_path / "model.pt")

    with pytest.raises(ModelArtifactError, match=message):
        read_model_file(tmp_path / "model.pt")


def test_read_model_file_rejects_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelArtifactError, match="cannot read"):
        read_model_file(tmp_path / "absent.pt")
