"""Live progress of a local run: one line per step, a summary per iteration (rich).

Inside a long step (training, inference, a labeling batch) the code doing the work reports
its progress with :func:`step_progress`; whoever shows the run (a :class:`ProgressPrinter`
entered as a context manager) draws it as a live bar. Workers never know about the console:
with no listener installed, :func:`step_progress` does nothing, so library code and tests
call it freely.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from boxloop.aws.asl import STEP_TEXT
from boxloop.core.model_state import ModelState

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import TracebackType

    from boxloop.local.app import LocalRunResult
    from boxloop.local.engine import StepEvent

logger = logging.getLogger(__name__)

_QUIET_STATES = {
    "ImagesToCheck",
    "HasHumanWork",
    "HumanLabeling",
    "LabelWith",
    "MoreToLabel",
    "AllLabeled",
    "HasImagesToPredict",
    "Continue",
    "Done",
}
_STEP_TEXT = {
    **STEP_TEXT,
    # the local runners stand in for Ground Truth and batch transform
    "Label": "humans labeling (local workforce)",
    "Transform": "predicting boxes",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class StepProgress:
    """How far a step has got, as the code doing the work sees it.

    Attributes:
        step: The state machine's state the work belongs to (``"Train"``, ``"Label"``...).
        done: Units finished so far.
        total: Units the step will do, or ``None`` when not known in advance.
        unit: What is counted, plural (``"images"``, ``"image-steps"``).
        detail: A short extra the person watching wants (``"12.5 s per image"``), or ``None``.
    """

    step: str
    done: int
    total: int | None
    unit: str
    detail: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the step has done all it announced (never, without a total)."""
        return self.total is not None and self.done >= self.total


_listener_lock = threading.Lock()
_listeners: list[Callable[[StepProgress], None]] = []


def step_progress(
    *, step: str, done: int, total: int | None, unit: str, detail: str | None = None
) -> None:
    """Report progress inside ``step`` to whoever shows the run; a no-op when nobody does.

    Safe to call from any thread (the emulator runs jobs on worker threads, the browser
    workforce from its HTTP server's threads) and often (each call is a cheap redraw).
    Report ``done == total`` at the end so the bar closes at once rather than when the step's
    ``exited`` event arrives, which lags by the engine's history poll. A listener that fails
    is logged, never raised: showing progress must not fail the work it shows (a training
    round, a batch of human labels).
    """
    with _listener_lock:
        listeners = tuple(_listeners)
    if not listeners:
        return
    update = StepProgress(step=step, done=done, total=total, unit=unit, detail=detail)
    for listener in listeners:
        try:
            listener(update)
        except Exception:
            logger.exception("progress display failed on %s; the step goes on", update)


@contextmanager
def listening(listener: Callable[[StepProgress], None]) -> Iterator[None]:
    """Send every :func:`step_progress` report to ``listener`` while the block runs."""
    with _listener_lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _listener_lock:
            _listeners.remove(listener)


class StepMeter:
    """Reports a step's progress with its pace, measured from the first report on.

    ``StepMeter("Train", unit="image-steps", per="image-step")(80, 2400)`` reports 80 of 2,400
    image-steps; later calls add "38 ms per image-step". The pace leaves out what came before
    the first report (loading images, a model), so it predicts the rest of the step.
    """

    def __init__(
        self,
        step: str,
        *,
        unit: str,
        per: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.step, self.unit, self.per = step, unit, per
        self._clock = clock
        self._first: tuple[float, int] | None = None

    def __call__(self, done: int, total: int | None) -> None:
        """Report ``done`` of ``total`` units (``total`` ``None`` when unknown)."""
        now = self._clock()
        if self._first is None:
            self._first = (now, done)
        started, done_then = self._first
        detail = None
        if done > done_then:
            detail = f"{pace_text((now - started) / (done - done_then))} per {self.per}"
        step_progress(step=self.step, done=done, total=total, unit=self.unit, detail=detail)


def pace_text(seconds: float) -> str:
    """``0.0381`` -> ``"38 ms"``, ``12.46`` -> ``"12.5 s"``, ``95`` -> ``"95 s"``."""
    if seconds < 1.0:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds:.0f} s"


LOG_EVERY_S = 30.0
"""Without a terminal, a step's progress is printed as a plain line this often."""


