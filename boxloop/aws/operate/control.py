"""Stop a run without losing a paid label, and resume a stopped or failed one from its ledger.

Stopping an execution alone would leave its labeling job open (people keep labeling, and
are paid, for a run nobody will merge) and would drop the answers already given. So ``stop``
stops the execution first (no later state may act on the job), then the labeling job, waits
for it to settle, and merges what its people answered into the run's ledger with the same step
code MergeHumanLabels runs (``boxloop.steps.merge_human_labels``). ``resume`` then starts a
new execution from the newest ledger, the way the README's ``{"ledger": ...}`` input does.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boxloop.aws.clients import client
from boxloop.aws.operate.start import CheckedRun, StartedRun, check_run, execution_name, start_run
from boxloop.aws.operate.status import LABEL_STATES, HistoryScan, scan_history
from boxloop.aws.s3 import S3Uri, iter_keys, try_read_text
from boxloop.aws.stack_outputs import AwsSetupError

if TYPE_CHECKING:
    from boxloop.aws.operate.deployment import Deployment
    from boxloop.aws.operate.executions import Execution

STOP_ERROR = "boxloop.Stopped"
STOP_CAUSE = "stopped from the terminal (boxloop aws stop); resume with boxloop aws resume"
_SETTLED = frozenset({"Completed", "Failed", "Stopped"})
_LEDGER_NAME = re.compile(r"/ledger/iter-\d{3}-[0-2]-(ingest|merge|filter)(\.part-\d{3})?\.jsonl$")


@dataclass(frozen=True, slots=True, kw_only=True)
class StopResult:
    """What ``stop`` did.

    Attributes:
        execution_stopped: the execution was running and is now stopped.
        labeling_job: the labeling job that was open, or ``None``.
        labeling_status: that job's status at the end.
        merged_ledger: the ledger version holding its answers, or ``None`` when it had none.
    """

    execution_stopped: bool
    labeling_job: str | None = None
    labeling_status: str | None = None
    merged_ledger: str | None = None


def _job_output(described: dict[str, Any]) -> str | None:
    """The job's output manifest: named by SageMaker, or at its default place when present.

    A stopped Ground Truth job writes the answers it got before it stopped; SageMaker may not
    name the file in ``LabelingJobOutput`` then, but it lies where every job's output does.
    """
    named = (described.get("LabelingJobOutput") or {}).get("OutputDatasetS3Uri")
    if named:
        return str(named)
    base = str((described.get("OutputConfig") or {}).get("S3OutputPath", "")).rstrip("/")
    if not base:
        return None
    default = f"{base}/{described['LabelingJobName']}/manifests/output/output.manifest"
    return default if try_read_text(default) is not None else None


def _stop_labeling_job(job_name: str, *, wait_s: float, poll_s: float) -> dict[str, Any]:
    """Stop the job if it is open and wait until it settles; its final description."""
    sagemaker = client("sagemaker")
    described = sagemaker.describe_labeling_job(LabelingJobName=job_name)
    if described["LabelingJobStatus"] == "InProgress":
        sagemaker.stop_labeling_job(LabelingJobName=job_name)
    deadline = time.monotonic() + wait_s
    while described["LabelingJobStatus"] not in _SETTLED and time.monotonic() < deadline:
        time.sleep(poll_s)
        described = sagemaker.describe_labeling_job(LabelingJobName=job_name)
    return described


def close_app_job(table: str, job_name: str, labeling: dict[str, Any]) -> dict[str, Any]:
    """Close a batch of boxloop's labeling app: its output manifest holds the answers so far.

    ``finish_job`` (H-aws's finisher, the one the app runs when a batch is done) writes the
    output manifest in Ground Truth's format and closes the job; the stopped execution no
    longer waits, so its task-success call finds nobody (``"gone"``). A job already closed by
    the labeling sweep (which closes the jobs of ended executions) answers ``"busy"``: its
    answers stay in the table, and no output manifest is written.
    """
    from boxloop.aws.human_labeling import finish_job
    from boxloop.aws.labeling_store import DynamoTaskStore

    outcome = finish_job(DynamoTaskStore(table, job_name=job_name), job_name)
    return {
        "LabelingJobName": job_name,
        "LabelingJobStatus": "Stopped" if outcome != "busy" else "Closed",
        "OutputConfig": labeling.get("output_config") or {},
    }


def merge_answers(scan: HistoryScan, job: dict[str, Any]) -> str | None:
    """Fold the stopped job's answers into the run's ledger; the new ledger version."""
    from boxloop.steps.merge_human_labels import merge_human_labels
    from boxloop.steps.run import RunState, load_config

    output = _job_output(job)
    if output is None or not isinstance(scan.state_input.get("labeling"), dict):
        return None
    run = RunState.from_json(scan.state_input["run"])
    labeling = {
        **scan.state_input["labeling"],
        "result": {
            "job_name": job["LabelingJobName"],
            "status": job["LabelingJobStatus"],
            "output_manifest": output,
            "counters": job.get("LabelCounters") or {},
        },
    }
    return merge_human_labels(run, load_config(run), labeling).ledger


def stop_run(
    execution: Execution,
    *,
    labeling_table: str | None = None,
    wait_s: float = 600.0,
    poll_s: float = 5.0,
) -> StopResult:
    """Stop the execution and its open labeling job, keeping every answer already given.

    Args:
        execution: the execution to stop.
        labeling_table: the stack's labeling task table (``Deployment.labeling_table``), to
            close a batch of boxloop's labeling app; ``None`` for a Ground Truth stack.
        wait_s: how long to wait for a Ground Truth job to settle once asked to stop.
        poll_s: seconds between DescribeLabelingJob calls while it settles.
    """
    scan = scan_history(execution.arn)
    stopped = False
    if execution.is_running:
        client("stepfunctions").stop_execution(
            executionArn=execution.arn, error=STOP_ERROR, cause=STOP_CAUSE
        )
        stopped = True
    if not (execution.is_running and scan.step in LABEL_STATES and scan.label_job):
        return StopResult(execution_stopped=stopped)
    if scan.step == "LabelInApp":
        if not labeling_table:
            raise AwsSetupError(
                f"execution {execution.name} stopped, but its labeling batch {scan.label_job} "
                "stays open: the stack has no LabelingTableName output (redeploy it)"
            )
        labeling = scan.state_input.get("labeling") or {}
        job = close_app_job(labeling_table, scan.label_job, labeling)
    else:
        job = _stop_labeling_job(scan.label_job, wait_s=wait_s, poll_s=poll_s)
    merged = merge_answers(scan, job) if job["LabelingJobStatus"] in _SETTLED else None
    return StopResult(
        execution_stopped=stopped,
        labeling_job=scan.label_job,
        labeling_status=job["LabelingJobStatus"],
        merged_ledger=merged,
    )


def newest_ledger(execution: Execution) -> str:
    """The run's newest ledger version (ledger names sort in the order they are written).

    Raises:
        AwsSetupError: the run wrote no ledger (it failed in Ingest): start it anew instead.
    """
    prefix = f"{execution.root}/ledger/"
    bucket = S3Uri.parse(prefix).bucket
    keys = sorted(k for k in iter_keys(prefix) if _LEDGER_NAME.search(k))
    if not keys:
        raise AwsSetupError(
            f"execution {execution.name} wrote no ledger under {prefix} (it ended in Ingest): "
            "there is nothing to resume; fix the input and start a new run (boxloop aws start)"
        )
    return f"s3://{bucket}/{keys[-1]}"


def plan_resume(
    deployment: Deployment, execution: Execution, *, name: str | None = None
) -> CheckedRun:
    """The checked input of a new execution that continues ``execution`` from its ledger.

    The new run keeps the old one's overrides, so it calibrates and selects as it did.

    Raises:
        AwsSetupError: the execution is still running (stop it first), succeeded (nothing to
            resume) or wrote no ledger.
    """
    if execution.is_running:
        raise AwsSetupError(
            f"execution {execution.name} is still running: stop it first (boxloop aws stop "
            f"{execution.name}), then resume it"
        )
    if execution.status == "SUCCEEDED":
        raise AwsSetupError(f"execution {execution.name} succeeded: there is nothing to resume")
    overrides = execution.input.get("overrides") if isinstance(execution.input, dict) else None
    return check_run(
        deployment,
        name=name or execution_name(f"{execution.name}-resume"),
        ledger=newest_ledger(execution),
        overrides=overrides or None,
    )


def resume_run(
    deployment: Deployment, execution: Execution, *, name: str | None = None
) -> tuple[CheckedRun, StartedRun]:
    """Start the new execution that continues ``execution`` (see ``plan_resume``)."""
    checked = plan_resume(deployment, execution, name=name)
    return checked, start_run(deployment, checked)
