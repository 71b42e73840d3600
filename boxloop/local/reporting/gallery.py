"""The least confident auto-labels of a run, as thumbnails with their boxes, for the report.

An auto-label is only as good as the model's confidence in its image; the ones just above the
threshold are where a wrong label hides. The report shows those first, small, so a user sees
at a glance whether the threshold was too generous, and opens the run in the labeling app
(``boxloop review OUT``) to correct any.
"""

from __future__ import annotations

import base64
import heapq
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, UnidentifiedImageError

from boxloop.steps.run import iter_records

if TYPE_CHECKING:
    from collections.abc import Callable

    from boxloop.core.records import Record

GALLERY_SIZE = 12
THUMB_SIDE = 180
_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")


@dataclass(frozen=True, slots=True, kw_only=True)
class GalleryItem:
    """One auto-labeled image as the report shows it.

    Attributes:
        source_ref: The image as the output manifest names it.
        confidence: The model's image confidence that passed the threshold.
        threshold: The calibrated threshold it passed, when recorded.
        iteration: The iteration that auto-labeled it.
        boxes: Boxes in the auto-label.
        thumbnail: A JPEG of the image with its boxes drawn, or ``None`` when the image could
            not be read (moved or deleted since the run).
    """

    source_ref: str
    confidence: float
    threshold: float | None
    iteration: int | None
    boxes: int
    thumbnail: bytes | None

    def data_uri(self) -> str | None:
        """The thumbnail as a ``data:`` URI for an ``<img src>``, or ``None``."""
        if self.thumbnail is None:
            return None
        return "data:image/jpeg;base64," + base64.b64encode(self.thumbnail).decode("ascii")


def least_confident_auto_labels(
    output_manifest: Path | str,
    label_attribute: str,
    *,
    base_dir: Path,
    limit: int = GALLERY_SIZE,
    side: int = THUMB_SIDE,
    read_image: Callable[[str], bytes] | None = None,
) -> list[GalleryItem]:
    """The ``limit`` auto-labels of lowest image confidence, lowest first, with thumbnails.

    The manifest is streamed and only ``limit`` records are held; only those images are read.

    Args:
        output_manifest: The run's ``output.manifest``: a local file (source-refs are the
            user's paths) or a deployed run's ``s3://`` URI, streamed either way.
        label_attribute: The run's label attribute.
        base_dir: Where relative source-refs are resolved.
        limit: How many to show.
        side: Longest side of a thumbnail, pixels.
        read_image: Reads an image's bytes by its source-ref, for images that are not local
            files (a deployed run's ``s3://`` images, fetched through presigned URLs by
            ``boxloop aws report``); default: open the file under ``base_dir``.
    """
    lowest = heapq.nsmallest(
        limit,
        (
            (record.provenance.confidence, record.id, record)
            for record in iter_records(str(output_manifest), label_attribute)
            if record.label is not None
            and not record.is_human_labeled
            and record.provenance.confidence is not None
        ),
        key=lambda item: (item[0], item[1]),
    )
    return [
        GalleryItem(
            source_ref=record.source_ref,
            confidence=confidence,
            threshold=record.provenance.threshold,
            iteration=record.provenance.iteration,
            boxes=len(record.label.detections.boxes) if record.label else 0,
            thumbnail=_thumbnail(record, base_dir, side, read_image),
        )
        for confidence, _, record in lowest
    ]


def _thumbnail(
    record: Record, base_dir: Path, side: int, read_image: Callable[[str], bytes] | None = None
) -> bytes | None:
    """The image shrunk to ``side`` with the label's boxes drawn (class colour, score)."""
    path = Path(record.source_ref)
    if not path.is_absolute():
        path = base_dir / path
    try:
        source = io.BytesIO(read_image(record.source_ref)) if read_image else path
        with Image.open(source) as original:
            image = original.convert("RGB")
    except (OSError, UnidentifiedImageError):
        return None
    scale = min(1.0, side / max(image.size))
    if scale < 1.0:
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.LANCZOS,
        )
    draw = ImageDraw.Draw(image)
    assert record.label is not None
    for box in record.label.detections.boxes:
        color = _COLORS[box.class_id % len(_COLORS)]
        xy = (box.x_min * scale, box.y_min * scale, box.x_max * scale, box.y_max * scale)
        draw.rectangle(xy, outline=color, width=2)
        if box.score is not None:
            draw.text((xy[0] + 3, xy[1] + 2), f"{box.score:.2f}", fill=color)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()
