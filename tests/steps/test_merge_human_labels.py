from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from boxloop.core.errors import ManifestError
from boxloop.core.ledger import merge_record
from boxloop.core.manifests import record_id
from boxloop.core.records import Provenance, record_from_json
from boxloop.steps.merge_human_labels import merge_human_labels

ATTR = "boxes"
BOX = [(1, 10, 10, 20, 20)]


def _ref(name: str) -> str:
    return f"s3://imgs/{name}.jpg"


def _input_line(name: str, **provenance: Any) -> dict[str, Any]:
    """A line of the job's input manifest, as prepare-labeling writes it."""
    return {"source-ref": _ref(name), "id": record_id(_ref(name)), "boxloop": provenance}


def _failed(line: dict[str, Any], reason: str = "ClientError: worker timed out") -> dict[str, Any]:
    """An output line for an object Ground Truth could not label."""
    meta = {"failure-reason": reason, "human-annotated": "yes", "job-name": "labeling-job/j"}
    return {**line, f"{ATTR}-metadata": meta}


def _write(path: Path, lines: list[dict[str, Any]]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return str(path)


def _labeling(tmp_path: Path, inputs: list[dict], outputs: list[dict] | None) -> dict[str, Any]:
    labeling: dict[str, Any] = {
        "input_manifest": _write(tmp_path / "job" / "input.manifest", inputs),
        "result": {"status": "Completed"},
    }
    if outputs is not None:
        labeling["result"]["output_manifest"] = _write(
            tmp_path / "job" / "output.manifest", outputs
        )
    return labeling


@pytest.fixture
def job(tmp_path, make_config, make_run, ledger_line, gt_fields):
    """A ledger of 7 images and a job over 6 of them: labeled, audited, failed and missing."""
    config = make_config(max_label_attempts=3)
    names = ["val", "seed", "audit", "failed", "missing", "retry"]
    run = make_run(
        [
            ledger_line(_ref("val"), role="validation"),
            ledger_line(_ref("seed")),
            ledger_line(_ref("audit"), confidence=0.97),
            ledger_line(_ref("failed")),
            ledger_line(_ref("missing"), attempts=1),
            ledger_line(_ref("retry"), attempts=1, confidence=0.2),
            ledger_line(_ref("human"), label=gt_fields(boxes=BOX), role="validation"),
        ],
        config,
        iteration=2,
    )
    inputs = {
        "val": _input_line("val", role="validation"),
        "seed": _input_line("seed", role="seed"),
        "audit": _input_line("audit", audit=True, confidence=0.97),
        "failed": _input_line("failed"),
        "missing": _input_line("missing", attempts=1),
        "retry": _input_line("retry", attempts=1, confidence=0.2),
    }
    label = gt_fields((640, 480), BOX, job="labeling-job/bl-j")
    outputs = [
        {**inputs["val"], **label},
        {**inputs["seed"], **label},
        {**inputs["audit"], **label},
        _failed(inputs["failed"]),
        {**inputs["retry"], **label},
    ]
    labeling = _labeling(tmp_path, [inputs[n] for n in names], outputs)
    return run, config, labeling


def _by_name(read_jsonl, ledger: str) -> dict[str, dict[str, Any]]:
    return {Path(x["source-ref"]).stem: x for x in read_jsonl(ledger)}


def test_merge_human_labels_adds_labels_with_iteration_and_role(job, read_jsonl):
    # GIVEN a job that labeled a validation, a seed and a retried pool image in iteration 2
    run, config, labeling = job
    # WHEN its output is merged
    merged = merge_human_labels(run, config, labeling)
    # THEN each label is in the ledger, human, stamped with the iteration, role kept
    lines = _by_name(read_jsonl, merged.ledger)
    for name, role in (("val", "validation"), ("seed", "seed"), ("retry", "pool")):
        assert lines[name]["boxes-metadata"]["human-annotated"] == "yes", name
        assert lines[name]["boxes"]["annotations"][0]["class_id"] == 1
        assert lines[name]["boxloop"]["iteration"] == 2
        assert lines[name]["boxloop"].get("role", "pool") == role
        assert "confidence" not in lines[name]["boxloop"]  # a human label needs no model score
        assert lines[name]["boxloop"]["image_wh"] == [640, 480]
    assert merged.counts["human"] == 5
    assert merged.ledger != run.ledger


def test_merge_human_labels_moves_audited_images_to_validation(job, read_jsonl):
    run, config, labeling = job
    merged = merge_human_labels(run, config, labeling)
    audit = _by_name(read_jsonl, merged.ledger)["audit"]
    assert audit["boxloop"]["role"] == "validation"
    assert audit["boxes-metadata"]["human-annotated"] == "yes"
    assert merged.counts["by_role"]["validation"] == 3


def test_merge_human_labels_returns_failed_and_missing_images_with_one_more_attempt(
    job, read_jsonl
):
    # GIVEN one object that failed (failure-reason, no label) and one the job never returned
    run, config, labeling = job
    # WHEN the output is merged
    lines = _by_name(read_jsonl, merge_human_labels(run, config, labeling).ledger)
    # THEN both stay unlabeled with their attempt count raised by one
    assert "boxes" not in lines["failed"]
    assert "boxes-metadata" not in lines["failed"]
    assert lines["failed"]["boxloop"]["attempts"] == 1
    assert "boxes" not in lines["missing"]
    assert lines["missing"]["boxloop"]["attempts"] == 2
    assert lines["retry"]["boxloop"]["attempts"] == 1  # labeled this time: no new attempt


def test_merge_human_labels_counts_exhausted_images(job):
    # GIVEN max_label_attempts 2: the missing image (attempts 1 -> 2) runs out of attempts
    run, config, labeling = job
    config = config.with_overrides({"max_label_attempts": 2})
    merged = merge_human_labels(run, config, labeling)
    assert merged.counts["exhausted"] == 1
    assert merged.counts["unlabeled"] == 2


def test_merge_human_labels_fails_every_image_when_there_is_no_output(tmp_path, job, read_jsonl):
    # GIVEN a job with no output manifest at all
    run, config, labeling = job
    labeling = _labeling(tmp_path, read_jsonl(labeling["input_manifest"]), None)
    # WHEN merged THEN every input image goes back with one more attempt
    lines = _by_name(read_jsonl, merge_human_labels(run, config, labeling).ledger)
    assert {n: lines[n]["boxloop"].get("attempts", 0) for n in ("val", "audit", "missing")} == {
        "val": 1,
        "audit": 1,
        "missing": 2,
    }
    assert "boxes" not in lines["val"]


def test_merge_human_labels_is_idempotent(job):
    # GIVEN a merge already done
    run, config, labeling = job
    first = merge_human_labels(run, config, labeling)
    first_bytes = Path(first.ledger).read_bytes()
    # WHEN the step runs again on the same state (a retry after a timeout)
    second = merge_human_labels(run, config, labeling)
    # THEN the same ledger is written, byte for byte, with the same counts
    assert Path(second.ledger).read_bytes() == first_bytes
    assert second.to_json() == first.to_json()


def test_merge_human_labels_keeps_a_human_label_over_a_machine_one(
    tmp_path, make_config, make_run, ledger_line, gt_fields, read_jsonl
):
    # GIVEN a human-labeled image and a job output with a machine label for it
    config = make_config()
    human = gt_fields((640, 480), BOX, job="labeling-job/humans")
    run = make_run([ledger_line(_ref("h"), label=human, role="validation")], config)
    machine = gt_fields((640, 480), [(2, 1, 1, 5, 5)], human=False, scores=[0.99])
    labeling = _labeling(
        tmp_path, [_input_line("h", role="validation")], [{**_input_line("h"), **machine}]
    )
    # WHEN it is merged
    merged = merge_human_labels(run, config, labeling)
    # THEN the human label stays and the merge says so
    (line,) = read_jsonl(merged.ledger)
    assert line["boxes-metadata"]["job-name"] == "labeling-job/humans"
    assert line["boxes"]["annotations"][0]["class_id"] == 1
    assert merged.counts["kept_human"] == 1


def test_merge_record_never_replaces_a_human_label_with_a_machine_label(gt_fields):
    human = record_from_json({"source-ref": _ref("a"), **gt_fields(boxes=BOX)}, ATTR)
    machine = record_from_json(
        {
            "source-ref": _ref("a"),
            **gt_fields(boxes=[(0, 1, 1, 2, 2)], human=False, scores=[0.9]),
            "boxloop": {"confidence": 0.9},
        },
        ATTR,
    )
    kept, was_kept = merge_record(human, machine)
    assert was_kept
    assert kept == human
    # the other way round the machine label is replaced, and re-applying changes nothing
    relabeled, was_kept = merge_record(machine, human)
    assert not was_kept
    assert relabeled.label == human.label
    assert relabeled.provenance == Provenance()
    assert merge_record(relabeled, human) == (relabeled, False)


def test_merge_human_labels_rejects_an_image_not_in_the_ledger(
    tmp_path, make_config, make_run, ledger_line, gt_fields
):
    config = make_config()
    run = make_run([ledger_line(_ref("known"))], config)
    stranger = {**_input_line("stranger"), **gt_fields(boxes=BOX)}
    labeling = _labeling(tmp_path, [_input_line("known")], [stranger])
    with pytest.raises(ManifestError, match=r"not in the ledger \(first: "):
        merge_human_labels(run, config, labeling)


@pytest.mark.parametrize(
    "class_map",
    [
        {"7": "dog"},  # class-map agrees with the box but the run has no class 7
        {},  # no class-map entry at all
    ],
)
def test_merge_human_labels_rejects_a_class_outside_the_label_config(
    tmp_path, make_config, make_run, ledger_line, gt_fields, class_map
):
    # GIVEN an output whose second line has a box of class 7 (the run has classes 0..2)
    config = make_config()
    run = make_run([ledger_line(_ref("a")), ledger_line(_ref("b"))], config)
    good = {**_input_line("a"), **gt_fields(boxes=BOX)}
    bad = {**_input_line("b"), **gt_fields(boxes=[(7, 1, 1, 5, 5)])}
    bad["boxes-metadata"]["class-map"] = class_map
    labeling = _labeling(tmp_path, [_input_line("a"), _input_line("b")], [good, bad])
    # WHEN / THEN the merge fails naming the output manifest's line 2
    with pytest.raises(ManifestError, match=r"output\.manifest:2: .*7") as raised:
        merge_human_labels(run, config, labeling)
    assert raised.value.line == 2


def test_merge_human_labels_rejects_a_class_map_that_names_the_classes_otherwise(
    tmp_path, make_config, make_run, ledger_line, gt_fields
):
    # GIVEN an output line labeled with the run's class names in another order
    config = make_config()
    names = config.labels.class_map
    run = make_run([ledger_line(_ref("a")), ledger_line(_ref("b"))], config)
    good = {**_input_line("a"), **gt_fields(boxes=BOX)}
    swapped = {**_input_line("b"), **gt_fields(boxes=BOX)}
    swapped["boxes-metadata"]["class-map"] = {"0": names[1], "1": names[0]}
    labeling = _labeling(tmp_path, [_input_line("a"), _input_line("b")], [good, swapped])
    # WHEN / THEN the merge refuses it, naming the line, the field and both names
    with pytest.raises(ManifestError, match=r"output\.manifest:2: boxes-metadata\.class-map "):
        merge_human_labels(run, config, labeling)
    with pytest.raises(ManifestError, match=f"{names[1]!r}, but .* calls it {names[0]!r}"):
        merge_human_labels(run, config, labeling)


def test_merge_human_labels_keeps_the_progress_baseline_of_the_last_filter(job):
    # GIVEN the counts filter-low-confidence left to measure the next iteration's progress
    run, config, labeling = job
    run = run.replace(counts={"human": 1, "human_before_iteration": 1, "auto_before_iteration": 4})
    # WHEN labels are merged THEN the fresh counts keep that baseline
    counts = merge_human_labels(run, config, labeling).counts
    assert (counts["human_before_iteration"], counts["auto_before_iteration"]) == (1, 4)
    assert counts["human"] == 5


def test_merge_human_labels_clips_or_drops_bad_boxes_with_a_warning_per_image(
    tmp_path, make_config, make_run, ledger_line, gt_fields, read_jsonl
):
    # GIVEN a job whose workers drew a box past the edge of a 100x80 image and a zero-size one
    # next to a good one, and, on another image, only boxes without area
    config = make_config()
    run = make_run(
        [ledger_line(_ref(name)) for name in ("edge", "mixed", "nothing", "fine")],
        config,
        iteration=1,
    )
    outputs = [
        {**_input_line("edge"), **gt_fields((100, 80), [(0, 90, -3, 20, 30)])},
        {**_input_line("mixed"), **gt_fields((100, 80), [(1, 10, 10, 0, 5), (2, 5, 5, 10, 10)])},
        {**_input_line("nothing"), **gt_fields((100, 80), [(0, 10, 10, 0, 0), (0, 120, 5, 5, 5)])},
        {**_input_line("fine"), **gt_fields((100, 80), BOX)},
    ]
    inputs = [_input_line(name) for name in ("edge", "mixed", "nothing", "fine")]
    # WHEN the labels are merged
    merged = merge_human_labels(run, config, _labeling(tmp_path, inputs, outputs))
    # THEN the run goes on: the box past the edge is clipped, the zero-size one dropped
    lines = {line["source-ref"]: line for line in read_jsonl(merged.ledger)}
    assert lines[_ref("edge")]["boxes"]["annotations"] == [
        {"class_id": 0, "left": 90, "top": 0, "width": 10, "height": 27}
    ]
    assert [a["class_id"] for a in lines[_ref("mixed")]["boxes"]["annotations"]] == [2]
    assert lines[_ref("fine")]["boxes"]["annotations"][0]["width"] == 20
    # AND the image whose every box was dropped goes back for relabeling, nothing lost
    assert "boxes" not in lines[_ref("nothing")]
    assert lines[_ref("nothing")]["boxloop"]["attempts"] == 1
    # AND a warning per image says which record and what was done, and the counts say how many
    warnings = {w["source-ref"]: w for w in read_jsonl(merged.counts["box_warnings"]["report"])}
    assert set(warnings) == {_ref("edge"), _ref("mixed"), _ref("nothing")}
    assert warnings[_ref("nothing")]["action"] == "sent back for relabeling"
    assert "clipped" in warnings[_ref("edge")]["warnings"][0]
    assert "dropped" in warnings[_ref("mixed")]["warnings"][0]
    assert {k: v for k, v in merged.counts["box_warnings"].items() if k != "report"} == {
        "images": 3,
        "clipped": 1,
        "dropped": 3,
        "relabel": 1,
    }
    assert "/iter-001/report/" in merged.counts["box_warnings"]["report"]


def test_merge_human_labels_writes_a_later_part_to_a_ledger_version_of_its_own(job, read_jsonl):
    # GIVEN part 1 of iteration 2 merged, then part 2's job (same images, for the test)
    run, config, labeling = job
    part_1 = merge_human_labels(run, config, labeling)
    part_1_bytes = Path(part_1.ledger).read_bytes()
    # WHEN part 2 is merged, twice (a retry)
    part_2 = merge_human_labels(part_1, config, {**labeling, "part": 2})
    part_2_bytes = Path(part_2.ledger).read_bytes()
    again = merge_human_labels(part_1, config, {**labeling, "part": 2})
    # THEN it writes its own ledger version and warnings report, never over the one it read
    assert part_1.ledger.endswith("/ledger/iter-002-1-merge.jsonl")
    assert part_2.ledger.endswith("/ledger/iter-002-1-merge.part-002.jsonl")
    assert Path(part_1.ledger).read_bytes() == part_1_bytes
    assert part_2.counts["box_warnings"]["report"].endswith("/label-warnings.part-002.jsonl")
    # AND a retry reads the same version and writes the same one, byte for byte
    assert again.to_json() == part_2.to_json()
    assert Path(again.ledger).read_bytes() == part_2_bytes
    # AND the names sort in the order they were written: the newest ledger is the last name
    names = [Path(run.ledger).name, Path(part_1.ledger).name, Path(part_2.ledger).name]
    assert sorted([*names, "iter-002-2-filter.jsonl"]) == [*names, "iter-002-2-filter.jsonl"]
