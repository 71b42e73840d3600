from __future__ import annotations

import json
from pathlib import Path

import pytest

from boxloop.core.errors import ConfigError
from boxloop.core.manifests import record_id
from boxloop.steps.merge_human_labels import merge_human_labels
from boxloop.steps.prepare_labeling import LABEL_CATEGORIES, prepare_labeling
from boxloop.steps.run import run_hash

BOX = [(0, 10, 10, 20, 20)]


def _ref(name: str) -> str:
    return f"s3://imgs/{name}.jpg"


def _chosen(read_jsonl, labeling) -> dict[str, dict]:
    return {line["id"]: line for line in read_jsonl(labeling["input_manifest"])}


@pytest.fixture
def seed_ledger(gt_fields, ledger_line):
    """Iteration 0: 3 unlabeled + 1 labeled validation images, 10 open and 2 exhausted pool ones."""
    return [
        *(ledger_line(_ref(f"val-{i}"), role="validation") for i in range(3)),
        ledger_line(_ref("val-done"), label=gt_fields(boxes=BOX), role="validation"),
        *(ledger_line(_ref(f"pool-{i}")) for i in range(10)),
        ledger_line(_ref("pool-tired"), attempts=2),
        ledger_line(_ref("val-tired"), role="validation", attempts=3),
    ]


@pytest.fixture
def later_ledger(gt_fields, ledger_line):
    """After the seed: 4 human seed labels, validation done, 10 pool images with confidences."""
    return [
        *(
            ledger_line(_ref(f"seed-{i}"), label=gt_fields(boxes=BOX), role="seed")
            for i in range(4)
        ),
        ledger_line(_ref("val-0"), label=gt_fields(boxes=BOX), role="validation"),
        *(ledger_line(_ref(f"pool-{i}"), confidence=i / 10 + 0.05) for i in range(10)),
    ]


def test_prepare_labeling_sends_validation_gaps_and_a_random_seed_at_iteration_0(
    make_config, make_run, read_jsonl, seed_ledger
):
    # GIVEN the first iteration with seed_size 4 (more than batch_size 3)
    config = make_config(seed_size=4, batch_size=3, max_label_attempts=2)
    run = make_run(seed_ledger, config)
    # WHEN the human batch is prepared
    labeling = prepare_labeling(run, config)
    # THEN every open unlabeled validation image goes, plus 4 random open pool images as seed
    chosen = _chosen(read_jsonl, labeling)
    validation = {record_id(_ref(f"val-{i}")) for i in range(3)}
    pool = {record_id(_ref(f"pool-{i}")) for i in range(10)}
    seed = set(chosen) - validation
    assert validation <= set(chosen)
    assert len(seed) == 4
    assert seed <= pool
    assert all(chosen[rid]["boxloop"]["role"] == "seed" for rid in seed)
    assert all(chosen[rid]["boxloop"]["role"] == "validation" for rid in validation)
    assert labeling["count"] == 7


def test_prepare_labeling_draws_the_seed_by_the_config_seed(
    make_config, make_run, read_jsonl, seed_ledger
):
    # GIVEN the same ledger under two config seeds
    picks = []
    for seed in (0, 0, 1):
        config = make_config(seed=seed)
        labeling = prepare_labeling(make_run(seed_ledger, config), config)
        picks.append(set(_chosen(read_jsonl, labeling)))
    # THEN the seed repeats for the same config seed and changes with it
    assert picks[0] == picks[1]
    assert picks[0] != picks[2]


def test_prepare_labeling_selects_least_confident_plus_an_audit_when_a_threshold_exists(
    make_config, make_run, read_jsonl, later_ledger
):
    # GIVEN a complete seed, a model with threshold 0.7 and a 25 % audit share of 4 slots
    config = make_config(seed_size=4, batch_size=4, audit_share=0.25)
    run = make_run(later_ledger, config, iteration=1, model={"threshold": 0.7, "name": "m"})
    # WHEN the human batch is prepared
    chosen = _chosen(read_jsonl, prepare_labeling(run, config))
    # THEN the 3 least confident pool images go, plus one audited would-be auto-label
    audited = [rid for rid, line in chosen.items() if line["boxloop"].get("audit")]
    learning = set(chosen) - set(audited)
    assert learning == {record_id(_ref(f"pool-{i}")) for i in range(3)}
    assert len(audited) == 1
    assert chosen[audited[0]]["boxloop"]["confidence"] >= 0.7
    assert all("role" not in line["boxloop"] for line in chosen.values())  # pool, the default


