"""Submitted answers checked before they are stored: boxes against the image and the classes.

A bad box is refused with ``bad_box`` naming the box (``boxes[1].width``) and the fix, so the
page can point at it; nothing is clipped silently beyond `boxloop.core.boxes`'s half-pixel
tolerance for edges (a box dragged to the border lands a fraction past it).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from boxloop.core.boxes import Box, clip_box, is_inside
from boxloop.labeling.contract import MAX_BOXES, AnswerBox, ApiError

if TYPE_CHECKING:
    from collections.abc import Mapping

ORIGINS = ("human", "model")


def _number(value: Any, where: str, image: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError("bad_box", f"{where} of {image} must be a number, got {value!r}", where)
    return float(value)


def check_box(
    data: Any, index: int, image_wh: tuple[int, int], classes: Mapping[int, str], image: str
) -> AnswerBox:
    """One submitted box, checked against ``image_wh`` and ``classes`` and clipped to the image.

    Raises:
        ApiError: ``bad_box`` naming ``boxes[index].<field>`` and what to do.
    """
    where = f"boxes[{index}]"
    if not isinstance(data, dict):
        raise ApiError("bad_box", f"{where} of {image} must be an object, got {data!r}", where)
    class_id = data.get("class_id")
    if isinstance(class_id, bool) or not isinstance(class_id, int) or class_id not in classes:
        known = ", ".join(f"{i} ({n})" for i, n in sorted(classes.items()))
        raise ApiError(
            "bad_box",
            f"{where} of {image}: class {class_id!r} is not one of this job's classes "
            f"({known}); pick one of them",
            f"{where}.class_id",
        )
    left, top, width, height = (
        _number(data.get(k), f"{where}.{k}", image) for k in ("left", "top", "width", "height")
    )
    for name, value in (("width", width), ("height", height)):
        if value <= 0:
            raise ApiError(
                "bad_box",
                f"{where} of {image}: {name} {value:g} is not > 0; draw a box of at least "
                "1 pixel or delete it",
                f"{where}.{name}",
            )
    box = Box.from_xyxy((left, top, left + width, top + height), class_id)
    if not is_inside(box, image_wh):
        w, h = image_wh
        field = (
            "left" if left < 0 else "top" if top < 0 else "width" if left + width > w else "height"
        )
        raise ApiError(
            "bad_box",
            f"{where} of {image}: ({left:g}, {top:g}, {width:g}x{height:g}) reaches outside "
            f"the {w}x{h} image; move or resize it inside",
            f"{where}.{field}",
        )
    box = clip_box(box, image_wh)
    if box.x_max <= box.x_min or box.y_max <= box.y_min:
        raise ApiError(
            "bad_box",
            f"{where} of {image}: the box lies on the image border with no area inside; "
            "delete it or draw it inside",
            f"{where}.width",
        )
    origin = data.get("origin", "human")
    if origin not in ORIGINS:
        raise ApiError(
            "bad_box",
            f"{where}.origin of {image} must be one of {ORIGINS}, got {origin!r}",
            f"{where}.origin",
        )
    edited = data.get("edited", False)
    if not isinstance(edited, bool):
        raise ApiError(
            "bad_box", f"{where}.edited of {image} must be true or false", f"{where}.edited"
        )
    return AnswerBox(
        class_id=class_id,
        left=box.x_min,
        top=box.y_min,
        width=box.x_max - box.x_min,
        height=box.y_max - box.y_min,
        origin=origin,
        edited=edited,
    )


def check_boxes(
    body: Mapping[str, Any], image_wh: tuple[int, int], classes: Mapping[int, str], image: str
) -> tuple[tuple[AnswerBox, ...], bool]:
    """The submit body's ``boxes`` and ``no_objects``, checked.

    Raises:
        ApiError: ``bad_request`` (missing list, empty answer without ``no_objects``, boxes
            with ``no_objects``) or ``bad_box``.
    """
    boxes = body.get("boxes")
    if not isinstance(boxes, list):
        raise ApiError("bad_request", "boxes must be a list of boxes (may be empty)", "boxes")
    if len(boxes) > MAX_BOXES:
        raise ApiError(
            "bad_request",
            f"{len(boxes)} boxes for {image}: at most {MAX_BOXES} are taken per image",
            "boxes",
        )
    no_objects = body.get("no_objects", False)
    if not isinstance(no_objects, bool):
        raise ApiError("bad_request", "no_objects must be true or false", "no_objects")
    if not boxes and not no_objects:
        raise ApiError(
            "bad_request",
            f"no boxes for {image}: draw the objects, or answer 'no objects in this image' "
            "(no_objects: true) if there are none",
            "no_objects",
        )
    if boxes and no_objects:
        raise ApiError(
            "bad_request",
            f"{image}: 'no objects' was answered together with {len(boxes)} boxes; delete "
            "the boxes or untick 'no objects'",
            "no_objects",
        )
    checked = tuple(check_box(b, i, image_wh, classes, image) for i, b in enumerate(boxes))
    return checked, no_objects
