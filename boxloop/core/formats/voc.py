"""Pascal VOC annotation XML (one file per image, 1-based pixel indices) <-> Detections."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import IO, TYPE_CHECKING

from boxloop.core.boxes import Box, clip_box, is_inside
from boxloop.core.detections import Detections
from boxloop.core.errors import BoxError, ManifestError

if TYPE_CHECKING:
    from collections.abc import Mapping

EDGE_TOLERANCE_PX = 1.0
"""Boxes may overshoot the image by one pixel (``xmin=0`` from 0-based tools); they are clipped."""


def _text(parent: ET.Element, tag: str, path: str, source: str) -> str:
    child = parent.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise ManifestError("is missing", source=source, field=f"{path}.{tag}")
    return child.text.strip()


def _number(parent: ET.Element, tag: str, path: str, source: str) -> float:
    raw = _text(parent, tag, path, source)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ManifestError(f"must be a number, got {raw!r}", source=source, field=f"{path}.{tag}")
    return value


def _image_wh(root: ET.Element, source: str) -> tuple[int, int]:
    size = root.find("size")
    if size is None:
        raise ManifestError("is missing", source=source, field="annotation.size")
    wh = []
    for tag in ("width", "height"):
        raw = _text(size, tag, "annotation.size", source)
        if not raw.isdecimal() or int(raw) <= 0:
            raise ManifestError(f"must be a positive integer, got {raw!r}", source=source,
                                field=f"annotation.size.{tag}",
                                hint="VOC files written before the image was read have size 0")
        wh.append(int(raw))
    return wh[0], wh[1]


def _parse_object(
    obj: ET.Element, path: str, image_wh: tuple[int, int], class_ids: Mapping[str, int], source: str
) -> Box:
    name = _text(obj, "name", path, source)
    if name not in class_ids:
        raise ManifestError(f"{name!r} is not a known class ({sorted(class_ids)})", source=source,
                            field=f"{path}.name", hint="add the class to the class map")
    bndbox = obj.find("bndbox")
    if bndbox is None:
        raise ManifestError("is missing", source=source, field=f"{path}.bndbox")
    bpath = f"{path}.bndbox"
    xmin, ymin, xmax, ymax = (_number(bndbox, t, bpath, source) for t in
                              ("xmin", "ymin", "xmax", "ymax"))
    score = None
    if obj.find("score") is not None:
        score = _number(obj, "score", path, source)
    try:
        box = Box(x_min=_from_one_based(xmin, xmax), y_min=_from_one_based(ymin, ymax),
                  x_max=xmax, y_max=ymax, class_id=class_ids[name], score=score)
    except BoxError as exc:
        raise ManifestError(f"{exc} (VOC xyxy {xmin}, {ymin}, {xmax}, {ymax}, 1-based inclusive)",
                            source=source, field=path) from exc
    if not is_inside(box, image_wh, tolerance_px=EDGE_TOLERANCE_PX):
        raise ManifestError(
            f"xmin={xmin} ymin={ymin} xmax={xmax} ymax={ymax} lies outside the "
            f"{image_wh[0]}x{image_wh[1]} image", source=source, field=bpath,
            hint="VOC coordinates are 1-based pixels within size",
        )
    return clip_box(box, image_wh)


def voc_to_detections(
    xml: str | bytes | IO[bytes] | IO[str],
    class_map: Mapping[int, str],
    *,
    image_id: str | None = None,
    source: str = "<voc>",
) -> tuple[str, Detections]:
    """Read one VOC annotation into ``(filename, Detections)``.

    VOC's ``xmin/ymin/xmax/ymax`` are 1-based, inclusive pixel indices: a box over the whole of
    a W-pixel-wide image reads ``xmin=1, xmax=W``. boxloop's xyxy are continuous pixel edges, so
    the conversion is detectron2's: ``x_min = xmin - 1``, ``x_max = xmax`` (same for y), and
    ``detections_to_voc`` adds the 1 back; a zero-width box has ``xmax = xmin - 1``. Objects
    are named, so ``class_map`` turns names into ids. A ``<score>`` element (boxloop writes it
    for predictions; VOC tools ignore it) becomes the box score.

    Every ``<object>`` becomes a box, ``difficult`` and ``truncated`` ones included (boxloop has
    no such flags, and dropping them silently would lose labels). Boxes overshooting the image by
    at most ``EDGE_TOLERANCE_PX`` are clipped.

    Args:
        xml: The XML text or a file object opened on it.
        class_map: Class id -> name; object names are looked up in it.
        image_id: ``Detections.image_id``; defaults to ``<filename>``.
        source: Name used in error messages (the XML file's path).

    Raises:
        ManifestError: malformed XML (with its line), a missing or non-numeric field, a size
            that is not positive, an unknown class name, or a box outside the image; the field
            is named like ``annotation.object[2].bndbox.xmax`` (0-based object index).
    """
    class_ids = {name: class_id for class_id, name in class_map.items()}
    if len(class_ids) != len(class_map):
        raise ManifestError("class_map repeats a name", source=source, hint="names must be unique")
    try:
        root = ET.fromstring(xml) if isinstance(xml, str | bytes) else ET.parse(xml).getroot()
    except ET.ParseError as exc:
        raise ManifestError(f"is not well-formed XML: {exc}", source=source,
                            line=exc.position[0]) from exc
    if root.tag != "annotation":
        raise ManifestError(f"root element must be <annotation>, got <{root.tag}>", source=source)
    file_name = _text(root, "filename", "annotation", source)
    image_wh = _image_wh(root, source)
    boxes = tuple(
        _parse_object(obj, f"annotation.object[{index}]", image_wh, class_ids, source)
        for index, obj in enumerate(root.findall("object"))
    )
    return file_name, Detections(image_id or file_name, image_wh, boxes)


def _format(value: float) -> str:
    """Whole numbers as ints (VOC tools ``int()`` the text), others with every digit kept."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _from_one_based(low: float, high: float) -> float:
    """VOC's 1-based ``xmin`` as a 0-based edge; a zero-width box stays zero-width.

    ``(x + 1) - 1`` is not always ``x`` in floating point, so a zero-width box written as
    ``xmin = xmax + 1`` can come back a hair inverted; within 1e-9 px that is rounding, not
    an inverted box, and the edge is taken as ``high``.
    """
    edge = low - 1
    return high if high < edge <= high + 1e-9 else edge


def detections_to_voc(
    detections: Detections, class_map: Mapping[int, str], *, file_name: str, folder: str = ""
) -> str:
    """One VOC annotation XML document (a str, without XML declaration) for ``detections``.

    Coordinates are written 1-based (``xmin = x_min + 1``, ``xmax = x_max``), as integers when
    they are whole pixels and as full-precision decimals otherwise; ``depth`` is 3.

    Raises:
        ManifestError: a box's class id is not in ``class_map``.
    """
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = file_name
    size = ET.SubElement(root, "size")
    for tag, value in zip(("width", "height", "depth"), (*detections.image_wh, 3), strict=True):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for index, box in enumerate(detections.boxes):
        if box.class_id not in class_map:
            raise ManifestError(f"class id {box.class_id} is not in the class map "
                                f"{sorted(class_map)}", source=file_name,
                                field=f"boxes[{index}].class_id", hint="add it to class_map")
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = class_map[box.class_id]
        for tag, value in (("pose", "Unspecified"), ("truncated", "0"), ("difficult", "0")):
            ET.SubElement(obj, tag).text = value
        if box.score is not None:
            ET.SubElement(obj, "score").text = repr(float(box.score))
        bndbox = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"),
                              (box.x_min + 1, box.y_min + 1, box.x_max, box.y_max), strict=True):
            ET.SubElement(bndbox, tag).text = _format(value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")
