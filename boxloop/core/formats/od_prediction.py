"""The built-in Object Detection algorithm's batch-transform output <-> Detections.

Each ``.out`` file holds ``{"prediction": [[class_id, score, xmin, ymin, xmax, ymax], ...]}``
with coordinates NORMALIZED to the image size; turning them into pixels needs ``image_wh``,
which the output does not carry.
"""

from __future__ import annotations

import json
import math
from typing import Any

from boxloop.core.boxes import Box, ImageWH, clip_xyxy, normalized_to_pixel, pixel_to_normalized
from boxloop.core.detections import Detections
from boxloop.core.errors import ManifestError

PREDICTION_KEY = "prediction"


def _row_to_box(row: Any, index: int, image_wh: ImageWH, source: str) -> Box | None:
    where = f"{PREDICTION_KEY}[{index}]"
    if not isinstance(row, list) or len(row) != 6:
        raise ManifestError(
            "must be [class_id, score, xmin, ymin, xmax, ymax]", source=source, field=where
        )
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in row
    ):
        raise ManifestError(f"must hold six finite numbers, got {row}", source=source, field=where)
    class_value, score = row[0], float(row[1])
    if class_value < 0 or class_value != int(class_value):
        # The algorithm writes -1 for padding rows when asked for a fixed number of boxes.
        return None
    if not 0.0 <= score <= 1.0:
        raise ManifestError(f"score must be in [0, 1], got {score}", source=source, field=where)
    xyxy = clip_xyxy(normalized_to_pixel((row[2], row[3], row[4], row[5]), image_wh), image_wh)
    if xyxy[2] <= xyxy[0] or xyxy[3] <= xyxy[1]:
        return None
    return Box.from_xyxy(xyxy, int(class_value), score)


def od_prediction_to_detections(
    data: Any, image_id: str, image_wh: ImageWH, *, source: str = "<transform output>"
) -> Detections:
    """Parse one decoded ``.out`` document into pixel Detections (clipped to the image).

    Padding rows (class -1) and boxes that clip to nothing are dropped: they are not
    detections.

    Raises:
        ManifestError: naming ``source`` and the bad row.
    """
    if not isinstance(data, dict) or not isinstance(data.get(PREDICTION_KEY), list):
        raise ManifestError(
            'must be {"prediction": [[class, score, xmin, ymin, xmax, ymax], ...]}', source=source
        )
    boxes = (_row_to_box(row, i, image_wh, source) for i, row in enumerate(data[PREDICTION_KEY]))
    return Detections(image_id=image_id, image_wh=image_wh, boxes=tuple(b for b in boxes if b))


def parse_od_prediction(
    text: str | bytes, image_id: str, image_wh: ImageWH, *, source: str = "<transform output>"
) -> Detections:
    """Like ``od_prediction_to_detections`` for the raw ``.out`` file content."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"is not valid JSON ({exc})", source=source) from None
    return od_prediction_to_detections(data, image_id, image_wh, source=source)


def detections_to_od_prediction(detections: Detections) -> dict[str, list[list[float]]]:
    """The ``.out`` document for pixel Detections (boxes need scores; human boxes get 1.0)."""
    rows = []
    for box in detections.boxes:
        x_min, y_min, x_max, y_max = pixel_to_normalized(box.xyxy, detections.image_wh)
        score = 1.0 if box.score is None else box.score
        rows.append([float(box.class_id), score, x_min, y_min, x_max, y_max])
    return {PREDICTION_KEY: rows}
