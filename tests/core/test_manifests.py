import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boxloop.core.errors import ManifestError
from boxloop.core.labels import LabelConfig
from boxloop.core.manifests import (
    ValidationReport,
    iter_json_lines,
    record_id,
    validate_manifest,
    write_json_line,
)


def _label(boxes, *, wh=(640, 480), human="yes", conf=0.0, class_map=None):
    return {
        "source-ref": "s3://b/img.jpg",
        "cars": {
            "image_size": [{"width": wh[0], "height": wh[1], "depth": 3}],
            "annotations": [
                {"class_id": c, "left": x, "top": y, "width": w, "height": h}
                for c, x, y, w, h in boxes
            ],
        },
        "cars-metadata": {
            "objects": [{"confidence": conf} for _ in boxes],
            "class-map": class_map if class_map is not None else {"0": "car", "1": "bus"},
            "type": "groundtruth/object-detection",
            "human-annotated": human,
            "creation-date": "2026-11-20T10:00:00",
            "job-name": "labeling-job/j",
        },
    }


def _validate(lines, **kwargs):
    report = ValidationReport(source="in.manifest")
    stream = [line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines]
    good = list(validate_manifest(stream, source="in.manifest", report=report, **kwargs))
    return good, report


def _with_ref(obj, ref):
    return {**obj, "source-ref": ref}


def test_record_id_is_stable_and_depends_only_on_source_ref():
    assert record_id("s3://b/a.jpg") == record_id("s3://b/a.jpg")
    assert record_id("s3://b/a.jpg") != record_id("s3://b/A.jpg")
    assert len(record_id("s3://b/a.jpg")) == 16


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"source-ref": ', "in.manifest:1: is not valid JSON"),  # truncated line
        (b"[1, 2]", "must be a JSON object, got list"),  # JSON but not an object
        (b"\xff\xfe{}", "is not UTF-8"),  # bad encoding
        (json.dumps({"image": "s3://b/x.jpg"}).encode(), "source-ref is missing"),  # no source-ref
        (json.dumps({"source-ref": 3}).encode(), "source-ref must be a non-empty string"),
    ],
)
def test_validate_manifest_reports_line_and_reason_when_line_is_bad(line, reason):
    good, report = _validate([line])
    assert good == []
    assert reason in report.errors[0].message
    assert report.errors[0].line == 1


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        # box starts inside but runs past the right edge of a non-square image
        (_label([(0, 600, 10, 100, 20)]), "cars.annotations[0]", "outside the 640x480 image"),
        # normalized coordinates passed as pixels would be inside; pixels past the height are not
        (_label([(0, 10, 470, 20, 20)]), "cars.annotations[0]", "outside"),
        # zero-size box
        (_label([(0, 10, 10, 0, 20)]), "cars.annotations[0]", "must be > 0"),
        # class id absent from the record's own class map
        (
            _label([(7, 10, 10, 20, 20)]),
            "cars.annotations[0].class_id",
            "7 is not in the class-map",
        ),
        # image_size as a dict, the AV sample's bug
        (
            {**_label([]), "cars": {"image_size": {"width": 1, "height": 1}, "annotations": []}},
            "cars.image_size",
            "must be a list",
        ),
    ],
)
def test_validate_manifest_names_the_field_when_label_is_bad(record, field, reason):
    _, report = _validate([record])
    assert report.errors[0].field == field
    assert reason in report.errors[0].reason


def test_validate_manifest_rejects_objects_annotations_length_mismatch():
    record = _label([(0, 1, 1, 5, 5), (1, 20, 20, 5, 5)])
    record["cars-metadata"]["objects"] = [{"confidence": 0.5}]
    _, report = _validate([record])
    assert "has 1 entries but cars.annotations has 2" in report.errors[0].message


@pytest.mark.parametrize("name", ["bad-ref", "x-metadata-y", "-lead", "has space", "a" * 128])
def test_validate_manifest_rejects_illegal_label_attribute_name(name):
    record = _label([(0, 1, 1, 5, 5)])
    record[name] = record.pop("cars")
    record[name + "-metadata"] = record.pop("cars-metadata")
    _, report = _validate([record])
    assert "label attribute name" in report.errors[0].reason


def test_validate_manifest_keeps_good_lines_and_reports_every_bad_one():
    lines = [
        _with_ref(_label([(0, 10, 10, 20, 20)]), "s3://b/1.jpg"),
        b"not json",
        {"source-ref": "s3://b/2.jpg"},
        _with_ref(_label([(0, 10, 10, 20, 20)]), "s3://b/1.jpg"),  # duplicate of line 1
        _with_ref(_label([]), "s3://b/3.jpg"),  # empty image: valid
    ]
    good, report = _validate(lines)
    assert [g.line for g in good] == [1, 3, 5]
    assert [e.line for e in report.errors] == [2, 4]
    assert "repeats the image of line 1" in report.errors[1].reason
    assert report.summary() == "in.manifest: 5 lines, 3 good (2 labeled), 2 bad"


@pytest.mark.parametrize("n_boxes", [0, 1, 20])
def test_validate_manifest_parses_labels_with_many_boxes(n_boxes):
    boxes = [(i % 2, 5 + 30 * i, 7, 25, 40) for i in range(n_boxes)]
    good, report = _validate([_label(boxes, wh=(640, 480))])
    assert not report.errors
    detections = good[0].label.detections
    assert len(detections) == n_boxes
    assert detections.image_wh == (640, 480)
    assert [b.xyxy for b in detections] == [(x, y, x + w, y + h) for _, x, y, w, h in boxes]


def test_validate_manifest_machine_label_keeps_box_scores():
    good, _ = _validate([_label([(1, 1, 1, 5, 5)], human="no", conf=0.87)])
    label = good[0].label
    assert not label.human_annotated
    assert label.detections.boxes[0].score == pytest.approx(0.87)


def test_validate_manifest_checks_class_map_against_label_config():
    config = LabelConfig(("car", "truck"))
    good, report = _validate([_label([(1, 1, 1, 5, 5)])], label_config=config)
    assert good == []
    assert "class-map[\"1\"] is 'bus' but the label config says 'truck'" in report.errors[0].reason


def test_validate_manifest_accepts_non_contiguous_class_ids_in_class_map():
    record = _label([(3, 1, 1, 5, 5), (9, 10, 10, 5, 5)], class_map={"3": "a", "9": "b"})
    good, report = _validate([record])
    assert not report.errors
    assert good[0].label.detections.class_ids == (3, 9)


def test_write_json_line_round_trips_through_iter_json_lines():
    buf = io.StringIO()
    write_json_line(buf, {"source-ref": "s3://b/ü.jpg", "n": 1})
    assert buf.getvalue().endswith("\n")
    assert list(iter_json_lines(io.StringIO(buf.getvalue()), source="x")) == [
        (1, {"source-ref": "s3://b/ü.jpg", "n": 1})
    ]


@given(st.lists(st.binary(max_size=200), max_size=20))
def test_iter_json_lines_never_raises_on_arbitrary_bytes(chunks):
    for item in iter_json_lines(chunks, source="fuzz"):
        if isinstance(item, ManifestError):
            assert item.message.startswith("fuzz:")
        else:
            assert isinstance(item[1], dict)


@given(st.lists(st.binary(max_size=300), max_size=10))
def test_validate_manifest_never_crashes_on_arbitrary_bytes(chunks):
    report = ValidationReport(source="fuzz")
    good = list(validate_manifest(chunks, source="fuzz", report=report))
    assert len(good) + report.bad <= len(chunks)
    assert all(e.line is not None and 1 <= e.line <= len(chunks) for e in report.errors)
