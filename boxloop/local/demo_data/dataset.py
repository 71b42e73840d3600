"""Write a demo detection dataset to disk: JPEG images plus their reference Detections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from boxloop.core.detections import Detections
from boxloop.core.errors import ConfigError
from boxloop.local.demo_data.params import SceneParams
from boxloop.local.demo_data.render import render_demo_sample
from boxloop.local.demo_data.shapes import CLASS_SHAPES

if TYPE_CHECKING:
    from pathlib import Path

JPEG_QUALITY = 92
MIN_SIDE_PX = 32
"""Smallest supported image side; below it the largest objects would not fit."""


@dataclass(frozen=True, slots=True)
class DemoDataset:
    """A generated dataset.

    Attributes:
        class_names: Class name per class id (``class_names[k]`` is class id k).
        items: ``(image_path, reference)`` per image, in index order; the reference holds human
            boxes (``score=None``) in pixel xyxy and ``image_id`` is the image's file name.
    """

    class_names: tuple[str, ...]
    items: tuple[tuple[Path, Detections], ...]


def image_file_name(index: int) -> str:
    """The file name (and image id) of image ``index``: ``demo_00042.jpg``."""
    return f"demo_{index:05d}.jpg"


def _check(n_images: int, n_classes: int, seed: int, image_wh: tuple[int, int]) -> None:
    problems = []
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 0:
        problems.append(f"n_images must be an int >= 0, got {n_images!r}")
    if (
        isinstance(n_classes, bool)
        or not isinstance(n_classes, int)
        or not 1 <= n_classes <= len(CLASS_SHAPES)
    ):
        problems.append(f"n_classes must be an int in 1..{len(CLASS_SHAPES)}, got {n_classes!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        problems.append(f"seed must be an int >= 0, got {seed!r}")
    if (
        len(image_wh) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in image_wh)
        or min(image_wh) < MIN_SIDE_PX
    ):
        problems.append(
            f"image_wh must be two ints >= {MIN_SIDE_PX} (width, height), got {image_wh!r}"
        )
    if problems:
        raise ConfigError(problems)


def generate_demo_dataset(
    out_dir: Path,
    *,
    n_images: int,
    n_classes: int = 3,
    seed: int = 0,
    difficulty: float = 0.3,
    density: float = 1.0,
    image_wh: tuple[int, int] = (256, 256),
) -> DemoDataset:
    """Render ``n_images`` images into ``out_dir/images/`` and return them with reference boxes.

    Image i depends only on (seed, i, n_classes, difficulty, image_wh): a larger ``n_images``
    extends the dataset without changing the first images. Existing files of the same name are
    overwritten; nothing else in ``out_dir`` is touched.

    Args:
        out_dir: Dataset folder; ``images/`` is created inside it.
        n_images: Number of images, >= 0.
        n_classes: Number of classes K in 1..8; class k is the shape ``CLASS_SHAPES[k]``.
        seed: Dataset seed, >= 0.
        difficulty: 0 (easy) to 1 (hard); see :mod:`boxloop.local.demo_data.params`.
        density: Targets per image and their size (1 = the default scenes, 4 = dense scenes
            of up to 16 small targets); see :mod:`boxloop.local.demo_data.params`.
        image_wh: ``(width, height)`` in pixels, each >= 32; non-square is fine.

    Returns:
        The class names and, per image, its JPEG path and reference ``Detections``.

    Raises:
        ConfigError: Listing every invalid argument.
    """
    _check(n_images, n_classes, seed, image_wh)
    params = SceneParams.from_difficulty(difficulty, density=density)
    image_wh = (int(image_wh[0]), int(image_wh[1]))
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    items = []
    for index in range(n_images):
        sample = render_demo_sample(
            index, seed=seed, n_classes=n_classes, params=params, image_wh=image_wh
        )
        name = image_file_name(index)
        path = images_dir / name
        Image.fromarray(sample.image).save(path, format="JPEG", quality=JPEG_QUALITY)
        items.append((path, Detections(image_id=name, image_wh=image_wh, boxes=sample.boxes)))
    return DemoDataset(class_names=CLASS_SHAPES[:n_classes], items=tuple(items))
