"""Training: budgets, warm starts, determinism and bad arguments (tiny budgets, real pixels)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from PIL import Image

from boxloop.core.boxes import Box
from boxloop.core.detections import Detections
from boxloop.core.errors import BoxError, ConfigError
from boxloop.local.detector.artifact import ModelArtifactError, read_model_file
from boxloop.local.detector.train import Hyperparameters, train_detector

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    Samples = list[tuple[Path, Detections]]

TINY = {"image_size": 128, "batch_size": 4, "image_steps": 8}
"""Two optimizer steps at 128 px: enough to exercise every code path in about a second."""


@pytest.fixture(scope="module")
def four_images(
    tmp_path_factory: pytest.TempPathFactory, make_shapes: Callable[[Path, int, int], Samples]
) -> Samples:
    return make_shapes(tmp_path_factory.mktemp("four"), 4, 5)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_model_file(path)[1]


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].numel())


def test_train_detector_rounds_the_budget_up_to_whole_batches(
    four_images: Samples, tmp_path: Path
) -> None:
    result = train_detector(
        four_images, num_classes=3, out_dir=tmp_path, image_size=128, batch_size=4, image_steps=9
    )

    assert result.optimizer_steps == 3
    assert result.image_steps == 12
    assert result.num_images == 4
    assert result.model_path == tmp_path / "model.pt"
    assert math.isfinite(result.final_loss)
    assert result.validation_map is None


def test_train_detector_reports_each_step_of_its_budget(
    four_images: Samples, tmp_path: Path
) -> None:
    seen: list[tuple[int, int]] = []
    train_detector(
        four_images,
        num_classes=3,
        out_dir=tmp_path,
        image_size=128,
        batch_size=4,
        image_steps=9,
        on_step=lambda done, total: seen.append((done, total)),
    )

    assert seen == [(0, 12), (4, 12), (8, 12), (12, 12)]


def test_train_detector_handles_images_without_objects(tmp_path: Path) -> None:
    samples = []
    for index, wh in enumerate([(160, 96), (96, 160)]):
        path = tmp_path / f"empty{index}.png"
        pixels = np.random.default_rng(index).integers(0, 256, (wh[1], wh[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        samples.append((path, Detections.empty(path.stem, wh)))

    result = train_detector(samples, num_classes=2, out_dir=tmp_path / "out", **TINY)

    assert math.isfinite(result.final_loss)
    assert all(math.isfinite(v) for v in result.loss_history)
    assert all(bool(torch.isfinite(w).all()) for w in _weights(result.model_path).values())


def test_train_detector_warm_start_begins_from_the_given_weights(
    four_images: Samples, tmp_path: Path
) -> None:
    first = train_detector(
        four_images,
        num_classes=3,
        out_dir=tmp_path / "first",
        seed=1,
        hyperparameters=Hyperparameters(learning_rate=1e-2),
        **TINY,
    )
    frozen_lr = Hyperparameters(learning_rate=1e-12)

    warm = train_detector(
        four_images,
        num_classes=3,
        out_dir=tmp_path / "warm",
        init_weights=first.model_path,
        hyperparameters=frozen_lr,
        **TINY,
    )
    cold = train_detector(
        four_images, num_classes=3, out_dir=tmp_path / "cold", hyperparameters=frozen_lr, **TINY
    )

    assert _max_difference(_weights(warm.model_path), _weights(first.model_path)) < 1e-6
    assert _max_difference(_weights(cold.model_path), _weights(first.model_path)) > 1e-3


def test_train_detector_rejects_a_warm_start_with_other_classes(
    four_images: Samples, tmp_path: Path
) -> None:
    first = train_detector(four_images, num_classes=3, out_dir=tmp_path / "first", **TINY)

    with pytest.raises(ModelArtifactError, match="has 3 classes, this training has 4"):
        train_detector(
            four_images,
            num_classes=4,
            out_dir=tmp_path / "second",
            init_weights=first.model_path,
            **TINY,
        )


def test_train_detector_is_deterministic_for_a_seed(four_images: Samples, tmp_path: Path) -> None:
    runs = [
        train_detector(
            four_images, num_classes=3, out_dir=tmp_path / name, seed=seed, num_threads=2, **TINY
        )
        for name, seed in (("a", 7), ("b", 7), ("c", 8))
    ]

    same, other = _weights(runs[1].model_path), _weights(runs[2].model_path)
    assert _max_difference(_weights(runs[0].model_path), same) == 0.0
    assert runs[0].loss_history == runs[1].loss_history
    assert _max_difference(same, other) > 0.0


def test_train_detector_lists_every_bad_argument(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        train_detector(
            [],
            num_classes=0,
            out_dir=tmp_path,
            image_steps=0,
            image_size=100,
            batch_size=0,
            crop_size=200,
        )

    assert len(caught.value.problems) == 6
    assert "image_size must be a positive multiple of 32, got 100" in str(caught.value)
    assert "crop_size must be a positive multiple of 32, got 200" in str(caught.value)


def test_train_detector_rejects_class_ids_beyond_num_classes(
    four_images: Samples, tmp_path: Path
) -> None:
    path, detections = four_images[0]
    bad = detections.with_boxes([*detections.boxes, Box.from_xyxy((1, 1, 20, 20), 5)])

    with pytest.raises(BoxError, match="class_id 5 >= num_classes 3"):
        train_detector([(path, bad)], num_classes=3, out_dir=tmp_path, **TINY)
