"""Tests of boxloop.local.export: COCO, Pascal VOC and YOLO exports of an output manifest."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from pycocotools.coco import COCO

from boxloop.core.boxes import Box
from boxloop.core.detections import Detections
from boxloop.core.errors import ManifestError
from boxloop.core.formats.coco import coco_to_detections
from boxloop.core.formats.groundtruth import Label
from boxloop.core.formats.voc import voc_to_detections
from boxloop.core.formats.yolo import yolo_to_detections
from boxloop.core.manifests import record_id
from boxloop.core.records import Provenance, Record, record_to_json
from boxloop.local.export import export_coco, export_voc, export_yolo

if TYPE_CHECKING:
    from pathlib import Path

ATTR = "boxes"
CLASS_NAMES = {0: "cat", 2: "dog", 5: "bird"}  # non-contiguous ids

# (source-ref, image_wh, boxes or None = unlabeled, human): the images of the test manifest.
IMAGES = [
    # human label, many boxes of every class, fractional pixels, one on the image edge
    (
        "s3://bucket/a/img1.jpg",
        (320, 200),
        [
            Box.from_xyxy((0, 0, 40.5, 30.25), 0),
            Box.from_xyxy((100, 50, 180, 120), 2),
            Box.from_xyxy((250.125, 150, 320, 200), 5),
            Box.from_xyxy((10, 100, 60, 160), 2),
        ],
        True,
    ),
    # auto label with scores
    (
        "s3://bucket/a/img2.jpg",
        (640, 480),
        [
            Box.from_xyxy((10, 20, 110, 220), 0, 0.91),
            Box.from_xyxy((300, 300, 400, 420), 5, 0.77),
        ],
        False,
    ),
    # an empty image (labeled "no objects")
    ("s3://bucket/a/empty.png", (100, 100), [], True),
    # never labeled
    ("s3://bucket/a/unlabeled.jpg", (100, 100), None, False),
    # same file name as the first image, another prefix: the stems clash
    ("s3://bucket/b/img1.jpg", (50, 80), [Box.from_xyxy((5, 5, 45, 75), 2, 0.6)], False),
]
LABELED = [i for i in IMAGES if i[2] is not None]


def _line(ref: str, wh: tuple[int, int], boxes: list[Box] | None, human: bool) -> dict:
    label = None
    if boxes is not None:
        label = Label(
            detections=Detections(record_id(ref), wh, tuple(boxes)),
            confidences=tuple(b.score or 0.0 for b in boxes),
            class_map=CLASS_NAMES,
            human_annotated=human,
            job_name="j",
            creation_date="2024-01-01T00:00:00.000000",
        )
    record = Record(
        id=record_id(ref),
        source_ref=ref,
        label=label,
        provenance=Provenance(iteration=0 if label else None),
    )
    return record_to_json(record, ATTR)


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "output.manifest"
    path.write_text("".join(json.dumps(_line(*i)) + "\n" for i in IMAGES), encoding="utf-8")
    return path


def _boxes(boxes: list[Box], *, scores: bool = False) -> list[tuple]:
    return [
        (*(pytest.approx(v, abs=1e-6) for v in b.xyxy), b.class_id, b.score if scores else None)
        for b in boxes
    ]


def test_export_coco_loads_in_pycocotools_with_every_box(manifest: Path, tmp_path: Path) -> None:
    summary = export_coco(manifest, tmp_path / "out" / "coco.json", ATTR, CLASS_NAMES)

    coco = COCO(str(summary.path))
    assert len(coco.getImgIds()) == summary.images == len(LABELED)
    assert len(coco.getAnnIds()) == summary.boxes == sum(len(i[2]) for i in LABELED)
    assert summary.skipped_unlabeled == 1
    assert {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())} == CLASS_NAMES


def test_export_coco_round_trips_boxes_and_keeps_source_ref(manifest: Path, tmp_path: Path) -> None:
    summary = export_coco(manifest, tmp_path / "coco.json", ATTR, CLASS_NAMES)

    dataset = json.loads(summary.path.read_text(encoding="utf-8"))
    exported = list(coco_to_detections(dataset))
    assert [name for name, _ in exported] == [i[0] for i in LABELED]
    for (ref, wh, boxes, _), (_, detections) in zip(LABELED, exported, strict=True):
        assert detections.image_wh == wh, ref
        assert [(*b.xyxy, b.class_id, b.score) for b in detections] == _boxes(boxes)
    assert [image["id"] for image in dataset["images"]] == list(range(1, len(LABELED) + 1))


def test_export_coco_keeps_scores_when_asked(manifest: Path, tmp_path: Path) -> None:
    summary = export_coco(manifest, tmp_path / "coco.json", ATTR, CLASS_NAMES, include_scores=True)

    exported = dict(coco_to_detections(json.loads(summary.path.read_text(encoding="utf-8"))))
    auto = exported["s3://bucket/a/img2.jpg"]
    assert [b.score for b in auto] == [0.91, 0.77]


def test_export_coco_raises_for_a_class_without_name(manifest: Path, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="class id 5 is not in the class map"):
        export_coco(manifest, tmp_path / "coco.json", ATTR, ["cat", "x", "dog"])


def test_export_voc_round_trips_through_the_voc_parser(manifest: Path, tmp_path: Path) -> None:
    summary = export_voc(manifest, tmp_path / "voc", ATTR, CLASS_NAMES)

    index = [
        line.split("\t")
        for line in (summary.path / "index.tsv").read_text(encoding="utf-8").splitlines()
    ]
    assert [ref for _, ref in index] == [i[0] for i in LABELED]
    assert [name for name, _ in index] == [
        "img1.xml",
        "img2.xml",
        "empty.xml",
        f"img1-{record_id('s3://bucket/b/img1.jpg')}.xml",
    ]
    assert (summary.images, summary.boxes, summary.skipped_unlabeled, summary.renamed) == (
        4,
        7,
        1,
        1,
    )
    for (name, ref), (_, wh, boxes, _) in zip(index, LABELED, strict=True):
        xml = (summary.path / name).read_text(encoding="utf-8")
        file_name, detections = voc_to_detections(xml, CLASS_NAMES, source=name)
        assert xml.count("<folder>") == 1
        assert f"<folder>{ref.rsplit('/', 1)[0]}</folder>" in xml
        assert file_name == ref.rsplit("/", 1)[1]
        assert detections.image_wh == wh
        assert [(*b.xyxy, b.class_id, b.score) for b in detections] == _boxes(boxes)


def test_export_voc_writes_scores_when_asked(manifest: Path, tmp_path: Path) -> None:
    summary = export_voc(manifest, tmp_path / "voc", ATTR, CLASS_NAMES, include_scores=True)

    _, detections = voc_to_detections((summary.path / "img2.xml").read_bytes(), CLASS_NAMES)
    assert [b.score for b in detections] == [0.91, 0.77]


def test_export_yolo_round_trips_through_the_yolo_parser(manifest: Path, tmp_path: Path) -> None:
    summary = export_yolo(manifest, tmp_path / "yolo", ATTR, CLASS_NAMES)

    index = [
        line.split("\t")
        for line in (summary.path / "index.tsv").read_text(encoding="utf-8").splitlines()
    ]
    assert [ref for _, ref in index] == [i[0] for i in LABELED]
    assert (summary.images, summary.boxes, summary.skipped_unlabeled, summary.renamed) == (
        4,
        7,
        1,
        1,
    )
    for (name, ref), (_, wh, boxes, _) in zip(index, LABELED, strict=True):
        text = (summary.path / name).read_text(encoding="utf-8")
        assert name.startswith("labels/")
        assert all(len(line.split()) == 5 for line in text.splitlines())
        detections = yolo_to_detections(text, wh, image_id=ref, source=name)
        assert [(*b.xyxy, b.class_id, b.score) for b in detections] == _boxes(boxes)
    assert (summary.path / "labels" / "empty.txt").read_text(encoding="utf-8") == ""


def test_export_yolo_classes_file_fills_gaps_in_class_ids(manifest: Path, tmp_path: Path) -> None:
    summary = export_yolo(manifest, tmp_path / "yolo", ATTR, CLASS_NAMES)

    assert (summary.path / "classes.txt").read_text(encoding="utf-8").splitlines() == [
        "cat",
        "__unused_1__",
        "dog",
        "__unused_3__",
        "__unused_4__",
        "bird",
    ]


def test_export_yolo_writes_scores_as_sixth_column_when_asked(
    manifest: Path, tmp_path: Path
) -> None:
    summary = export_yolo(manifest, tmp_path / "yolo", ATTR, CLASS_NAMES, include_scores=True)

    text = (summary.path / "labels" / "img2.txt").read_text(encoding="utf-8")
    detections = yolo_to_detections(text, (640, 480), image_id="img2")
    assert [b.score for b in detections] == [0.91, 0.77]


def test_export_yolo_raises_for_a_class_without_name(manifest: Path, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"s3://bucket/a/img1.jpg: boxes\[2\].class_id"):
        export_yolo(manifest, tmp_path / "yolo", ATTR, ["cat", "x", "dog"])


def test_export_coco_raises_naming_a_bad_manifest_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.manifest"
    path.write_text(json.dumps(_line(*IMAGES[0])) + "\n" + '{"no-source": 1}\n', encoding="utf-8")

    with pytest.raises(ManifestError, match=r"bad.manifest:2: source-ref"):
        export_coco(path, tmp_path / "coco.json", ATTR, CLASS_NAMES)
