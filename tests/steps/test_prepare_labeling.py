from __future__ import annotations

import json
from pathlib import Path

import pytest

from boxloop.core.manifests import record_id
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


@pytest.fixture
def retired_ledger(gt_fields, ledger_line):
    """After a round that auto-labeled: 2 of 3 labeled validation images retired, 10 pool."""
    return [
        *(
            ledger_line(_ref(f"seed-{i}"), label=gt_fields(boxes=BOX), role="seed")
            for i in range(4)
        ),
        *(
            ledger_line(
                _ref(f"val-{i}"), label=gt_fields(boxes=BOX), role="validation", would_auto_at=1
            )
            for i in range(2)
        ),
        ledger_line(_ref("val-open"), label=gt_fields(boxes=BOX), role="validation"),
        *(ledger_line(_ref(f"pool-{i}"), confidence=i / 20) for i in range(10)),
    ]


@pytest.mark.parametrize(
    ("shadow", "min_validation", "refilled"),
    [
        (True, 2, 1),  # one calibrates, two are needed: one retired image is replaced
        (True, 20, 2),  # many more are needed: only as many as were retired
        (True, 1, 0),  # enough still calibrate
        (False, 20, 0),  # off: retired images are not replaced
    ],
)
def test_prepare_labeling_replaces_retired_validation_with_random_pool_images(
    make_config, make_run, read_jsonl, retired_ledger, shadow, min_validation, refilled
):
    # GIVEN validation images retired by an applied threshold, and a batch of 3
    config = make_config(
        seed_size=4, batch_size=3, min_validation=min_validation, shadow_validation=shadow
    )
    run = make_run(retired_ledger, config, iteration=2, model={"threshold": 0.9, "name": "m"})
    # WHEN the human batch is prepared
    chosen = _chosen(read_jsonl, prepare_labeling(run, config))
    # THEN the replacements join validation on top of the batch of the 3 least confident others
    pool = [record_id(_ref(f"pool-{i}")) for i in range(10)]  # least confident first
    joined = {rid for rid, line in chosen.items() if line["boxloop"].get("role") == "validation"}
    assert len(joined) == refilled
    assert joined <= set(pool)
    assert set(chosen) - joined == set([rid for rid in pool if rid not in joined][:3])


def test_prepare_labeling_draws_validation_replacements_by_seed_and_iteration(
    make_config, make_run, read_jsonl, retired_ledger
):
    def replacements(iteration: int) -> set[str]:
        config = make_config(seed_size=4, batch_size=1, min_validation=20, shadow_validation=True)
        chosen = _chosen(
            read_jsonl,
            prepare_labeling(make_run(retired_ledger, config, iteration=iteration), config),
        )
        return {rid for rid, line in chosen.items() if line["boxloop"].get("role")}

    assert replacements(2) == replacements(2)
    assert len({frozenset(replacements(i)) for i in range(2, 8)}) > 1  # random, not by confidence
