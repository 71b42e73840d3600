"""Pre-annotations for a labeling job: the latest model's kept boxes for its pool images.

PrepareLabeling calls `preannotations_for` with the ids of the part it sends; the boxes come
from the latest iteration's ``predictions.jsonl`` (post-processing's kept boxes, those at or
above ``keep_threshold``), read in one streamed pass that parses only the lines it needs, and
go into each pool image's input line (`boxloop.labeling.preannotations`). Validation, audit,
seed and test images never get them (see there).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from boxloop.aws.s3 import iter_lines, object_size
from boxloop.core.predictions import Prediction
from boxloop.labeling.preannotations import field_from_prediction
from boxloop.steps.postprocess import PREDICTIONS_FILE

if TYPE_CHECKING:
    from collections.abc import Collection

    from boxloop.core.config import LoopConfig
    from boxloop.steps.run import RunState

_ID_PREFIX = b'{"id":"'


def latest_predictions(run: RunState) -> str | None:
    """The previous iteration's predictions file, or ``None`` (iteration 0, nothing predicted)."""
    if run.iteration == 0:
        return None
    uri = run.paths.step(run.iteration - 1, "postprocess", PREDICTIONS_FILE)
    try:
        object_size(uri)
    except (FileNotFoundError, ClientError):
        return None
    return uri


def _line_id(raw: bytes) -> str | None:
    """The record id of a predictions line without parsing it (``json_line`` writes it first)."""
    if raw.startswith(_ID_PREFIX):
        end = raw.find(b'"', len(_ID_PREFIX))
        if end > 0:
            return raw[len(_ID_PREFIX) : end].decode()
    return None


def preannotations_for(
    run: RunState, config: LoopConfig, ids: Collection[str]
) -> dict[str, dict[str, Any]]:
    """Record id -> the input-line field of its pre-annotations, for ``ids`` that have them.

    Empty when the setting is ``none`` or no model has predicted yet. Memory is O(``ids``).
    """
    if config.preannotate == "none" or not ids:
        return {}
    uri = latest_predictions(run)
    if uri is None:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for raw in iter_lines(uri):
        rid = _line_id(raw)
        if rid is not None and rid not in ids:
            continue
        if not raw.strip():
            continue
        prediction = Prediction.from_json(json.loads(raw), source=uri)
        if prediction.image_id in ids and not prediction.missing:
            found[prediction.image_id] = field_from_prediction(prediction)
    return found
