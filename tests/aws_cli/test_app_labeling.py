"""``status`` and ``stop`` over a batch of boxloop's own labeling app (humanLabeling=boxloop).

On moto: a run's ledger (written by Ingest's own code), its batch registered in the task table
by the app's StartHumanLabeling code, one of its three images answered. ``status`` reads the
batch's progress from the table; ``stop``'s closing of the batch writes the answers given in
Ground Truth's output format and merges them into the run's ledger, so that ``resume`` keeps
them. (The Step Functions side of ``stop`` is the one ``test_stop_resume_e2e`` runs.)
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from boxloop.aws.human_labeling import start_human_labeling
from boxloop.aws.labeling_store import DynamoTaskStore
from boxloop.aws.operate.control import close_app_job, merge_answers
from boxloop.aws.operate.status import HistoryScan, app_labeling_progress
from boxloop.aws.s3 import iter_lines
from boxloop.core.config import LoopConfig
from boxloop.core.manifests import record_id
from boxloop.labeling.contract import Answer, AnswerBox
from boxloop.steps.ingest import IngestRequest, ingest
from boxloop.steps.run import iter_records

if TYPE_CHECKING:
    from collections.abc import Iterator

    from boxloop.steps.run import RunState

BUCKET, TABLE, JOB = "boxloop-app-test", "boxloop-tasks", "boxloop-1a2b3c4d-000-label"


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def batch(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RunState, dict[str, Any]]]:
    """A run's ledger and the labeling block of its open batch (three images)."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        boto3.client("dynamodb").create_table(  # the stack's table (stacks/labeling.py)
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        refs = [f"s3://{BUCKET}/images/{n}.png" for n in range(3)]
        for ref in refs:
            s3.put_object(Bucket=BUCKET, Key=ref.split("/", 3)[3], Body=_png(64, 48))
        s3.put_object(
            Bucket=BUCKET,
            Key="in/input.manifest",
            Body="".join(json.dumps({"source-ref": r}) + "\n" for r in refs).encode(),
        )
        config = LoopConfig.from_dict({"labels": ["car", "person"]})
        run = ingest(
            IngestRequest(
                run_id="run-1",
                root=f"s3://{BUCKET}/runs/run-1",
                manifest=f"s3://{BUCKET}/in/input.manifest",
            ),
            config,
        )
        s3.put_object(
            Bucket=BUCKET,
            Key="runs/run-1/labeling/label-categories.json",
            Body=json.dumps(config.labels.to_label_category_config()).encode(),
        )
        labeling = {
            "count": 3,
            "job_name": JOB,
            "input_manifest": run.ledger,  # every image of the ledger goes to people
            "label_attribute": "boxes",
            "label_category_config": f"s3://{BUCKET}/runs/run-1/labeling/label-categories.json",
            "output_config": {"S3OutputPath": f"s3://{BUCKET}/runs/run-1/labeling/output"},
            "task": {
                "workers_per_object": 1,
                "title": "t",
                "description": "d",
                "availability_s": 3600,
            },
        }
        start_human_labeling(
            {
                "labeling": labeling,
                "run": run.to_json(),
                "task_token": "token-1",
                "execution": "arn:aws:states:us-east-1:123456789012:execution:W:run-1",
            },
            store=DynamoTaskStore(TABLE),
        )
        DynamoTaskStore(TABLE, job_name=JOB).record(
            Answer(
                task_id=record_id(refs[0]),
                worker_id="w1",
                worker_name="Ada",
                job=JOB,
                source_ref=refs[0],
                image_wh=(64, 48),
                boxes=(AnswerBox(class_id=1, left=4, top=5, width=20, height=10),),
                no_objects=False,
            )
        )
        yield run, labeling


def test_history_names_the_app_batch_of_the_label_in_app_state(batch):
    run, labeling = batch
    scan = HistoryScan()
    scan.add(
        {
            "stateEnteredEventDetails": {
                "name": "LabelInApp",
                "input": json.dumps({"run": run.to_json(), "labeling": labeling}),
            }
        }
    )
    assert (scan.step, scan.label_job) == ("LabelInApp", JOB)


def test_status_reads_the_batch_progress_from_the_task_table(batch):
    progress = app_labeling_progress(TABLE, JOB)
    assert (progress.answered, progress.total, progress.labelers_active) == (1, 3, 0)
    assert progress.status == "open"
    assert app_labeling_progress(TABLE, "no-such-job") is None


def test_closing_the_batch_keeps_its_answer_in_the_ledger(batch):
    run, labeling = batch
    job = close_app_job(TABLE, JOB, labeling)
    assert job["LabelingJobStatus"] == "Stopped"
    scan = HistoryScan(step="LabelInApp", state_input={"run": run.to_json(), "labeling": labeling})
    merged = merge_answers(scan, job)
    assert merged == f"s3://{BUCKET}/runs/run-1/ledger/iter-000-1-merge.jsonl"
    records = {r.id: r for r in iter_records(merged, "boxes", trusted=True)}
    labeled = [r for r in records.values() if r.is_human_labeled]
    assert len(labeled) == 1
    (box,) = labeled[0].label.detections.boxes
    assert box.class_id == 1
    assert [r.provenance.attempts for r in records.values() if not r.is_labeled] == [1, 1]
    assert DynamoTaskStore(TABLE).open_jobs() == []  # closed: nobody labels it any more
    output = f"{labeling['output_config']['S3OutputPath']}/{JOB}/manifests/output/output.manifest"
    assert len(list(iter_lines(output))) == 1
