"""How one simulated annotator redraws the reference boxes of an image: jitter, misses, extras.

The model is deliberately simple and every knob is a rate a person can read off a labeling
audit:

* **Jitter.** Each of a box's four edges moves by an independent Gaussian with standard
  deviation ``box_jitter`` times the box's width (left and right edges) or height (top and
  bottom). At the default 0.04 the mean IoU of a drawn box with its reference is about 0.88,
  close to the agreement measured between careful crowd annotators (ILSVRC boxes, Papadopoulos
  et al. 2017); boxes are then clipped to the image and kept at least 1 px wide and high.
* **Misses.** Each reference box is skipped with probability ``miss_rate``.
* **Extras.** With probability ``extra_rate`` per image the worker adds one box that matches no
  object: its size is a reference box's scaled by 0.5-1.5 (10-30% of the image side on an
  empty image), its place uniform in the image, its class uniform.
* **Class confusion.** Each drawn box gets a different class, uniform among the others, with
  probability ``class_confusion_rate`` (never with a single class).

Random numbers come from the ``random.Random`` the caller passes, consumed in a fixed order (per
reference box: miss, four edges, confusion; then the extra), so a seeded generator gives the same
drawing on every platform and Python version that keeps ``random``'s documented reproducibility.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from boxloop.core.boxes import Box
from boxloop.core.errors import ConfigError

if TYPE_CHECKING:
    import random
    from collections.abc import Sequence

    from boxloop.core.detections import Detections

MIN_SIDE_PX = 1.0
"""A drawn box is never narrower or lower than this: a person cannot draw a thinner one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnotatorNoise:
    """One simulated worker's error rates.

    Attributes:
        box_jitter: Standard deviation of each edge's displacement, as a fraction of the box's
            width (x edges) or height (y edges), in ``[0, 1]``.
        miss_rate: Probability that a reference box is not drawn, in ``[0, 1]``.
        extra_rate: Probability that the worker draws one box around no object in an image,
            in ``[0, 1]``.
        class_confusion_rate: Probability that a drawn box gets a wrong class, in ``[0, 1]``.

    Raises:
        ConfigError: Listing every value out of range.
    """

    box_jitter: float = 0.04
    miss_rate: float = 0.025
    extra_rate: float = 0.015
    class_confusion_rate: float = 0.01

    def __post_init__(self) -> None:
        problems = []
        for name in ("box_jitter", "miss_rate", "extra_rate", "class_confusion_rate"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (math.isfinite(value) and 0.0 <= value <= 1.0)
            ):
                problems.append(f"{name} must be a number in [0, 1], got {value!r}")
        if problems:
            raise ConfigError(problems)

    @classmethod
    def none(cls) -> AnnotatorNoise:
        """A perfect annotator: every worker redraws the reference exactly."""
        return cls(box_jitter=0.0, miss_rate=0.0, extra_rate=0.0, class_confusion_rate=0.0)


def _clamped(edges: list[float], image_wh: tuple[int, int]) -> tuple[float, ...]:
    """Edges clipped to the image, ordered, and at least ``MIN_SIDE_PX`` apart."""
    x_min, y_min, x_max, y_max = edges
    out: list[float] = []
    for low, high, side in ((x_min, x_max, image_wh[0]), (y_min, y_max, image_wh[1])):
        low, high = min(low, high), max(low, high)
        low, high = min(max(low, 0.0), side), min(max(high, 0.0), side)
        if high - low < MIN_SIDE_PX:  # images are >= 1 px, so the widened box still fits
            half = MIN_SIDE_PX / 2
            centre = min(max((low + high) / 2, half), side - half)
            low, high = centre - half, centre + half
        out.extend((low, high))
    return (out[0], out[2], out[1], out[3])


def _other_class(class_id: int, class_ids: Sequence[int], rng: random.Random) -> int:
    others = [c for c in class_ids if c != class_id]
    return rng.choice(others) if others else class_id


def _jittered(
    box: Box,
    noise: AnnotatorNoise,
    image_wh: tuple[int, int],
    rng: random.Random,
    class_ids: Sequence[int],
) -> Box:
    sx, sy = noise.box_jitter * box.width, noise.box_jitter * box.height
    edges = [
        box.x_min + rng.gauss(0.0, sx),
        box.y_min + rng.gauss(0.0, sy),
        box.x_max + rng.gauss(0.0, sx),
        box.y_max + rng.gauss(0.0, sy),
    ]
    class_id = box.class_id
    if rng.random() < noise.class_confusion_rate:
        class_id = _other_class(class_id, class_ids, rng)
    return Box.from_xyxy(_clamped(edges, image_wh), class_id)


def _extra(reference: Detections, rng: random.Random, class_ids: Sequence[int]) -> Box:
    width, height = reference.image_wh
    if reference.boxes:
        template = rng.choice(reference.boxes)
        scale = rng.uniform(0.5, 1.5)
        box_w, box_h = template.width * scale, template.height * scale
    else:
        box_w, box_h = width * rng.uniform(0.1, 0.3), height * rng.uniform(0.1, 0.3)
    box_w, box_h = min(max(box_w, MIN_SIDE_PX), width), min(max(box_h, MIN_SIDE_PX), height)
    x_min, y_min = rng.uniform(0.0, width - box_w), rng.uniform(0.0, height - box_h)
    class_id = rng.choice(class_ids) if class_ids else 0
    return Box.from_xyxy((x_min, y_min, x_min + box_w, y_min + box_h), class_id)


def draw_worker_boxes(
    reference: Detections,
    noise: AnnotatorNoise,
    rng: random.Random,
    class_ids: Sequence[int] = (),
) -> Detections:
    """One worker's human boxes (score ``None``) for an image whose true boxes are ``reference``.

    Args:
        reference: The true boxes, in pixels; its ``image_id`` and ``image_wh`` are kept.
        noise: The worker's error rates.
        rng: The worker's own generator (seed it per image and worker for reproducible runs).
        class_ids: The classes a worker can pick from, for confusion and extra boxes; the
            reference's own classes when empty.

    Returns:
        The drawn boxes: reference boxes in order (missed ones left out), then any extra box.
    """
    class_ids = sorted(set(class_ids) or {b.class_id for b in reference.boxes})
    drawn: list[Box] = []
    for box in reference.boxes:
        missed = rng.random() < noise.miss_rate
        jittered = _jittered(box, noise, reference.image_wh, rng, class_ids)
        if not missed:
            drawn.append(jittered)
    if rng.random() < noise.extra_rate:
        drawn.append(_extra(reference, rng, class_ids))
    return reference.with_boxes(drawn)
