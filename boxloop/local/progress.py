"""Live progress of a local run: one line per step, a summary per iteration (rich)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from boxloop.local.app import LocalRunResult
    from boxloop.local.engine import StepEvent

_QUIET_STATES = {
    "ImagesToCheck",
    "HasHumanWork",
    "MoreToLabel",
    "AllLabeled",
    "HasImagesToPredict",
    "Continue",
    "Done",
}
_STEP_TEXT = {
    "Ingest": "validating the input and writing the ledger",
    "CheckImages": "checking the image headers ingest had no time for",
    "PrepareLabeling": "choosing images for humans",
    "Label": "humans labeling (local workforce)",
    "MergeHumanLabels": "merging human labels",
    "PrepareTraining": "writing training manifests",
    "Train": "training the detector",
    "CreateModel": "registering the model",
    "PrepareInference": "quality gate and inference manifest",
    "Transform": "predicting boxes",
    "PostProcess": "scoring each image",
    "FilterLowConfidence": "calibrating and auto-labeling",
    "Finalize": "writing the output manifest and report",
    "NotifySuccess": "notifying",
    "NotifyFailure": "notifying the failure",
}


class ProgressPrinter:
    """A callable for ``run_local(on_event=...)`` that prints as the run goes."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.iteration = 0

    def __call__(self, event: StepEvent) -> None:
        """Print one step start, or the summary an iteration's last step returned."""
        if event.kind == "entered" and event.state not in _QUIET_STATES:
            text = _STEP_TEXT.get(event.state, event.state)
            self.console.print(
                f"[dim]{event.elapsed_s:7.1f}s[/dim]  iteration {self.iteration}  "
                f"[bold]{event.state}[/bold]: {text}"
            )
        if event.kind == "exited" and event.state == "PrepareLabeling":
            count = (event.detail.get("labeling") or {}).get("count")
            if count is not None:
                self.console.print(f"           {count} images go to humans")
        if event.kind == "exited" and event.state == "FilterLowConfidence":
            self._iteration_summary(event.detail.get("run") or {})

    def _iteration_summary(self, run: dict[str, Any]) -> None:
        counts = run.get("counts") or {}
        self.console.print(
            f"           [green]labeled: {counts.get('human', 0)} by humans, "
            f"{counts.get('auto', 0)} by the machine, {counts.get('unlabeled', 0)} left[/green]"
            f"; threshold {threshold_text(run.get('model') or {})}"
        )
        if run.get("stop_reason"):
            self.console.print(f"           stopping: {run['stop_reason']}")
        self.iteration = int(run.get("iteration", self.iteration + 1))


def threshold_text(model: dict[str, Any]) -> str:
    """The applied threshold, a deferred one, or where validation alone would have put it.

    A user watching rounds go by without auto-labels sees why: the validation images certify
    a threshold, but the pool's images above it lie where validation has too few images to
    trust it (the audit sends some of them to humans).
    """
    threshold, would_be = model.get("threshold"), model.get("would_be_threshold")
    deferred = model.get("deferred_threshold")
    if deferred is not None:
        return f"none ({deferred:.3f} certified, held for the last model: defer_auto_labels)"
    if would_be is not None and (threshold is None or would_be < threshold):
        alone = f"validation alone: {would_be:.3f}, not yet trusted for the pool's images there"
        return f"none ({alone})" if threshold is None else f"{threshold:.3f} ({alone})"
    return "none (not enough evidence yet)" if threshold is None else f"{threshold:.3f}"


def print_headline(result: LocalRunResult, console: Console | None = None) -> None:
    """Where the outputs are and the figures a user asks first."""
    console = console or Console(highlight=False)
    report = result.report
    counts = report.get("counts") or {}
    total = counts.get("total") or 0
    console.print()
    console.print(
        f"[bold]Done[/bold]: {report.get('stop_reason') or 'finished'} after "
        f"{report.get('iterations')} iterations."
    )
    if total:
        console.print(
            f"  auto-labeled:     {counts.get('auto', 0)} of {total} images "
            f"({counts.get('auto', 0) / total:.0%})"
        )
    console.print(f"  human labels:     {counts.get('human', 0)}")
    if counts.get("unlabeled"):
        console.print(f"  [yellow]unlabeled:        {counts['unlabeled']}[/yellow]")
    evaluation = result.reference_eval
    if evaluation:
        auto = evaluation.get("auto") or {}
        whole = evaluation.get("all") or {}
        if auto.get("exact_match") is not None:
            console.print(
                f"  auto-label accuracy vs reference: {auto['exact_match']:.1%} of "
                f"images exactly right (mean IoU {auto.get('mean_iou') or 0:.3f})"
            )
        if whole.get("exact_match") is not None:
            console.print(f"  whole dataset vs reference:      {whole['exact_match']:.1%} exact")
    cost = (report.get("cost") or {}).get("total_usd")
    baseline = (report.get("all_human_cost") or {}).get("total_usd")
    if cost is not None and baseline is not None:
        console.print(
            f"  simulated cost:   ${cost} vs ${baseline} all-human "
            f"({report.get('savings_fraction') or 0:.0%} saved)"
        )
    console.print("  outputs:")
    for name, path in sorted(result.files.items()):
        console.print(f"    {name:16s} {path}")
