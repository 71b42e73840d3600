"""The local processing runner: the real script's printout goes to the job log, not stdout."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from boxloop.aws.s3 import write_text
from boxloop.local.engine import BUCKET, local_aws
from boxloop.local.runners import PROCESSING_ROOT, make_processing_runner

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


INPUTS = f"s3://{BUCKET}/runs/r/iter-0/postprocess-input"
OUTPUTS = f"s3://{BUCKET}/runs/r/iter-0/scored"


def _request(inputs: str, outputs: str) -> dict[str, object]:
    """A CreateProcessingJob request as PostProcess sends it."""
    return {
        "ProcessingJobName": "postprocess-0",
        "ProcessingInputs": [
            {
                "InputName": "records",
                "S3Input": {
                    "S3Uri": f"{inputs}/records/",
                    "LocalPath": f"{PROCESSING_ROOT}/input/records",
                },
            },
            {
                "InputName": "predictions",
                "S3Input": {
                    "S3Uri": f"{inputs}/predictions/",
                    "LocalPath": f"{PROCESSING_ROOT}/input/predictions",
                },
            },
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "scored",
                    "S3Output": {"S3Uri": outputs, "LocalPath": f"{PROCESSING_ROOT}/output"},
                }
            ]
        },
        "AppSpecification": {"ContainerArguments": ["--processes", "1"]},
    }


def test_processing_runner_keeps_the_scripts_json_line_out_of_the_progress_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with local_aws():
        write_text(f"{INPUTS}/records/records.jsonl", "")
        write_text(f"{INPUTS}/predictions/none.txt", "")
        result = make_processing_runner(tmp_path / "work")(_request(INPUTS, OUTPUTS))

    assert result.status == "Completed", result.failure_reason
    assert capsys.readouterr().out == ""
    logged = (tmp_path / "work" / "processing" / "postprocess-0.log").read_text().splitlines()
    assert isinstance(json.loads(logged[-1]), dict)  # the script's statistics, kept
