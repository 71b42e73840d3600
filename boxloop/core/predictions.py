"""One line of ``predictions.jsonl``: what post-processing says about one image, typed.

Post-processing writes these lines and filter-low-confidence (and the benchmarks that replay
it) read them, so the line is one type with one ``to_json``/``from_json`` pair instead of dict
keys spelt in each step. A line is either *scored* (image size, confidence, the kept boxes in
pixels with their scores) or *missing* (the transform wrote no output for the image, or its
header could not be read): a missing image has no confidence and goes to humans.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boxloop.core.boxes import Box
from boxloop.core.detections import Detections
from boxloop.core.errors import BoxError, ManifestError
from boxloop.core.manifests import iter_json_lines

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from boxloop.core.boxes import ImageWH
    from boxloop.core.confidence import ImageConfidence

SCORE_DIGITS = 6
"""Decimals kept of a score or confidence on the line (a millionth ranks as well as a float)."""
PIXEL_DIGITS = 3
"""Decimals kept of a pixel coordinate (a thousandth of a pixel)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Prediction:
    """Post-processing's verdict on one image.

    Attributes:
        image_id: The ledger record's id (lines are sorted by it, as the ledger is).
        image_wh: ``(width, height)`` in pixels; ``None`` only for a missing image whose header
            could not be read.
        confidence: The image's confidence in ``[0, 1]`` (``boxloop.core.confidence``);
            ``None`` when missing.
        is_empty: The model says the image holds no object (nothing kept, nothing ambiguous).
        n_ambiguous: Boxes in the ambiguous band (scored, not kept).
        kept: The boxes an auto-label would hold: pixel xyxy, each with its score.
        missing: No usable output for this image: it stays open for humans.
        reason: Why it is missing, when known (the header error).
    """

    image_id: str
    image_wh: ImageWH | None
    confidence: float | None = None
    is_empty: bool = False
    n_ambiguous: int = 0
    kept: tuple[Box, ...] = ()
    missing: bool = False
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.missing:
            if self.confidence is not None or self.kept:
                raise BoxError(f"image {self.image_id!r}: a missing prediction has no boxes")
            return
        if self.image_wh is None:
            raise BoxError(f"image {self.image_id!r}: a scored prediction needs image_wh")
        if self.confidence is None or not 0.0 <= self.confidence <= 1.0:
            raise BoxError(
                f"image {self.image_id!r}: confidence must be in [0, 1], got {self.confidence!r}"
            )
        if any(box.score is None for box in self.kept):
            raise BoxError(f"image {self.image_id!r}: every kept box needs its score")

    @classmethod
    def scored(cls, image_id: str, image_wh: ImageWH, result: ImageConfidence) -> Prediction:
        """The line of an image that was predicted and scored, rounded as it is written.

        Rounding here, not in ``to_json``, keeps ``from_json(to_json(p)) == p``.
        """
        return cls(
            image_id=image_id,
            image_wh=image_wh,
            confidence=round(result.value, SCORE_DIGITS),
            is_empty=result.is_empty,
            n_ambiguous=result.n_ambiguous,
            kept=tuple(_rounded(box) for box in result.kept),
        )

    @classmethod
    def absent(
        cls, image_id: str, image_wh: ImageWH | None = None, *, reason: str | None = None
    ) -> Prediction:
        """The line of an image the transform wrote nothing for (or that could not be read)."""
        return cls(image_id=image_id, image_wh=image_wh, missing=True, reason=reason)

    @property
    def detections(self) -> Detections:
        """The kept boxes as pixel Detections with scores (what an auto-label would hold)."""
        if self.image_wh is None:
            raise BoxError(f"image {self.image_id!r}: a missing prediction has no detections")
        return Detections(image_id=self.image_id, image_wh=self.image_wh, boxes=self.kept)

    def to_json(self) -> dict[str, Any]:
        """The line's JSON object: ``kept`` rows are ``[class, score, x_min, y_min, x_max, y_max]``.

        A missing image is ``{"id", "image_wh"?, "missing": true, "reason"?}``.
        """
        if self.missing:
            data: dict[str, Any] = {"id": self.image_id}
            if self.image_wh is not None:
                data["image_wh"] = list(self.image_wh)
            data["missing"] = True
            if self.reason is not None:
                data["reason"] = self.reason
            return data
        return {
            "id": self.image_id,
            "image_wh": list(self.image_wh or ()),
            "confidence": self.confidence,
            "is_empty": self.is_empty,
            "n_ambiguous": self.n_ambiguous,
            "kept": [[b.class_id, b.score, b.x_min, b.y_min, b.x_max, b.y_max] for b in self.kept],
        }

    @classmethod
    def from_json(
        cls, data: Any, *, source: str = "predictions", line: int | None = None
    ) -> Prediction:
        """Parse one line's object (a million a pass: the checks are written out, not looped).

        Raises:
            ManifestError: naming ``source``, ``line`` and the field that is wrong.
        """
        try:
            return _parsed(cls, data)
        except _BadField as exc:
            raise ManifestError(
                exc.reason, source=source, line=line, field=exc.field, hint=_HINT
            ) from None


