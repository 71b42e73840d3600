"""Render one demo image and its reference boxes, deterministically from (seed, index).

Objects are composited back to front over the background; the reference box of a target is the
bounding box of the pixels where it is visible (at least half covered by it and by nothing drawn
later), so occluded or truncated objects get the box an annotator would draw around what shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from boxloop.core.boxes import Box
from boxloop.local.demo_data.backgrounds import background, texture_patch
from boxloop.local.demo_data.params import (
    EMPTY_IMAGE_FRACTION,
    MIN_VISIBLE_FRACTION,
    MIN_VISIBLE_PIXELS,
    SceneParams,
)
from boxloop.local.demo_data.shapes import (
    ALL_SHAPES,
    CLASS_SHAPES,
    GENERIC_CLUTTER,
    LOOKALIKES,
    Coverage,
    Pose,
    rasterize,
    shape_outline,
)

_PLACEMENT_TRIES = 30
_GRADIENT_P = 0.3
_TWO_BYTE_STD = math.sqrt(2 * (256**2 - 1) / 12)  # std of the sum of two uniform int8 values


@dataclass(frozen=True, slots=True)
class DemoSample:
    """One rendered image with its reference boxes.

    Attributes:
        image: uint8 (height, width, 3) RGB pixels.
        boxes: Reference boxes (pixel xyxy, ``score=None``), back to front.
        visible_masks: Per box, the bool (height, width) mask of pixels where the object shows;
            each box is exactly this mask's bounding box.
        background: The same image without any object (same global noise, blur and lighting),
            when asked for, else ``None``; tests use it to check boxes against pixels.
    """

    image: np.ndarray
    boxes: tuple[Box, ...]
    visible_masks: tuple[np.ndarray, ...]
    background: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class _Planned:
    shape: str
    class_id: int | None  # None for a distractor
    pose: Pose


@dataclass(frozen=True, slots=True)
class _Drawn:
    class_id: int | None
    coverage: Coverage
    rows: slice
    cols: slice
    alpha_in: np.ndarray  # coverage inside the image


def clutter_shapes(n_classes: int) -> tuple[str, ...]:
    """Unlabelled shapes unlike every active class: neither a class shape nor its look-alike."""
    active = CLASS_SHAPES[:n_classes]
    near = {s for c in active for s in LOOKALIKES[c]}
    far = [s for s in ALL_SHAPES if s not in CLASS_SHAPES and s not in near]
    return tuple(dict.fromkeys([*far, *GENERIC_CLUTTER]))


def _plan(
    n_classes: int, p: SceneParams, image_wh: tuple[int, int], rng: np.random.Generator
) -> list[_Planned]:
    """Pick the objects and place them with the required gaps; returns them in z-order."""
    empty = rng.random() < EMPTY_IMAGE_FRACTION
    n_targets = 0 if empty else int(rng.integers(1, p.max_targets + 1))
    wanted: list[tuple[str, int | None]] = [
        (CLASS_SHAPES[c], c) for c in rng.integers(0, n_classes, n_targets).tolist()
    ]
    for _ in range(int(rng.poisson(p.lookalike_rate))):
        near = LOOKALIKES[CLASS_SHAPES[int(rng.integers(n_classes))]]
        wanted.append((near[int(rng.integers(len(near)))], None))
    far = clutter_shapes(n_classes)
    wanted.extend(
        (far[int(rng.integers(len(far)))], None) for _ in range(int(rng.poisson(p.clutter_rate)))
    )

    width, height = image_wh
    scale = min(width, height) / 256.0
    log_lo, log_hi = (math.log(r * scale) for r in p.radius_px)
    placed: list[tuple[_Planned, float]] = []  # with the stretched (outer) radius
    for shape, class_id in wanted:
        for _ in range(_PLACEMENT_TRIES):
            radius = math.exp(rng.uniform(log_lo, log_hi))
            stretch = math.exp(rng.uniform(-1.0, 1.0) * math.log(p.max_stretch))
            outer = radius * max(stretch, 1.0 / stretch)
            inset = outer * (1.0 - 2.0 * p.max_outside)
            cx = rng.uniform(min(inset, width / 2), max(width - inset, width / 2))
            cy = rng.uniform(min(inset, height / 2), max(height - inset, height / 2))
            if all(
                math.hypot(cx - q.pose.cx, cy - q.pose.cy) >= p.min_gap * (outer + r)
                for q, r in placed
            ):
                pose = Pose(
                    cx=cx,
                    cy=cy,
                    radius_px=radius,
                    stretch=stretch,
                    angle_rad=rng.uniform(0.0, 2.0 * math.pi),
                )
                placed.append((_Planned(shape, class_id, pose), outer))
                break
    return [placed[i][0] for i in rng.permutation(len(placed))]


def _fill(
    patch_wh: tuple[int, int], bg_mean: np.ndarray, p: SceneParams, rng: np.random.Generator
) -> np.ndarray:
    """An object's appearance, float32 (h, w, 3): solid, gradient or photo texture.

    The base colour keeps ``min_contrast`` from the local background (best of a dozen draws), and
    none of this depends on the class, so a detector must learn shape, not colour.
    """
    candidates = rng.uniform(0.0, 255.0, (12, 3)).astype(np.float32)
    dist = np.linalg.norm(candidates - bg_mean, axis=1)
    ok = np.flatnonzero(dist >= p.min_contrast)
    colour = candidates[ok[0]] if ok.size else candidates[int(dist.argmax())]
    if rng.random() < p.low_contrast_p:
        colour = colour + (bg_mean - colour) * rng.uniform(0.4, 0.75)
    width, height = patch_wh
    u = rng.random()
    if u < p.texture_p:
        return colour + texture_patch(patch_wh, rng)
    if u < p.texture_p + _GRADIENT_P:
        angle = rng.uniform(0.0, 2.0 * math.pi)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        ramp = xs * math.cos(angle) + ys * math.sin(angle)
        ramp = (ramp - ramp.mean()) / max(float(np.abs(ramp).max()), 1.0)
        return colour + ramp[..., None] * rng.uniform(-70.0, 70.0, 3).astype(np.float32)
    return np.broadcast_to(colour, (height, width, 3))


def _composite(
    canvas: np.ndarray, plan: list[_Planned], p: SceneParams, rng: np.random.Generator
) -> list[_Drawn]:
    """Draw ``plan`` back to front onto ``canvas`` (float32 H x W x 3, modified in place)."""
    height, width = canvas.shape[:2]
    drawn = []
    for obj in plan:
        cov = rasterize(shape_outline(obj.shape, rng), obj.pose)
        h, w = cov.alpha.shape
        x0, y0 = max(cov.x0, 0), max(cov.y0, 0)
        x1, y1 = min(cov.x0 + w, width), min(cov.y0 + h, height)
        if x1 <= x0 or y1 <= y0:
            continue
        rows, cols = slice(y0, y1), slice(x0, x1)
        alpha = cov.alpha[y0 - cov.y0 : y1 - cov.y0, x0 - cov.x0 : x1 - cov.x0]
        weight = float(alpha.sum())
        if weight <= 0.0:
            continue
        under = canvas[rows, cols]
        bg_mean = (under * alpha[..., None]).sum(axis=(0, 1)) / weight
        fill = _fill((x1 - x0, y1 - y0), bg_mean, p, rng)
        a = (alpha * rng.uniform(p.min_opacity, 1.0))[..., None]
        canvas[rows, cols] = under * (1.0 - a) + fill * a
        drawn.append(_Drawn(obj.class_id, cov, rows, cols, alpha))
    return drawn


def _reference(
    drawn: list[_Drawn], image_wh: tuple[int, int]
) -> tuple[tuple[Box, ...], tuple[np.ndarray, ...]]:
    """Visible-mask boxes of the targets worth labelling, back to front."""
    width, height = image_wh
    unoccluded = np.ones((height, width), dtype=np.float32)
    found: list[tuple[Box, np.ndarray]] = []
    for obj in reversed(drawn):  # front to back: what is in front hides what is behind
        visible = obj.alpha_in * unoccluded[obj.rows, obj.cols]
        unoccluded[obj.rows, obj.cols] *= 1.0 - obj.alpha_in
        if obj.class_id is None:
            continue
        mask = visible >= 0.5
        full_area = float(obj.coverage.alpha.sum())
        if (
            int(mask.sum()) < MIN_VISIBLE_PIXELS
            or float(visible.sum()) < MIN_VISIBLE_FRACTION * full_area
        ):
            continue
        ys = np.flatnonzero(mask.any(axis=1))
        xs = np.flatnonzero(mask.any(axis=0))
        x_off, y_off = obj.cols.start, obj.rows.start
        box = Box.from_xyxy(
            (x_off + xs[0], y_off + ys[0], x_off + xs[-1] + 1, y_off + ys[-1] + 1),
            class_id=obj.class_id,
        )
        full_mask = np.zeros((height, width), dtype=bool)
        full_mask[obj.rows, obj.cols] = mask
        found.append((box, full_mask))
    found.reverse()
    return tuple(b for b, _ in found), tuple(m for _, m in found)


@dataclass(frozen=True, slots=True)
class _Effects:
    illumination: float
    illumination_angle: float
    blur_sigma: float
    noise_sigma: float
    noise_seed: int

    @classmethod
    def draw(cls, p: SceneParams, rng: np.random.Generator) -> _Effects:
        return cls(
            illumination=rng.uniform(0.0, p.illumination),
            illumination_angle=rng.uniform(0.0, 2.0 * math.pi),
            blur_sigma=rng.uniform(0.5, 1.2) if rng.random() < p.blur_p else 0.0,
            noise_sigma=rng.uniform(0.0, p.noise_sigma),
            noise_seed=int(rng.integers(2**63)),
        )

    def apply(self, canvas: np.ndarray) -> np.ndarray:
        """Lighting gradient, blur and sensor noise: float32 canvas -> uint8 image."""
        height, width = canvas.shape[:2]
        out = canvas
        if self.illumination > 0.0:
            xs = np.arange(width, dtype=np.float32) - (width - 1) / 2
            ys = np.arange(height, dtype=np.float32) - (height - 1) / 2
            cos, sin = math.cos(self.illumination_angle), math.sin(self.illumination_angle)
            ramp = xs[None, :] * cos + ys[:, None] * sin  # zero mean, extreme at the corners
            ramp *= self.illumination / max(float(np.abs(ramp).max()), 1.0)
            out = out * (1.0 + ramp)[..., None]
        image = np.clip(out, 0.0, 255.0).astype(np.uint8)
        if self.blur_sigma > 0.0:
            blurred = Image.fromarray(image).filter(ImageFilter.GaussianBlur(self.blur_sigma))
            image = np.asarray(blurred)
        if self.noise_sigma > 0.0:
            # Sum of two uniform bytes: a triangular, near-Gaussian noise 10x cheaper to draw.
            raw = np.random.default_rng(self.noise_seed).bytes(2 * image.size)
            pair = np.frombuffer(raw, dtype=np.int8).reshape(2, *image.shape)
            noise = pair.sum(axis=0, dtype=np.int16).astype(np.float32)
            noise *= self.noise_sigma / _TWO_BYTE_STD
            noise += image
            image = np.clip(noise, 0.0, 255.0, out=noise).astype(np.uint8)
        return image


def render_demo_sample(
    index: int,
    *,
    seed: int,
    n_classes: int,
    params: SceneParams,
    image_wh: tuple[int, int],
    with_background: bool = False,
) -> DemoSample:
    """Render image ``index`` of the dataset ``seed``; the same arguments give the same pixels.

    Args:
        index: Image index within the dataset, >= 0.
        seed: Dataset seed, >= 0; the image depends on (seed, index) only, not on how many images
            are generated or in which order.
        n_classes: Number of target classes K (class ids 0..K-1 = ``CLASS_SHAPES[:K]``).
        params: The difficulty knobs, from :meth:`SceneParams.from_difficulty`.
        image_wh: ``(width, height)`` in pixels.
        with_background: Also return the object-free image (for checks, costs one more pass).
    """
    scene_seq, effects_seq = np.random.SeedSequence([seed, index]).spawn(2)
    rng = np.random.default_rng(scene_seq)
    canvas = background(image_wh, rng)
    bare = canvas.copy() if with_background else None
    drawn = _composite(canvas, _plan(n_classes, params, image_wh, rng), params, rng)
    boxes, masks = _reference(drawn, image_wh)
    effects = _Effects.draw(params, np.random.default_rng(effects_seq))
    return DemoSample(
        image=effects.apply(canvas),
        boxes=boxes,
        visible_masks=masks,
        background=None if bare is None else effects.apply(bare),
    )
