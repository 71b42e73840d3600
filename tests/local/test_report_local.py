"""The local report.json names the user's files, not the emulator's, and carries human effort."""

from __future__ import annotations

import json
from pathlib import Path

from boxloop.aws.s3 import write_text
from boxloop.labeling.output import STATS_FILE
from boxloop.local.engine import BUCKET, local_aws
from boxloop.local.reporting.local_report import localize, write_local_report
from boxloop.steps.run import RunPaths

ROOT = f"s3://{BUCKET}/runs/r1"
MANIFEST = f"{ROOT}/output/output.manifest"
MODEL = f"{ROOT}/iter-002/training/output/train-2-0/output/model.tar.gz"


def _finalize_report() -> dict[str, object]:
    """The parts of Finalize's report that hold URIs."""
    return {
        "run_id": "r1",
        "iterations": 1,
        "output_manifest": MANIFEST,
        "model": {"name": "train-2-0", "artifacts": MODEL, "threshold": 0.4},
        "per_iteration": [{"iteration": 0, "note": f"{ROOT}/iter-000/report/report.json"}],
        "elsewhere": "s3://another-bucket/x",
    }


def test_localize_names_the_output_folders_files(tmp_path: Path) -> None:
    locations = {MANIFEST: tmp_path / "output.manifest", MODEL: tmp_path / "model/model.tar.gz"}

    kept = localize(_finalize_report(), locations, run_root=ROOT, run_files=tmp_path / "run-files")
    bare = localize(_finalize_report(), locations, run_root=ROOT, run_files=None)

    assert kept["output_manifest"] == str(tmp_path / "output.manifest")
    assert kept["model"] == {
        "name": "train-2-0",
        "artifacts": str(tmp_path / "model/model.tar.gz"),
        "threshold": 0.4,
    }
    assert kept["per_iteration"][0]["note"] == str(
        tmp_path / "run-files/iter-000/report/report.json"
    )
    assert bare["per_iteration"][0]["note"] == f"{ROOT}/iter-000/report/report.json"
    assert kept["elsewhere"] == bare["elsewhere"] == "s3://another-bucket/x"
    assert "s3://" not in json.dumps({k: kept[k] for k in ("output_manifest", "model")})


def test_write_local_report_adds_human_effort_and_writes_the_local_names(tmp_path: Path) -> None:
    stats = {"job": "j", "workforce": "simulated", "labeled": 2, "boxes": 4, "worker_tasks": 2}
    with local_aws():
        write_text(
            RunPaths(root=ROOT).step(1, "labeling", f"output/j/{STATS_FILE}"),
            json.dumps({**stats, "worker_seconds": 140.0}),
        )
        report = write_local_report(
            _finalize_report(),
            tmp_path / "report.json",
            run_root=ROOT,
            locations={MANIFEST: tmp_path / "output.manifest"},
        )

    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert report["output_manifest"] == str(tmp_path / "output.manifest")
    assert report["human_effort"]["workforce_time"]["seconds_per_box"] == 35.0
    assert report["human_effort"]["measured"] is None
