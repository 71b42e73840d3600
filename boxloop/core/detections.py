"""Detections: every box of one image, the one value type that flows through boxloop's core."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from boxloop.core.boxes import Box, ImageWH, clip_box
from boxloop.core.errors import BoxError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator


@dataclass(frozen=True, slots=True)
class Detections:
    """The boxes of one image, in pixels.

    Attributes:
        image_id: The record id (hash of source-ref) or any stable image key.
        image_wh: ``(width, height)`` of the image in pixels.
        boxes: The boxes; empty means "no objects" (a human label) or "nothing detected".
    """

    image_id: str
    image_wh: ImageWH
    boxes: tuple[Box, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        width, height = self.image_wh
        if not (isinstance(width, int) and isinstance(height, int)) or width <= 0 or height <= 0:
            raise BoxError(
                f"image_wh must be positive integers (width, height), got {self.image_wh}"
            )
        if not isinstance(self.image_wh, tuple):  # JSON gives a list: unhashable, unequal
            object.__setattr__(self, "image_wh", (width, height))
        if not isinstance(self.boxes, tuple):
            object.__setattr__(self, "boxes", tuple(self.boxes))
        for box in self.boxes:
            if not isinstance(box, Box):
                raise BoxError(f"Detections.boxes must hold Box values, got {type(box).__name__}")

    @classmethod
    def empty(cls, image_id: str, image_wh: ImageWH) -> Detections:
        """An image with no boxes."""
        return cls(image_id=image_id, image_wh=image_wh, boxes=())

    def is_empty(self) -> bool:
        """True when the image has no boxes."""
        return not self.boxes

    def __len__(self) -> int:
        return len(self.boxes)

    def __iter__(self) -> Iterator[Box]:
        return iter(self.boxes)

    @property
    def scores(self) -> tuple[float | None, ...]:
        """The per-box scores, in box order (``None`` for human boxes)."""
        return tuple(b.score for b in self.boxes)

    @property
    def class_ids(self) -> tuple[int, ...]:
        """The per-box class ids, in box order."""
        return tuple(b.class_id for b in self.boxes)

    def with_boxes(self, boxes: Iterable[Box]) -> Detections:
        """The same image with other boxes."""
        return replace(self, boxes=tuple(boxes))

    def filter(self, keep: Callable[[Box], bool]) -> Detections:
        """Only the boxes for which ``keep(box)`` is true."""
        return self.with_boxes(b for b in self.boxes if keep(b))

    def above(self, score_floor: float) -> Detections:
        """Only boxes scored at or above ``score_floor`` (human boxes are always kept)."""
        return self.filter(lambda b: b.score is None or b.score >= score_floor)

    def clipped(self) -> Detections:
        """Every box clipped to the image, dropping boxes that collapse to zero area."""
        clipped = (clip_box(b, self.image_wh) for b in self.boxes)
        return self.with_boxes(b for b in clipped if b.area > 0)

    def as_human(self) -> Detections:
        """The same boxes as a reference label (scores removed)."""
        return self.with_boxes(b.with_score(None) for b in self.boxes)
