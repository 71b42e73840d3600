"""The synthesized state machine on moto with a labeling job cap far below one iteration's batch.

Ground Truth takes at most 100,000 objects per labeling job, and iteration 0 sends every
unlabeled validation image plus the seed (180,000 at a million images). Here the cap is 5: the
seed round's 18 images (10 validation, 8 seed) need four jobs and every later batch of 6 two,
each job under its own name, every part merged before the iteration trains, and the run still
SUCCEEDED.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from e2e_harness import ATTR, SMALL_RUN
from e2e_runners import read_manifest
from request_shapes import iter_service_requests, request_problems

from boxloop.core.formats.groundtruth import METADATA_SUFFIX

if TYPE_CHECKING:
    from e2e_harness import E2ERun, WorkflowHarness

CAP = 5
MAX_STATE_BYTES = 8 * 1024


@pytest.fixture(scope="module")
def parts_run(harness: WorkflowHarness) -> E2ERun:
    overrides = {**SMALL_RUN, "max_objects_per_labeling_job": CAP}
    return harness.run("parts", {"manifest": harness.input_manifest, "overrides": overrides})


def _selection(run: E2ERun, iteration: int) -> list[str]:
    """The ids an iteration chose for humans, in the order its parts send them."""
    return [line["id"] for line in read_manifest(_labeling_uri(run, iteration, "selection.jsonl"))]


def _labeling_uri(run: E2ERun, iteration: int, name: str) -> str:
    return f"{run.root}/iter-{iteration:03d}/labeling/{name}"


def _iteration_of(job_name: str) -> int:
    """``<prefix>-<hash>-<iteration>-label[-<part>]-<retry>`` -> the iteration."""
    head = job_name.split("-label")[0]
    return int(head.rsplit("-", 1)[1])


def _entered_inputs(run: E2ERun, state: str) -> list[dict[str, Any]]:
    return [
        json.loads(e["stateEnteredEventDetails"]["input"])
        for e in run.events
        if e.get("stateEnteredEventDetails", {}).get("name") == state
    ]


def test_labeling_parts_run_succeeds_with_every_image_labeled(parts_run: E2ERun) -> None:
    # GIVEN a run whose labeling jobs take at most 5 images
    result = parts_run.result
    # WHEN it ends
    # THEN it SUCCEEDED, every image labeled, and every human label is in the output
    assert result.status == "SUCCEEDED", f"{result.error}: {result.cause}"
    assert result.task_errors == ()
    lines = parts_run.output_lines()
    assert len(lines) == 36
    assert all(ATTR in line for line in lines.values())
    for rid, fields in parts_run.human_labels().items():
        assert lines[rid][ATTR + METADATA_SUFFIX] == fields[ATTR + METADATA_SUFFIX], rid


def test_labeling_parts_jobs_stay_under_the_cap_and_cover_each_selection_once(
    parts_run: E2ERun,
) -> None:
    # GIVEN every labeling job of the run, grouped by iteration
    jobs = parts_run.labeling_jobs
    by_iteration: dict[int, list[str]] = {}
    for job in jobs:
        ids = job.input_ids()
        # THEN no job holds more than the cap
        assert 0 < len(ids) <= CAP, job.name
        by_iteration.setdefault(_iteration_of(job.name), []).extend(ids)
    # AND each iteration's jobs send its selection exactly once (the validation images + 8 seed)
    assert 3 * CAP < len(_selection(parts_run, 0)) <= 4 * CAP
    for iteration, sent in by_iteration.items():
        assert sorted(sent) == sorted(_selection(parts_run, iteration)), iteration
    # AND the seed round needed four jobs, and a later batch of 6 two: each named apart
    names = [job.name for job in jobs]
    assert len(set(names)) == len(names)
    seed_round = [n for n in names if _iteration_of(n) == 0]
    assert [n.split("-000-", 1)[1] for n in seed_round] == [
        "label-0",
        "label-2-0",
        "label-3-0",
        "label-4-0",
    ]
    assert any(n.endswith("-label-2-0") for n in names if _iteration_of(n) > 0)


def test_labeling_parts_are_all_merged_before_the_iteration_trains(parts_run: E2ERun) -> None:
    # GIVEN the states the execution went through
    states = parts_run.result.visited_states
    first_training = states.index("PrepareTraining")
    # THEN iteration 0 labeled and merged its four parts, without training in between
    seed_round = states[:first_training]
    assert seed_round.count("Label") == seed_round.count("MergeHumanLabels") == 4
    assert "Train" not in seed_round
    # AND every iteration merged each job it ran before it trained
    rounds = "|".join(states).split("|PrepareTraining|")
    for states_of_round in rounds[:-1]:
        part = states_of_round.split("|")
        assert part.count("Label") == part.count("MergeHumanLabels")
    # AND the first training read the last part's ledger, where its whole selection is labeled
    run = _entered_inputs(parts_run, "PrepareTraining")[0]["run"]
    assert run["ledger"].endswith("/ledger/iter-000-1-merge.part-004.jsonl")
    labeled = {line["id"] for line in read_manifest(run["ledger"]) if ATTR in line}
    assert set(_selection(parts_run, 0)) <= labeled


def test_labeling_parts_keep_every_ledger_version_and_small_payloads(parts_run: E2ERun) -> None:
    # GIVEN the ledger versions the run wrote (one per part merged)
    ledgers = parts_run.ledgers()
    # THEN iteration 0 kept all four part versions, in the order written
    seed_merges = [uri.rsplit("/", 1)[1] for uri in ledgers if "/iter-000-1-merge" in uri]
    assert seed_merges == [
        "iter-000-1-merge.jsonl",
        "iter-000-1-merge.part-002.jsonl",
        "iter-000-1-merge.part-003.jsonl",
        "iter-000-1-merge.part-004.jsonl",
    ]
    # AND no state payload carries ids: each stays far below Step Functions' 256 KiB
    size, state = parts_run.largest_state_output()
    assert size < MAX_STATE_BYTES, f"{state} output is {size} bytes"
    for labeling in (p["labeling"] for p in _entered_inputs(parts_run, "MoreToLabel")):
        assert labeling["count"] <= CAP
        assert not set(_selection(parts_run, 0)) & set(json.dumps(labeling).split('"'))


def test_labeling_parts_requests_are_valid_for_sagemaker(parts_run: E2ERun) -> None:
    # GIVEN every CreateLabelingJob request the run rendered (moto accepts invalid ones)
    requests = [
        r for r in iter_service_requests(parts_run.events) if r.operation == "CreateLabelingJob"
    ]
    # THEN one per job, each valid against botocore's model (a part's name included)
    assert len(requests) == len(parts_run.labeling_jobs) > 4
    for request in requests:
        assert request_problems(request) == [], request.params["LabelingJobName"]
