"""Image loading, letterboxing and training augmentation for the local detector.

The network sees square ``S x S`` inputs. An image of any size and aspect ratio is scaled by
``S / max(width, height)`` and pasted at the top-left corner of a grey canvas (letterbox), so
a pixel ``(x, y)`` of the original maps to ``(x * scale, y * scale)`` of the input and back by
division; no axis is stretched. Boxes are pixel xyxy throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from boxloop.core.boxes import clip_xyxy
from boxloop.core.errors import BoxError

if TYPE_CHECKING:
    import random
    from pathlib import Path

    from boxloop.core.boxes import ImageWH
    from boxloop.core.detections import Detections

PAD_GREY = (128, 128, 128)
"""Canvas colour: mid-grey, which the backbone's [-1, 1] normalization maps to about 0."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AugmentConfig:
    """Random training transforms; every draw comes from the trainer's seeded generator.

    Attributes:
        hflip_probability: Chance of a horizontal flip (vertical flips would teach wrong
            priors for most photographs, so there are none).
        scale_range: Zoom relative to the letterbox scale, drawn log-uniformly; above 1 the
            image overflows the canvas and is cropped at a random offset, below 1 it is
            padded at a random offset.
        brightness: Maximum relative brightness change (0.25 means factors in [0.75, 1.25]).
        contrast: Maximum relative contrast change.
        saturation: Maximum relative saturation change.
        min_visible_fraction: A cropped box is kept only if at least this fraction of its
            area stays on the canvas, so barely visible slivers are not taught as objects.
    """

    hflip_probability: float = 0.5
    scale_range: tuple[float, float] = (0.6, 1.4)
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.3
    min_visible_fraction: float = 0.35


@dataclass(frozen=True, slots=True)
class TrainingImage:
    """One decoded training image, kept in memory for the whole training run.

    Attributes:
        image: RGB image, downscaled (never upscaled) so its longer side is at most what the
            largest zoom needs.
        boxes: ``(M, 4)`` float xyxy pixels in ``image``'s coordinates.
        labels: ``(M,)`` int64 class ids.
    """

    image: Image.Image
    boxes: torch.Tensor
    labels: torch.Tensor


def load_rgb(path: Path, *, fit_side: int | None = None) -> tuple[Image.Image, ImageWH]:
    """Decode an image file as 8-bit RGB (grey, palette and alpha images are converted).

    EXIF orientation is not applied: pixel coordinates refer to the stored raster, as in the
    built-in algorithm, which decodes without rotation.

    Args:
        path: The image file.
        fit_side: When given, the image will only be used downscaled to fit a square of this
            side, so a JPEG may be decoded at 1/2, 1/4 or 1/8 scale (never below that fit),
            which makes multi-megapixel photos several times cheaper to read.

    Returns:
        The decoded image (possibly smaller than the file) and the file's own
        ``(width, height)``, which is what labels and normalized outputs refer to.
    """
    with Image.open(path) as image:
        original_wh = (image.width, image.height)
        if fit_side is not None:
            scale = min(1.0, letterbox_scale(original_wh, fit_side))
            image.draft("RGB", (math.ceil(image.width * scale), math.ceil(image.height * scale)))
        return image.convert("RGB"), original_wh


def letterbox_scale(image_wh: ImageWH, image_size: int) -> float:
    """Factor that fits an image of ``image_wh=(width, height)`` into an ``image_size`` square."""
    return image_size / max(image_wh)


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """``(3, H, W)`` float32 tensor with values in [0, 1] from an RGB image."""
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def letterbox(
    image: Image.Image, image_size: int, image_wh: ImageWH | None = None
) -> tuple[torch.Tensor, float]:
    """The network input for an image and the scale that maps original pixels onto it.

    Args:
        image: The decoded image, possibly already reduced (see :func:`load_rgb`).
        image_size: Side of the square network input.
        image_wh: The original ``(width, height)`` the scale refers to; default ``image.size``.

    Returns:
        A ``(3, image_size, image_size)`` tensor in [0, 1] with the image at the top-left corner,
        and ``scale`` such that input pixels = original pixels * scale.
    """
    original_w, original_h = image_wh if image_wh is not None else image.size
    scale = letterbox_scale((original_w, original_h), image_size)
    width = max(1, min(image_size, round(original_w * scale)))
    height = max(1, min(image_size, round(original_h * scale)))
    canvas = Image.new("RGB", (image_size, image_size), PAD_GREY)
    canvas.paste(image.resize((width, height), Image.Resampling.BILINEAR), (0, 0))
    return image_to_tensor(canvas), scale


