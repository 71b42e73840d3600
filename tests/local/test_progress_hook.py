"""The step-progress hook: workers report, the printer draws, nobody listening costs nothing."""

from __future__ import annotations

import io
import threading

import pytest
from rich.console import Console

from boxloop.local.engine import StepEvent
from boxloop.local.progress import (
    ProgressPrinter,
    StepMeter,
    StepProgress,
    listening,
    pace_text,
    step_progress,
)


def _printer() -> tuple[ProgressPrinter, io.StringIO]:
    out = io.StringIO()
    return ProgressPrinter(Console(file=out, width=160, force_terminal=False)), out


def test_step_progress_without_a_listener_does_nothing() -> None:
    step_progress(step="Train", done=1, total=2, unit="image-steps")  # must not raise


def test_listening_receives_reports_from_worker_threads_until_the_block_ends() -> None:
    seen: list[StepProgress] = []
    with listening(seen.append):
        worker = threading.Thread(
            target=step_progress,
            kwargs={"step": "Label", "done": 3, "total": 20, "unit": "images", "detail": "2 s"},
        )
        worker.start()
        worker.join()
    step_progress(step="Label", done=4, total=20, unit="images")
    assert seen == [StepProgress(step="Label", done=3, total=20, unit="images", detail="2 s")]
    assert not seen[0].finished
    assert StepProgress(step="Train", done=5, total=5, unit="x").finished
    assert not StepProgress(step="Label", done=5, total=None, unit="x").finished


def test_printer_draws_a_bar_for_a_step_and_closes_it_when_done() -> None:
    printer, out = _printer()
    with printer:
        for done in (0, 80, 160, 200):
            step_progress(
                step="Train", done=done, total=200, unit="image-steps", detail="35 ms per step"
            )
        assert printer._bars is None  # closed at done == total, before the step's event
    text = out.getvalue()
    assert "Train" in text
    assert "200/200" in text
    assert "image-steps" in text
    assert "35 ms per step" in text
    step_progress(step="Train", done=1, total=200, unit="image-steps")  # printer left
    assert out.getvalue() == text


def test_printer_closes_an_unfinished_bar_when_its_step_exits() -> None:
    printer, out = _printer()
    with printer:
        step_progress(step="Label", done=3, total=20, unit="images", detail="12.5 s per image")
        printer(StepEvent(state="Label", kind="exited", elapsed_s=1.0))
        assert printer._bars is None
        step_progress(step="Label", done=1, total=5, unit="images")  # the next batch
        assert printer._bars is not None
    assert printer._bars is None
    assert "3/20" in out.getvalue()
    assert "12.5 s per image" in out.getvalue()


def test_step_meter_reports_the_pace_measured_from_its_first_report() -> None:
    now = iter([100.0, 104.0, 106.0])
    meter = StepMeter("Train", unit="image-steps", per="image-step", clock=lambda: next(now))
    seen: list[StepProgress] = []
    with listening(seen.append):
        meter(8, 200)  # after loading images: the pace starts here
        meter(108, 200)
        meter(200, 200)
    assert [(p.done, p.total, p.detail) for p in seen] == [
        (8, 200, None),
        (108, 200, "40 ms per image-step"),
        (200, 200, "31 ms per image-step"),
    ]
    assert {(p.step, p.unit) for p in seen} == {("Train", "image-steps")}


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.0381, "38 ms"), (12.46, "12.5 s"), (95.2, "95 s")]
)
def test_pace_text_picks_a_readable_unit(seconds: float, text: str) -> None:
    assert pace_text(seconds) == text


def test_printer_without_a_terminal_logs_a_plain_line_now_and_then() -> None:
    out = io.StringIO()
    now = iter([0.0, 10.0, 31.0, 40.0, 62.0])
    printer = ProgressPrinter(
        Console(file=out, width=160, force_terminal=False), log_every_s=30, clock=lambda: next(now)
    )
    with printer:
        for done in (0, 100, 300, 400, 600):
            step_progress(step="Train", done=done, total=2400, unit="image-steps", detail="d")
    lines = [line.strip() for line in out.getvalue().splitlines() if line.strip()]
    assert lines[:2] == [
        "Train: 300/2,400 image-steps, d",
        "Train: 600/2,400 image-steps, d",
    ]


def test_a_failing_listener_never_fails_the_step(caplog: pytest.LogCaptureFixture) -> None:
    def broken(update: StepProgress) -> None:
        raise RuntimeError("terminal went away")

    seen: list[StepProgress] = []
    with listening(broken), listening(seen.append):
        step_progress(step="Train", done=1, total=2, unit="image-steps")
    assert len(seen) == 1
    assert "progress display failed" in caplog.text