class ProgressPrinter:
    """A callable for ``run_local(on_event=...)`` that prints as the run goes.

    Entered as a context manager it also listens to :func:`step_progress` and draws a live bar
    per step under the step lines (on a terminal; elsewhere the bar's final state is printed
    once when it closes, and a plain line every ``log_every_s`` meanwhile, so a log shows a
    long step alive in a few lines). The bar shows the time left while it runs and the time
    taken once done.
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        log_every_s: float = LOG_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Bound to today's stdout: a job runner that redirects stdout for a while (the
        # processing script's output) must not swallow the progress lines printed meanwhile.
        self.console = console or Console(file=sys.stdout, highlight=False)
        self.iteration = 0
        self.log_every_s = log_every_s
        self._clock = clock
        self._lock = threading.RLock()
        self._bars: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._logged: dict[str, float] = {}
        self._listening: Any = None

    def __enter__(self) -> ProgressPrinter:
        self._listening = listening(self.on_progress)
        self._listening.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            for step in list(self._tasks):
                self._close(step)
        if self._listening is not None:
            self._listening.__exit__(exc_type, exc, tb)
            self._listening = None

    def __call__(self, event: StepEvent) -> None:
        """Print one step start, or the summary an iteration's last step returned."""
        if event.kind in ("exited", "failed"):
            with self._lock:
                self._close(event.state)
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

    def on_progress(self, update: StepProgress) -> None:
        """Draw ``update`` on its step's bar, opening the bar on the step's first report."""
        with self._lock:
            task = self._tasks.get(update.step)
            if task is None:
                task = self._open(update)
            assert self._bars is not None
            self._bars.update(
                task,
                completed=update.done,
                total=update.total,
                unit=update.unit,
                detail=update.detail or "",
            )
            if update.finished:
                self._close(update.step)
            elif not self.console.is_terminal:
                self._log(update)

    def _log(self, update: StepProgress) -> None:
        """A plain line now and then where no live bar can be drawn (a log file, a pipe)."""
        now = self._clock()
        last = self._logged.setdefault(update.step, now)
        if now - last < self.log_every_s:
            return
        self._logged[update.step] = now
        total = "?" if update.total is None else f"{update.total:,}"
        detail = f", {update.detail}" if update.detail else ""
        self.console.print(f"  {update.step}: {update.done:,}/{total} {update.unit}{detail}")

    def _open(self, update: StepProgress) -> TaskID:
        if self._bars is None:
            self._bars = Progress(
                TextColumn("  [bold]{task.description}[/bold]"),
                BarColumn(bar_width=16),
                MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"),
                TimeRemainingColumn(compact=True, elapsed_when_finished=True),
                TextColumn("{task.fields[detail]}"),
                console=self.console,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._bars.start()
        task = self._bars.add_task(
            update.step, total=update.total, completed=update.done, unit=update.unit, detail=""
        )
        self._tasks[update.step] = task
        return task

    def _close(self, step: str) -> None:
        """Stop ``step``'s bar (its last state stays on screen); caller holds the lock."""
        task = self._tasks.pop(step, None)
        self._logged.pop(step, None)
        if task is None or self._bars is None:
            return
        self._bars.stop_task(task)
        if not self._tasks:
            self._bars.stop()
            self._bars = None

    def _iteration_summary(self, run: dict[str, Any]) -> None:
        counts = run.get("counts") or {}
        self.console.print(
            f"           [green]labeled: {counts.get('human', 0)} by humans, "
            f"{counts.get('auto', 0)} by the machine, {counts.get('unlabeled', 0)} left[/green]"
            f"; threshold {threshold_text(model_state(run.get('model')))}"
        )
        reason = decision_reason(run)
        if reason:
            self.console.print(f"           auto-label decision: {reason}")
        if run.get("stop_reason"):
            self.console.print(f"           stopping: {run['stop_reason']}")
        self.iteration = int(run.get("iteration", self.iteration + 1))


def decision_reason(run: dict[str, Any]) -> str | None:
    """Why the round's filter chose its threshold, from the typed decision in its report.

    The same ``Decision`` the iteration report and the run page show (``auto_label``); None
    when the report cannot be read (the line then shows the threshold alone).
    """
    from boxloop.aws.s3 import try_read_text
    from boxloop.core.decision import Decision
    from boxloop.steps.run import RunPaths

    if not run.get("root") or not run.get("iteration"):
        return None
    uri = RunPaths(run["root"]).step(int(run["iteration"]) - 1, "report", "report.json")
    try:
        text = try_read_text(uri)
        block = json.loads(text).get("auto_label") if text else None
        return Decision.from_json(block).reason if block else None
    except (OSError, ValueError, KeyError):
        return None


def threshold_text(model: ModelState | None) -> str:
    """The applied threshold, or why none is: no evidence yet, or one certified and held.

    A user watching rounds go by without auto-labels sees why: with ``defer_auto_labels`` the
    validation images certify a threshold that only the last model applies.
    """
    if model is None or (model.threshold is None and model.deferred_threshold is None):
        return "none (not enough evidence yet)"
    if model.deferred_threshold is not None:
        held = model.deferred_threshold
        return f"none ({held:.3f} certified, held for the last model: defer_auto_labels)"
    return f"{model.threshold:.3f}"


def model_state(block: Any) -> ModelState | None:
    """The run state's ``model`` block as the typed value, ``None`` before the first model."""
    return ModelState.from_json(block) if block else None


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
    from boxloop.local.reporting.page import delivered_text

    audited = delivered_text(report.get("audit"))
    if audited:
        console.print(f"  audited auto-labels: {audited}")
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