def iter_predictions(lines: Iterable[bytes | str], *, source: str) -> Iterator[Prediction]:
    """Parse ``predictions.jsonl`` lines (streamed from S3 or disk), one ``Prediction`` each.

    Raises:
        ManifestError: at the first bad line, naming ``source`` and the line number.
    """
    for item in iter_json_lines(lines, source=source):
        if isinstance(item, ManifestError):
            raise item
        line, data = item
        yield Prediction.from_json(data, source=source, line=line)


def _rounded(box: Box) -> Box:
    return Box(
        x_min=round(box.x_min, PIXEL_DIGITS),
        y_min=round(box.y_min, PIXEL_DIGITS),
        x_max=round(box.x_max, PIXEL_DIGITS),
        y_max=round(box.y_max, PIXEL_DIGITS),
        class_id=box.class_id,
        score=round(box.score or 0.0, SCORE_DIGITS),
    )


_HINT = "predictions.jsonl is written by post-processing; re-run that step"


class _BadField(Exception):
    """One field of a line is wrong (``from_json`` turns it into a located ManifestError)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _parsed(cls: type[Prediction], data: Any) -> Prediction:
    if type(data) is not dict:
        raise _BadField("line", f"must be an object, got {type(data).__name__}")
    image_id = data.get("id")
    if type(image_id) is not str or not image_id:
        raise _BadField("id", f"must be a non-empty string, got {image_id!r}")
    image_wh = _image_wh(data.get("image_wh"))
    try:
        if data.get("missing") is True:
            reason = data.get("reason")
            return cls.absent(image_id, image_wh, reason=str(reason) if reason else None)
        rows = data.get("kept")
        if type(rows) is not list:
            raise _BadField("kept", f"must be a list, got {rows!r}")
        confidence = data.get("confidence")
        if type(confidence) is not float and type(confidence) is not int:
            raise _BadField("confidence", f"must be a number, got {confidence!r}")
        is_empty = data.get("is_empty")
        if type(is_empty) is not bool:
            raise _BadField("is_empty", f"must be true or false, got {is_empty!r}")
        n_ambiguous = data.get("n_ambiguous")
        if type(n_ambiguous) is not int or n_ambiguous < 0:
            raise _BadField("n_ambiguous", f"must be a whole number >= 0, got {n_ambiguous!r}")
        return cls(
            image_id=image_id,
            image_wh=image_wh,
            confidence=float(confidence),
            is_empty=is_empty,
            n_ambiguous=n_ambiguous,
            kept=tuple([_box(row, i) for i, row in enumerate(rows)]),
        )
    except BoxError as exc:
        raise _BadField("line", str(exc)) from None


def _image_wh(value: Any) -> tuple[int, int] | None:
    """``(w, h)``, or ``None`` when absent; else two positive integers."""
    if value is None:
        return None
    if type(value) is list and len(value) == 2:
        w, h = value
        if type(w) is int and type(h) is int and w > 0 and h > 0:
            return (w, h)
    raise _BadField("image_wh", f"must be [width, height] in pixels, got {value!r}")


def _box(row: Any, index: int) -> Box:
    """A kept row ``[class, score, x_min, y_min, x_max, y_max]``; Box checks the numbers."""
    if (
        type(row) is not list
        or len(row) != 6
        or type(row[0]) is not int
        or (type(row[1]) is not float and type(row[1]) is not int)
    ):
        raise _BadField(
            f"kept[{index}]", f"must be [class, score, x_min, y_min, x_max, y_max], got {row!r}"
        )
    class_id, score, x_min, y_min, x_max, y_max = row
    try:
        return Box(
            x_min=x_min, y_min=y_min, x_max=x_max, y_max=y_max, class_id=class_id, score=score
        )
    except BoxError as exc:
        raise _BadField(f"kept[{index}]", str(exc)) from None