@pytest.mark.parametrize(
    "model",
    [
        None,  # no model yet
        {"name": "m", "threshold": None},  # the gate failed or calibration found no threshold
    ],
)
def test_prepare_labeling_audits_nothing_when_there_is_no_threshold(
    make_config, make_run, read_jsonl, later_ledger, model
):
    config = make_config(seed_size=4, batch_size=4, audit_share=0.5)
    run = make_run(later_ledger, config, iteration=1, model=model)
    chosen = _chosen(read_jsonl, prepare_labeling(run, config))
    assert set(chosen) == {record_id(_ref(f"pool-{i}")) for i in range(4)}
    assert not any(line["boxloop"].get("audit") for line in chosen.values())


def test_prepare_labeling_audits_when_the_threshold_is_zero(
    make_config, make_run, read_jsonl, later_ledger
):
    # GIVEN a calibrated threshold of 0.0: every pool image is a would-be auto-label
    config = make_config(seed_size=4, batch_size=4, audit_share=0.5)
    run = make_run(later_ledger, config, iteration=1, model={"name": "m", "threshold": 0.0})
    # WHEN the batch is prepared THEN half of it audits the auto-labels all the same
    chosen = _chosen(read_jsonl, prepare_labeling(run, config))
    assert sum(bool(line["boxloop"].get("audit")) for line in chosen.values()) == 2


@pytest.mark.parametrize(
    ("iteration", "budget", "expected_count"),
    [
        (0, 1 + 5, 5),  # seed round, 1 human label exists: 3 validation gaps + 2 of 4 seed
        (0, 1 + 2, 2),  # seed round: the budget does not even cover the 3 validation gaps
        (0, 1 + 9, 7),  # budget larger than the need: 3 validation + the full seed of 4
        (1, 4 + 1 + 2, 2),  # later round: 5 human labels exist, 2 left of a batch of 3
        (1, 5, 0),  # budget used up: nothing is sent
    ],
)
def test_prepare_labeling_caps_the_batch_by_the_human_label_budget(
    make_config, make_run, seed_ledger, later_ledger, iteration, budget, expected_count
):
    config = make_config(seed_size=4, batch_size=3, human_label_budget=budget)
    ledger = seed_ledger if iteration == 0 else later_ledger
    run = make_run(ledger, config, iteration=iteration)
    labeling = prepare_labeling(run, config)
    assert labeling["count"] == expected_count
    assert bool(labeling["label_category_config"]) == bool(expected_count)


def test_prepare_labeling_never_resends_images_out_of_attempts(
    make_config, make_run, read_jsonl, ledger_line, gt_fields
):
    # GIVEN exhausted images that would otherwise rank first (lowest confidence, validation)
    config = make_config(seed_size=1, batch_size=5, max_label_attempts=2)
    lines = [
        ledger_line(_ref("seed"), label=gt_fields(boxes=BOX), role="seed"),
        ledger_line(_ref("val-tired"), role="validation", attempts=2),
        ledger_line(_ref("pool-tired"), attempts=2, confidence=0.0),
        ledger_line(_ref("pool-retry"), attempts=1, confidence=0.9),
        *(ledger_line(_ref(f"pool-{i}"), confidence=0.5) for i in range(3)),
    ]
    run = make_run(lines, config, iteration=2)
    # WHEN the batch is prepared
    chosen = _chosen(read_jsonl, prepare_labeling(run, config))
    # THEN only open images go, including one with attempts left
    assert record_id(_ref("val-tired")) not in chosen
    assert record_id(_ref("pool-tired")) not in chosen
    assert record_id(_ref("pool-retry")) in chosen
    assert len(chosen) == 4


