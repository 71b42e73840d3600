"""Per-image confidence of a model's predicted boxes, and which boxes become the auto-label.

Every predicted box falls in one of three score bands (scores in ``[0, 1]``)::

    [0, score_floor)              dropped: detector noise, never looked at
    [score_floor, band_low)       weak: not kept, not ambiguous
    [band_low, keep_threshold)    ambiguous: "is there an object or not?"
    [keep_threshold, 1]           kept: these boxes become the auto-label

An aggregator turns the kept and ambiguous scores into one number in ``[0, 1]``. The local
detector's prototype found that plain ``min`` of kept scores (the AWS samples' rule) misses
images with a half-confident extra or missed object, and that ``ambiguity`` (its ``min_amb``)
ranks the most confident images best (research/local-detector.md §5). The prototype's other
aggregators (mean kept score, ambiguous-box count) ranked worse and were removed.
``margin`` is ``ambiguity`` generalised to keep thresholds other than 0.5 (identical ranking at
0.5); with ``keep_threshold`` 0.6 it ranked the demo detector's images better (see its doc).

Images with no kept box are handled the same way for every aggregator: their auto-label would
be "no objects", and the strongest unkept box (at or above the floor) is roughly the chance
that this is wrong, so the value is capped at ``1 - that score`` (see :func:`image_confidence`;
``margin`` uses its own scale, ``(keep_threshold - that score) / keep_threshold``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, Protocol

from boxloop.core.detections import Detections
from boxloop.core.errors import BoxError, ConfigError

AggregatorName = Literal["min", "ambiguity", "margin"]
"""The registered aggregators (see :data:`AGGREGATORS`)."""

DEFAULT_BAND_LOW = 0.15
"""The prototype's band start: ``band_low = min(0.15, keep_threshold / 2)`` unless set."""


class Aggregator(Protocol):
    """Turns an image's kept and ambiguous box scores into a confidence in ``[0, 1]``.

    Both sequences may be empty; with both empty the result must be 1.0 (nothing to doubt).
    ``keep_threshold`` is the score that split them (kept >= it > ambiguous).
    """

    def __call__(
        self, kept: Sequence[float], ambiguous: Sequence[float], keep_threshold: float, /
    ) -> float:
        """Confidence in ``[0, 1]``; higher means the kept boxes are more likely right."""
        ...


def aggregate_min(
    kept: Sequence[float], ambiguous: Sequence[float], keep_threshold: float, /
) -> float:
    """The lowest kept score: one doubtful box makes the whole image doubtful.

    The AWS samples' rule (an image is auto-labeled when every kept box scores >= 0.5), kept
    so the label-efficiency benchmark can run it (``bench.label_efficiency.configs``).
    """
    del ambiguous, keep_threshold
    return min(kept, default=1.0)


def aggregate_ambiguity(
    kept: Sequence[float], ambiguous: Sequence[float], keep_threshold: float, /
) -> float:
    """``min(min kept score, 1 - max ambiguous score)``: the prototype's ``min_amb``.

    An ambiguous box is a possible missed object (the auto-label lacks it) or a possible
    false positive that nearly got kept; either way the image is at most ``1 - its score`` sure.
    """
    del keep_threshold
    return min(min(kept, default=1.0), 1.0 - max(ambiguous, default=0.0))


def aggregate_margin(
    kept: Sequence[float], ambiguous: Sequence[float], keep_threshold: float, /
) -> float:
    """How far the least certain box is from flipping its keep decision, scaled per side.

    A kept score ``s`` counts ``(s - t) / (1 - t)`` and an ambiguous score ``a`` counts
    ``(t - a) / t``, for ``t = keep_threshold``; the image gets the minimum (1.0 for nothing).
    Each side is measured against the room it has, so neither side dominates when ``t`` is
    not 0.5: with ``ambiguity`` at ``t = 0.6`` a kept box at 0.65 (barely kept) scores 0.65
    but an ambiguous box at 0.2 (clearly dropped) caps the image at 0.8, so the band decides
    the ranking. At ``t = 0.5`` this is ``2 * ambiguity - 1``, the same ranking.

    Measured on 600 held-out demo images (seed 0, keep 0.6) after training on 100 / 140 / 180
    labels, the share of images that can be auto-labeled at 90% image exact match was
    0.52 / 0.59 / 0.74 ranked by ``margin`` against 0.27 / 0.45 / 0.66 by ``ambiguity``.
    """
    t = keep_threshold
    kept_room = min(((s - t) / (1.0 - t) for s in kept), default=1.0) if t < 1.0 else 1.0
    dropped_room = min(((t - a) / t for a in ambiguous), default=1.0)
    return min(kept_room, dropped_room)


AGGREGATORS: Mapping[AggregatorName, Aggregator] = MappingProxyType(
    {
        "min": aggregate_min,
        "ambiguity": aggregate_ambiguity,
        "margin": aggregate_margin,
    }
)
"""Name -> aggregator; the config names one of these keys."""


