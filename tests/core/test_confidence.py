from __future__ import annotations

import random
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boxloop.core.boxes import Box
from boxloop.core.confidence import (
    AGGREGATORS,
    AggregatorName,
    ConfidenceConfig,
    ImageConfidence,
    image_confidence,
)
from boxloop.core.detections import Detections
from boxloop.core.errors import BoxError, ConfigError

IMAGE_WH = (640, 480)
scores_st = st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=20)


def dets(*scores: float | None, class_ids: tuple[int, ...] | None = None) -> Detections:
    """One 10x10 box per score, side by side, class 0 unless given."""
    classes = class_ids or (0,) * len(scores)
    boxes = tuple(
        Box.from_xyxy((12 * i, 0, 12 * i + 10, 10), class_id=c, score=s)
        for i, (s, c) in enumerate(zip(scores, classes, strict=True))
    )
    return Detections(image_id="img", image_wh=IMAGE_WH, boxes=boxes)


# Default config: floor 0.05, ambiguous band [0.15, 0.5), kept >= 0.5, aggregator "ambiguity".
@pytest.mark.parametrize(
    ("scores", "value", "n_kept", "n_ambiguous", "is_empty"),
    [
        # 0 boxes: truly empty, nothing to doubt
        ((), 1.0, 0, 0, True),
        # only a sub-floor box: dropped as noise, still truly empty at 1.0
        ((0.04,), 1.0, 0, 0, True),
        # a weak box (floor <= s < band_low): truly empty, but only 1 - 0.1 sure of it
        ((0.1,), 0.9, 0, 0, True),
        # the floor is inclusive: a 0.05 box is weak, not dropped
        ((0.05,), 0.95, 0, 0, True),
        # "everything missed?": nothing kept, one ambiguous box
        ((0.3,), 0.7, 0, 1, False),
        # "everything missed?" with a nearly kept box: low confidence
        ((0.45,), 0.55, 0, 1, False),
        # band_low is inclusive: 0.15 is ambiguous
        ((0.15,), 0.85, 0, 1, False),
        # keep_threshold is inclusive: 0.5 is kept
        ((0.5,), 0.5, 1, 0, False),
        # one kept box
        ((0.9,), 0.9, 1, 0, False),
        # two kept boxes: the weakest decides
        ((0.9, 0.6), 0.6, 2, 0, False),
        # kept + ambiguous: the ambiguous box caps the value at 1 - 0.3
        ((0.9, 0.3), 0.7, 1, 1, False),
        # kept + nearly kept: 1 - 0.45
        ((0.95, 0.45), 0.55, 1, 1, False),
        # kept + weak: a weak box does not lower an image that has kept boxes
        ((0.95, 0.1), 0.95, 1, 0, False),
        # 20 kept boxes 0.80..0.99: the minimum
        (tuple(0.8 + i / 100 for i in range(20)), 0.8, 20, 0, False),
    ],
)
def test_image_confidence_bands_table(
    scores: tuple[float, ...], value: float, n_kept: int, n_ambiguous: int, is_empty: bool
) -> None:
    result = image_confidence(dets(*scores))
    assert result.value == pytest.approx(value)
    assert len(result.kept) == n_kept
    assert result.n_ambiguous == n_ambiguous
    assert result.is_empty is is_empty


# Scores used below: kept 0.9 and 0.7, ambiguous 0.4, weak 0.1, dropped 0.01.
MIXED = (0.9, 0.7, 0.4, 0.1, 0.01)


@pytest.mark.parametrize(
    ("aggregator", "scores", "value"),
    [
        # min: weakest kept box
        ("min", MIXED, 0.7),
        # ambiguity: the lower of 0.7 and 1 - 0.4
        ("ambiguity", MIXED, 0.6),
        # margin at keep 0.5: the lower of (0.7 - 0.5) / 0.5 and (0.5 - 0.4) / 0.5
        ("margin", MIXED, 0.2),
        # margin with nothing kept: (0.5 - 0.3) / 0.5 is below the cap 0.7
        ("margin", (0.3, 0.2), 0.4),
        # margin, truly empty: capped on its own scale, (0.5 - 0.1) / 0.5
        ("margin", (0.1,), 0.8),
        # min with nothing kept ("everything missed?"): capped at 1 - max ambiguous
        ("min", (0.3, 0.2), 0.7),
        # ambiguity with nothing kept: same value by its own formula
        ("ambiguity", (0.3, 0.2), 0.7),
        # truly empty images score the same under every aggregator: 1 - 0.1
        ("min", (0.1,), 0.9),
        # truly empty: ambiguity
        ("ambiguity", (0.1,), 0.9),
        # truly empty with no box at all: 1.0 under any aggregator
        ("min", (), 1.0),
    ],
)
def test_image_confidence_aggregator_table(
    aggregator: AggregatorName, scores: tuple[float, ...], value: float
) -> None:
    config = ConfidenceConfig(aggregator=aggregator)
    assert image_confidence(dets(*scores), config).value == pytest.approx(value)


def test_aggregators_registry_matches_literal() -> None:
    assert set(AGGREGATORS) == set(get_args(AggregatorName))


def test_aggregators_return_one_when_given_nothing() -> None:
    for name, aggregate in AGGREGATORS.items():
        for keep_threshold in (0.3, 0.5, 1.0):
            assert aggregate((), (), keep_threshold) == 1.0, name


