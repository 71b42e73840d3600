"""Backgrounds and fill textures for the demo data: natural photos bundled with scikit-image.

Only images that ship inside the scikit-image wheel are used (``lily``, ``eagle`` and friends
need a network download and are left out), so generating data works offline. Grayscale sources
are tinted at use, so they add colour variety instead of gray scenes.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageEnhance
from skimage import data as skdata

NATURAL_SOURCES: tuple[str, ...] = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "coins",
    "brick",
    "grass",
    "gravel",
    "camera",
    "moon",
    "clock",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "cell",
    "page",
    "text",
)
"""scikit-image ``data`` images that load offline, used as backgrounds and fill textures."""

PROCEDURAL_FRACTION = 0.25
"""Share of backgrounds that are multi-octave value noise instead of a photo crop."""


@functools.cache
def load_source(name: str) -> np.ndarray:
    """A bundled photo as an (H, W, 3) or (H, W) uint8 array, cached for the process.

    Raises:
        ValueError: For a name outside :data:`NATURAL_SOURCES`.
    """
    if name not in NATURAL_SOURCES:
        raise ValueError(f"unknown background source {name!r}; use one of {NATURAL_SOURCES}")
    image = np.asarray(getattr(skdata, name)())
    if image.dtype != np.uint8:
        image = (np.clip(image.astype(np.float64), 0.0, 1.0) * 255).astype(np.uint8)
    if image.ndim == 3:
        image = image[..., :3]
    image.setflags(write=False)
    return image


def _crop_image(
    source: np.ndarray, out_wh: tuple[int, int], rng: np.random.Generator, *, scale: float
) -> Image.Image:
    """A crop of ``source`` with the aspect of ``out_wh``, resized to it, as a PIL image.

    Args:
        source: uint8 (H, W) or (H, W, 3) image.
        out_wh: ``(width, height)`` of the result in pixels.
        rng: Picks the crop position.
        scale: Crop side as a fraction of the largest crop with that aspect that fits, (0, 1].
    """
    out_w, out_h = out_wh
    src_h, src_w = source.shape[:2]
    fit = min(src_w / out_w, src_h / out_h)
    crop_w = max(1, min(src_w, round(out_w * fit * scale)))
    crop_h = max(1, min(src_h, round(out_h * fit * scale)))
    left = int(rng.integers(0, src_w - crop_w + 1))
    top = int(rng.integers(0, src_h - crop_h + 1))
    crop = Image.fromarray(np.ascontiguousarray(source[top : top + crop_h, left : left + crop_w]))
    return crop.resize(out_wh, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _gain_lut(gains: np.ndarray) -> list[int]:
    """A 3 x 256 ``Image.point`` table multiplying each RGB channel by its gain (clipped)."""
    levels = np.arange(256, dtype=np.float64)
    return np.clip(np.rint(levels[None, :] * gains[:, None]), 0, 255).astype(int).ravel().tolist()


def natural_background(image_wh: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random crop (30-100 % scale) of a bundled photo, flipped and colour-jittered.

    Grayscale photos get a random tint; the jitter is saturation 0.5-1.3, contrast 0.7-1.3,
    brightness 0.75-1.25 and per-channel white balance 0.85-1.15, done in PIL for speed.

    Returns:
        float32 (H, W, 3) in [0, 255].
    """
    source = load_source(NATURAL_SOURCES[int(rng.integers(len(NATURAL_SOURCES)))])
    image = _crop_image(source, image_wh, rng, scale=float(rng.uniform(0.3, 1.0)))
    gains = rng.uniform(0.85, 1.15, 3) * rng.uniform(0.75, 1.25)
    if image.mode != "RGB":
        gains = gains * rng.uniform(0.6, 1.15, 3)
        image = image.convert("RGB")
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.25:
        image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    image = ImageEnhance.Color(image).enhance(rng.uniform(0.5, 1.3))
    image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.7, 1.3))
    return np.asarray(image.point(_gain_lut(gains)), dtype=np.float32)


def value_noise(
    image_wh: tuple[int, int], rng: np.random.Generator, *, octaves: int = 4
) -> np.ndarray:
    """Multi-octave smooth value noise, float32 (H, W) with zero mean and unit-ish range."""
    width, height = image_wh
    total = np.zeros((height, width), dtype=np.float32)
    for octave in range(octaves):
        cells = 2 ** (octave + 2)
        grid_w = max(2, round(cells * width / max(width, height)))
        grid_h = max(2, round(cells * height / max(width, height)))
        grid = rng.uniform(-1.0, 1.0, (grid_h, grid_w)).astype(np.float32)
        layer = Image.fromarray(grid).resize(image_wh, Image.Resampling.BICUBIC)
        total += np.asarray(layer, dtype=np.float32) * 0.5**octave
    return total / 1.875


def procedural_background(image_wh: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Value noise mapped onto a random two-colour ramp, sometimes with soft stripes.

    Returns:
        float32 (H, W, 3) in roughly [0, 255].
    """
    width, height = image_wh
    noise = value_noise(image_wh, rng)
    if rng.random() < 0.35:
        angle = rng.uniform(0.0, math.pi)
        period = rng.uniform(6.0, 30.0)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        phase = (xs * math.cos(angle) + ys * math.sin(angle)) * (2 * math.pi / period)
        noise = noise + np.sin(phase) * rng.uniform(0.2, 0.5)
    lo, hi = rng.uniform(0.0, 255.0, (2, 3)).astype(np.float32)
    ramp = np.clip(0.5 + 0.6 * noise, 0.0, 1.0)[..., None]
    return lo + (hi - lo) * ramp


def background(image_wh: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A photo crop (75 %) or procedural texture (25 %): float32 (H, W, 3) clipped to [0, 255]."""
    if rng.random() < PROCEDURAL_FRACTION:
        bg = procedural_background(image_wh, rng)
    else:
        bg = natural_background(image_wh, rng)
    return np.clip(bg, 0.0, 255.0).astype(np.float32)


def texture_patch(patch_wh: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A zero-mean texture from a random photo crop, float32 (H, W, 3), std about 20-60 levels."""
    source = load_source(NATURAL_SOURCES[int(rng.integers(len(NATURAL_SOURCES)))])
    src_h, src_w = source.shape[:2]
    out_w, out_h = patch_wh
    scale = min(1.0, rng.uniform(0.5, 2.0) * max(out_w / src_w, out_h / src_h))
    rgb = np.asarray(_crop_image(source, patch_wh, rng, scale=scale), dtype=np.float32)
    if rgb.ndim == 2:  # grayscale photo: tint it
        rgb = rgb[..., None] * rng.uniform(0.6, 1.15, 3).astype(np.float32)
    rgb = rgb - rgb.mean(axis=(0, 1), keepdims=True)
    std = float(rgb.std()) or 1.0
    return rgb * np.float32(rng.uniform(20.0, 60.0) / std)