def _is_unit(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0.0 <= value <= 1.0
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfidenceConfig:
    """How predicted boxes are split into bands and aggregated (all scores in ``[0, 1]``).

    Attributes:
        aggregator: Name of the aggregator in :data:`AGGREGATORS`.
        score_floor: Boxes scored below this are dropped before anything else (noise).
        keep_threshold: Boxes scored at or above this are kept and form the auto-label.
        band_low: Start of the ambiguous band ``[band_low, keep_threshold)``. ``None`` takes the
            prototype's ``min(0.15, keep_threshold / 2)``, raised to ``score_floor`` if needed.
            ``band_low == keep_threshold`` disables the band.

    Raises:
        ConfigError: Listing every invalid value; needs
            ``0 <= score_floor <= band_low <= keep_threshold <= 1`` and ``keep_threshold > 0``.
    """

    aggregator: AggregatorName = "ambiguity"
    score_floor: float = 0.05
    keep_threshold: float = 0.5
    band_low: float | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.aggregator not in AGGREGATORS:
            problems.append(
                f"aggregator must be one of {sorted(AGGREGATORS)}, got {self.aggregator!r}"
            )
        named = {"score_floor": self.score_floor, "keep_threshold": self.keep_threshold}
        if self.band_low is not None:
            named["band_low"] = self.band_low
        bad = [name for name, value in named.items() if not _is_unit(value)]
        problems.extend(f"{name} must be a number in [0, 1], got {named[name]!r}" for name in bad)
        if not bad:
            if self.keep_threshold <= 0:
                problems.append("keep_threshold must be > 0, or every box (even score 0) is kept")
            if self.score_floor > self.keep_threshold:
                problems.append(
                    f"score_floor ({self.score_floor}) must be <= keep_threshold "
                    f"({self.keep_threshold})"
                )
            if self.band_low is not None and not (
                self.score_floor <= self.band_low <= self.keep_threshold
            ):
                problems.append(
                    f"band_low ({self.band_low}) must lie in [score_floor, keep_threshold] = "
                    f"[{self.score_floor}, {self.keep_threshold}]"
                )
        if problems:
            raise ConfigError(problems)

    @property
    def ambiguous_band(self) -> tuple[float, float]:
        """``(low, high)`` of the half-open ambiguous band ``[low, high)``."""
        if self.band_low is not None:
            return (self.band_low, self.keep_threshold)
        low = max(self.score_floor, min(DEFAULT_BAND_LOW, self.keep_threshold / 2))
        return (low, self.keep_threshold)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageConfidence:
    """The confidence of one image's predictions and the auto-label they would give.

    Attributes:
        value: Confidence in ``[0, 1]``; compared against the calibrated threshold.
        kept: The boxes scored at or above ``keep_threshold`` (with their scores): the
            auto-label if the image is accepted. Empty means "no objects".
        n_ambiguous: Number of boxes in the ambiguous band.
        is_empty: True when nothing is kept and nothing is ambiguous: the model says the image
            holds no object ("truly empty"), as opposed to "everything missed?" (nothing kept,
            something ambiguous).
    """

    value: float
    kept: Detections
    n_ambiguous: int
    is_empty: bool


def image_confidence(
    predicted: Detections, config: ConfidenceConfig | None = None
) -> ImageConfidence:
    """Score one image's predictions and pick the boxes its auto-label would hold.

    With kept boxes the value is ``aggregator(kept scores, ambiguous scores)``. With no kept
    box the auto-label would be "no objects", which is wrong if any unkept box is a real
    object, so the value is ``min(aggregator((), ambiguous scores), 1 - s)`` where ``s`` is the
    highest score among the boxes at or above ``score_floor`` (0 when there are none; ``margin``
    caps at ``(keep_threshold - s) / keep_threshold`` instead):

    * "truly empty" (no box at or above ``band_low``): ``1 - s`` with ``s < band_low``, so at
      least ``1 - band_low`` (0.85 by default), and 1.0 when the floor removed everything;
    * "everything missed?" (ambiguous boxes only): at most ``1 - max ambiguous score``.

    Args:
        predicted: The model's boxes for one image, pixels; every box must carry a score.
        config: Bands and aggregator; the defaults when ``None``.

    Returns:
        The value, the kept boxes, the ambiguous-box count and the empty flag.

    Raises:
        BoxError: When a box has no score (a human label is not a prediction).
    """
    config = config or ConfidenceConfig()
    band_low, keep_threshold = config.ambiguous_band
    kept_boxes = []
    kept: list[float] = []
    ambiguous: list[float] = []
    weak_max = 0.0
    for index, box in enumerate(predicted.boxes):
        score = box.score
        if score is None:
            raise BoxError(
                f"image {predicted.image_id!r}: box {index} has no score; confidence needs "
                "model predictions, not human labels"
            )
        if score < config.score_floor:
            continue
        if score >= keep_threshold:
            kept.append(score)
            kept_boxes.append(box)
        elif score >= band_low:
            ambiguous.append(score)
        else:
            weak_max = max(weak_max, score)
    value = AGGREGATORS[config.aggregator](kept, ambiguous, keep_threshold)
    if not kept:
        strongest = max(ambiguous, default=weak_max)
        if config.aggregator == "margin":  # on margin's own scale, so its ranking stays whole
            value = min(value, (keep_threshold - strongest) / keep_threshold)
        else:
            value = min(value, 1.0 - strongest)
    return ImageConfidence(
        value=min(max(value, 0.0), 1.0),
        kept=predicted.with_boxes(kept_boxes),
        n_ambiguous=len(ambiguous),
        is_empty=not kept and not ambiguous,
    )
