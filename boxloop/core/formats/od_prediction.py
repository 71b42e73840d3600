"""The built-in Object Detection algorithm's batch-transform output <-> Detections.

Each ``.out`` file holds ``{"prediction": [[class_id, score, xmin, ymin, xmax, ymax], ...]}``
with coordinates NORMALIZED to the image size; turning them into pixels needs ``image_wh``,
which the output does not carry.
"""

from __future__ import annotations

import json
from math import isfinite
from typing import Any

from boxloop.core.boxes import Box, ImageWH, clip_xyxy, normalized_to_pixel, pixel_to_normalized
from boxloop.core.detections import Detections
from boxloop.core.errors import ManifestError

PREDICTION_KEY = "prediction"
_NUMBER = (int, float)


def _row_to_box(
    row: Any, index: int, image_wh: ImageWH, source: str, score_floor: float
) -> Box | None:
    """One row as a pixel box, or ``None`` for a row that is not a detection to keep.

    Every row gets the cheap checks (six finite numbers, a score in [0, 1]) whatever its
    score, so a malformed row is an error even under ``score_floor``. Only the conversion to
    pixels and the ``Box``, most of a row's cost, are skipped for a row under the floor.
    """
    if not isinstance(row, list) or len(row) != 6:
        raise ManifestError(
            "must be [class_id, score, xmin, ymin, xmax, ymax]",
            source=source,
            field=_row_field(index),
        )
    for value in row:  # finite ints or floats; not bools (JSON true is not a number here)
        if not (isinstance(value, _NUMBER) and value.__class__ is not bool and isfinite(value)):
            raise ManifestError(
                f"must hold six finite numbers, got {row}", source=source, field=_row_field(index)
            )
    class_value, score = row[0], float(row[1])
    if class_value < 0 or class_value != int(class_value):
        # The algorithm writes -1 for padding rows when asked for a fixed number of boxes.
        return None
    if not 0.0 <= score <= 1.0:
        raise ManifestError(
            f"score must be in [0, 1], got {score}", source=source, field=_row_field(index)
        )
    if score < score_floor:
        return None
    xyxy = clip_xyxy(normalized_to_pixel((row[2], row[3], row[4], row[5]), image_wh), image_wh)
    if xyxy[2] <= xyxy[0] or xyxy[3] <= xyxy[1]:
        return None
    return Box.from_xyxy(xyxy, int(class_value), score)


def _row_field(index: int) -> str:
    """The dotted path of a row, for its error (built only when there is one)."""
    return f"{PREDICTION_KEY}[{index}]"


def od_prediction_to_detections(
    data: Any,
    image_id: str,
    image_wh: ImageWH,
    *,
    source: str = "<transform output>",
    score_floor: float = 0.0,
) -> Detections:
    """Parse one decoded ``.out`` document into pixel Detections (clipped to the image).

    Padding rows (class -1), boxes that clip to nothing and, with ``score_floor``, rows scored
    under it are dropped: they are not detections. Dropping under the floor here gives the
    same result as ``.above(score_floor)`` afterwards, without building boxes only to drop
    them.

    Raises:
        ManifestError: naming ``source`` and the bad row; every row is checked, dropped or not.
    """
    if not isinstance(data, dict) or not isinstance(data.get(PREDICTION_KEY), list):
        raise ManifestError(
            'must be {"prediction": [[class, score, xmin, ymin, xmax, ymax], ...]}', source=source
        )
    boxes = [
        _row_to_box(row, i, image_wh, source, score_floor)
        for i, row in enumerate(data[PREDICTION_KEY])
    ]
    return Detections(image_id=image_id, image_wh=image_wh, boxes=tuple(b for b in boxes if b))


def parse_od_prediction(
    text: str | bytes,
    image_id: str,
    image_wh: ImageWH,
    *,
    source: str = "<transform output>",
    score_floor: float = 0.0,
) -> Detections:
    """Like ``od_prediction_to_detections`` for the raw ``.out`` file content."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"is not valid JSON ({exc})", source=source) from None
    return od_prediction_to_detections(
        data, image_id, image_wh, source=source, score_floor=score_floor
    )


def detections_to_od_prediction(detections: Detections) -> dict[str, list[list[float]]]:
    """The ``.out`` document for pixel Detections (boxes need scores; human boxes get 1.0)."""
    rows = []
    for box in detections.boxes:
        x_min, y_min, x_max, y_max = pixel_to_normalized(box.xyxy, detections.image_wh)
        score = 1.0 if box.score is None else box.score
        rows.append([float(box.class_id), score, x_min, y_min, x_max, y_max])
    return {PREDICTION_KEY: rows}
