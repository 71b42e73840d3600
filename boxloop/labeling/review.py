"""Review mode: a finished (or running) run's labels as a gallery, and corrections to them.

`LabelingApi` serves ``GET /api/v1/review/items`` and ``POST .../correct`` over a
`ReviewCatalog` (host-neutral: the local ``boxloop review OUT`` reads the run's output
manifest; an AWS host could read the same from S3). A correction is checked like a submitted
answer and journaled through the same `TaskStore` as an `Answer` of kind ``"review"`` before
the catalog applies it, so it survives any crash and becomes a human label in the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from boxloop.labeling.contract import ApiError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from boxloop.labeling.contract import Answer

KINDS = ("human", "auto", "left")
SORTS = ("confidence", "-confidence", "name")
MAX_PAGE = 200
REVIEW_JOB = "review"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewItem:
    """One image of the run as the gallery shows it.

    Attributes:
        item_id: The image's record id (hash of its source-ref).
        source_ref: The image as the output manifest names it.
        image: Where the host reads the image.
        width: Image width, pixels.
        height: Image height, pixels.
        kind: ``human`` (labeled by people, or corrected here), ``auto`` (by the model) or
            ``left`` (no label).
        confidence: The model's image confidence, when it scored the image.
        boxes: The label's boxes: ``{"class_id", "left", "top", "width", "height"}`` (plus
            ``score`` for a model's box).
    """

    item_id: str
    source_ref: str
    image: str
    width: int
    height: int
    kind: str
    confidence: float | None = None
    boxes: tuple[dict[str, Any], ...] = ()

    def to_json(self, image_url: str) -> dict[str, Any]:
        """The ``items[]`` entry of ``GET /review/items``."""
        return {
            "item_id": self.item_id,
            "source_ref": self.source_ref,
            "image_url": image_url,
            "width": self.width,
            "height": self.height,
            "kind": self.kind,
            "confidence": self.confidence,
            "boxes": [dict(b) for b in self.boxes],
        }


class ReviewCatalog(Protocol):
    """The run's images for review, and where corrections go."""

    name: str
    classes: dict[int, str]

    def items(self) -> Sequence[ReviewItem]:
        """Every image of the run, as it is labeled now (corrections applied)."""
        ...

    def item(self, item_id: str) -> ReviewItem | None:
        """One image, or ``None``."""
        ...

    def apply(self, answer: Answer) -> None:
        """Make the journaled correction ``answer`` the image's human label in the output."""
        ...


def _sort_key(sort: str) -> Callable[[ReviewItem], Any]:
    """Images without a confidence (human labels, images never scored) come last."""
    if sort == "name":
        return lambda item: (item.source_ref, item.item_id)
    sign = -1.0 if sort == "-confidence" else 1.0
    return lambda item: (
        item.confidence is None,
        sign * (item.confidence or 0.0),
        item.item_id,
    )


def review_page(catalog: ReviewCatalog, query: dict[str, str]) -> tuple[list[ReviewItem], int]:
    """The items of ``GET /review/items?filter=&sort=&offset=&limit=`` and their total.

    ``filter`` is one of `KINDS` (empty: all); ``sort`` ``confidence`` (default: least
    confident first, images without one last), ``-confidence`` or ``name``.

    Raises:
        ApiError: ``bad_request`` naming the parameter.
    """
    kind = query.get("filter", "")
    if kind and kind not in KINDS:
        raise ApiError("bad_request", f"filter must be one of {KINDS}, got {kind!r}", "filter")
    sort = query.get("sort", "") or "confidence"
    if sort not in SORTS:
        raise ApiError("bad_request", f"sort must be one of {SORTS}, got {sort!r}", "sort")
    numbers = {}
    for name, default in (("offset", 0), ("limit", 50)):
        text = query.get(name, "") or str(default)
        if not text.isdigit():
            raise ApiError("bad_request", f"{name} must be a whole number, got {text!r}", name)
        numbers[name] = int(text)
    limit = min(numbers["limit"], MAX_PAGE)
    chosen = [item for item in catalog.items() if not kind or item.kind == kind]
    chosen.sort(key=_sort_key(sort))
    offset = numbers["offset"]
    return chosen[offset : offset + limit], len(chosen)
