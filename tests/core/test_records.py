"""Ledger records: the validated parser, the trusted ledger parser and the line cache."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

from boxloop.core.errors import ManifestError
from boxloop.core.formats.groundtruth import Label
from boxloop.core.manifests import json_line, record_id
from boxloop.core.records import (
    ROLES,
    Provenance,
    Record,
    record_from_json,
    record_from_ledger,
    record_to_json,
    record_to_line,
)

from .formats._helpers import pixel_detections

ATTR = "boxes"
CLASS_MAP = {0: "car", 1: "person", 7: "bike"}  # non-contiguous ids
RESERVED = {"source-ref", "id", "boxloop", ATTR, f"{ATTR}-metadata"}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
unit = st.floats(0, 1)


@st.composite
def labels(draw: st.DrawFn, image_id: str) -> Label:
    """A human label (consolidation confidences) or a machine label (confidence = score)."""
    detections = draw(pixel_detections(image_id, list(CLASS_MAP)))
    human = draw(st.booleans())
    if human:
        detections = detections.as_human()
        confidences = tuple(draw(unit) for _ in detections)
    else:
        detections = detections.with_boxes(b.with_score(draw(unit)) for b in detections)
        confidences = tuple(b.score or 0.0 for b in detections)
    return Label(
        detections=detections,
        confidences=confidences,
        class_map=CLASS_MAP,
        human_annotated=human,
        job_name=draw(st.text(max_size=12)),
        creation_date=draw(st.text(max_size=26)),
    )


@st.composite
def records(draw: st.DrawFn) -> Record:
    """Any record boxloop may write: unicode refs, any label, any provenance, extra fields."""
    ref = "s3://bucket/" + draw(st.text(min_size=1, max_size=20))
    rid = record_id(ref)
    provenance = Provenance(
        role=draw(st.sampled_from(ROLES)),
        iteration=draw(st.none() | st.integers(0, 99)),
        confidence=draw(st.none() | unit),
        threshold=draw(st.none() | unit),
        model=draw(st.none() | st.text(max_size=12)),
        attempts=draw(st.integers(0, 5)),
        audit=draw(st.booleans()),
        image_wh=draw(st.none() | st.tuples(st.integers(1, 8000), st.integers(1, 8000))),
    )
    extra = draw(
        st.dictionaries(
            st.text(max_size=10).filter(lambda k: k not in RESERVED), json_values, max_size=3
        )
    )
    return Record(
        id=rid,
        source_ref=ref,
        label=draw(st.none() | labels(rid)),
        provenance=provenance,
        extra=extra,
    )


def _ledger_line(record: Record) -> str:
    """The line boxloop writes for ``record``, if the validating parser accepts it back."""
    line = record_to_line(record, ATTR)
    try:
        record_from_json(json.loads(line), ATTR)
    except ManifestError:
        reject()  # e.g. a box under 0.0005 px wide rounds to width 0: never a ledger line
    return line


@given(records())
def test_record_from_ledger_equals_record_from_json_for_a_line_boxloop_wrote(record):
    line = _ledger_line(record)
    assert record_from_ledger(json.loads(line), ATTR) == record_from_json(json.loads(line), ATTR)


@given(records())
def test_record_to_json_gives_back_a_ledger_line_it_parses(record):
    # The reason record_to_line may copy an unchanged line instead of encoding it again.
    line = _ledger_line(record)
    assert json_line(record_to_json(record_from_json(json.loads(line), ATTR), ATTR)) == line


@given(records())
def test_record_to_line_writes_back_the_text_read_while_the_record_is_unchanged(record):
    line = _ledger_line(record)
    read = record_from_ledger(json.loads(line), ATTR, text=line)
    assert record_to_line(read, ATTR) is line


def _read_with_marked_text(obj: dict[str, Any]) -> Record:
    # The text differs from the object on purpose, to see which one record_to_line writes.
    return record_from_ledger(obj, ATTR, text="<the line as read>")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # unchanged: the text as read
        (lambda r: r, "<the line as read>"),
        # provenance changed: encoded anew
        (
            lambda r: r.with_provenance(confidence=0.5),
            '{"source-ref":"s3://b/a.jpg","id":"%s","boxloop":{"confidence":0.5}}',
        ),
        # another field changed through replace: encoded anew
        (
            lambda r: r.replace(extra={"k": 1}),
            '{"source-ref":"s3://b/a.jpg","id":"%s","k":1}',
        ),
    ],
)
def test_record_to_line_encodes_a_changed_record_anew(change, expected):
    rid = record_id("s3://b/a.jpg")
    record = change(_read_with_marked_text({"source-ref": "s3://b/a.jpg", "id": rid}))
    assert record_to_line(record, ATTR) == expected.replace("%s", rid)


def test_record_to_line_encodes_anew_for_another_label_attribute():
    rid = record_id("s3://b/a.jpg")
    record = _read_with_marked_text({"source-ref": "s3://b/a.jpg", "id": rid})
    assert record_to_line(record, "other") == f'{{"source-ref":"s3://b/a.jpg","id":"{rid}"}}'


def test_record_from_ledger_keeps_no_text_when_none_is_given():
    rid = record_id("s3://b/a.jpg")
    record = record_from_ledger({"source-ref": "s3://b/a.jpg", "id": rid, "z": 1}, ATTR)
    assert record_to_line(record, ATTR) == f'{{"source-ref":"s3://b/a.jpg","id":"{rid}","z":1}}'


GOOD = {
    "source-ref": "s3://b/a.jpg",
    "id": record_id("s3://b/a.jpg"),
    ATTR: {"image_size": [{"width": 64, "height": 48, "depth": 3}], "annotations": []},
    f"{ATTR}-metadata": {
        "objects": [],
        "class-map": {},
        "type": "groundtruth/object-detection",
        "human-annotated": "yes",
        "creation-date": "",
        "job-name": "",
    },
}


def _add_box(obj: dict[str, Any], *, class_id: int, with_confidence: bool) -> None:
    obj[ATTR]["annotations"].append(
        {"class_id": class_id, "left": 1, "top": 1, "width": 2, "height": 2}
    )
    if with_confidence:
        obj[f"{ATTR}-metadata"]["objects"].append({"confidence": 0.0})


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        # no id: boxloop writes one on every ledger line
        (lambda o: o.pop("id"), "KeyError: 'id'"),
        # a label without its metadata
        (lambda o: o.pop(f"{ATTR}-metadata"), "KeyError"),
        # image_size as a dict, not a one-element list
        (lambda o: o[ATTR].update(image_size={"width": 64, "height": 48}), "KeyError: 0"),
        # more boxes than confidences
        (lambda o: _add_box(o, class_id=0, with_confidence=False), "ValueError"),
        # a box the Box invariants reject (they hold on the trusted path as well)
        (lambda o: _add_box(o, class_id=-1, with_confidence=True), "class_id must be >= 0"),
        # provenance is still checked: an unknown key
        (lambda o: o.update(boxloop={"colour": "red"}), "has unknown keys"),
    ],
)
def test_record_from_ledger_raises_manifest_error_for_a_line_boxloop_did_not_write(edit, match):
    obj = json.loads(json.dumps(GOOD))
    edit(obj)
    with pytest.raises(ManifestError, match=match):
        record_from_ledger(obj, ATTR)


def test_record_from_ledger_reads_the_good_line():
    record = record_from_ledger(GOOD, ATTR)
    assert record == record_from_json(GOOD, ATTR)
    assert record.is_human_labeled


@pytest.mark.parametrize(
    ("data", "match"),
    [
        # not an object
        ([1], "must be an object, got list"),
        # a key boxloop does not write
        ({"role": "pool", "colour": "red"}, r"has unknown keys \['colour'\]"),
        # a role outside the closed set
        ({"role": "train"}, "must be one of"),
    ],
)
def test_provenance_from_json_raises_naming_the_field(data, match):
    with pytest.raises(ManifestError, match=match):
        Provenance.from_json(data)


def test_provenance_to_json_leaves_defaults_out_and_round_trips():
    provenance = Provenance(role="validation", attempts=2, image_wh=(640, 480))
    assert provenance.to_json() == {"role": "validation", "attempts": 2, "image_wh": [640, 480]}
    assert Provenance.from_json(provenance.to_json()) == provenance
    assert Provenance().to_json() == {}
