"""Export a run's output manifest to COCO JSON, Pascal VOC XML files or YOLO label files.

The images themselves are not copied: every export names each image by its ``source-ref``
(the S3 URI or local path the run labeled), so the labels can be joined back to the pixels.

* COCO: ``file_name`` is the full ``source-ref``. Basenames collide across prefixes
  (``a/001.jpg`` and ``b/001.jpg``), and tools treat ``file_name`` as an opaque string that
  they join to an image folder only when asked (an absolute path survives ``os.path.join``).
  Image ids are 1..N in manifest order, annotation ids 1..M.
* VOC: one ``<stem>.xml`` per image; ``filename`` is the source-ref's basename and ``folder``
  its parent, so ``folder + "/" + filename`` is the source-ref again.
* YOLO: ``labels/<stem>.txt`` per image (ultralytics pairs ``images/x.jpg`` with
  ``labels/x.txt`` by stem) and ``classes.txt`` with line *k* naming class id *k*.

VOC and YOLO file stems come from the image file name; when two images share one, the later
gets ``<stem>-<record id>`` and both exports write ``index.tsv`` (label file, tab, source-ref)
so no label is lost or attached to the wrong image. Images without a label are skipped and
counted. Auto-label scores are dropped unless ``include_scores`` (a sixth YOLO column breaks
ultralytics' label loader, and a training set's labels are labels whatever made them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from boxloop.core.detections import Detections
from boxloop.core.errors import ManifestError
from boxloop.core.formats.coco import detections_to_coco
from boxloop.core.formats.voc import detections_to_voc
from boxloop.core.formats.yolo import detections_to_yolo
from boxloop.steps.run import iter_records

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from boxloop.core.records import Record

INDEX_FILE = "index.tsv"
CLASSES_FILE = "classes.txt"
YOLO_LABELS_DIR = "labels"
UNUSED_CLASS = "__unused_{}__"
"""classes.txt line for a class id missing from the class map (YOLO ids are line numbers)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportSummary:
    """What an export wrote.

    Attributes:
        path: The COCO JSON file or the VOC/YOLO folder.
        images: Images exported (labeled ones, empty labels included).
        boxes: Boxes exported.
        skipped_unlabeled: Images of the manifest without a label, not exported.
        renamed: Images whose label file got a ``-<record id>`` suffix (VOC/YOLO stem clash).
    """

    path: Path
    images: int
    boxes: int
    skipped_unlabeled: int
    renamed: int = 0


def _class_map(class_names: Sequence[str] | Mapping[int, str]) -> dict[int, str]:
    if isinstance(class_names, str):
        raise TypeError("class_names must be a sequence or mapping of names, not one str")
    if isinstance(class_names, Mapping):
        return dict(class_names)
    return dict(enumerate(class_names))


@dataclass(slots=True)
class _Skips:
    unlabeled: int = 0


def _labeled(
    output_manifest: Path | str, label_attribute: str, skips: _Skips, *, include_scores: bool
) -> Iterator[tuple[Record, Detections]]:
    """Labeled records of the manifest with their boxes; counts the unlabeled ones."""
    for record in iter_records(str(output_manifest), label_attribute):
        if record.label is None:
            skips.unlabeled += 1
            continue
        detections = record.label.detections
        yield record, detections if include_scores else detections.as_human()


def _split_ref(source_ref: str) -> tuple[str, str]:
    """``(parent, basename)`` of a source-ref URI or path (parent ``""`` without a slash)."""
    parent, _, name = source_ref.rpartition("/")
    return parent, name


def _check_classes(detections: Detections, class_map: Mapping[int, str], record: Record) -> None:
    """The COCO and VOC writers check class ids themselves; YOLO files carry bare ids."""
    for index, box in enumerate(detections.boxes):
        if box.class_id not in class_map:
            raise ManifestError(
                f"class id {box.class_id} is not in the class map {sorted(class_map)}",
                source=record.source_ref,
                field=f"boxes[{index}].class_id",
                hint="pass every class name of the run's label config",
            )


@dataclass(slots=True)
class _Stems:
    """Unique label-file stems from image file names, ``<stem>-<record id>`` on a clash."""

    used: set[str]
    renamed: int = 0

    def claim(self, record: Record) -> str:
        stem = Path(_split_ref(record.source_ref)[1]).stem or record.id
        if stem in self.used:
            stem = f"{stem}-{record.id}"
            self.renamed += 1
        self.used.add(stem)
        return stem


