"""Model boxes shown to the labeler as editable suggestions, carried in the input manifest.

PrepareLabeling writes them into each pool image's labeling input line under
`PREANNOTATIONS_KEY` (the latest model's kept boxes, those at or above ``keep_threshold``), so
the labeling job needs no other lookup, on either host. Validation, audit, seed and test
images never carry them: their human labels measure the model, and anchoring them on the
model's guesses would bias calibration. The key is an input-only field: the labeling job's
output lines leave it out (the local runner; the AWS finish step must too), so it never
reaches merge, the ledger or the run's output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from boxloop.labeling.contract import PreBox

if TYPE_CHECKING:
    from boxloop.core.predictions import Prediction

PREANNOTATIONS_KEY = "boxloop-preannotations"


def task_role(provenance: dict[str, Any]) -> str:
    """The role the page shows: ``audit`` for an audited image, else the record's role."""
    return "audit" if provenance.get("audit") else str(provenance.get("role", "pool"))


def wants_preannotations(provenance: dict[str, Any], setting: str) -> bool:
    """Whether an image with this (input-line) provenance gets model boxes.

    ``setting`` is ``LoopConfig.preannotate``: ``pool`` (default) shows them on pool images,
    ``none`` never; other roles never get them, whatever the setting.
    """
    return setting == "pool" and task_role(provenance) == "pool"


def field_from_prediction(prediction: Prediction) -> dict[str, Any]:
    """The input-line field for one ``predictions.jsonl`` line: its kept boxes, pixel xywh.

    Rows are ``[class_id, score, left, top, width, height]``.
    """
    boxes = [
        [
            b.class_id,
            float(b.score or 0.0),
            b.x_min,
            b.y_min,
            round(b.x_max - b.x_min, 3),
            round(b.y_max - b.y_min, 3),
        ]
        for b in prediction.kept
    ]
    return {"boxes": boxes}


def preboxes_from_field(value: Any) -> tuple[PreBox, ...]:
    """The suggestions of an input line's field (``()`` when absent or malformed)."""
    if not isinstance(value, dict):
        return ()
    boxes = []
    for row in value.get("boxes") or ():
        try:
            class_id, score, left, top, width, height = row
            boxes.append(
                PreBox(
                    class_id=int(class_id),
                    left=float(left),
                    top=float(top),
                    width=float(width),
                    height=float(height),
                    score=float(score),
                )
            )
        except (TypeError, ValueError):
            continue
    return tuple(b for b in boxes if b.width > 0 and b.height > 0)
