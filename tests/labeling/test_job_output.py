"""The output manifest's frame both labeling hosts share (`boxloop.labeling.output`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from boxloop.core.errors import BoxloopError, ManifestError
from boxloop.core.image_size import image_files
from boxloop.core.manifests import iter_source_objects
from boxloop.labeling.output import (
    JobStats,
    failure_fields,
    ground_truth_now,
    kept_fields,
    output_manifest_uri,
    stats_uri,
)
from boxloop.labeling.preannotations import PREANNOTATIONS_KEY


def test_uris_are_ground_truths_layout_under_the_output_path() -> None:
    assert (
        output_manifest_uri("s3://b/out/", "job-1")
        == "s3://b/out/job-1/manifests/output/output.manifest"
    )
    assert stats_uri("s3://b/out", "job-1") == "s3://b/out/job-1/boxloop-workforce.json"


def test_an_output_line_drops_the_old_label_and_the_pre_annotations_only() -> None:
    line = {
        "source-ref": "s3://b/a.jpg",
        "boxes": {"annotations": []},
        "boxes-metadata": {"job-name": "labeling-job/old"},
        PREANNOTATIONS_KEY: [{"class_id": 0}],
        "boxes-old": 1,
        "boxloop": {"round": 2},
    }
    assert kept_fields(line, "boxes") == {
        "source-ref": "s3://b/a.jpg",
        "boxes-old": 1,
        "boxloop": {"round": 2},
    }


def test_a_failed_object_has_only_metadata_with_its_reason() -> None:
    assert failure_fields("boxes", "unreadable", job_name="j", creation_date="T") == {
        "boxes-metadata": {
            "failure-reason": "unreadable",
            "human-annotated": "yes",
            "creation-date": "T",
            "job-name": "labeling-job/j",
        }
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", ground_truth_now())


def test_job_stats_count_label_counters_and_json() -> None:
    stats = JobStats(job="j", workforce="w")
    stats.add_labeled(3, workers=2, seconds=1.23456)
    stats.add_failed("first", workers=1, seconds=0.5)
    stats.add_failed("second")
    stats.add_unlabeled()
    assert stats.counters() == {
        "TotalLabeled": 1,
        "HumanLabeled": 1,
        "MachineLabeled": 0,
        "FailedNonRetryableError": 2,
        "Unlabeled": 1,
    }
    assert stats.outputs("s3://o") == {
        "LabelingJobOutput": {"OutputDatasetS3Uri": "s3://o"},
        "LabelCounters": stats.counters(),
    }
    assert json.loads(json.dumps(stats.to_json())) == {
        "job": "j",
        "workforce": "w",
        "objects": 4,
        "labeled": 1,
        "failed": 2,
        "unlabeled": 1,
        "boxes": 3,
        "worker_tasks": 3,
        "worker_seconds": 1.735,
        "first_failure": "first",
    }


def test_source_objects_stop_at_the_first_line_without_an_image() -> None:
    lines = ['{"source-ref": "a.jpg"}', "", '{"source-ref": " "}', '{"source-ref": "c.jpg"}']
    got = iter_source_objects(lines, source="in.manifest")
    assert next(got) == (1, {"source-ref": "a.jpg"})
    with pytest.raises(ManifestError, match=r"in\.manifest:3: source-ref"):
        next(got)
    with pytest.raises(ManifestError):
        list(iter_source_objects(["[1]"], source="in.manifest"))


def test_image_files_are_the_sorted_image_files_under_a_folder(tmp_path: Path) -> None:
    for name in ("b/2.PNG", "a.jpg", "notes.txt", "dir.jpg/x.gif"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in image_files(tmp_path)] == [
        "a.jpg",
        "b/2.PNG",
        "dir.jpg/x.gif",
    ]
    with pytest.raises(BoxloopError, match="no images"):
        image_files(tmp_path / "b" / "none")