def export_coco(
    output_manifest: Path | str,
    out_json: Path,
    label_attribute: str,
    class_names: Sequence[str] | Mapping[int, str],
    *,
    include_scores: bool = False,
) -> ExportSummary:
    """Write the labeled images of an output manifest as one COCO detection JSON file.

    Args:
        output_manifest: The run's output manifest (JSON Lines): a local path or an
            ``s3://`` URI, streamed either way.
        out_json: The file to write; parent folders are created.
        label_attribute: The run's label attribute.
        class_names: Name per class id, a list (index = id) or a mapping; they become
            ``categories`` with the class ids as category ids.
        include_scores: Keep auto-labels' box scores as ``score`` on their annotations.

    Returns:
        Counts of what was written.

    Raises:
        ManifestError: A manifest line cannot be parsed, or a box's class id has no name.
    """
    skips = _Skips()
    items = [
        (record.source_ref, Detections(str(n), d.image_wh, d.boxes))
        for n, (record, d) in enumerate(
            _labeled(output_manifest, label_attribute, skips, include_scores=include_scores),
            start=1,
        )
    ]
    dataset = detections_to_coco(items, _class_map(class_names))
    out_json.parent.mkdir(parents=True, exist_ok=True)
    with out_json.open("w", encoding="utf-8") as out:
        json.dump(dataset, out, ensure_ascii=False)
    return ExportSummary(
        path=out_json,
        images=len(dataset["images"]),
        boxes=len(dataset["annotations"]),
        skipped_unlabeled=skips.unlabeled,
    )


def export_voc(
    output_manifest: Path | str,
    out_dir: Path,
    label_attribute: str,
    class_names: Sequence[str] | Mapping[int, str],
    *,
    include_scores: bool = False,
) -> ExportSummary:
    """Write one Pascal VOC annotation XML per labeled image into ``out_dir``.

    Args:
        output_manifest: The run's output manifest (JSON Lines): a local path or an
            ``s3://`` URI, streamed either way.
        out_dir: The folder to write ``<stem>.xml`` files and ``index.tsv`` into; created.
        label_attribute: The run's label attribute.
        class_names: Name per class id (list or mapping); VOC objects are named.
        include_scores: Keep auto-labels' box scores as ``<score>`` elements.

    Returns:
        Counts of what was written.

    Raises:
        ManifestError: A manifest line cannot be parsed, or a box's class id has no name.
    """
    class_map = _class_map(class_names)
    skips, stems = _Skips(), _Stems(used=set())
    images = boxes = 0
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / INDEX_FILE).open("w", encoding="utf-8") as index:
        for record, detections in _labeled(
            output_manifest, label_attribute, skips, include_scores=include_scores
        ):
            name = f"{stems.claim(record)}.xml"
            folder, file_name = _split_ref(record.source_ref)
            xml = detections_to_voc(detections, class_map, file_name=file_name, folder=folder)
            (out_dir / name).write_text(xml + "\n", encoding="utf-8")
            index.write(f"{name}\t{record.source_ref}\n")
            images += 1
            boxes += len(detections)
    return ExportSummary(
        path=out_dir,
        images=images,
        boxes=boxes,
        skipped_unlabeled=skips.unlabeled,
        renamed=stems.renamed,
    )


def export_yolo(
    output_manifest: Path | str,
    out_dir: Path,
    label_attribute: str,
    class_names: Sequence[str] | Mapping[int, str],
    *,
    include_scores: bool = False,
) -> ExportSummary:
    """Write YOLO label files (``labels/<stem>.txt``) and ``classes.txt`` into ``out_dir``.

    YOLO class ids are line numbers of ``classes.txt``, so ids are written unchanged and a gap
    in the class map becomes a ``__unused_<id>__`` line. An image without boxes gets an empty
    label file (a background image, not a missing label).

    Args:
        output_manifest: The run's output manifest (JSON Lines): a local path or an
            ``s3://`` URI, streamed either way.
        out_dir: The dataset folder; ``labels/``, ``classes.txt`` and ``index.tsv`` go in it.
        label_attribute: The run's label attribute.
        class_names: Name per class id (list or mapping).
        include_scores: Write auto-labels' scores as a sixth column (ultralytics rejects it).

    Returns:
        Counts of what was written.

    Raises:
        ManifestError: A manifest line cannot be parsed, or a box's class id has no name.
    """
    class_map = _class_map(class_names)
    skips, stems = _Skips(), _Stems(used=set())
    images = boxes = 0
    labels_dir = out_dir / YOLO_LABELS_DIR
    labels_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / INDEX_FILE).open("w", encoding="utf-8") as index:
        for record, detections in _labeled(
            output_manifest, label_attribute, skips, include_scores=include_scores
        ):
            _check_classes(detections, class_map, record)
            name = f"{YOLO_LABELS_DIR}/{stems.claim(record)}.txt"
            (out_dir / name).write_text(detections_to_yolo(detections), encoding="utf-8")
            index.write(f"{name}\t{record.source_ref}\n")
            images += 1
            boxes += len(detections)
    n_classes = max(class_map, default=-1) + 1
    (out_dir / CLASSES_FILE).write_text(
        "".join(f"{class_map.get(k, UNUSED_CLASS.format(k))}\n" for k in range(n_classes)),
        encoding="utf-8",
    )
    return ExportSummary(
        path=out_dir,
        images=images,
        boxes=boxes,
        skipped_unlabeled=skips.unlabeled,
        renamed=stems.renamed,
    )
