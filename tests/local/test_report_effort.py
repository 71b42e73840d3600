"""Human effort in the local report: read from each labeling job's stats file, summed."""

from __future__ import annotations

import json

import pytest

from boxloop.aws.s3 import write_text
from boxloop.labeling.output import STATS_FILE
from boxloop.local.engine import BUCKET, local_aws
from boxloop.local.reporting.effort import human_effort, read_labeling_stats
from boxloop.steps.run import RunPaths

PATHS = RunPaths(root=f"s3://{BUCKET}/runs/r1")


def _job_stats(job: str, workforce: str, **counts: object) -> dict[str, object]:
    """A job's stats as ``LabelingRunner`` writes them (``JobStats.to_json`` + summary)."""
    return {
        "job": job,
        "workforce": workforce,
        "objects": counts.get("labeled", 0),
        "failed": 0,
        "unlabeled": 0,
        "first_failure": None,
        **counts,
    }


BROWSER_EFFORT = {
    # Per the labeling contract: 10 images, 4 of them pre-annotated.
    "images": 10,
    "seconds": 200.0,
    "boxes": 25,
    "boxes_drawn": 17,
    "model_boxes_accepted": 6,
    "model_boxes_moved": 2,
    "model_boxes_deleted": 1,
    "preannotated_images": 4,
    "preannotated_seconds": 32.0,
    "preannotated_boxes": 10,
    "workers": {"Ada": 10},
}


def test_read_labeling_stats_finds_every_jobs_file_in_iteration_order() -> None:
    with local_aws():
        first = _job_stats("job-0", "simulated", labeled=3, worker_tasks=3, worker_seconds=9.0)
        second = _job_stats("job-2", "browser", labeled=10, effort=BROWSER_EFFORT)
        write_text(PATHS.step(0, "labeling", f"output/job-0/{STATS_FILE}"), json.dumps(first))
        write_text(PATHS.step(0, "labeling", "output/job-0/manifests/output/output.manifest"), "")
        write_text(PATHS.step(2, "labeling", f"output/job-2/{STATS_FILE}"), json.dumps(second))
        write_text(f"s3://{BUCKET}/runs/other/iter-000/labeling/output/x/{STATS_FILE}", "{}")

        assert read_labeling_stats(PATHS, iterations=2) == [first, second]
        assert read_labeling_stats(PATHS, iterations=1) == [first]


def test_human_effort_of_a_simulated_run_has_simulated_time_and_nothing_measured() -> None:
    effort = human_effort(
        [
            _job_stats(
                "j0", "simulated", labeled=4, boxes=10, worker_tasks=4, worker_seconds=350.0
            ),
            _job_stats("j1", "simulated", labeled=2, boxes=4, worker_tasks=2, worker_seconds=140.0),
        ]
    )

    assert effort is not None
    assert effort["measured"] is None
    assert effort["workforces"] == ["simulated"]
    assert effort["labeled_images"] == 6
    assert effort["workforce_time"] == {
        "simulated": True,
        "images": 6,
        "seconds": 490.0,
        "boxes": 14,
        "seconds_per_image": pytest.approx(81.667),
        "seconds_per_box": 35.0,
    }


def test_human_effort_measured_in_the_browser_shows_what_preannotations_saved() -> None:
    effort = human_effort(
        [
            _job_stats("j0", "simulated", labeled=5, boxes=12, worker_tasks=5, worker_seconds=1.0),
            _job_stats(
                "j1",
                "browser",
                labeled=10,
                boxes=25,
                worker_tasks=10,
                worker_seconds=200.0,
                effort=BROWSER_EFFORT,
            ),
        ]
    )

    assert effort is not None
    assert effort["workforce_time"]["simulated"] is False
    measured = effort["measured"]
    assert measured["seconds_per_image"] == 20.0
    assert measured["seconds_per_box"] == 8.0
    assert measured["model_boxes_accepted"] == 6
    assert measured["preannotated"] == {
        "images": 4,
        "seconds": 32.0,
        "boxes": 10,
        "seconds_per_image": 8.0,
        "seconds_per_box": 3.2,
    }
    assert measured["from_scratch"]["seconds_per_image"] == 28.0
    assert measured["from_scratch"]["seconds_per_box"] == pytest.approx(11.2)
    assert measured["preannotation_saving"] == {"seconds_per_image": 20.0, "fraction": 0.7143}


def test_human_effort_without_labeling_jobs_is_none_and_one_sided_effort_has_no_saving() -> None:
    assert human_effort([]) is None
    scratch_only = {**BROWSER_EFFORT, "preannotated_images": 0, "preannotated_seconds": 0.0}
    scratch_only["preannotated_boxes"] = 0
    effort = human_effort([_job_stats("j", "browser", labeled=10, effort=scratch_only)])
    assert effort is not None
    assert effort["measured"]["preannotation_saving"] is None
    assert effort["measured"]["preannotated"]["seconds_per_image"] is None


def test_human_effort_counts_boxes_once_per_worker_as_they_were_drawn() -> None:
    # GIVEN a job with 3 simulated workers per image, 35 s per box each (10 label boxes)
    stats = _job_stats("j", "simulated", labeled=4, boxes=10, worker_tasks=12)
    effort = human_effort([{**stats, "worker_seconds": 3 * 10 * 35.0}])

    # THEN the time per box is one worker's, as the simulation priced it
    assert effort is not None
    assert effort["boxes"] == 10
    assert effort["workforce_time"]["boxes"] == 30
    assert effort["workforce_time"]["seconds_per_box"] == 35.0
    assert effort["workforce_time"]["seconds_per_image"] == 87.5
