"""The shape catalog of the demo data: class shapes, their look-alikes, clutter, and rasterizing.

A shape is an outline in unit coordinates (circumradius 1 around the origin, y pointing down as
in images): a sequence of ``(polygon, is_fill)`` parts drawn in order, fills adding area and cuts
removing it (a ring is a disc with a smaller disc cut out). Rasterizing applies the object's pose
and draws the parts on a supersampled canvas, so the returned coverage is anti-aliased.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from collections.abc import Callable

Polygon = np.ndarray
"""float array of shape (N, 2): x, y vertices."""
Outline = tuple[tuple[Polygon, bool], ...]
"""``(polygon, is_fill)`` parts drawn in order; ``is_fill=False`` cuts the polygon out."""

CLASS_SHAPES: tuple[str, ...] = (
    "star5",
    "triangle",
    "ring",
    "cross",
    "heart",
    "arrow",
    "gear",
    "pacman",
)
"""Shapes that can be classes, in class-id order: ``n_classes=K`` uses the first K."""

LOOKALIKES: dict[str, tuple[str, ...]] = {
    "star5": ("star4", "star7"),
    "triangle": ("square", "hexagon"),
    "ring": ("disc", "crescent"),
    "cross": ("tee", "ell"),
    "heart": ("drop", "trefoil"),
    "arrow": ("chevron", "tee"),
    "gear": ("flower", "octagon"),
    "pacman": ("disc", "semicircle"),
}
"""Per class shape, the unlabelled shapes a detector could confuse it with."""

GENERIC_CLUTTER: tuple[str, ...] = ("bar", "blob")
"""Unlabelled shapes unlike any class, always available as clutter."""

SUPERSAMPLE = 4
"""Rasterization supersampling factor per axis (16 samples per pixel)."""


def _circle(radius: float = 1.0, cx: float = 0.0, cy: float = 0.0, n: int = 48) -> Polygon:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], axis=1)


def _regular(n: int, phase: float = -math.pi / 2) -> Polygon:
    t = phase + np.arange(n) * 2.0 * math.pi / n
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _star(points: int, inner: float) -> Polygon:
    t = -math.pi / 2 + np.arange(2 * points) * math.pi / points
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _radial(r_of_t: Callable[[np.ndarray], np.ndarray], n: int = 96) -> Polygon:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    r = r_of_t(t)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _poly(*xy: tuple[float, float]) -> Polygon:
    return np.asarray(xy, dtype=np.float64)


def _gear() -> Polygon:
    teeth, outer, inner = 10, 1.0, 0.74
    step = 2.0 * math.pi / teeth
    verts = []
    for k in range(teeth):
        a = k * step
        for da, r in ((0.0, inner), (0.18, outer), (0.5, outer), (0.68, inner)):
            verts.append((r * math.cos(a + da * step), r * math.sin(a + da * step)))
    return np.asarray(verts)


def _pacman(mouth_rad: float) -> Polygon:
    t = np.linspace(mouth_rad / 2, 2.0 * math.pi - mouth_rad / 2, 48)
    arc = np.stack([np.cos(t), np.sin(t)], axis=1)
    return np.concatenate([np.zeros((1, 2)), arc])


def _heart() -> Polygon:
    t = np.linspace(0.0, 2.0 * math.pi, 96, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y], axis=1)


def _drop() -> Polygon:
    t = np.linspace(0.0, 2.0 * math.pi, 96, endpoint=False)
    return np.stack([np.sin(t) * np.sin(t / 2) * 0.9, -np.cos(t)], axis=1)


def _blob(rng: np.random.Generator) -> Polygon:
    amps = rng.uniform(0.0, 0.18, 4)
    phases = rng.uniform(0.0, 2.0 * math.pi, 4)
    return _radial(
        lambda t: (
            1.0
            + sum(
                a * np.cos((k + 2) * t + p)
                for k, (a, p) in enumerate(zip(amps, phases, strict=True))
            )
        )
    )


_FIXED: dict[str, Callable[[], Outline]] = {
    "star5": lambda: ((_star(5, 0.42), True),),
    "star4": lambda: ((_star(4, 0.42), True),),
    "star7": lambda: ((_star(7, 0.5), True),),
    "triangle": lambda: ((_regular(3), True),),
    "square": lambda: ((_regular(4, math.pi / 4), True),),
    "hexagon": lambda: ((_regular(6), True),),
    "octagon": lambda: ((_regular(8), True),),
    "ring": lambda: ((_circle(), True), (_circle(0.58), False)),
    "disc": lambda: ((_circle(), True),),
    "crescent": lambda: ((_circle(), True), (_circle(0.85, 0.42, -0.1), False)),
    "cross": lambda: (
        (
            _poly(
                (-0.3, -1),
                (0.3, -1),
                (0.3, -0.3),
                (1, -0.3),
                (1, 0.3),
                (0.3, 0.3),
                (0.3, 1),
                (-0.3, 1),
                (-0.3, 0.3),
                (-1, 0.3),
                (-1, -0.3),
                (-0.3, -0.3),
            ),
            True,
        ),
    ),
    "tee": lambda: (
        (
            _poly(
                (-1, -0.8),
                (1, -0.8),
                (1, -0.2),
                (0.3, -0.2),
                (0.3, 1),
                (-0.3, 1),
                (-0.3, -0.2),
                (-1, -0.2),
            ),
            True,
        ),
    ),
    "ell": lambda: (
        (_poly((-0.6, -1), (0.0, -1), (0.0, 0.4), (0.8, 0.4), (0.8, 1), (-0.6, 1)), True),
    ),
    "heart": lambda: ((_heart(), True),),
    "drop": lambda: ((_drop(), True),),
    "trefoil": lambda: ((_radial(lambda t: 0.5 + 0.5 * np.abs(np.cos(1.5 * t))), True),),
    "flower": lambda: ((_radial(lambda t: 0.72 + 0.28 * np.cos(6 * t)), True),),
    "arrow": lambda: (
        (
            _poly(
                (-1, -0.22),
                (0.15, -0.22),
                (0.15, -0.65),
                (1, 0),
                (0.15, 0.65),
                (0.15, 0.22),
                (-1, 0.22),
            ),
            True,
        ),
    ),
    "chevron": lambda: (
        (_poly((-0.7, -1), (-0.1, -1), (0.8, 0), (-0.1, 1), (-0.7, 1), (0.2, 0)), True),
    ),
    "gear": lambda: ((_gear(), True),),
    "pacman": lambda: ((_pacman(math.radians(75)), True),),
    "semicircle": lambda: ((_pacman(math.pi), True),),
    "bar": lambda: ((_poly((-1, -0.16), (1, -0.16), (1, 0.16), (-1, 0.16)), True),),
}

ALL_SHAPES: tuple[str, ...] = (*_FIXED, "blob")
"""Every shape name :func:`shape_outline` knows."""


def shape_outline(name: str, rng: np.random.Generator) -> Outline:
    """The unit outline of ``name``, centred on its bounding box and scaled to circumradius 1.

    Args:
        name: One of :data:`ALL_SHAPES`.
        rng: Used only by random shapes (``blob``), so fixed shapes draw no random numbers.

    Raises:
        KeyError: For an unknown shape name.
    """
    parts = ((_blob(rng), True),) if name == "blob" else _FIXED[name]()
    fills = np.concatenate([p for p, is_fill in parts if is_fill])
    centre = (fills.min(axis=0) + fills.max(axis=0)) / 2
    scale = float(np.linalg.norm(fills - centre, axis=1).max())
    return tuple(((p - centre) / scale, is_fill) for p, is_fill in parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pose:
    """Where and how an outline is drawn, in image pixels.

    Attributes:
        cx: Centre x, pixels (pixel column i spans [i, i + 1)).
        cy: Centre y, pixels.
        radius_px: Circumradius before stretching, pixels.
        angle_rad: Rotation, radians.
        stretch: Anisotropic scale along the shape's own x axis; y gets ``1 / stretch``.
    """

    cx: float
    cy: float
    radius_px: float
    angle_rad: float
    stretch: float

    def apply(self, points: Polygon) -> Polygon:
        """Unit outline points -> image pixel coordinates."""
        cos, sin = math.cos(self.angle_rad), math.sin(self.angle_rad)
        sx = points[:, 0] * self.stretch * self.radius_px
        sy = points[:, 1] / self.stretch * self.radius_px
        return np.stack([self.cx + cos * sx - sin * sy, self.cy + sin * sx + cos * sy], axis=1)


@dataclass(frozen=True, slots=True)
class Coverage:
    """Anti-aliased coverage of one shape on an axis-aligned patch (which may leave the image).

    Attributes:
        x0: Image column of the patch's left edge (may be negative).
        y0: Image row of the patch's top edge (may be negative).
        alpha: float32 (h, w) fraction of each pixel the shape covers, in [0, 1].
    """

    x0: int
    y0: int
    alpha: np.ndarray


def rasterize(outline: Outline, pose: Pose) -> Coverage:
    """Draw ``outline`` at ``pose`` with :data:`SUPERSAMPLE`-fold supersampling.

    The patch covers the whole posed shape, also the parts outside the image, so the caller can
    compare visible area against full area (truncation counts as not visible).
    """
    posed = [(pose.apply(p), is_fill) for p, is_fill in outline]
    allpts = np.concatenate([p for p, _ in posed])
    x0, y0 = (math.floor(v) - 1 for v in allpts.min(axis=0))
    x1, y1 = (math.ceil(v) + 1 for v in allpts.max(axis=0))
    ss = SUPERSAMPLE
    canvas = Image.new("L", ((x1 - x0) * ss, (y1 - y0) * ss), 0)
    draw = ImageDraw.Draw(canvas)
    for pts, is_fill in posed:
        # PIL fills the pixels whose centres lie inside; its pixel j is centred on coordinate j.
        local = (pts - (x0, y0)) * ss - 0.5
        draw.polygon([tuple(v) for v in local.tolist()], fill=255 if is_fill else 0)
    big = np.asarray(canvas, dtype=np.float32)
    h, w = y1 - y0, x1 - x0
    alpha = big.reshape(h, ss, w, ss).mean(axis=(1, 3)) / 255.0
    return Coverage(x0, y0, alpha)
