"""Synthetic labelled images (squares, discs, triangles on noisy gradients) and a shared model."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image, ImageDraw

from boxloop.core.boxes import Box
from boxloop.core.detections import Detections
from boxloop.local.detector.train import train_detector

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from boxloop.local.detector.train import TrainResult

CLASS_NAMES = ("square", "disc", "triangle")
SIZES_WH = ((320, 224), (224, 320), (256, 256), (288, 160), (200, 200))
"""Image sizes drawn from; mostly non-square, so letterbox mapping errors would show."""


def _background(wh: tuple[int, int], rng: random.Random) -> Image.Image:
    width, height = wh
    noise = np.random.default_rng(rng.randrange(2**32))
    grid_y, grid_x = np.mgrid[0:height, 0:width]
    ramp = (grid_x / width)[..., None] * noise.uniform(-60, 60, 3) + (grid_y / height)[
        ..., None
    ] * noise.uniform(-60, 60, 3)
    pixels = noise.uniform(60, 200, 3) + ramp + noise.normal(0, 18, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _free_spot(
    boxes: list[Box], wh: tuple[int, int], rng: random.Random
) -> tuple[float, float, float] | None:
    width, height = wh
    for _ in range(20):
        side = rng.uniform(18, min(70, 0.6 * min(width, height)))
        x, y = rng.uniform(0, width - side), rng.uniform(0, height - side)
        if all(
            x + side < b.x_min or x > b.x_max or y + side < b.y_min or y > b.y_max for b in boxes
        ):
            return x, y, side
    return None


def render_image(
    path: Path, wh: tuple[int, int], rng: random.Random, *, max_objects: int = 3
) -> Detections:
    """Draw 1..max_objects non-overlapping shapes of random colour and size; return the labels."""
    image = _background(wh, rng)
    draw = ImageDraw.Draw(image)
    boxes: list[Box] = []
    for _ in range(rng.randint(1, max_objects)):
        spot = _free_spot(boxes, wh, rng)
        if spot is None:
            continue
        x, y, side = spot
        class_id = rng.randrange(len(CLASS_NAMES))
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        xyxy = (x, y, x + side, y + side)
        if class_id == 0:
            draw.rectangle(xyxy, fill=colour)
        elif class_id == 1:
            draw.ellipse(xyxy, fill=colour)
        else:
            draw.polygon([(x, y + side), (x + side, y + side), (x + side / 2, y)], fill=colour)
        boxes.append(Box.from_xyxy(xyxy, class_id))
    image.save(path)
    return Detections(image_id=path.stem, image_wh=wh, boxes=tuple(boxes))


def render_set(folder: Path, count: int, seed: int) -> list[tuple[Path, Detections]]:
    """``count`` labelled PNGs in ``folder``, deterministic for ``seed``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    return [
        (
            folder / f"img{i:03d}.png",
            render_image(folder / f"img{i:03d}.png", rng.choice(SIZES_WH), rng),
        )
        for i in range(count)
    ]


@pytest.fixture(scope="session")
def shapes_train(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Detections]]:
    """48 training images."""
    return render_set(tmp_path_factory.mktemp("shapes_train"), 48, seed=1)


@pytest.fixture(scope="session")
def shapes_val(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Detections]]:
    """30 held-out images."""
    return render_set(tmp_path_factory.mktemp("shapes_val"), 30, seed=2)


@pytest.fixture(scope="session")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
    shapes_train: list[tuple[Path, Detections]],
    shapes_val: list[tuple[Path, Detections]],
) -> TrainResult:
    """One short training run (80 steps of 4 images, ~20 s on 2 quiet cores) shared by tests."""
    return train_detector(
        shapes_train,
        num_classes=len(CLASS_NAMES),
        out_dir=tmp_path_factory.mktemp("shapes_model"),
        image_steps=320,
        batch_size=4,
        seed=0,
        class_names=CLASS_NAMES,
        validation_samples=shapes_val,
    )


@pytest.fixture(scope="session")
def make_shapes() -> Callable[[Path, int, int], list[tuple[Path, Detections]]]:
    """The renderer, for tests that need their own images: ``make_shapes(folder, count, seed)``."""
    return render_set
