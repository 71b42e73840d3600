from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from boxloop.aws.s3 import ImageBytes
from boxloop.core.errors import BoxloopError, ConfigError, ManifestError, NothingUsableError
from boxloop.core.image_size import ImageHeaderError
from boxloop.core.ledger import assign_role
from boxloop.core.manifests import record_id
from boxloop.steps.image_checks import MAX_PAYLOAD_MB, RECORD_COST_S, RESERVE_S, CheckDeadline
from boxloop.steps.ingest import IngestRequest, check_images, ingest
from boxloop.steps.run import run_id_for

if TYPE_CHECKING:
    from collections.abc import Callable


def _write_manifest(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _request(tmp_path: Path, **kwargs: Any) -> IngestRequest:
    return IngestRequest(run_id="run-1", root=str(tmp_path / "run"), **kwargs)


@pytest.fixture
def mixed_manifest(tmp_path: Path, gt_fields) -> tuple[str, list[str]]:
    """Twenty good unlabeled lines, one pre-labeled line under another attribute, four bad."""
    refs = [f"s3://imgs/cam/{i:04d}.jpg" for i in range(20)]
    labeled = {"source-ref": "s3://imgs/cam/labeled.jpg", "note": "keep me"}
    labeled.update(gt_fields((320, 200), [(1, 10, 20, 30, 40)], attr="bounding-box"))
    lines = [
        json.dumps({"source-ref": refs[0]}),  # 1
        "{not json",  # 2: bad JSON
        json.dumps(labeled),  # 3: human label under "bounding-box"
        json.dumps({"image": "s3://imgs/cam/x.jpg"}),  # 4: no source-ref
        json.dumps({"source-ref": refs[0]}),  # 5: duplicate of line 1
        json.dumps(  # 6: box outside its image
            {"source-ref": "s3://imgs/cam/out.jpg", **gt_fields((50, 50), [(0, 40, 40, 30, 30)])}
        ),
        *(json.dumps({"source-ref": ref}) for ref in refs[1:]),  # 7..25
    ]
    return _write_manifest(tmp_path / "input.manifest", lines), [*refs, labeled["source-ref"]]


def test_ingest_writes_ledger_sorted_by_id_with_hash_roles(
    tmp_path, make_config, read_jsonl, mixed_manifest, image_reader
):
    # GIVEN a manifest of good and bad lines and a config with validation and test shares
    manifest, good_refs = mixed_manifest
    config = make_config(validation_fraction=0.3, test_fraction=0.2, seed=7)
    # WHEN it is ingested
    run = ingest(_request(tmp_path, manifest=manifest), config, read_image=image_reader())
    # THEN the ledger holds every good image once, sorted by id, with the role its id hashes to
    lines = read_jsonl(run.ledger)
    ids = [line["id"] for line in lines]
    assert ids == sorted(ids)
    assert sorted(line["source-ref"] for line in lines) == sorted(good_refs)
    roles = {line["id"]: line.get("boxloop", {}).get("role", "pool") for line in lines}
    expected = {
        record_id(ref): assign_role(
            record_id(ref), seed=7, validation_fraction=0.3, test_fraction=0.2
        )
        for ref in good_refs
    }
    assert roles == expected
    assert set(roles.values()) == {"validation", "test", "pool"}
    assert run.counts["total"] == len(good_refs)
    assert run.counts["rejected"] == 4
    assert run.counts["human"] == 1


def test_ingest_quarantines_every_bad_line_with_its_number(
    tmp_path, make_config, read_jsonl, mixed_manifest, image_reader
):
    # GIVEN a manifest whose lines 2, 4, 5 and 6 are bad in four different ways
    manifest, _ = mixed_manifest
    # WHEN it is ingested
    run = ingest(_request(tmp_path, manifest=manifest), make_config(), read_image=image_reader())
    # THEN output/rejected.jsonl lists each bad line with its number and reason
    rejected = read_jsonl(run.paths.output("rejected.jsonl"))
    assert [r["line"] for r in rejected] == [2, 4, 5, 6]
    reasons = {r["line"]: r["reason"] for r in rejected}
    assert "not valid JSON" in reasons[2]
    assert "source-ref" in reasons[4]
    assert "repeats the image of line 1" in reasons[5]
    assert "outside" in reasons[6]


def test_ingest_keeps_a_human_label_when_under_another_attribute_name(
    tmp_path, make_config, read_jsonl, mixed_manifest, image_reader
):
    # GIVEN a line labeled by humans under "bounding-box" while the run's attribute is "boxes"
    manifest, _ = mixed_manifest
    # WHEN it is ingested
    run = ingest(_request(tmp_path, manifest=manifest), make_config(), read_image=image_reader())
    # THEN the label sits under "boxes", still human, and the old attribute is gone
    line = next(x for x in read_jsonl(run.ledger) if x["source-ref"].endswith("labeled.jpg"))
    assert "bounding-box" not in line
    assert "bounding-box-metadata" not in line
    assert line["boxes"]["annotations"] == [
        {"class_id": 1, "left": 10, "top": 20, "width": 30, "height": 40}
    ]
    assert line["boxes"]["image_size"][0]["width"] == 320
    assert line["boxes-metadata"]["human-annotated"] == "yes"
    assert line["note"] == "keep me"


def test_ingest_keeps_the_first_of_duplicated_lines(
    tmp_path, make_config, read_jsonl, image_reader
):
    # GIVEN the same image twice, the second time with a label
    ref = "s3://imgs/dup.jpg"
    manifest = _write_manifest(
        tmp_path / "dup.manifest",
        [json.dumps({"source-ref": ref, "n": 1}), json.dumps({"source-ref": ref, "n": 2})],
    )
    # WHEN it is ingested
    run = ingest(_request(tmp_path, manifest=manifest), make_config(), read_image=image_reader())
    # THEN one record remains, from line 1, and line 2 is rejected naming line 1
    assert [(x["source-ref"], x["n"]) for x in read_jsonl(run.ledger)] == [(ref, 1)]
    assert [r["line"] for r in read_jsonl(run.paths.output("rejected.jsonl"))] == [2]


def test_ingest_raises_nothing_usable_when_every_line_is_bad(
    tmp_path, make_config, read_jsonl, image_reader
):
    # GIVEN a manifest with no usable line
    manifest = _write_manifest(tmp_path / "bad.manifest", ["[1, 2]", "{oops", '{"a": 1}'])
    # WHEN / THEN ingest raises, and the quarantine report still lists all three lines
    with pytest.raises(NothingUsableError, match="no usable line"):
        ingest(_request(tmp_path, manifest=manifest), make_config(), read_image=image_reader())
    rejected = read_jsonl(tmp_path / "run" / "output" / "rejected.jsonl")
    assert [r["line"] for r in rejected] == [1, 2, 3]


def test_ingest_copies_every_label_when_resuming_from_a_ledger(
    tmp_path, make_config, make_run, gt_fields, ledger_line, read_jsonl, image_reader
):
    # GIVEN an earlier run's ledger with human and machine labels and provenance
    config = make_config()
    earlier = make_run(
        [
            ledger_line(
                "s3://imgs/h.jpg",
                label=gt_fields((64, 48), [(0, 1, 2, 3, 4)]),
                role="validation",
                iteration=0,
            ),
            ledger_line(
                "s3://imgs/m.jpg",
                label=gt_fields((64, 48), [(2, 5, 5, 10, 10)], human=False, scores=[0.9]),
                iteration=1,
                threshold=0.8,
                model="bl-x-001-train",
            ),
            ledger_line("s3://imgs/u.jpg", attempts=1, confidence=0.3),
        ],
        config,
    )
    # WHEN a new run resumes from it
    request = IngestRequest(run_id="run-2", root=str(tmp_path / "run2"), ledger=earlier.ledger)
    run = ingest(request, config, read_image=image_reader())
    # THEN the new ledger holds the same lines, labels and provenance included, plus the
    # image check the earlier ledger lacked (and the size of the unlabeled image's header)
    resumed = read_jsonl(run.ledger)
    for line in resumed:
        assert line["boxloop"].pop("image_check") == "ok"
    unlabeled = next(line for line in resumed if "boxes" not in line)
    assert unlabeled["boxloop"].pop("image_wh", None) in (None, [640, 480])
    assert resumed == read_jsonl(earlier.ledger)
    assert (run.counts["human"], run.counts["auto"], run.counts["unlabeled"]) == (1, 1, 1)
    assert run.counts["images_checked"] == 3
    assert run.ledger.startswith(str(tmp_path / "run2"))


def test_ingest_reads_no_image_again_when_resuming_from_a_checked_ledger(
    tmp_path, make_config, read_jsonl, image_reader, jpeg_bytes
):
    # GIVEN a run ingested from a manifest: every image checked once, one of them refused
    refs = [f"s3://imgs/{i}.jpg" for i in range(4)]
    manifest = _write_manifest(
        tmp_path / "input.manifest", [json.dumps({"source-ref": ref}) for ref in refs]
    )
    grey = jpeg_bytes(components=1)
    first = ingest(
        _request(tmp_path, manifest=manifest),
        make_config(),
        read_image=image_reader(overrides={refs[2]: grey}),
    )
    assert (first.counts["images_checked"], first.counts["images_not_predictable"]) == (4, 1)

    # WHEN a new run resumes from its ledger with a reader that fails on any read
    def no_read(location: str) -> Any:
        raise AssertionError(f"{location} was read again")

    request = IngestRequest(run_id="run-2", root=str(tmp_path / "run2"), ledger=first.ledger)
    run = ingest(request, make_config(), read_image=no_read)
    # THEN nothing is read, and the refused image is still marked and counted
    assert run.counts["images_checked"] == 0
    assert run.counts["unpredictable"] == 1
    assert read_jsonl(run.ledger) == read_jsonl(first.ledger)


def test_ingest_validates_a_ledger_it_resumes_from(tmp_path, make_config, gt_fields, image_reader):
    # GIVEN a ledger from elsewhere whose second line has a box outside its image
    lines = [
        {"source-ref": "s3://imgs/a.jpg"},
        {"source-ref": "s3://imgs/b.jpg", **gt_fields((64, 48), [(0, 60, 0, 10, 10)])},
    ]
    ledger = _write_manifest(tmp_path / "old.jsonl", [json.dumps(line) for line in lines])
    # WHEN / THEN resuming from it fails, naming the line and the box: it is not trusted
    with pytest.raises(ManifestError, match=r"old\.jsonl:2: boxes\.annotations\[0\]"):
        ingest(_request(tmp_path, ledger=ledger), make_config(), read_image=image_reader())


@pytest.mark.parametrize(
    ("execution_input", "expected"),
    [
        # both a manifest and a ledger
        ({"manifest": "s3://b/m", "ledger": "s3://b/l"}, ["exactly one of"]),
        # neither
        ({}, ["exactly one of"]),
        # neither, plus two unknown keys and bad overrides: all three reported at once
        (
            {"manifst": "s3://b/m", "extra": 1, "overrides": [1]},
            ["exactly one of", "unknown execution input keys ['extra', 'manifst']", "overrides"],
        ),
    ],
)
def test_ingest_request_lists_every_input_error(execution_input, expected):
    with pytest.raises(ConfigError) as raised:
        IngestRequest.from_event({"execution": "e1", "input": execution_input}, bucket="b")
    problems = raised.value.problems
    assert len(problems) == len(expected)
    for fragment in expected:
        assert any(fragment in problem for problem in problems), (fragment, problems)


def test_ingest_request_names_the_run_after_the_execution():
    request = IngestRequest.from_event(
        {"execution": "my run/1", "input": {"manifest": "s3://b/in.manifest"}}, bucket="bkt"
    )
    assert request.run_id == run_id_for("my run/1")  # my-run-1-<hash of the name>
    assert request.run_id.startswith("my-run-1-")
    assert request.root == f"s3://bkt/runs/{request.run_id}"
    assert (request.manifest, request.ledger, request.overrides) == ("s3://b/in.manifest", None, {})


def test_ingest_transform_payload_limit_is_the_state_machines():
    # the check and the Transform state must agree, or images pass one and fail the other
    asl = json.loads(
        (Path(__file__).resolve().parents[2] / "statemachine" / "boxloop.asl.json").read_text()
    )
    assert asl["States"]["Transform"]["Parameters"]["MaxPayloadInMB"] == MAX_PAYLOAD_MB


def test_ingest_marks_images_the_transform_cannot_take_and_reports_each(
    tmp_path, make_config, read_jsonl, image_reader, jpeg_bytes
):
    # GIVEN a manifest of good images and one of each kind batch transform cannot take
    refs = {name: f"s3://imgs/{name}.jpg" for name in ("ok", "grey", "cmyk", "big", "cut", "gone")}
    manifest = _write_manifest(
        tmp_path / "input.manifest", [json.dumps({"source-ref": ref}) for ref in refs.values()]
    )
    big = jpeg_bytes((8000, 6000))
    reader = image_reader(
        overrides={
            refs["grey"]: jpeg_bytes(components=1),
            refs["cmyk"]: jpeg_bytes(components=4),
            refs["cut"]: jpeg_bytes(complete=False),
            refs["gone"]: ImageHeaderError("s3://imgs/gone.jpg: NoSuchKey"),
        }
    )

    def read(location: str) -> ImageBytes:
        if location == refs["big"]:  # a header like any other, but 60 MB of file
            return ImageBytes(big, 60_000_000, lambda o, n: big[o : o + n])
        return reader(location)

    # WHEN it is ingested
    run = ingest(_request(tmp_path, manifest=manifest), make_config(), read_image=read)
    # THEN every image stays in the ledger; the bad ones are marked with why
    checks = {
        line["source-ref"]: line["boxloop"].get("image_check") for line in read_jsonl(run.ledger)
    }
    assert checks == {
        refs["ok"]: "ok",
        refs["grey"]: "channels",
        refs["cmyk"]: "channels",
        refs["big"]: "payload",
        refs["cut"]: "incomplete",
        refs["gone"]: "unreadable",
    }
    # AND the good image's size is known from its header, for post-processing
    ok_line = next(x for x in read_jsonl(run.ledger) if x["source-ref"] == refs["ok"])
    assert ok_line["boxloop"]["image_wh"] == [640, 480]
    # AND rejected.jsonl names each with its manifest line, reason and fix
    rejected = {r["source-ref"]: r for r in read_jsonl(f"{run.root}/output/rejected.jsonl")}
    assert set(rejected) == set(refs.values()) - {refs["ok"]}
    assert rejected[refs["cmyk"]]["line"] == 3
    assert "CMYK" in rejected[refs["cmyk"]]["reason"]
    assert "grey" in rejected[refs["grey"]]["reason"]
    assert "MaxPayloadInMB" in rejected[refs["big"]]["reason"]
    assert "NoSuchKey" in rejected[refs["gone"]]["reason"]
    assert all(r["fix"] and r["in_ledger"] for r in rejected.values())
    # AND the counts say how many
    assert run.counts["images_checked"] == 6
    assert run.counts["images_not_predictable"] == run.counts["unpredictable"] == 5
    assert run.counts["rejected"] == 0  # no manifest line was set aside


def test_ingest_sets_aside_lines_in_another_bucket_than_the_first(
    tmp_path, make_config, read_jsonl, image_reader
):
    # GIVEN a manifest whose images are in one bucket but for two lines
    refs = [f"s3://main/{i}.jpg" for i in range(5)]
    lines = [*refs[:2], "s3://other/x.jpg", *refs[2:], "s3://third/y.jpg"]
    manifest = _write_manifest(
        tmp_path / "input.manifest", [json.dumps({"source-ref": ref}) for ref in lines]
    )
    # WHEN it is ingested
    run = ingest(_request(tmp_path, manifest=manifest), make_config(), read_image=image_reader())
    # THEN the ledger holds the first bucket's images only
    assert sorted(x["source-ref"] for x in read_jsonl(run.ledger)) == sorted(refs)
    # AND rejected.jsonl names each other line, its bucket and the fix, before anything is paid
    rejected = [r for r in read_jsonl(f"{run.root}/output/rejected.jsonl") if "field" in r]
    assert [(r["line"], r["field"]) for r in rejected] == [(3, "source-ref"), (7, "source-ref")]
    assert "s3://other/" in rejected[0]["reason"]
    assert "s3://main/" in rejected[0]["reason"]
    assert "fix: copy the image into s3://main/" in rejected[0]["reason"]
    assert run.counts["rejected"] == 2


def test_ingest_fails_before_anything_is_paid_when_most_images_are_in_other_buckets(
    tmp_path, make_config, image_reader
):
    # GIVEN a manifest whose first line is the stray one
    lines = ["s3://stray/a.jpg", *(f"s3://main/{i}.jpg" for i in range(3))]
    manifest = _write_manifest(
        tmp_path / "input.manifest", [json.dumps({"source-ref": ref}) for ref in lines]
    )
    # WHEN / THEN ingest fails, naming both buckets and their counts
    with pytest.raises(NothingUsableError, match=r"s3://main/: 3, s3://stray/: 1"):
        ingest(_request(tmp_path, manifest=manifest), make_config(), read_image=image_reader())


def _time_for(reads: int) -> Callable[[], int]:
    """A Lambda's remaining time, ms: 15 minutes while ``reads`` headers are asked for, then 0.

    Each pass asks once per header it may read, so ``reads`` is the most a pass reads.
    """
    asked = itertools.count()
    return lambda: 900_000 if next(asked) < reads else 0


def test_ingest_leaves_images_unchecked_once_its_deadline_is_spent(
    tmp_path, make_config, read_jsonl, image_reader
):
    # GIVEN ten images and a Lambda whose time allows four header reads
    refs = [f"s3://imgs/{i}.jpg" for i in range(10)]
    manifest = _write_manifest(
        tmp_path / "input.manifest", [json.dumps({"source-ref": ref}) for ref in refs]
    )
    # WHEN it is ingested
    run = ingest(
        _request(tmp_path, manifest=manifest),
        make_config(),
        read_image=image_reader(),
        remaining_ms=_time_for(4),
    )
    # THEN the ledger holds every image, four checked and six with no check yet
    checks = [line.get("boxloop", {}).get("image_check") for line in read_jsonl(run.ledger)]
    assert (checks.count("ok"), checks.count(None)) == (4, 6)
    # AND the counts say how many are left for the CheckImages passes
    assert run.counts["total"] == 10
    assert (run.counts["images_checked"], run.counts["images_unchecked"]) == (4, 6)


def test_ingest_checks_every_image_when_it_has_time(tmp_path, make_config, image_reader):
    # GIVEN a manifest and a whole Lambda's time
    manifest = _write_manifest(
        tmp_path / "input.manifest",
        [json.dumps({"source-ref": f"s3://i/{i}.jpg"}) for i in range(5)],
    )
    # WHEN it is ingested
    run = ingest(
        _request(tmp_path, manifest=manifest),
        make_config(),
        read_image=image_reader(),
        remaining_ms=lambda: 900_000,
    )
    # THEN nothing is left for a second pass
    assert (run.counts["images_checked"], run.counts["images_unchecked"]) == (5, 0)


def test_check_images_checks_each_image_once_over_passes_like_one_pass(
    tmp_path, make_config, read_jsonl, image_reader, jpeg_bytes
):
    # GIVEN twelve images, two of them refused by the transform, and a counting reader
    refs = [f"s3://imgs/{i:02d}.jpg" for i in range(12)]
    manifest = _write_manifest(
        tmp_path / "input.manifest", [json.dumps({"source-ref": ref}) for ref in refs]
    )
    bad = {refs[3]: jpeg_bytes(components=1), refs[10]: jpeg_bytes(components=4)}
    reader = image_reader(overrides=bad)
    reads: list[str] = []

    def read(location: str) -> ImageBytes:
        reads.append(location)
        return reader(location)

    config = make_config()
    # WHEN it is ingested, then checked pass after pass, each pass with time for 5 reads
    run = ingest(
        _request(tmp_path, manifest=manifest), config, read_image=read, remaining_ms=_time_for(5)
    )
    ledgers = [run.ledger]
    while run.counts["images_unchecked"]:
        run = check_images(run, config, read_image=read, remaining_ms=_time_for(5))
        ledgers.append(run.ledger)
    # THEN it took three passes, each writing a new ledger version named in write order
    assert len(ledgers) == 3
    assert [Path(x).name for x in ledgers] == [
        "iter-000-0-ingest.jsonl",
        "iter-000-0-ingest.part-002.jsonl",
        "iter-000-0-ingest.part-003.jsonl",
    ]
    assert sorted(ledgers) == ledgers
    # AND every image was read exactly once
    assert sorted(reads) == refs
    # AND the last ledger is the one a single pass writes
    one_pass = ingest(
        IngestRequest(run_id="run-1", root=str(tmp_path / "one"), manifest=manifest),
        config,
        read_image=reader,
    )
    assert read_jsonl(run.ledger) == read_jsonl(one_pass.ledger)
    assert (run.counts["images_checked"], run.counts["images_not_predictable"]) == (12, 2)
    assert run.counts["unpredictable"] == 2
    assert run.counts["total"] == 12
    # AND each refused image is reported once, in the report of the pass that read it
    reports = sorted((tmp_path / "run" / "output").glob("rejected*.jsonl"))
    assert [p.name for p in reports] == [
        "rejected.jsonl",
        "rejected.part-002.jsonl",
        "rejected.part-003.jsonl",
    ]
    rejected = [line for p in reports for line in read_jsonl(p)]
    assert sorted(line["source-ref"] for line in rejected) == sorted(bad)
    assert all(line["check"] == "channels" and line["in_ledger"] for line in rejected)


def test_check_images_keeps_every_label_of_the_ledger(
    tmp_path, make_config, read_jsonl, gt_fields, image_reader
):
    # GIVEN a resumed ledger with a human label, its images not yet read
    lines = [
        {"source-ref": "s3://imgs/a.jpg", **gt_fields((640, 480), [(0, 1, 2, 30, 40)])},
        {"source-ref": "s3://imgs/b.jpg"},
        {"source-ref": "s3://imgs/c.jpg"},
    ]
    earlier = _write_manifest(tmp_path / "earlier.jsonl", [json.dumps(x) for x in lines])
    config = make_config()
    request = IngestRequest(run_id="run-2", root=str(tmp_path / "run"), ledger=earlier)
    run = ingest(request, config, read_image=image_reader(), remaining_ms=_time_for(1))
    # WHEN the remaining images are checked in later passes
    while run.counts["images_unchecked"]:
        run = check_images(run, config, read_image=image_reader(), remaining_ms=_time_for(1))
    # THEN the label is intact and every image is checked
    final = {line["source-ref"]: line for line in read_jsonl(run.ledger)}
    assert final["s3://imgs/a.jpg"]["boxes"]["annotations"][0]["width"] == 30
    assert {line["boxloop"]["image_check"] for line in final.values()} == {"ok"}
    assert run.counts["human"] == 1


def test_check_images_refuses_a_ledger_that_is_not_ingests(tmp_path, make_config, make_run):
    # GIVEN a run whose ledger is a later step's
    config = make_config()
    run = make_run([], config)
    run = run.replace(ledger=run.paths.ledger(0, "merge"))
    # WHEN image checks are asked to continue it
    # THEN it is refused by name
    with pytest.raises(BoxloopError, match="continue ingest's ledger"):
        check_images(run, config, read_image=lambda _: pytest.fail("read"))


@pytest.mark.parametrize(
    ("records", "remaining_s", "allowed"),
    [
        (0, RESERVE_S + 1, True),  # a small run with time to spare
        (0, RESERVE_S - 1, False),  # the reserve alone is not left
        (1_000_000, RESERVE_S + 1_000_000 * RECORD_COST_S + 1, True),  # 1M: 80 s left is enough
        (1_000_000, RESERVE_S + 1_000_000 * RECORD_COST_S - 1, False),  # not a second less
    ],
)
def test_check_deadline_keeps_time_to_write_every_record(records, remaining_s, allowed):
    # GIVEN a pass that has read its one guaranteed header
    deadline = CheckDeadline(
        remaining_ms=lambda: int(remaining_s * 1000), expected_records=lambda: records
    )
    assert deadline.allows_check()
    # WHEN it asks for another
    # THEN it may read it only if the rest of the pass still fits
    assert deadline.allows_check() is allowed


def test_check_deadline_reads_one_header_per_pass_when_time_is_already_short():
    # GIVEN a pass that starts with no time to spare
    deadline = CheckDeadline(remaining_ms=lambda: 0, expected_records=lambda: 10)
    # WHEN it asks for headers
    # THEN it gets the one that keeps the passes moving, then none
    assert [deadline.allows_check() for _ in range(3)] == [True, False, False]
    assert deadline.is_spent
