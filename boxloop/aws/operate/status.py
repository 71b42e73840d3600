"""How a deployed run is going, read from its execution history and the files its steps wrote.

Sources, each the one that owns the fact:

- DescribeExecution: the execution's state (running, succeeded, failed) and times;
- the execution history: the step it is in, and the ``run`` block of the state payload that
  step received (iteration, ledger counts, the model and its threshold): every step carries it;
  the SageMaker jobs' descriptions in the ``.sync`` tasks' results (instance type, count,
  start and end) give the compute spent;
- ``runs/<run id>/config.json`` (the run's settings, for prices and the accuracy target) and
  the last ``iter-<k>/report/report.json`` (the calibration behind the threshold);
- the open labeling batch: DescribeLabelingJob's ``LabelCounters`` (Ground Truth).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from boxloop.aws.asl import STEP_TEXT
from boxloop.aws.clients import client
from boxloop.aws.operate.executions import Execution, history
from boxloop.aws.s3 import try_read_text
from boxloop.core.config import LoopConfig
from boxloop.core.cost import PriceTable, iteration_cost
from boxloop.core.decision import Estimate
from boxloop.core.errors import ConfigError
from boxloop.core.model_state import ModelState
from boxloop.steps.run import RunPaths

if TYPE_CHECKING:
    from collections.abc import Iterable

    from boxloop.core.cost import IterationCost

LABEL_STATES = frozenset({"Label", "LabelInApp"})
"""The states where humans label a batch (Ground Truth; boxloop's own app)."""
_JOB_TIMES = {
    # createXJob.sync result (DescribeXJob): start, end, resources block, instance-count key path
    "createTrainingJob": ("TrainingStartTime", "TrainingEndTime", ("ResourceConfig",)),
    "createTransformJob": ("TransformStartTime", "TransformEndTime", ("TransformResources",)),
    "createProcessingJob": (
        "ProcessingStartTime",
        "ProcessingEndTime",
        ("ProcessingResources", "ClusterConfig"),
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelingProgress:
    """The open labeling batch.

    Attributes:
        job_name: the labeling job (or boxloop labeling batch) name.
        status: its status (``InProgress``, ``Stopping``, ...).
        answered: images answered so far (labeled, or failed for good).
        total: images in the batch.
        labelers_active: people labeling now, when the service knows (Ground Truth does not).
    """

    job_name: str
    status: str
    answered: int
    total: int
    labelers_active: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStatus:
    """Everything ``boxloop aws status`` shows about one execution.

    Attributes:
        execution: the execution as described.
        step: the state it is in (or ended in), ``None`` before the first.
        iteration: the loop iteration, ``None`` before Ingest finished.
        counts: the ledger counts the step received (``total``, ``human``, ``auto``,
            ``unlabeled``, ...).
        model: the run's model state (its thresholds) or ``None``.
        calibration: the last iteration report's ``calibration`` block, or ``None``.
        config: the run's settings (``None`` before Ingest wrote them).
        cost: labels and compute paid so far, or ``None`` before Ingest.
        labeling: the open labeling batch, or ``None``.
        notes: what could not be read, for the user to know the figures are partial.
        audit: the newest ``audit`` block (``boxloop.steps.audit``): the run report's once
            Finalize wrote it, else the last iteration report's; ``None`` before one.
    """

    execution: Execution
    step: str | None
    iteration: int | None
    counts: dict[str, Any]
    model: ModelState | None
    calibration: dict[str, Any] | None
    config: LoopConfig | None
    cost: IterationCost | None
    labeling: LabelingProgress | None
    notes: tuple[str, ...] = field(default=())
    audit: dict[str, Any] | None = None


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return None


def _epoch(value: Any) -> float | None:
    """Seconds since the epoch of a DescribeXJob time as a task result carries it."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return None


def _dig(data: Any, path: Iterable[str]) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def job_instance_seconds(result: dict[str, Any], action: str) -> tuple[str, float] | None:
    """``(instance type, instance-seconds)`` of a finished SageMaker job's description."""
    start_key, end_key, resources = _JOB_TIMES[action]
    start, end = _epoch(result.get(start_key)), _epoch(result.get(end_key))
    block = _dig(result, resources)
    if start is None or end is None or not isinstance(block, dict):
        return None
    instance_type = block.get("InstanceType")
    if not isinstance(instance_type, str):
        return None
    return instance_type, max(0.0, end - start) * int(block.get("InstanceCount") or 1)


@dataclass(slots=True)
class HistoryScan:
    """What the history says, read in one pass (oldest first): see ``scan_history``.

    Attributes:
        step: the state entered last.
        state_input: that state's input (the state payload).
        run: the newest ``run`` block any state received.
        instance_seconds: finished SageMaker jobs' instance-seconds by instance type.
        label_job: the labeling job the current Label state created (``None`` elsewhere).
    """

    step: str | None = None
    state_input: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] | None = None
    instance_seconds: dict[str, float] = field(default_factory=dict)
    label_job: str | None = None

    def add(self, event: dict[str, Any]) -> None:
        """Take the next history event into account."""
        entered = event.get("stateEnteredEventDetails")
        if entered is not None:
            self.step = entered["name"]
            self.state_input = _json(entered.get("input")) or {}
            if isinstance(self.state_input.get("run"), dict):
                self.run = self.state_input["run"]
            if self.step in LABEL_STATES:
                self.label_job = None
            if self.step == "LabelInApp":  # boxloop's app names its job as PrepareLabeling did
                self.label_job = (self.state_input.get("labeling") or {}).get("job_name")
            return
        scheduled = event.get("taskScheduledEventDetails")
        if scheduled is not None and self.step == "Label":
            params = _json(scheduled.get("parameters")) or {}
            self.label_job = params.get("LabelingJobName") or self.label_job
        succeeded = event.get("taskSucceededEventDetails")
        if succeeded is not None:
            action = str(succeeded.get("resource", "")).split(".", 1)[0]
            result = _json(succeeded.get("output"))
            if action in _JOB_TIMES and isinstance(result, dict):
                seconds = job_instance_seconds(result, action)
                if seconds is not None:
                    kind, spent = seconds
                    self.instance_seconds[kind] = self.instance_seconds.get(kind, 0.0) + spent


def _labeling_progress(job_name: str, state_input: dict[str, Any]) -> LabelingProgress | None:
    """The Ground Truth job's progress from its LabelCounters (``None`` if not created yet)."""
    from botocore.exceptions import ClientError

    try:
        described = client("sagemaker").describe_labeling_job(LabelingJobName=job_name)
    except ClientError:
        return None
    counters = described.get("LabelCounters") or {}
    answered = int(counters.get("TotalLabeled", 0)) + int(
        counters.get("FailedNonRetryableError", 0)
    )
    total = int((state_input.get("labeling") or {}).get("count") or 0)
    total = max(total, answered + int(counters.get("Unlabeled", 0)))
    return LabelingProgress(
        job_name=job_name,
        status=str(described.get("LabelingJobStatus", "")),
        answered=answered,
        total=total,
    )


def app_labeling_progress(table: str, job_name: str) -> LabelingProgress | None:
    """The boxloop labeling app's job progress from its task table (``None`` if not there yet).

    ``labelers_active`` counts the images leased now: each labeler holds one at a time.
    """
    from boxloop.aws.labeling_store import DynamoTaskStore

    store = DynamoTaskStore(table, job_name=job_name)
    record = store.record_of(job_name)
    if record is None:
        return None
    counts = store.job_counts(job_name, record.info.workers_per_object, time.time())
    return LabelingProgress(
        job_name=job_name,
        status=record.status,
        answered=counts.done,
        total=counts.total,
        labelers_active=counts.leased,
    )


def _last_report(root: str, iteration: int) -> dict[str, Any] | None:
    """The newest iteration report at or before ``iteration`` (filter writes one per round)."""
    paths = RunPaths(root)
    for k in range(iteration, -1, -1):
        report = _json(try_read_text(paths.step(k, "report", "report.json")))
        if isinstance(report, dict):
            return report
    return None


def _run_config(root: str, notes: list[str]) -> LoopConfig | None:
    """The run's settings as Ingest wrote them, or ``None`` (noted) before or when unreadable."""
    location = RunPaths(root).config()
    text = try_read_text(location)
    if text is None:
        return None
    try:
        return LoopConfig.from_dict(json.loads(text), source=location)
    except (ConfigError, json.JSONDecodeError) as exc:
        notes.append(f"run settings unreadable: {exc}")
        return None


def cost_so_far(
    counts: dict[str, Any],
    config: LoopConfig,
    instance_seconds: dict[str, float],
    notes: list[str],
) -> IterationCost:
    """Labels in the ledger at the run's prices, plus the finished SageMaker jobs' compute."""
    prices = PriceTable.from_label_prices(
        human_label_usd=config.price_per_human_label_usd,
        auto_label_usd=config.price_per_auto_label_usd,
    )
    priced = {}
    for instance_type, seconds in sorted(instance_seconds.items()):
        try:
            prices.hourly_usd(instance_type)
        except ConfigError:
            notes.append(f"no price for {instance_type}: its compute is not in the cost")
            continue
        priced[instance_type] = seconds
    return iteration_cost(
        human_labels=int(counts.get("human", 0)),
        auto_labels=int(counts.get("auto", 0)),
        instance_seconds=priced,
        prices=prices,
    )


def scan_history(execution_arn: str) -> HistoryScan:
    """Read the execution's history once."""
    scan = HistoryScan()
    for event in history(execution_arn):
        scan.add(event)
    return scan


def run_status(execution: Execution, *, labeling_table: str | None = None) -> RunStatus:
    """Read the execution's status from its history and its run's files.

    Args:
        execution: the execution.
        labeling_table: the stack's labeling task table (output ``LabelingTableName``), for the
            progress of a batch in boxloop's labeling app; ``None`` for a Ground Truth stack.
    """
    scan = scan_history(execution.arn)
    run = scan.run or {}
    notes: list[str] = []
    config = _run_config(execution.root, notes)
    iteration = int(run["iteration"]) if "iteration" in run else None
    counts = dict(run.get("counts") or {})
    report = _last_report(execution.root, iteration) if iteration is not None else None
    cost = None
    if config is not None and counts:
        cost = cost_so_far(counts, config, scan.instance_seconds, notes)
    labeling = None
    if execution.is_running and scan.step == "Label" and scan.label_job:
        labeling = _labeling_progress(scan.label_job, scan.state_input)
    elif execution.is_running and scan.step == "LabelInApp" and scan.label_job:
        if labeling_table:
            labeling = app_labeling_progress(labeling_table, scan.label_job)
        else:
            notes.append("the stack has no LabelingTableName output: redeploy it to see the batch")
    model = run.get("model")
    final = _json(try_read_text(RunPaths(execution.root).output("report.json")))
    audit = (final if isinstance(final, dict) else report or {}).get("audit")
    return RunStatus(
        execution=execution,
        step=scan.step,
        iteration=iteration,
        counts=counts,
        model=ModelState.from_json(model) if isinstance(model, dict) and model else None,
        calibration=(report or {}).get("calibration"),
        config=config,
        cost=cost,
        labeling=labeling,
        notes=tuple(notes),
        audit=audit if isinstance(audit, dict) else None,
    )


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "?"


def _elapsed(status: RunStatus) -> str:
    start = status.execution.start_date
    if start is None:
        return ""
    end = status.execution.stop_date or datetime.now(UTC)
    seconds = max(0, int((end - start).total_seconds()))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def promise_text(calibration: dict[str, Any] | None, config: LoopConfig | None) -> str:
    """What the threshold promises: the accuracy target and the evidence behind it."""
    if not calibration:
        return "no calibration yet (the first model is still to come)"
    metric, target = calibration.get("metric"), calibration.get("target")
    promise = f"auto-labels meet {metric} >= {target}" if target is not None else ""
    bound, level = calibration.get("lower_bound"), config.confidence_level if config else None
    evidence = []
    if bound is not None:
        evidence.append(
            f"lower bound {bound:.3f}" + (f" at {level:.0%} confidence" if level else "")
        )
    elif calibration.get("expected_accuracy") is not None:
        evidence.append(f"expected {calibration['expected_accuracy']:.3f}")
    if calibration.get("n_validation") is not None:
        evidence.append(f"{calibration['n_validation']} validation images")
    if calibration.get("n_accepted") is not None:
        evidence.append(f"{calibration['n_accepted']} of them above the threshold")
    return f"{promise} ({', '.join(evidence)})" if evidence else promise


def audit_text(audit: dict[str, Any] | None) -> str | None:
    """What the audits measured, for the line under the promise; ``None`` before any audit.

    The applied auto-labels' accuracy once any was audited (what the run delivers), else the
    would-be ones' (a threshold still held back for the last model).
    """
    from boxloop.local.reporting.page import audited_line, delivered_text

    delivered = delivered_text(audit)
    if delivered or not audit:
        return delivered
    return audited_line(Estimate.from_json(audit.get("total") or {}), "would-be")


def status_lines(status: RunStatus) -> list[str]:
    """The status as the lines ``boxloop aws status`` prints."""
    from boxloop.local.progress import threshold_text

    execution = status.execution
    lines = [
        f"execution  {execution.name}  {execution.status}  (started {_when(execution.start_date)}"
        f", {_elapsed(status)})"
    ]
    if status.step is not None:
        doing = STEP_TEXT.get(status.step, "")
        where = f" (iteration {status.iteration})" if status.iteration is not None else ""
        verb = "step" if execution.is_running else "ended in"
        lines.append(f"{verb:<10} {status.step}{where}{': ' + doing if doing else ''}")
    if execution.error:
        lines.append(f"error      {execution.error}: {(execution.cause or '')[:300]}")
    counts = status.counts
    if counts:
        lines.append(
            f"images     {counts.get('total', 0)}: {counts.get('human', 0)} human, "
            f"{counts.get('auto', 0)} auto, {counts.get('unlabeled', 0)} open"
        )
    if status.model is not None or status.calibration is not None:
        lines.append(f"threshold  {threshold_text(status.model)}")
        lines.append(f"promise    {promise_text(status.calibration, status.config)}")
    audited = audit_text(status.audit)
    if audited:
        lines.append(f"audited    {audited}")
    if status.cost is not None:
        cost = status.cost.to_dict()
        lines.append(
            f"cost       ${cost['total_usd']:.2f} so far (labels ${cost['labeling_usd']:.2f}, "
            f"compute ${cost['compute_usd']:.2f})"
        )
    if status.labeling is not None:
        batch = status.labeling
        active = (
            f", {batch.labelers_active} labelers active"
            if batch.labelers_active is not None
            else ""
        )
        lines.append(
            f"labeling   {batch.job_name}: {batch.answered} / {batch.total} answered{active} "
            f"({batch.status})"
        )
    if isinstance(execution.output, dict) and execution.output.get("output_manifest"):
        lines.append(f"output     {execution.output['output_manifest']}")
    lines.extend(f"note       {note}" for note in status.notes)
    return lines
