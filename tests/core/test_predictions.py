"""The prediction line: one type, one to_json/from_json pair, between post-processing and filter."""

from __future__ import annotations

import json

import pytest

from boxloop.core.boxes import Box
from boxloop.core.confidence import ConfidenceConfig, image_confidence
from boxloop.core.detections import Detections
from boxloop.core.errors import BoxError, ManifestError
from boxloop.core.predictions import Prediction, iter_predictions

KEPT = (
    Box(x_min=0.0, y_min=0.0, x_max=50.0, y_max=50.0, class_id=0, score=0.9),
    Box(x_min=10.5, y_min=20.25, x_max=30.125, y_max=40.0, class_id=7, score=0.55),
)


@pytest.mark.parametrize(
    "prediction",
    [
        # many boxes, non-contiguous class ids
        Prediction(image_id="a", image_wh=(640, 480), confidence=0.7, n_ambiguous=2, kept=KEPT),
        # the model says: no object
        Prediction(image_id="b", image_wh=(64, 48), confidence=1.0, is_empty=True),
        # nothing kept, something ambiguous: "everything missed?"
        Prediction(image_id="c", image_wh=(64, 48), confidence=0.2, n_ambiguous=1),
        # a zero-size box on the image's edge
        Prediction(
            image_id="d",
            image_wh=(64, 48),
            confidence=0.5,
            kept=(Box(x_min=64.0, y_min=48.0, x_max=64.0, y_max=48.0, class_id=0, score=0.5),),
        ),
        # the transform wrote no .out for it
        Prediction.absent("e", (64, 48)),
        # its header could not be read: no size at all
        Prediction.absent("f", reason="not a JPEG or PNG"),
    ],
    ids=["boxes", "empty", "ambiguous", "edge", "missing", "unreadable"],
)
def test_prediction_round_trips_through_json(prediction: Prediction) -> None:
    text = json.dumps(prediction.to_json())
    assert Prediction.from_json(json.loads(text)) == prediction


def test_prediction_scored_rounds_as_written_so_the_line_round_trips() -> None:
    # GIVEN a confidence result with unrounded scores and coordinates
    boxes = (Box(x_min=1.23456, y_min=2.0, x_max=30.0001, y_max=40.0, class_id=1, score=0.1234567),)
    result = image_confidence(
        Detections(image_id="x", image_wh=(100, 100), boxes=boxes),
        ConfidenceConfig(keep_threshold=0.1),
    )
    # WHEN it becomes a line
    prediction = Prediction.scored("x", (100, 100), result)
    # THEN the line holds what the file holds, and reads back equal
    assert prediction.kept[0].xyxy == (1.235, 2.0, 30.0, 40.0)
    assert prediction.kept[0].score == 0.123457
    assert Prediction.from_json(json.loads(json.dumps(prediction.to_json()))) == prediction


def test_prediction_json_keeps_the_documented_row_layout() -> None:
    line = Prediction(image_id="a", image_wh=(640, 480), confidence=0.7, kept=KEPT[:1]).to_json()
    assert line == {
        "id": "a",
        "image_wh": [640, 480],
        "confidence": 0.7,
        "is_empty": False,
        "n_ambiguous": 0,
        "kept": [[0, 0.9, 0.0, 0.0, 50.0, 50.0]],
    }
    assert Prediction.absent("f", reason="bad").to_json() == {
        "id": "f",
        "missing": True,
        "reason": "bad",
    }


def test_prediction_detections_are_the_kept_boxes_in_pixels() -> None:
    prediction = Prediction(image_id="a", image_wh=(640, 480), confidence=0.7, kept=KEPT)
    detections = prediction.detections
    assert detections.image_wh == (640, 480)
    assert detections.boxes == KEPT


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"image_wh": [1, 1], "confidence": 1.0, "is_empty": True, "n_ambiguous": 0}, "id"),
        # a size of zero
        ({"id": "a", "image_wh": [0, 5], "missing": True}, "image_wh"),
        ({"id": "a", "image_wh": [5, 5], "confidence": "high", "kept": []}, "confidence"),
        # a row of five
        (
            {"id": "a", "image_wh": [5, 5], "confidence": 0.5, "is_empty": False,
             "n_ambiguous": 0, "kept": [[0, 0.5, 0, 0, 1]]},
            "kept[0]",
        ),
        # x_max < x_min
        (
            {"id": "a", "image_wh": [5, 5], "confidence": 0.5, "is_empty": False,
             "n_ambiguous": 0, "kept": [[0, 0.5, 3, 0, 1, 1]]},
            "kept[0]",
        ),
        # a class id as text, a coordinate as text
        (
            {"id": "a", "image_wh": [5, 5], "confidence": 0.5, "is_empty": False,
             "n_ambiguous": 0, "kept": [["0", 0.5, 0, 0, 1, 1]]},
            "kept[0]",
        ),
        (
            {"id": "a", "image_wh": [5, 5], "confidence": 0.5, "is_empty": False,
             "n_ambiguous": 0, "kept": [[0, 0.5, "0", 0, 1, 1]]},
            "kept[0]",
        ),
        # a confidence above 1
        (
            {"id": "a", "image_wh": [5, 5], "confidence": 1.5, "is_empty": False,
             "n_ambiguous": 0, "kept": []},
            "line",
        ),
        ({"id": "a", "image_wh": [5, 5], "confidence": 0.5, "is_empty": False,
          "n_ambiguous": -1, "kept": []}, "n_ambiguous"),
    ],
)  # fmt: skip
def test_prediction_from_json_names_the_bad_field(data: dict, field: str) -> None:
    with pytest.raises(ManifestError) as caught:
        Prediction.from_json(data, source="p.jsonl", line=3)
    assert caught.value.field == field
    assert str(caught.value).startswith("p.jsonl:3: ")


def test_prediction_refuses_a_scored_line_without_a_size() -> None:
    with pytest.raises(BoxError, match="needs image_wh"):
        Prediction(image_id="a", image_wh=None, confidence=0.5)


def test_iter_predictions_names_file_and_line_of_bad_json() -> None:
    good = json.dumps(Prediction.absent("a").to_json())
    with pytest.raises(ManifestError, match=r"p\.jsonl:2"):
        list(iter_predictions([good.encode(), b"{not json"], source="p.jsonl"))
