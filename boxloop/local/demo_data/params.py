"""How the ``difficulty`` knob in [0, 1] sets every scene parameter of the demo data.

Difficulty is a single dial from "a small detector labels nearly everything right" (0) to "even a
good detector is unsure on half the images" (1). Each knob moves linearly or quadratically, so the
hard cases (tiny, low-contrast, occluded, look-alike) stay rare around the 0.3 default and only
dominate near 1. Sizes are for a 256-px short side and scale with ``min(width, height) / 256``.

=============================  =========  ===============  =========
knob                           d = 0      d = 0.3 (default)  d = 1
=============================  =========  ===============  =========
target radius, px (log-unif.)  16 - 44    13 - 43          6 - 40
max stretch (x vs 1/x)         1.10       1.16             1.30
look-alikes per image (Pois.)  0          0.23             2.5
other clutter per image        0.3        0.51             1.0
min centre gap / radii sum     1.0        0.79             0.3
max part outside the image     0 %        15 %             50 % (of the diameter)
min base contrast (RGB L2)     100        79               30
P(blend toward background)     0          2.7 %            30 %
opacity                        1          0.91 - 1         0.7 - 1
P(photo texture fill)          0.2        0.29             0.5
noise sigma (max)              0          3                10 levels
P(blur)                        0          12 %             40 %
illumination gradient          0          +-10 %           +-35 %
=============================  =========  ===============  =========

Always: 1-4 targets per image (classes uniform), 5 % of images have no target at all (they can
still hold clutter), 25 % procedural backgrounds, random z-order between all objects.

A second dial, ``density`` (default 1), makes dense scenes: up to ``round(4 * density)`` targets
per image, each radius divided by ``sqrt(density)`` so they still fit. Whole-image exact match
is hardest there (every one of many small boxes must be right); density 1 draws the same images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from boxloop.core.errors import ConfigError

EMPTY_IMAGE_FRACTION = 0.05
"""Share of images drawn with zero targets, so "truly empty" images exist in every dataset."""
MAX_TARGETS = 4
"""Targets per non-empty image are uniform on 1..MAX_TARGETS."""
MIN_VISIBLE_FRACTION = 0.35
"""A target whose visible area is below this share of its full area is left out of the reference,
as an annotator skips a mostly hidden or mostly cut-off object."""
MIN_VISIBLE_PIXELS = 40
"""A target with fewer visible pixels than this is left out of the reference (too small to tell)."""


def _lerp(at_0: float, at_1: float, d: float) -> float:
    return at_0 + (at_1 - at_0) * d


@dataclass(frozen=True, slots=True, kw_only=True)
class SceneParams:
    """Every difficulty-dependent knob, derived once per dataset by :meth:`from_difficulty`.

    Attributes:
        difficulty: The knob value the others came from, in [0, 1].
        radius_px: (min, max) target circumradius at 256 px short side; log-uniform between.
        max_stretch: Anisotropic stretch factor s is drawn in [1/max, max] (x by s, y by 1/s).
        lookalike_rate: Poisson mean of look-alike distractors per image.
        clutter_rate: Poisson mean of clutter shapes unlike any class per image.
        min_gap: Minimum centre distance between two objects as a share of their radii sum.
        max_outside: Largest share of an object's diameter that may lie outside the image.
        min_contrast: Least RGB distance (0-255 levels) of a fill colour to the local background.
        low_contrast_p: Probability of blending the fill 40-75 % toward the local background.
        min_opacity: Object opacity is uniform in [min_opacity, 1].
        texture_p: Probability of a photo-texture fill (else gradient 30 %, else solid colour).
        noise_sigma: Gaussian pixel noise sigma is uniform in [0, noise_sigma] levels.
        blur_p: Probability of a Gaussian blur (sigma 0.5-1.2 px) of the whole image.
        illumination: Amplitude of a linear brightness gradient across the image.
        density: Scene density; targets per non-empty image are uniform on
            ``1..max_targets`` and radii are divided by ``sqrt(density)``.
    """

    difficulty: float
    radius_px: tuple[float, float]
    max_stretch: float
    lookalike_rate: float
    clutter_rate: float
    min_gap: float
    max_outside: float
    min_contrast: float
    low_contrast_p: float
    min_opacity: float
    texture_p: float
    noise_sigma: float
    blur_p: float
    illumination: float
    density: float = 1.0

    @property
    def max_targets(self) -> int:
        """Most targets in one image: ``MAX_TARGETS`` scaled by ``density``."""
        return max(1, round(MAX_TARGETS * self.density))

    @classmethod
    def from_difficulty(cls, difficulty: float, *, density: float = 1.0) -> SceneParams:
        """The knobs for ``difficulty`` and ``density`` (see the module docstring).

        Raises:
            ConfigError: When difficulty is not a number in [0, 1] or density not in [0.25, 8].
        """
        problems = []
        if (
            isinstance(difficulty, bool)
            or not isinstance(difficulty, int | float)
            or not (0.0 <= difficulty <= 1.0)
        ):
            problems.append(f"difficulty must be a number in [0, 1], got {difficulty!r}")
        if (
            isinstance(density, bool)
            or not isinstance(density, int | float)
            or not (0.25 <= density <= 8.0)
        ):
            problems.append(f"density must be a number in [0.25, 8], got {density!r}")
        if problems:
            raise ConfigError(problems)
        d, shrink = float(difficulty), math.sqrt(float(density))
        return cls(
            difficulty=d,
            density=float(density),
            radius_px=(_lerp(16.0, 6.0, d) / shrink, _lerp(44.0, 40.0, d) / shrink),
            max_stretch=_lerp(1.10, 1.30, d),
            lookalike_rate=2.5 * d * d,
            clutter_rate=_lerp(0.3, 1.0, d),
            min_gap=_lerp(1.0, 0.3, d),
            max_outside=0.5 * d,
            min_contrast=_lerp(100.0, 30.0, d),
            low_contrast_p=0.3 * d * d,
            min_opacity=_lerp(1.0, 0.7, d),
            texture_p=_lerp(0.2, 0.5, d),
            noise_sigma=10.0 * d,
            blur_p=0.4 * d,
            illumination=0.35 * d,
        )
