"""COCO object-detection JSON (``images``, ``annotations``, ``categories``) <-> Detections."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from boxloop.core.boxes import Box, clip_box, is_inside, xywh_to_xyxy, xyxy_to_xywh
from boxloop.core.detections import Detections
from boxloop.core.errors import ManifestError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

EDGE_TOLERANCE_PX = 0.5
"""Boxes may overshoot the image by this much (rounding in exporters); they are clipped."""


def _error(source: str, reason: str, path: str, hint: str | None = None) -> ManifestError:
    return ManifestError(reason, source=source, field=path, hint=hint)


def _get(container: Any, key: str, path: str, kind: type | tuple[type, ...], source: str) -> Any:
    """``container[key]`` checked against ``kind`` (bools are never numbers)."""
    if not isinstance(container, dict):
        raise _error(source, f"must be an object, got {type(container).__name__}", path)
    if key not in container:
        raise _error(source, "is missing", f"{path}.{key}")
    value = container[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _error(source, f"must be of type {names}, got {value!r}", f"{path}.{key}")
    return value


def _get_list(dataset: Any, key: str, source: str, *, required: bool = True) -> list[Any]:
    if not isinstance(dataset, dict):
        raise _error(source, f"must be a COCO object, got {type(dataset).__name__}", "<root>")
    if key not in dataset and not required:
        return []
    return _get(dataset, key, "<root>", list, source)


def coco_categories(dataset: Mapping[str, Any], *, source: str = "<coco>") -> dict[int, str]:
    """The class map of a COCO dataset: category id -> name, ids kept as they are.

    Raises:
        ManifestError: a category lacks an int ``id`` >= 0 or a str ``name``, or ids repeat.
    """
    class_map: dict[int, str] = {}
    for index, category in enumerate(_get_list(dataset, "categories", source)):
        path = f"categories[{index}]"
        category_id = _get(category, "id", path, int, source)
        name = _get(category, "name", path, str, source)
        if category_id < 0:
            raise _error(source, f"must be >= 0, got {category_id}", f"{path}.id")
        if category_id in class_map:
            raise _error(source, f"repeats category id {category_id}", f"{path}.id")
        class_map[category_id] = name
    return class_map


_Images = dict[int, tuple[str, tuple[int, int]]]
"""COCO image id -> (file_name, image_wh)."""


def _parse_images(dataset: Mapping[str, Any], source: str) -> _Images:
    images: _Images = {}
    for index, image in enumerate(_get_list(dataset, "images", source)):
        path = f"images[{index}]"
        image_id = _get(image, "id", path, int, source)
        file_name = _get(image, "file_name", path, str, source)
        width = _get(image, "width", path, int, source)
        height = _get(image, "height", path, int, source)
        if width <= 0 or height <= 0:
            raise _error(source, f"must be positive, got {width}x{height}", f"{path}.width")
        if image_id in images:
            raise _error(source, f"repeats image id {image_id}", f"{path}.id")
        images[image_id] = (file_name, (width, height))
    return images


def _parse_annotation(
    annotation: Any,
    path: str,
    images: _Images,
    class_map: Mapping[int, str],
    source: str,
) -> tuple[int, Box]:
    image_id = _get(annotation, "image_id", path, int, source)
    if image_id not in images:
        raise _error(source, f"refers to unknown image id {image_id}", f"{path}.image_id",
                     "every annotation's image_id must be listed in images")
    category_id = _get(annotation, "category_id", path, int, source)
    if category_id not in class_map:
        raise _error(source, f"refers to unknown category {category_id} (known: "
                     f"{sorted(class_map)})", f"{path}.category_id", "add it to categories")
    if annotation.get("iscrowd", 0):
        raise _error(source, "is 1; crowd regions are not boxes boxloop can label",
                     f"{path}.iscrowd", "drop crowd annotations before importing")
    bbox = _get(annotation, "bbox", path, list, source)
    if len(bbox) != 4 or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in bbox
    ):
        raise _error(source, f"must be 4 finite numbers [x, y, width, height], got {bbox!r}",
                     f"{path}.bbox")
    if bbox[2] < 0 or bbox[3] < 0:
        raise _error(source, f"width and height must be >= 0, got {bbox!r}", f"{path}.bbox")
    score = None
    if "score" in annotation:
        score = _get(annotation, "score", path, (int, float), source)
        if not 0.0 <= score <= 1.0:
            raise _error(source, f"must be in [0, 1], got {score}", f"{path}.score")
        score = float(score)
    box = Box.from_xyxy(xywh_to_xyxy(tuple(float(v) for v in bbox)), category_id, score)
    image_wh = images[image_id][1]
    if not is_inside(box, image_wh, tolerance_px=EDGE_TOLERANCE_PX):
        raise _error(source, f"{bbox!r} lies outside the {image_wh[0]}x{image_wh[1]} image",
                     f"{path}.bbox", "bbox is pixel [x, y, width, height], not normalized")
    return image_id, clip_box(box, image_wh)


def coco_to_detections(
    dataset: Mapping[str, Any], *, source: str = "<coco>"
) -> Iterator[tuple[str, Detections]]:
    """``(file_name, Detections)`` per COCO image, in the order of ``images``.

    COCO's ``bbox`` is pixel ``[x_min, y_min, width, height]`` with continuous edges, the same
    geometry as boxloop's xyxy, so conversion is exact up to float rounding. Category ids are
    kept as class ids (COCO's own are non-contiguous too: 1..90 with gaps). An annotation's
    ``score`` (COCO result files) becomes the box score; without one the box is a human label.

    ``Detections.image_id`` is the COCO image id as a string; boxes keep the annotations' order
    and their ``category_id`` as class id (read the names with ``coco_categories``). An image
    without annotations yields empty Detections. Boxes overshooting the image by at most
    ``EDGE_TOLERANCE_PX`` are clipped. The whole dataset is checked before anything is returned.

    Args:
        dataset: The parsed JSON object (``json.load``), ground truth or with ``score``s.
        source: Name used in error messages (the file name).

    Raises:
        ManifestError: naming ``annotations[i].<field>`` (or ``images[i]``/``categories[i]``):
            a missing or mistyped field, a box outside its image, an unknown image id or
            category, ``iscrowd`` set, a score outside [0, 1].
    """
    class_map = coco_categories(dataset, source=source)
    images = _parse_images(dataset, source)
    boxes: dict[int, list[Box]] = {image_id: [] for image_id in images}
    for index, annotation in enumerate(_get_list(dataset, "annotations", source, required=False)):
        image_id, box = _parse_annotation(
            annotation, f"annotations[{index}]", images, class_map, source
        )
        boxes[image_id].append(box)
    return iter([
        (file_name, Detections(str(image_id), image_wh, tuple(boxes[image_id])))
        for image_id, (file_name, image_wh) in images.items()
    ])


def _coco_image_ids(items: list[tuple[str, Detections]]) -> list[int]:
    """Keep numeric ``image_id``s when all are unique decimals (a COCO round trip); else 1..N."""
    ids = [d.image_id for _, d in items]
    if all(i.isdecimal() for i in ids) and len({int(i) for i in ids}) == len(ids):
        return [int(i) for i in ids]
    return list(range(1, len(items) + 1))


def detections_to_coco(
    items: Iterable[tuple[str, Detections]], class_map: Mapping[int, str]
) -> dict[str, Any]:
    """A COCO dataset dict of ``(file_name, Detections)`` items, ready for ``json.dump``.

    Category ids are the boxloop class ids (``categories`` lists every entry of ``class_map``),
    ``bbox`` is pixel ``[x, y, width, height]``, ``area`` is width * height, ``iscrowd`` is 0, and
    a box with a score gets ``score`` (a COCO result file reads the same annotations). Image ids
    are the ``image_id``s when they are all unique decimal strings, else 1..N in order;
    annotation ids are 1..M.

    Raises:
        ManifestError: a box's class id is not in ``class_map``.
    """
    items = list(items)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for (file_name, detections), image_id in zip(items, _coco_image_ids(items), strict=True):
        width, height = detections.image_wh
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for index, box in enumerate(detections.boxes):
            if box.class_id not in class_map:
                raise ManifestError(
                    f"class id {box.class_id} is not in the class map {sorted(class_map)}",
                    source=file_name, field=f"boxes[{index}].class_id", hint="add it to class_map",
                )
            x, y, w, h = xyxy_to_xywh(box.xyxy)
            annotation: dict[str, Any] = {
                "id": len(annotations) + 1, "image_id": image_id, "category_id": box.class_id,
                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0,
            }
            if box.score is not None:
                annotation["score"] = box.score
            annotations.append(annotation)
    categories = [
        {"id": c, "name": class_map[c], "supercategory": "none"} for c in sorted(class_map)
    ]
    return {"images": images, "annotations": annotations, "categories": categories}