def test_margin_scales_each_side_by_its_room() -> None:
    # keep 0.6: a kept 0.65 is 0.125 of the way from 0.6 to 1; an ambiguous 0.2 is 2/3 of the
    # way from 0.6 down to 0. ambiguity would instead rank this image by the 0.2 box (0.8).
    config = ConfidenceConfig(aggregator="margin", keep_threshold=0.6)
    assert image_confidence(dets(0.65, 0.2), config).value == pytest.approx(0.125)
    assert image_confidence(dets(0.95, 0.2), config).value == pytest.approx(2 / 3)
    ambiguity = ConfidenceConfig(aggregator="ambiguity", keep_threshold=0.6)
    assert image_confidence(dets(0.65, 0.2), ambiguity).value == pytest.approx(0.65)


def test_margin_with_every_kept_box_at_one_and_keep_threshold_one() -> None:
    config = ConfidenceConfig(aggregator="margin", keep_threshold=1.0)
    assert image_confidence(dets(1.0, 1.0), config).value == 1.0


@given(scores=scores_st)
def test_margin_is_two_ambiguity_minus_one_at_keep_one_half(scores: list[float]) -> None:
    # The same ranking (and so the same auto-labels) as the prototype's min_amb at 0.5.
    def value(name: AggregatorName) -> float:
        return image_confidence(dets(*scores), ConfidenceConfig(aggregator=name)).value

    assert value("margin") == pytest.approx(max(0.0, 2 * value("ambiguity") - 1), abs=1e-9)


def test_image_confidence_kept_keeps_image_boxes_and_scores() -> None:
    predicted = dets(0.9, 0.3, 0.6, class_ids=(4, 0, 17))
    result = image_confidence(predicted)
    assert isinstance(result, ImageConfidence)
    assert result.kept.image_id == "img"
    assert result.kept.image_wh == IMAGE_WH
    assert result.kept.boxes == (predicted.boxes[0], predicted.boxes[2])
    assert result.kept.class_ids == (4, 17)


def test_image_confidence_raises_when_box_has_no_score() -> None:
    with pytest.raises(BoxError, match="box 1 has no score"):
        image_confidence(dets(0.9, None))


@pytest.mark.parametrize(
    ("kwargs", "band"),
    [
        # default: the prototype's min(0.15, 0.5 / 2)
        ({}, (0.15, 0.5)),
        # low keep threshold: half of it
        ({"keep_threshold": 0.2}, (0.1, 0.2)),
        # the derived band never starts below the floor
        ({"score_floor": 0.3, "keep_threshold": 0.4}, (0.3, 0.4)),
        # explicit band_low
        ({"band_low": 0.25}, (0.25, 0.5)),
        # band_low == keep_threshold: empty band
        ({"band_low": 0.5}, (0.5, 0.5)),
    ],
)
def test_confidence_config_ambiguous_band_table(kwargs: dict, band: tuple[float, float]) -> None:
    assert ConfidenceConfig(**kwargs).ambiguous_band == pytest.approx(band)


def test_image_confidence_treats_band_box_as_weak_when_band_is_empty() -> None:
    result = image_confidence(dets(0.4), ConfidenceConfig(band_low=0.5))
    assert (result.is_empty, result.n_ambiguous, result.value) == (True, 0, pytest.approx(0.6))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # unknown aggregator name
        ({"aggregator": "max"}, "aggregator must be one of"),
        # score outside [0, 1]
        ({"score_floor": -0.1}, "score_floor must be a number in"),
        # not a number at all
        ({"keep_threshold": "0.5"}, "keep_threshold must be a number in"),
        # NaN
        ({"band_low": float("nan")}, "band_low must be a number in"),
        # keep 0 would keep every box
        ({"keep_threshold": 0.0, "score_floor": 0.0}, "keep_threshold must be > 0"),
        # floor above keep
        ({"score_floor": 0.6}, r"score_floor \(0.6\) must be <= keep_threshold"),
        # band_low below the floor
        ({"band_low": 0.01}, r"band_low \(0.01\) must lie in"),
        # band_low above keep
        ({"band_low": 0.7}, r"band_low \(0.7\) must lie in"),
    ],
)
def test_confidence_config_raises_table(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ConfidenceConfig(**kwargs)


def test_confidence_config_lists_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        ConfidenceConfig(aggregator="max", score_floor=2.0, keep_threshold=-1.0)  # type: ignore[arg-type]
    assert len(info.value.problems) == 3


@given(scores=scores_st, name=st.sampled_from(sorted(AGGREGATORS)))
def test_image_confidence_properties(scores: list[float], name: AggregatorName) -> None:
    config = ConfidenceConfig(aggregator=name)
    result = image_confidence(dets(*scores), config)
    band_low, keep = config.ambiguous_band
    kept = [s for s in scores if s >= keep]
    ambiguous = [s for s in scores if config.score_floor <= s < keep and s >= band_low]
    assert 0.0 <= result.value <= 1.0
    assert list(result.kept.scores) == kept
    assert result.n_ambiguous == len(ambiguous)
    assert result.is_empty == (not kept and not ambiguous)
    if name in ("min", "ambiguity") and kept:
        assert result.value <= min(kept)
    if name == "ambiguity" and ambiguous:
        assert result.value <= 1.0 - max(ambiguous)
    if not kept:
        considered = [s for s in scores if s >= config.score_floor]
        assert result.value <= 1.0 - max(considered, default=0.0)
        if name == "margin":
            assert result.value <= (keep - max(considered, default=0.0)) / keep
    shuffled = list(scores)
    random.Random(0).shuffle(shuffled)
    assert image_confidence(dets(*shuffled), config).value == result.value