def test_prepare_labeling_lines_carry_id_and_provenance(
    make_config, make_run, read_jsonl, ledger_line
):
    # GIVEN pool images with extra input fields and provenance
    config = make_config(seed_size=1, batch_size=1)
    lines = [ledger_line(_ref("a"), attempts=1, confidence=0.2, image_wh=[64, 32])]
    lines[0]["camera"] = "north"
    run = make_run(lines, config, iteration=0)
    # WHEN the batch is prepared
    (line,) = read_jsonl(prepare_labeling(run, config)["input_manifest"])
    # THEN the line holds the image, its id and boxloop's provenance (role now seed), nothing else
    assert line == {
        "source-ref": _ref("a"),
        "id": record_id(_ref("a")),
        "boxloop": {"role": "seed", "attempts": 1, "confidence": 0.2, "image_wh": [64, 32]},
    }


def test_prepare_labeling_job_name_is_deterministic(make_config, make_run, seed_ledger):
    config = make_config()
    first = prepare_labeling(make_run(seed_ledger, config, iteration=3), config)
    again = prepare_labeling(make_run(seed_ledger, config, iteration=3), config)
    other_run = prepare_labeling(make_run(seed_ledger, config, iteration=3, run_id="x"), config)
    assert first["job_name"] == again["job_name"] == f"bl-{run_hash('test-run')}-003-label"
    assert other_run["job_name"] != first["job_name"]
    assert len(first["job_name"]) <= 63


def test_prepare_labeling_writes_the_label_category_config(
    make_config, make_run, seed_ledger, tmp_path
):
    config = make_config()
    labeling = prepare_labeling(make_run(seed_ledger, config), config, kms_key_arn="arn:k")
    uri = labeling["label_category_config"]
    assert uri == str(tmp_path / "run" / "iter-000" / "labeling" / LABEL_CATEGORIES)
    document = json.loads(Path(uri).read_text(encoding="utf-8"))
    assert document["labels"] == [{"label": "car"}, {"label": "person"}, {"label": "bike"}]
    assert labeling["label_attribute"] == "boxes"
    assert labeling["output_config"] == {
        "S3OutputPath": str(tmp_path / "run" / "iter-000" / "labeling" / "output"),
        "KmsKeyId": "arn:k",
    }


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (0.5, {3, 4}),  # closest below 0.5 (0.45, 0.35); would-be auto-labels rank last
        (None, {0, 1}),  # no threshold yet: least confident first instead of failing
    ],
)
def test_prepare_labeling_ranks_closest_to_threshold(
    make_config, make_run, read_jsonl, later_ledger, threshold, expected
):
    config = make_config(seed_size=4, batch_size=2, selection_strategy="closest_to_threshold")
    run = make_run(later_ledger, config, iteration=1, model={"name": "m", "threshold": threshold})
    chosen = _chosen(read_jsonl, prepare_labeling(run, config))
    assert set(chosen) == {record_id(_ref(f"pool-{i}")) for i in expected}


@pytest.mark.parametrize(
    ("finish_with_humans", "iteration", "expected_count"),
    [
        (True, 2, 10),  # the last iteration (max_iterations 3): every open pool image
        (True, 1, 3),  # an earlier one: one batch
        (False, 2, 3),  # off: one batch even at the end
    ],
)
def test_prepare_labeling_finishes_with_humans_on_the_last_iteration(
    make_config, make_run, later_ledger, finish_with_humans, iteration, expected_count
):
    config = make_config(
        seed_size=4, batch_size=3, max_iterations=3, finish_with_humans=finish_with_humans
    )
    run = make_run(later_ledger, config, iteration=iteration)
    assert prepare_labeling(run, config)["count"] == expected_count


# Parts: Ground Truth takes at most 100,000 objects per labeling job, and iteration 0 sends every
# unlabeled validation image plus the seed. The selection is written once per iteration and sent
# in parts of at most max_objects_per_labeling_job, each with its own job, all before training.

CAP = 5


@pytest.fixture
def parts_config(make_config):
    """12 images to label at iteration 0 (3 validation gaps + a seed of 9), 5 per job."""
    return make_config(seed_size=9, max_label_attempts=3, max_objects_per_labeling_job=CAP)


