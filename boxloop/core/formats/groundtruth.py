"""Ground Truth bounding-box labels: ``<attr>`` + ``<attr>-metadata`` <-> ``Label``.

The record layout is SageMaker Ground Truth's output manifest for bounding boxes: pixel
``annotations`` of ``{class_id, left, top, width, height}``, ``image_size`` as a one-element
list, and metadata with one ``objects[].confidence`` per box. The reference implementations got
exactly these details wrong (image_size as a dict, box size set to the image size, one confidence
for many boxes), so the parser checks every one of them and names the field that is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from boxloop.core.boxes import Box, is_inside, xywh_to_xyxy, xyxy_to_xywh
from boxloop.core.detections import Detections
from boxloop.core.errors import BoxError, ManifestError

if TYPE_CHECKING:
    from collections.abc import Mapping

LABEL_TYPE = "groundtruth/object-detection"
METADATA_SUFFIX = "-metadata"
_LABEL_ATTRIBUTE_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Label:
    """A bounding-box label of one image, human or machine.

    Attributes:
        detections: The boxes in pixels. Machine labels carry each box's score; human labels
            carry ``score=None``.
        confidences: Ground Truth's ``objects[].confidence``, one per box, in box order. For a
            machine label they equal the box scores; for a human label they are the
            consolidation confidences (0.0 with one worker per object, as Ground Truth writes).
        class_map: Class id -> class name, as in ``class-map``.
        human_annotated: ``True`` for ``human-annotated: "yes"``.
        job_name: The labeling job (or boxloop auto-labeling step) that produced the label.
        creation_date: ISO 8601 timestamp, as Ground Truth writes it.
    """

    detections: Detections
    confidences: tuple[float, ...]
    class_map: Mapping[int, str] = field(default_factory=dict)
    human_annotated: bool
    job_name: str
    creation_date: str

    def __post_init__(self) -> None:
        if len(self.confidences) != len(self.detections.boxes):
            raise BoxError(
                f"a label needs one confidence per box: {len(self.confidences)} confidences for "
                f"{len(self.detections.boxes)} boxes"
            )


def check_label_attribute_name(name: str) -> str | None:
    """Why ``name`` cannot be a Ground Truth label attribute name, or ``None`` when it can.

    The rules are CreateLabelingJob's: 1-127 letters, digits and inner hyphens, not ending in
    ``-ref`` (reserved for segmentation) and never containing ``-metadata``.
    """
    if not isinstance(name, str) or not _LABEL_ATTRIBUTE_RE.match(name):
        return (
            f"label attribute name {name!r} must be 1-127 letters, digits or inner hyphens "
            "(CreateLabelingJob's LabelAttributeName pattern)"
        )
    if METADATA_SUFFIX in name:
        return f"label attribute name {name!r} must not contain '-metadata'"
    if name.endswith("-ref"):
        return f"label attribute name {name!r} must not end in '-ref' for bounding boxes"
    return None


def find_label_attributes(record: Mapping[str, Any]) -> list[str]:
    """Keys of ``record`` that look like box label attributes (``<k>`` + ``<k>-metadata``)."""
    found = []
    for key, value in record.items():
        if not key.endswith(METADATA_SUFFIX) or not isinstance(value, dict):
            continue
        if value.get("type") == LABEL_TYPE or key[: -len(METADATA_SUFFIX)] in record:
            found.append(key[: -len(METADATA_SUFFIX)])
    return found


def _require(container: Any, key: str, path: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(container, dict) or key not in container:
        raise ManifestError("is missing", field=f"{path}.{key}" if path else key)
    value = container[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ManifestError(
            f"must be a {names}, got {value!r}", field=f"{path}.{key}" if path else key
        )
    return value


def _parse_image_size(label: dict[str, Any], attr: str) -> tuple[int, int]:
    sizes = _require(label, "image_size", attr, list)
    if len(sizes) != 1:
        raise ManifestError(
            f"must be a list of one {{width, height, depth}}, got {len(sizes)} items",
            field=f"{attr}.image_size",
        )
    width = _require(sizes[0], "width", f"{attr}.image_size[0]", int)
    height = _require(sizes[0], "height", f"{attr}.image_size[0]", int)
    if width <= 0 or height <= 0:
        raise ManifestError(
            f"must be positive, got {width}x{height}", field=f"{attr}.image_size[0]"
        )
    return width, height


def _parse_class_map(metadata: dict[str, Any], path: str) -> dict[int, str]:
    raw = _require(metadata, "class-map", path, dict)
    class_map: dict[int, str] = {}
    for key, name in raw.items():
        if not (isinstance(key, str) and key.isdigit()) or not isinstance(name, str):
            raise ManifestError(
                f'must map class ids ("0") to names, got {key!r}: {name!r}',
                field=f"{path}.class-map",
            )
        class_map[int(key)] = name
    return class_map


def _xywh_box(
    left: float, top: float, width: float, height: float, class_id: int, score: float | None
) -> Box:
    """The pixel box of an annotation: one construction for both parsers, so they agree."""
    return Box.from_xyxy(xywh_to_xyxy((left, top, width, height)), class_id, score)


def _parse_box(
    ann: Any,
    path: str,
    image_wh: tuple[int, int],
    class_map: Mapping[int, str],
    score: float | None,
) -> Box:
    number = (int, float)
    class_id = _require(ann, "class_id", path, int)
    left = _require(ann, "left", path, number)
    top = _require(ann, "top", path, number)
    width = _require(ann, "width", path, number)
    height = _require(ann, "height", path, number)
    if width <= 0 or height <= 0:
        raise ManifestError(
            f"must be > 0, got width={width} height={height}",
            field=path,
            hint="drop zero-size boxes or fix the annotation",
        )
    if class_map and class_id not in class_map:
        raise ManifestError(
            f"{class_id} is not in the class-map {sorted(class_map)}",
            field=f"{path}.class_id",
            hint="add the class to the label config",
        )
    box = _xywh_box(left, top, width, height, class_id, score)
    if not is_inside(box, image_wh):
        raise ManifestError(
            f"box left={left} top={top} width={width} height={height} lies outside the "
            f"{image_wh[0]}x{image_wh[1]} image",
            field=path,
            hint="coordinates must be pixels inside image_size (normalized values need converting)",
        )
    return box


def record_to_label(record: Mapping[str, Any], attr: str, *, image_id: str) -> Label | None:
    """The label stored under ``attr`` in a manifest record, or ``None`` when it has none.

    Raises:
        ManifestError: with ``field`` set to the dotted path of the first problem found.
    """
    meta_key = attr + METADATA_SUFFIX
    if attr not in record and meta_key not in record:
        return None
    if attr not in record or meta_key not in record:
        missing = attr if attr not in record else meta_key
        raise ManifestError(
            "is missing (a label needs both the attribute and its -metadata)", field=missing
        )
    label = record[attr]
    metadata = record[meta_key]
    if not isinstance(label, dict):
        raise ManifestError(f"must be an object, got {type(label).__name__}", field=attr)
    if not isinstance(metadata, dict):
        raise ManifestError(f"must be an object, got {type(metadata).__name__}", field=meta_key)
    image_wh = _parse_image_size(label, attr)
    annotations = _require(label, "annotations", attr, list)
    objects = _require(metadata, "objects", meta_key, list)
    if len(objects) != len(annotations):
        raise ManifestError(
            f"has {len(objects)} entries but {attr}.annotations has {len(annotations)}",
            field=f"{meta_key}.objects",
            hint="write one {confidence} per box",
        )
    class_map = _parse_class_map(metadata, meta_key)
    human = _require(metadata, "human-annotated", meta_key, str)
    if human not in ("yes", "no"):
        raise ManifestError(
            f"must be 'yes' or 'no', got {human!r}", field=f"{meta_key}.human-annotated"
        )
    confidences = []
    for i, obj in enumerate(objects):
        conf = _require(obj, "confidence", f"{meta_key}.objects[{i}]", (int, float))
        if not 0.0 <= conf <= 1.0:
            raise ManifestError(
                f"must be in [0, 1], got {conf}", field=f"{meta_key}.objects[{i}].confidence"
            )
        confidences.append(float(conf))
    is_human = human == "yes"
    boxes = tuple(
        _parse_box(
            ann,
            f"{attr}.annotations[{i}]",
            image_wh,
            class_map,
            None if is_human else confidences[i],
        )
        for i, ann in enumerate(annotations)
    )
    return Label(
        detections=Detections(image_id=image_id, image_wh=image_wh, boxes=boxes),
        confidences=tuple(confidences),
        class_map=class_map,
        human_annotated=is_human,
        job_name=str(metadata.get("job-name", "")),
        creation_date=str(metadata.get("creation-date", "")),
    )


def trusted_record_to_label(record: Mapping[str, Any], attr: str, *, image_id: str) -> Label | None:
    """Like ``record_to_label`` for a line that boxloop itself wrote, without the format checks.

    Only for boxloop's own files (a run's ledger versions and its sort spills), never for input
    from users, labeling jobs or models: those lines were written from a ``Label`` that passed
    ``record_to_label`` (or was built by boxloop) and ``label_to_fields``, so every check here
    would pass again, and re-checking every box of every labeled line was most of the cost of a
    ledger pass. ``Box``, ``Detections`` and ``Label`` still enforce their own invariants.

    Raises:
        KeyError, IndexError, TypeError, ValueError: when the line is not in the layout
            ``label_to_fields`` writes; the caller turns them into a ``ManifestError``.
    """
    if attr not in record:
        return None
    label, metadata = record[attr], record[attr + METADATA_SUFFIX]
    size = label["image_size"][0]
    confidences = tuple(float(obj["confidence"]) for obj in metadata["objects"])
    is_human = metadata["human-annotated"] == "yes"
    boxes = tuple(
        _xywh_box(
            ann["left"],
            ann["top"],
            ann["width"],
            ann["height"],
            ann["class_id"],
            None if is_human else confidence,
        )
        for ann, confidence in zip(label["annotations"], confidences, strict=True)
    )
    return Label(
        detections=Detections(
            image_id=image_id, image_wh=(size["width"], size["height"]), boxes=boxes
        ),
        confidences=confidences,
        class_map={int(k): v for k, v in metadata["class-map"].items()},
        human_annotated=is_human,
        job_name=str(metadata.get("job-name", "")),
        creation_date=str(metadata.get("creation-date", "")),
    )


def _number(value: float) -> int | float:
    """Integral floats as ints (Ground Truth writes whole pixels), others rounded to 1e-3 px."""
    rounded = round(value, 3)
    return int(rounded) if rounded == int(rounded) else rounded


def label_to_fields(label: Label, attr: str, *, depth: int = 3) -> dict[str, Any]:
    """The ``{attr: ..., attr-metadata: ...}`` fields of a manifest record for ``label``."""
    width, height = label.detections.image_wh
    annotations = []
    for box in label.detections.boxes:
        left, top, box_w, box_h = xyxy_to_xywh(box.xyxy)
        annotations.append(
            {
                "class_id": box.class_id,
                "left": _number(left),
                "top": _number(top),
                "width": _number(box_w),
                "height": _number(box_h),
            }
        )
    used = {b.class_id for b in label.detections.boxes}
    class_map = {
        str(k): v
        for k, v in sorted(label.class_map.items())
        if k in used or not label.detections.boxes
    }
    return {
        attr: {
            "image_size": [{"width": width, "height": height, "depth": depth}],
            "annotations": annotations,
        },
        attr + METADATA_SUFFIX: {
            "objects": [{"confidence": round(c, 4)} for c in label.confidences],
            "class-map": class_map,
            "type": LABEL_TYPE,
            "human-annotated": "yes" if label.human_annotated else "no",
            "creation-date": label.creation_date,
            "job-name": label.job_name,
        },
    }


def repair_boxes(record: dict[str, Any], attr: str) -> tuple[dict[str, Any], list[str], int]:
    """Clip boxes a little outside the image to it and drop zero-size ones, in a raw record.

    For a labeling job's output: a worker's box dragged past the image edge, or a click that
    drew no area, must not abort the run after the labels are paid for. Only well-formed
    annotations (numeric fields, a valid ``image_size``) are touched; anything else is left
    for ``record_to_label`` to report.

    Returns:
        The record (a copy when changed), one warning per changed box (its index, the box as
        drawn and what was done), and how many boxes were dropped.
    """
    label, metadata = record.get(attr), record.get(attr + METADATA_SUFFIX)
    if not isinstance(label, dict) or not isinstance(metadata, dict):
        return record, [], 0
    try:
        width, height = _parse_image_size(label, attr)
    except ManifestError:
        return record, [], 0
    annotations, objects = label.get("annotations"), metadata.get("objects")
    if not isinstance(annotations, list) or not isinstance(objects, list):
        return record, [], 0
    if len(objects) != len(annotations):
        return record, [], 0
    kept_annotations, kept_objects, warnings = [], [], []
    dropped = 0
    number = (int, float)
    for i, (ann, obj) in enumerate(zip(annotations, objects, strict=True)):
        fields = [ann.get(k) if isinstance(ann, dict) else None for k in _XYWH]
        if not all(isinstance(v, number) and not isinstance(v, bool) for v in fields):
            kept_annotations.append(ann)
            kept_objects.append(obj)
            continue
        left, top, box_w, box_h = fields
        x0, y0 = max(0.0, float(left)), max(0.0, float(top))
        x1, y1 = min(float(width), float(left + box_w)), min(float(height), float(top + box_h))
        drawn = f"left={left} top={top} width={box_w} height={box_h}"
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            dropped += 1
            warnings.append(
                f"annotations[{i}] {drawn} has no area inside the {width}x{height} image: dropped"
            )
            continue
        if (x0, y0, x1, y1) != (left, top, left + box_w, top + box_h):
            ann = {**ann, "left": x0, "top": y0, "width": x1 - x0, "height": y1 - y0}
            warnings.append(
                f"annotations[{i}] {drawn} lies partly outside the {width}x{height} image: "
                "clipped to it"
            )
        kept_annotations.append(ann)
        kept_objects.append(obj)
    if not warnings:
        return record, [], 0
    repaired = {
        **record,
        attr: {**label, "annotations": kept_annotations},
        attr + METADATA_SUFFIX: {**metadata, "objects": kept_objects},
    }
    return repaired, warnings, dropped


_XYWH = ("left", "top", "width", "height")