def load_training_image(
    path: Path, detections: Detections, *, num_classes: int, max_side: int
) -> tuple[TrainingImage, int]:
    """Decode one labelled image and convert its boxes for training.

    Boxes are clipped to the image; boxes left with zero width or height cannot teach a
    location and are skipped (their count is returned so callers can report it).

    Args:
        path: The image file.
        detections: Its reference boxes in pixels of the original image.
        num_classes: Class ids must be below this.
        max_side: Longest side to keep in memory; larger images are downscaled.

    Returns:
        The training image and the number of skipped degenerate boxes.

    Raises:
        BoxError: The file's size differs from ``detections.image_wh`` (the labels would land
            in the wrong place), or a class id is ``>= num_classes``.
    """
    image, original_wh = load_rgb(path, fit_side=max_side)
    if original_wh != tuple(detections.image_wh):
        raise BoxError(
            f"{path}: image is {original_wh[0]}x{original_wh[1]} px but its labels say "
            f"{detections.image_wh[0]}x{detections.image_wh[1]}"
        )
    boxes: list[tuple[float, float, float, float]] = []
    labels: list[int] = []
    for box in detections.boxes:
        if box.class_id >= num_classes:
            raise BoxError(f"{path}: class_id {box.class_id} >= num_classes {num_classes}")
        xyxy = clip_xyxy(box.xyxy, detections.image_wh)
        if xyxy[2] > xyxy[0] and xyxy[3] > xyxy[1]:
            boxes.append(xyxy)
            labels.append(box.class_id)
    scale = min(1.0, max_side / max(original_wh))
    size = (max(1, round(original_wh[0] * scale)), max(1, round(original_wh[1] * scale)))
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    if size != original_wh:
        sx, sy = size[0] / original_wh[0], size[1] / original_wh[1]
        boxes = [(b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy) for b in boxes]
    box_tensor = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    label_tensor = torch.tensor(labels, dtype=torch.int64)
    return TrainingImage(image, box_tensor, label_tensor), len(detections.boxes) - len(boxes)


def _color_jitter(tensor: torch.Tensor, rng: random.Random, config: AugmentConfig) -> torch.Tensor:
    brightness = rng.uniform(1 - config.brightness, 1 + config.brightness)
    contrast = rng.uniform(1 - config.contrast, 1 + config.contrast)
    saturation = rng.uniform(1 - config.saturation, 1 + config.saturation)
    tensor = tensor * brightness
    mean = tensor.mean()
    tensor = (tensor - mean) * contrast + mean
    grey = (0.299 * tensor[0] + 0.587 * tensor[1] + 0.114 * tensor[2])[None]
    tensor = (tensor - grey) * saturation + grey
    return tensor.clamp_(0.0, 1.0)


def augment(
    sample: TrainingImage,
    rng: random.Random,
    *,
    image_size: int,
    config: AugmentConfig,
    crop_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One randomly zoomed, shifted, flipped and colour-jittered training input.

    Args:
        sample: The cached image and its boxes.
        rng: The trainer's seeded generator (the only source of randomness here).
        image_size: Side of the square input the image is letterboxed to, as at inference.
        config: Augmentation ranges.
        crop_size: Side of the training canvas (default ``image_size``). A smaller canvas is a
            random window of the image at inference scale: the network learns objects at the
            size it will see them, for the compute of the smaller input.

    Returns:
        ``(3, C, C)`` input in [0, 1] (``C`` the canvas side), ``(K, 4)`` xyxy input-pixel boxes
        and ``(K,)`` labels, where ``K <= M`` (boxes cropped away, or mostly away, are dropped).
    """
    base = letterbox_scale(sample.image.size, image_size)
    low, high = config.scale_range
    zoom = math.exp(rng.uniform(math.log(low), math.log(high)))
    width = max(1, round(sample.image.width * base * zoom))
    height = max(1, round(sample.image.height * base * zoom))
    resized = sample.image.resize((width, height), Image.Resampling.BILINEAR)
    side = crop_size or image_size
    offset_x = rng.randint(min(0, side - width), max(0, side - width))
    offset_y = rng.randint(min(0, side - height), max(0, side - height))
    canvas = Image.new("RGB", (side, side), PAD_GREY)
    canvas.paste(resized, (offset_x, offset_y))

    scale = torch.tensor([width / sample.image.width, height / sample.image.height] * 2)
    boxes = sample.boxes * scale + torch.tensor([offset_x, offset_y] * 2, dtype=torch.float32)
    clipped = boxes.clamp(0, side)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(dim=1)
    visible = (clipped[:, 2:] - clipped[:, :2]).clamp(min=0).prod(dim=1)
    keep = (visible >= config.min_visible_fraction * area) & (visible > 0)
    boxes, labels = clipped[keep], sample.labels[keep]

    if rng.random() < config.hflip_probability:
        canvas = canvas.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        boxes = torch.stack(
            [side - boxes[:, 2], boxes[:, 1], side - boxes[:, 0], boxes[:, 3]], dim=1
        )
    return _color_jitter(image_to_tensor(canvas), rng, config), boxes, labels
