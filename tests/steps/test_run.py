"""Reading and writing ledger files: the validating reader, the trusted one and its line cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from boxloop.core.errors import ManifestError
from boxloop.core.manifests import record_id
from boxloop.steps.run import iter_records, write_records

ATTR = "boxes"


@pytest.fixture
def ledger(make_run, make_config, ledger_line, gt_fields) -> Path:
    """A ledger as boxloop writes it: human, machine and unlabeled images, unicode included."""
    run = make_run(
        [
            ledger_line(
                "s3://imgs/h.jpg",
                label=gt_fields((64, 48), [(0, 1.5, 2, 3.25, 4)]),
                role="validation",
                iteration=0,
            ),
            ledger_line(
                "s3://imgs/m.jpg",
                label=gt_fields((64, 48), [(2, 5, 5, 10, 10)], human=False, scores=[0.91234]),
                threshold=0.8,
            ),
            {"source-ref": "s3://imgs/ü.jpg", "note": "ünïcode", "boxloop": {"attempts": 1}},
        ],
        make_config(),
    )
    return Path(run.ledger)


def test_write_records_copies_a_trusted_ledger_byte_for_byte(ledger, tmp_path):
    # GIVEN a ledger boxloop wrote, WHEN it is read trusted and written back unchanged
    copy = tmp_path / "copy.jsonl"
    counts = write_records(str(copy), iter_records(str(ledger), ATTR, trusted=True), ATTR)
    # THEN the copy is the same file, and the counts are those of a validated read
    assert copy.read_bytes() == ledger.read_bytes()
    assert counts == write_records(
        str(tmp_path / "validated.jsonl"), iter_records(str(ledger), ATTR), ATTR
    )
    assert (tmp_path / "validated.jsonl").read_bytes() == ledger.read_bytes()


def test_iter_records_trusted_equals_validated_on_a_ledger_boxloop_wrote(ledger):
    trusted = list(iter_records(str(ledger), ATTR, trusted=True))
    assert trusted == list(iter_records(str(ledger), ATTR))
    assert len(trusted) == 3


def _append(ledger: Path, obj: dict) -> None:
    with ledger.open("a", encoding="utf-8") as out:
        out.write(json.dumps(obj) + "\n")


@pytest.mark.parametrize(
    ("trusted", "match"),
    [
        # the validating reader names the field and the fix
        (False, r"copy\.jsonl:4: id is 'nope' but source-ref hashes to"),
        # the trusted reader names the line and says it is not boxloop's
        (True, r"copy\.jsonl:4: is not a ledger line as boxloop writes it"),
    ],
)
def test_iter_records_raises_naming_file_and_line_for_a_line_boxloop_did_not_write(
    ledger, tmp_path, trusted, match
):
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(ledger.read_bytes())
    _append(copy, {"source-ref": "s3://imgs/x.jpg", "id": "nope", "boxes": {}})
    with pytest.raises(ManifestError, match=match):
        list(iter_records(str(copy), ATTR, trusted=trusted))


def test_iter_records_rejects_a_box_outside_its_image_by_default(ledger, tmp_path, gt_fields):
    # GIVEN a line whose box lies outside its image (a hand-edited ledger, say)
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(ledger.read_bytes())
    ref = "s3://imgs/out.jpg"
    _append(
        copy, {"source-ref": ref, "id": record_id(ref), **gt_fields((64, 48), [(0, 60, 0, 10, 10)])}
    )
    # WHEN / THEN the validating reader rejects it, naming the box
    with pytest.raises(ManifestError, match=r"copy\.jsonl:4: boxes\.annotations\[0\]"):
        list(iter_records(str(copy), ATTR))
