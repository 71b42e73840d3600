"""Read labels made elsewhere (Ground Truth, COCO, Pascal VOC, YOLO) keyed by image name.

Every reader returns ``(key, label)`` pairs for `LabelLookup`: the key is how the format names
the image (a source-ref, ``file_name``, ``<filename>`` or the label file's path), and class ids
are the *job's* (position in the label category config), found by class **name**: COCO
category ids, VOC object names and YOLO indexes mean nothing to the job until their names are
looked up, and a name the job does not know is an error listing them all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from boxloop.aws.s3 import iter_lines, read_text
from boxloop.core.boxes import Box
from boxloop.core.errors import ConfigError, ManifestError
from boxloop.core.formats.coco import coco_categories, coco_to_detections
from boxloop.core.formats.voc import voc_to_detections
from boxloop.core.formats.yolo import yolo_to_detections
from boxloop.core.manifests import iter_json_lines, parse_line

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from boxloop.core.boxes import ImageWH
    from boxloop.core.detections import Detections

YOLO_CLASSES_FILE = "classes.txt"
"""The class-name file YOLO exporters (LabelImg, CVAT) put next to the label files."""


def _name_to_id(class_names: Sequence[str]) -> dict[str, int]:
    return {name: class_id for class_id, name in enumerate(class_names)}


def class_id_map(
    names: Mapping[int, str], class_names: Sequence[str], *, source: str
) -> dict[int, int]:
    """Format class id -> job class id, by name.

    Raises:
        ConfigError: naming every format class whose name is not one of ``class_names``.
    """
    job_ids = _name_to_id(class_names)
    unknown = sorted(f"{i}: {name!r}" for i, name in names.items() if name not in job_ids)
    if unknown:
        raise ConfigError(
            [
                f"{source}: classes {', '.join(unknown)} are not in the job's label categories "
                f"{list(class_names)}"
            ]
        )
    return {i: job_ids[name] for i, name in names.items()}


def remap_classes(detections: Detections, id_map: Mapping[int, int], *, source: str) -> Detections:
    """The same boxes with class ids translated through ``id_map``; scores dropped (human).

    Raises:
        ManifestError: a box's class id has no entry in ``id_map``.
    """
    boxes = []
    for index, box in enumerate(detections.boxes):
        if box.class_id not in id_map:
            raise ManifestError(
                f"class {box.class_id} has no name (known: {sorted(id_map)})",
                source=source,
                field=f"{detections.image_id}.boxes[{index}].class_id",
            )
        boxes.append(Box.from_xyxy(box.xyxy, id_map[box.class_id]))
    return detections.with_boxes(boxes)


def read_groundtruth(
    location: str, *, attr: str | None = None, class_names: Sequence[str] | None = None
) -> list[tuple[str, Detections]]:
    """``(source-ref, boxes)`` of every labeled line of a Ground Truth manifest (S3 or local).

    Lines without a label are skipped. With ``class_names``, class ids are translated through
    each line's ``class-map`` by name (a box whose id the line's class-map does not name keeps
    its id, which must then be a job class id); without, ids are kept as written.

    Raises:
        ManifestError: the first bad line, located (``source:line``).
        ConfigError: a class name the job does not have.
    """
    pairs: list[tuple[str, Detections]] = []
    for item in iter_json_lines(iter_lines(location), source=location):
        if isinstance(item, ManifestError):
            raise item
        line_no, obj = item
        parsed = parse_line(obj, attr=attr, label_config=None, line=line_no, source=location)
        if parsed.label is None:
            continue
        detections = parsed.label.detections.as_human()
        if class_names is not None:
            where = f"{location}:{line_no}"
            names = dict(parsed.label.class_map)
            id_map = class_id_map(names, class_names, source=where)
            id_map.update({i: i for i in range(len(class_names)) if i not in names})
            detections = remap_classes(detections, id_map, source=where)
        pairs.append((parsed.source_ref, detections))
    return pairs


def read_coco(location: str, *, class_names: Sequence[str]) -> list[tuple[str, Detections]]:
    """``(file_name, boxes)`` of every image of a COCO dataset JSON (S3 or local).

    Raises:
        ManifestError: a malformed dataset, naming the field.
        ConfigError: a category name the job does not have.
    """
    try:
        dataset = json.loads(read_text(location))
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"is not valid JSON: {exc.msg}", source=location, line=exc.lineno
        ) from exc
    id_map = class_id_map(coco_categories(dataset, source=location), class_names, source=location)
    return [
        (file_name, remap_classes(detections, id_map, source=location))
        for file_name, detections in coco_to_detections(dataset, source=location)
    ]


def read_voc(folder: Path, *, class_names: Sequence[str]) -> list[tuple[str, Detections]]:
    """``(<filename>, boxes)`` of every ``*.xml`` under ``folder`` (recursively, sorted).

    Object names are looked up in ``class_names`` directly, so a name the job does not have is
    a ``ManifestError`` naming the file and object.

    Raises:
        ConfigError: ``folder`` holds no XML file.
        ManifestError: a malformed annotation.
    """
    paths = sorted(Path(folder).rglob("*.xml"))
    if not paths:
        raise ConfigError([f"{folder}: no Pascal VOC *.xml annotation files found"])
    class_map = dict(enumerate(class_names))
    return [voc_to_detections(path.read_bytes(), class_map, source=str(path)) for path in paths]


@dataclass(frozen=True, slots=True)
class YoloLabel:
    """One YOLO label file, kept as text: YOLO stores fractions, and the pixels need the image.

    Attributes:
        text: The file's content.
        source: Its path, for messages.
        id_map: YOLO class index -> job class id.
    """

    text: str
    source: str
    id_map: Mapping[int, int]

    def to_detections(self, image_id: str, image_wh: ImageWH) -> Detections:
        """The boxes in pixels for an image of ``image_wh``, in job class ids.

        Raises:
            ManifestError: a malformed line or a class index without a name, located.
        """
        detections = yolo_to_detections(self.text, image_wh, image_id=image_id, source=self.source)
        return remap_classes(detections, self.id_map, source=self.source)


def read_yolo(
    folder: Path, *, class_names: Sequence[str], yolo_names: Sequence[str] | None = None
) -> list[tuple[str, YoloLabel]]:
    """``(relative path without .txt, label)`` of every ``*.txt`` under ``folder``.

    YOLO class indexes mean ``yolo_names[index]``; when ``yolo_names`` is ``None`` they are
    read from ``folder/classes.txt`` (one name a line) if it exists, else they are the job's
    ``class_names``. ``classes.txt`` itself is not a label file.

    Raises:
        ConfigError: ``folder`` holds no label file, or a YOLO class name the job lacks.
    """
    folder = Path(folder)
    names_file = folder / YOLO_CLASSES_FILE
    if yolo_names is None and names_file.is_file():
        lines = names_file.read_text(encoding="utf-8").splitlines()
        yolo_names = [line.strip() for line in lines if line.strip()]
    names = list(class_names if yolo_names is None else yolo_names)
    id_map = class_id_map(dict(enumerate(names)), class_names, source=str(folder))
    paths = sorted(p for p in folder.rglob("*.txt") if p != names_file)
    if not paths:
        raise ConfigError([f"{folder}: no YOLO *.txt label files found"])
    return [
        (
            path.relative_to(folder).with_suffix("").as_posix(),
            YoloLabel(path.read_text(encoding="utf-8"), str(path), id_map),
        )
        for path in paths
    ]
