"""Export an output manifest (a local run's or a deployed run's) in the format a tool wants.

The one converter behind ``boxloop export`` (a local run's folder) and ``boxloop aws export`` (a
deployed run's S3 output): the manifest is streamed from wherever it is and handed to the
local runs' exporters (``boxloop.local.export``), so both sides write byte-identical files.
``groundtruth`` is the output manifest itself (Ground Truth's format): streamed, not parsed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from boxloop.aws.s3 import iter_lines, open_for_write
from boxloop.core.errors import BoxloopError, ManifestError
from boxloop.core.formats.groundtruth import METADATA_SUFFIX, find_label_attributes
from boxloop.core.manifests import iter_json_lines

if TYPE_CHECKING:
    from collections.abc import Mapping

    from boxloop.local.export import ExportSummary

FORMATS = ("coco", "voc", "yolo", "groundtruth")
"""``--format`` choices: COCO JSON file, VOC folder, YOLO folder, Ground Truth manifest file."""


def manifest_classes(location: str) -> tuple[str, dict[int, str]]:
    """The label attribute and class map of a labeled output manifest, in one streamed pass.

    Every labeled line carries its class map (``<attr>-metadata.class-map``); their union names
    every class a box uses.

    Raises:
        BoxloopError: no line of the manifest is labeled (nothing to export).
    """
    attr: str | None = None
    classes: dict[int, str] = {}
    for item in iter_json_lines(iter_lines(location), source=location):
        if isinstance(item, ManifestError):
            raise item
        obj = item[1]
        if attr is None:
            found = find_label_attributes(obj)
            attr = found[0] if found else None
        metadata = obj.get(f"{attr}{METADATA_SUFFIX}") if attr else None
        if isinstance(metadata, dict) and isinstance(metadata.get("class-map"), dict):
            for key, name in metadata["class-map"].items():
                classes.setdefault(int(key), str(name))
    if attr is None:
        raise BoxloopError(f"{location}: no labeled line, nothing to export")
    return attr, classes


def export_manifest(
    location: str,
    fmt: str,
    out: Path,
    *,
    label_attribute: str,
    class_names: Mapping[int, str] | tuple[str, ...],
) -> ExportSummary | None:
    """Write the manifest at ``location`` (local path or ``s3://``) as ``fmt`` to ``out``.

    Args:
        location: the output manifest.
        fmt: one of ``FORMATS``.
        out: the COCO JSON or Ground Truth manifest file, or the VOC / YOLO folder.
        label_attribute: the run's label attribute.
        class_names: name per class id.

    Returns:
        The exporter's counts; ``None`` for ``groundtruth`` (a copy).

    Raises:
        BoxloopError: an unknown format.
        ManifestError: a line that cannot be parsed, a class id without a name.
    """
    from boxloop.local.export import export_coco, export_voc, export_yolo

    exporters: dict[str, Any] = {"coco": export_coco, "voc": export_voc, "yolo": export_yolo}
    if fmt == "groundtruth":
        with open_for_write(str(out)) as copy:
            for line in iter_lines(location):
                copy.write(line.decode("utf-8"))
                copy.write("\n")
        return None
    if fmt not in exporters:
        raise BoxloopError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return exporters[fmt](location, out, label_attribute, class_names)


def summary_text(fmt: str, out: Path, summary: ExportSummary | None) -> str:
    """One line saying what an export wrote."""
    if summary is None:
        return f"{fmt}: the output manifest, copied to {out}"
    renamed = f", {summary.renamed} renamed (see index.tsv)" if summary.renamed else ""
    return (
        f"{fmt}: {summary.images} images, {summary.boxes} boxes in {summary.path} "
        f"({summary.skipped_unlabeled} unlabeled images skipped{renamed})"
    )
