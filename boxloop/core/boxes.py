"""The Box value type, coordinate converters, clipping and IoU.

Canonical coordinates are absolute pixel floats ``(x_min, y_min, x_max, y_max)``. Every other
coordinate system is an edge format and is converted with a ``<from>_to_<to>`` function here;
conversions between pixels and normalized values always take ``image_wh`` explicitly, because
mixing the two on non-square images is the bug every reference implementation had.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from boxloop.core.errors import BoxError

if TYPE_CHECKING:
    from collections.abc import Sequence

XYXY = tuple[float, float, float, float]
"""(x_min, y_min, x_max, y_max)."""
XYWH = tuple[float, float, float, float]
"""(x_min, y_min, width, height): COCO's bbox and Ground Truth's left/top/width/height."""
CXCYWH = tuple[float, float, float, float]
"""(x_center, y_center, width, height): YOLO's layout (normalized there)."""
ImageWH = tuple[int, int]
"""(width, height) of an image in pixels."""
_NUMBER = (int, float)
"""What a coordinate or score may be (a tuple: ``isinstance`` checks it faster than a union)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Box:
    """An axis-aligned box in absolute pixel coordinates.

    Attributes:
        x_min: Left edge, pixels.
        y_min: Top edge, pixels.
        x_max: Right edge, pixels (>= x_min; equal means a zero-width box).
        y_max: Bottom edge, pixels (>= y_min).
        class_id: Non-negative integer class id, as in the label config's class map.
        score: Model confidence in [0, 1]; ``None`` marks a human label.
    """

    x_min: float
    y_min: float
    x_max: float
    y_max: float
    class_id: int
    score: float | None = None

    def __post_init__(self) -> None:
        # Every box of every ledger line and prediction passes here (millions per step), so
        # the checks are written out instead of looping over a tuple: same rules, 3x faster.
        x_min, y_min, x_max, y_max = self.x_min, self.y_min, self.x_max, self.y_max
        if not (
            isinstance(x_min, _NUMBER)
            and isinstance(y_min, _NUMBER)
            and isinstance(x_max, _NUMBER)
            and isinstance(y_max, _NUMBER)
            and math.isfinite(x_min)
            and math.isfinite(y_min)
            and math.isfinite(x_max)
            and math.isfinite(y_max)
        ):
            raise BoxError(f"box coordinates must be finite numbers, got {self.xyxy}")
        if x_max < x_min or y_max < y_min:
            raise BoxError(
                f"box must have x_max >= x_min and y_max >= y_min, got xyxy={self.xyxy}"
            )
        class_id = self.class_id
        if isinstance(class_id, bool) or not isinstance(class_id, int):
            raise BoxError(f"class_id must be an int, got {class_id!r}")
        if class_id < 0:
            raise BoxError(f"class_id must be >= 0, got {class_id}")
        score = self.score
        if score is not None and not (isinstance(score, _NUMBER) and 0.0 <= score <= 1.0):
            raise BoxError(f"score must be in [0, 1] or None, got {score!r}")

    @classmethod
    def from_xyxy(cls, xyxy: Sequence[float], class_id: int, score: float | None = None) -> Box:
        """Build a box from a pixel ``(x_min, y_min, x_max, y_max)`` sequence."""
        x_min, y_min, x_max, y_max = xyxy
        return cls(
            x_min=float(x_min),
            y_min=float(y_min),
            x_max=float(x_max),
            y_max=float(y_max),
            class_id=class_id,
            score=score,
        )

    @property
    def xyxy(self) -> XYXY:
        """Pixel ``(x_min, y_min, x_max, y_max)``."""
        return (self.x_min, self.y_min, self.x_max, self.y_max)

    @property
    def width(self) -> float:
        """Width in pixels."""
        return self.x_max - self.x_min

    @property
    def height(self) -> float:
        """Height in pixels."""
        return self.y_max - self.y_min

    @property
    def area(self) -> float:
        """Area in square pixels (0 for a degenerate box)."""
        return self.width * self.height

    @property
    def is_human(self) -> bool:
        """True for a reference (human) label, which carries no model score."""
        return self.score is None

    def with_score(self, score: float | None) -> Box:
        """The same box with another score (``None`` turns it into a reference label)."""
        return replace(self, score=score)


def xyxy_to_xywh(xyxy: XYXY) -> XYWH:
    """(x_min, y_min, x_max, y_max) -> (x_min, y_min, width, height), same units."""
    x_min, y_min, x_max, y_max = xyxy
    return (x_min, y_min, x_max - x_min, y_max - y_min)


def xywh_to_xyxy(xywh: XYWH) -> XYXY:
    """(x_min, y_min, width, height) -> (x_min, y_min, x_max, y_max), same units."""
    x_min, y_min, width, height = xywh
    return (x_min, y_min, x_min + width, y_min + height)


def xyxy_to_cxcywh(xyxy: XYXY) -> CXCYWH:
    """(x_min, y_min, x_max, y_max) -> (x_center, y_center, width, height), same units."""
    x_min, y_min, x_max, y_max = xyxy
    return ((x_min + x_max) / 2, (y_min + y_max) / 2, x_max - x_min, y_max - y_min)


def cxcywh_to_xyxy(cxcywh: CXCYWH) -> XYXY:
    """(x_center, y_center, width, height) -> (x_min, y_min, x_max, y_max), same units."""
    cx, cy, width, height = cxcywh
    return (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)


def _check_image_wh(image_wh: ImageWH) -> tuple[int, int]:
    width, height = image_wh
    if width <= 0 or height <= 0:
        raise BoxError(f"image_wh must be positive (width, height), got {image_wh}")
    return width, height


def normalized_to_pixel(xyxy: XYXY, image_wh: ImageWH) -> XYXY:
    """Normalized ``[0, 1]`` xyxy -> pixel xyxy for an image of ``image_wh=(width, height)``."""
    width, height = _check_image_wh(image_wh)
    x_min, y_min, x_max, y_max = xyxy
    return (x_min * width, y_min * height, x_max * width, y_max * height)


def pixel_to_normalized(xyxy: XYXY, image_wh: ImageWH) -> XYXY:
    """Pixel xyxy -> normalized ``[0, 1]`` xyxy for an image of ``image_wh=(width, height)``."""
    width, height = _check_image_wh(image_wh)
    x_min, y_min, x_max, y_max = xyxy
    return (x_min / width, y_min / height, x_max / width, y_max / height)


def clip_xyxy(xyxy: XYXY, image_wh: ImageWH) -> XYXY:
    """Clip pixel xyxy to the image; a box fully outside collapses onto the nearest edge."""
    width, height = _check_image_wh(image_wh)
    x_min, y_min, x_max, y_max = xyxy
    # min(max(v, 0.0), side) and max(low, high) written out: the same values (NaN and -0.0
    # included), four times faster; post-processing clips every predicted box.
    x_min = 0.0 if x_min < 0.0 else (width if width < x_min else x_min)
    x_max = 0.0 if x_max < 0.0 else (width if width < x_max else x_max)
    y_min = 0.0 if y_min < 0.0 else (height if height < y_min else y_min)
    y_max = 0.0 if y_max < 0.0 else (height if height < y_max else y_max)
    return (x_min, y_min, x_max if x_max > x_min else x_min, y_max if y_max > y_min else y_min)


def clip_box(box: Box, image_wh: ImageWH) -> Box:
    """The box clipped to the image bounds (class and score kept)."""
    return Box.from_xyxy(clip_xyxy(box.xyxy, image_wh), box.class_id, box.score)


def is_inside(box: Box, image_wh: ImageWH, *, tolerance_px: float = 0.5) -> bool:
    """True when the box lies within the image, allowing ``tolerance_px`` of rounding."""
    width, height = _check_image_wh(image_wh)
    return (
        box.x_min >= -tolerance_px
        and box.y_min >= -tolerance_px
        and box.x_max <= width + tolerance_px
        and box.y_max <= height + tolerance_px
    )


def iou_xyxy(a: XYXY, b: XYXY) -> float:
    """Intersection over union of two xyxy boxes in the same units; 0 when both are empty."""
    inter_w = min(a[2], b[2]) - max(a[0], b[0])
    inter_h = min(a[3], b[3]) - max(a[1], b[1])
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes, ignoring their classes."""
    return iou_xyxy(a.xyxy, b.xyxy)


def iou_matrix(rows: Sequence[Box], cols: Sequence[Box]) -> list[list[float]]:
    """``result[i][j] = iou(rows[i], cols[j])``; plain lists keep core free of numpy."""
    return [[iou_xyxy(r.xyxy, c.xyxy) for c in cols] for r in rows]
