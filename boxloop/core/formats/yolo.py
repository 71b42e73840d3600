"""YOLO label text (one ``class cx cy w h`` line per box, normalized to [0, 1]) <-> Detections."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from boxloop.core.boxes import (
    Box,
    clip_box,
    cxcywh_to_xyxy,
    is_inside,
    normalized_to_pixel,
    xyxy_to_cxcywh,
)
from boxloop.core.detections import Detections
from boxloop.core.errors import BoxError, ManifestError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from boxloop.core.boxes import ImageWH

EDGE_TOLERANCE_PX = 0.5
"""Boxes may overshoot the image by this many pixels (rounded fractions); they are clipped."""


def _parse_line(line: str, image_wh: ImageWH, source: str, line_number: int) -> Box:
    fields = line.split()
    if len(fields) not in (5, 6):
        raise ManifestError(f"must be 'class cx cy w h [score]', got {len(fields)} fields",
                            source=source, line=line_number)
    if not fields[0].isdecimal():
        raise ManifestError(f"must be a non-negative integer, got {fields[0]!r}", source=source,
                            line=line_number, field="class")
    names = ("cx", "cy", "w", "h", "score")
    values = []
    for name, raw in zip(names, fields[1:], strict=False):
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ManifestError(f"must be a number, got {raw!r}", source=source,
                                line=line_number, field=name)
        values.append(value)
    cx, cy, w, h = values[:4]
    score = values[4] if len(values) == 5 else None
    if w < 0 or h < 0:
        raise ManifestError(f"w and h must be >= 0, got w={w} h={h}", source=source,
                            line=line_number)
    xyxy = normalized_to_pixel(cxcywh_to_xyxy((cx, cy, w, h)), image_wh)
    try:
        box = Box.from_xyxy(xyxy, int(fields[0]), score)
    except BoxError as exc:
        raise ManifestError(str(exc), source=source, line=line_number) from exc
    if not is_inside(box, image_wh, tolerance_px=EDGE_TOLERANCE_PX):
        raise ManifestError(
            f"box cx={cx} cy={cy} w={w} h={h} lies outside the image", source=source,
            line=line_number,
            hint="YOLO values are fractions of the image size in [0, 1], not pixels",
        )
    return clip_box(box, image_wh)


def yolo_to_detections(
    text: str | Iterable[str], image_wh: ImageWH, *, image_id: str, source: str = "<yolo>"
) -> Detections:
    """Read one YOLO label file into pixel Detections for an image of ``image_wh``.

    Centers and sizes are fractions of the image's width (cx, w) and height (cy, h); on a
    non-square image swapping the two is the classic bug. An optional sixth column is the score
    (ultralytics' ``save_conf``); five columns make a human label.

    Blank lines are skipped; an empty file is an image without boxes. Boxes overshooting the
    image by at most ``EDGE_TOLERANCE_PX`` are clipped.

    Args:
        text: The file's text, or its lines (a text file object works).
        image_wh: ``(width, height)`` of the image in pixels; YOLO files do not store it.
        image_id: ``Detections.image_id``.
        source: Name used in error messages (the .txt path).

    Raises:
        ManifestError: at ``source:<line>`` (1-based): not 5 or 6 fields, a class that is not a
            non-negative integer, a non-number, a negative size, a score outside [0, 1], or a
            box outside the image (pixel values where fractions belong).
    """
    lines = text.splitlines() if isinstance(text, str) else text
    boxes = tuple(
        _parse_line(line, image_wh, source, number)
        for number, line in enumerate(lines, start=1)
        if line.strip()
    )
    return Detections(image_id, image_wh, boxes)


def detections_to_yolo(detections: Detections) -> str:
    """The YOLO label text of ``detections``: one line per box, ``""`` for an image without boxes.

    Fractions are written with 12 significant digits (under 1e-6 px of error on any image up
    to 100,000 px, without float noise such as 0.19999999999999996), and a box with a score
    gets it as a sixth column, exactly (``repr``).
    """
    width, height = detections.image_wh
    lines = []
    for box in detections.boxes:
        cx, cy, w, h = xyxy_to_cxcywh(box.xyxy)
        fractions = (cx / width, cy / height, w / width, h / height)
        columns = [str(box.class_id), *(f"{v:.12g}" for v in fractions)]
        if box.score is not None:
            columns.append(repr(float(box.score)))
        lines.append(" ".join(columns) + "\n")
    return "".join(lines)