def _label_all(labeling: dict, gt_fields, tmp_path: Path) -> dict:
    """``labeling`` with a job result that labels every image of its input manifest."""
    lines = [
        {**line, **gt_fields(boxes=BOX, job=f"labeling-job/{labeling['job_name']}")}
        for line in map(json.loads, Path(labeling["input_manifest"]).read_text().splitlines())
    ]
    out = tmp_path / "jobs" / labeling["job_name"] / "output.manifest"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return {**labeling, "result": {"status": "Completed", "output_manifest": str(out)}}


def _label_every_part(run, config, gt_fields, tmp_path, *, label=True):
    """Prepare, label (or let expire) and merge parts until none remains: (payloads, run)."""
    payloads = []
    while True:
        labeling = prepare_labeling(run, config)
        payloads.append(labeling)
        done = _label_all(labeling, gt_fields, tmp_path) if label else labeling
        run = merge_human_labels(run, config, done)
        if not labeling["remaining"]:
            return payloads, run
        assert len(payloads) < 10, "the parts never end"


def test_prepare_labeling_sends_the_selection_in_parts_of_at_most_the_cap(
    parts_config, make_config, make_run, read_jsonl, seed_ledger, gt_fields, tmp_path
):
    # GIVEN iteration 0 with 12 images to label and at most 5 objects per labeling job
    run = make_run(seed_ledger, parts_config)
    # WHEN parts are prepared, labeled and merged until none remains
    payloads, merged = _label_every_part(run, parts_config, gt_fields, tmp_path)
    # THEN three jobs of 5, 5 and 2 images, each counting down what is left
    assert [p["count"] for p in payloads] == [5, 5, 2]
    assert [(p["part"], p["parts"], p["remaining"]) for p in payloads] == [
        (1, 3, 7),
        (2, 3, 2),
        (3, 3, 0),
    ]
    # AND the parts cover the one-job selection exactly once
    sent = [rid for p in payloads for rid in _chosen(read_jsonl, p)]
    one_job = make_config(seed_size=9, max_label_attempts=3)
    alone = _chosen(read_jsonl, prepare_labeling(make_run(seed_ledger, one_job), one_job))
    assert len(sent) == len(set(sent)) == 12
    assert set(sent) == set(alone)
    # AND each image carries the provenance change the one-job selection gives it
    for p in payloads:
        for rid, line in _chosen(read_jsonl, p).items():
            assert line["boxloop"] == alone[rid]["boxloop"]
    # AND every selected image is labeled at the end
    ledger = read_jsonl(merged.ledger)
    labeled = {record_id(line["source-ref"]) for line in ledger if "boxes" in line}
    assert set(sent) <= labeled
    assert merged.counts["unlabeled"] == len(ledger) - 1 - 12  # val-done was labeled before


def test_prepare_labeling_parts_follow_the_selection_with_validation_images_first(
    parts_config, make_run, read_jsonl, seed_ledger, gt_fields, tmp_path
):
    # GIVEN iteration 0 sent in parts of 5
    payloads, _ = _label_every_part(
        make_run(seed_ledger, parts_config), parts_config, gt_fields, tmp_path
    )
    # THEN part k holds lines 5(k-1)+1 .. 5k of the iteration's selection file
    selection = [line["id"] for line in read_jsonl(payloads[0]["selection"])]
    for k, p in enumerate(payloads):
        assert set(_chosen(read_jsonl, p)) == set(selection[CAP * k : CAP * (k + 1)])
    # AND the three open validation images come first (calibration needs them)
    validation = {record_id(_ref(f"val-{i}")) for i in range(3)}
    assert set(selection[:3]) == validation


def test_prepare_labeling_names_each_part_job_apart(
    parts_config, make_run, seed_ledger, gt_fields, tmp_path
):
    payloads, _ = _label_every_part(
        make_run(seed_ledger, parts_config), parts_config, gt_fields, tmp_path
    )
    prefix = f"bl-{run_hash('test-run')}-000-"
    assert [p["job_name"] for p in payloads] == [
        prefix + "label",
        prefix + "label-2",
        prefix + "label-3",
    ]
    assert len({p["input_manifest"] for p in payloads}) == 3


def test_prepare_labeling_repeats_the_same_part_when_re_run(
    parts_config, make_run, read_jsonl, seed_ledger, gt_fields, tmp_path
):
    # GIVEN part 1 labeled and merged
    run = make_run(seed_ledger, parts_config)
    first = prepare_labeling(run, parts_config)
    assert prepare_labeling(run, parts_config) == first  # a retry before the job: the same part
    merged = merge_human_labels(run, parts_config, _label_all(first, gt_fields, tmp_path))
    # WHEN part 2 is prepared twice (a retry after a crash), and its merge runs twice
    second = prepare_labeling(merged, parts_config)
    lines = read_jsonl(second["input_manifest"])
    again = prepare_labeling(merged, parts_config)
    # THEN the same part, the same images, and no image of part 1 again
    assert again == second
    assert read_jsonl(again["input_manifest"]) == lines
    assert second["part"] == 2
    assert not set(_chosen(read_jsonl, second)) & set(_chosen(read_jsonl, first))
    done = _label_all(second, gt_fields, tmp_path)
    once = merge_human_labels(merged, parts_config, done)
    twice = merge_human_labels(merged, parts_config, done)
    assert once == twice
    assert prepare_labeling(once, parts_config)["part"] == 3


def test_prepare_labeling_does_not_resend_images_that_failed_in_an_earlier_part(
    parts_config, make_run, read_jsonl, seed_ledger, gt_fields, tmp_path
):
    # GIVEN every part's job expires (no output at all)
    payloads, merged = _label_every_part(
        make_run(seed_ledger, parts_config), parts_config, gt_fields, tmp_path, label=False
    )
    # THEN the iteration still sends each selected image once: failures wait for the next one
    sent = [rid for p in payloads for rid in _chosen(read_jsonl, p)]
    assert [p["count"] for p in payloads] == [5, 5, 2]
    assert len(sent) == len(set(sent)) == 12
    # AND they are back in the pool with one more attempt
    attempts = {
        record_id(line["source-ref"]): line.get("boxloop", {}).get("attempts", 0)
        for line in read_jsonl(merged.ledger)
    }
    tired = record_id(_ref("pool-tired"))  # 2 attempts before this iteration
    assert {rid: attempts[rid] for rid in sent} == {rid: 3 if rid == tired else 1 for rid in sent}


def test_prepare_labeling_payload_carries_counts_and_uris_but_no_ids(
    parts_config, make_run, read_jsonl, seed_ledger
):
    labeling = prepare_labeling(make_run(seed_ledger, parts_config), parts_config)
    text = json.dumps(labeling)
    assert not [rid for rid in _chosen(read_jsonl, labeling) if rid in text]
    assert {"part", "parts", "selected", "remaining", "count"} <= set(labeling)
    assert labeling["selected"] == 12


def test_prepare_labeling_sends_one_part_when_the_selection_fits_the_cap(
    make_config, make_run, seed_ledger
):
    config = make_config(seed_size=9, max_label_attempts=3, max_objects_per_labeling_job=12)
    labeling = prepare_labeling(make_run(seed_ledger, config), config)
    assert (labeling["count"], labeling["part"], labeling["parts"]) == (12, 1, 1)
    assert labeling["remaining"] == 0
    assert labeling["job_name"].endswith("-000-label")


def test_prepare_labeling_refuses_more_parts_than_names_keep_in_order(
    make_config, make_run, ledger_line
):
    # GIVEN a seed of 1,000 images and one image per labeling job: 1,000 parts, over 999
    config = make_config(seed_size=1000, max_objects_per_labeling_job=1)
    run = make_run([ledger_line(_ref(f"pool-{i}")) for i in range(1000)], config)
    # WHEN the iteration's selection is prepared THEN a ConfigError names the setting and fix
    with pytest.raises(ConfigError, match=r"max_objects_per_labeling_job \(1\).*at least 2"):
        prepare_labeling(run, config)
