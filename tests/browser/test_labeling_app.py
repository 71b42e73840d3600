"""The labeling app in a real browser against the real local labeling server.

Headless Chromium loads the page that `BrowserWorkforce` serves, a person's mouse drags and keys
draw and edit boxes, and the test reads back what the workforce yields to the labeling runner
(the `TaskResult` labels, rendered as Ground Truth output-manifest fields) and what the journal
kept across a server killed mid-batch.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from boxloop.core.formats.groundtruth import label_to_fields
from boxloop.labeling.store import JOURNAL_FILE, JournalStore
from boxloop.local.workforce.browser import BrowserWorkforce

from ._batch import TOKEN, make_tasks
from ._page import ENTER, MISSING, LabelPage

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from boxloop.local.workforce.base import LabelTask, TaskResult

pytestmark = [pytest.mark.browser, pytest.mark.skipif(bool(MISSING), reason=MISSING)]

TOLERANCE_PX = 1.5  # mouse positions are whole screen pixels at the page's zoom


class _Batch:
    """`BrowserWorkforce.label` running in a thread, as the labeling runner runs it."""

    def __init__(self, workforce: BrowserWorkforce, tasks: list[LabelTask]) -> None:
        self.workforce = workforce
        self.results: list[TaskResult] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(tasks,), daemon=True)

    def _run(self, tasks: list[LabelTask]) -> None:
        try:
            self.results = list(self.workforce.label(tasks))
        except BaseException as error:  # re-raised in the test thread by `join`
            self.error = error

    def start(self) -> _Batch:
        self.workforce.start()
        self.thread.start()
        deadline = time.monotonic() + 10
        while self.workforce.store is None or self.workforce.store.job() is None:
            assert time.monotonic() < deadline, "the batch's job never opened"
            time.sleep(0.02)
        return self

    def join(self, timeout_s: float = 15) -> list[TaskResult]:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the batch did not finish after every submit"
        if self.error is not None:
            raise self.error
        return self.results


@pytest.fixture
def workforce(tmp_path: Path) -> Iterator[BrowserWorkforce]:
    with BrowserWorkforce(
        tmp_path / "labeling", token=TOKEN, announce=lambda _text: None, poll_s=0.2
    ) as wf:
        yield wf


def _manifest_boxes(result: TaskResult) -> list[dict[str, Any]]:
    """The boxes the job's output manifest line holds for ``result`` (Ground Truth format)."""
    assert result.label is not None, result.failure_reason
    fields = label_to_fields(result.label, "label")
    assert fields["label-metadata"]["human-annotated"] == "yes"
    return sorted(fields["label"]["annotations"], key=lambda b: (b["left"], b["top"]))


def _page_boxes(state: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("class_id", "left", "top", "width", "height")
    return sorted(({k: b[k] for k in keys} for b in state["boxes"]), key=lambda b: b["left"])


def _near(box: dict[str, Any], class_id: int, left: float, top: float, w: float, h: float) -> bool:
    want = {"left": left, "top": top, "width": w, "height": h}
    return box["class_id"] == class_id and all(
        abs(box[k] - v) <= TOLERANCE_PX for k, v in want.items()
    )


def _wait_batch_end(page: LabelPage) -> None:
    """The page says there is nothing (left) to label, with no error."""
    page.wait(
        lambda: page.js("return !document.getElementById('message-view').hidden"),
        "the page to say the batch is done",
    )
    assert "label" in page.message().lower() and page.error() == "", page.message()


def test_labeling_app_draws_edits_accepts_rejects_and_submits_what_the_manifest_holds(
    tmp_path: Path, workforce: BrowserWorkforce, label_page: Callable[[str], LabelPage]
) -> None:
    # GIVEN a batch of four images, all but the first with two model suggestions each
    tasks = make_tasks(tmp_path, 4, preannotated={1, 2, 3}, job="run-it0-label")
    batch = _Batch(workforce, tasks).start()
    page = label_page(workforce.url or "")
    page.open("Ada")
    submitted: dict[str, list[dict[str, Any]]] = {}

    # WHEN the person draws two boxes on the plain image and turns the second into class 3
    state = page.wait_task()
    assert state["task"] == "rec0" and state["pending"] == 0, state
    page.drag(30, 40, 110, 100)
    page.drag(180, 110, 260, 210)
    page.keys("3")
    state = page.state()
    assert len(state["boxes"]) == 2, state
    assert _near(_page_boxes(state)[0], 0, 30, 40, 80, 60), state
    assert _near(_page_boxes(state)[1], 2, 180, 110, 80, 100), state
    submitted["rec0"] = _page_boxes(state)
    page.keys(ENTER)  # Enter: submit and next

    # ... then on the pre-annotated image moves one suggestion and accepts the other with A
    state = page.wait_task(not_task="rec0")
    assert state["task"] == "rec1" and state["pending"] == 2, state
    page.drag(70, 70, 80, 75)  # grab the car suggestion's middle, move it by (+10, +5)
    page.keys("a")
    state = page.state()
    assert state["pending"] == 0, state
    car, person = sorted(state["boxes"], key=lambda b: b["class_id"])
    assert (car["origin"], car["edited"]) == ("model", True), car
    assert (person["origin"], person["edited"]) == ("model", False), person
    assert _near(car, 0, 50, 55, 60, 40) and _near(person, 1, 200, 120, 50, 80), state
    assert state["effort"]["model_boxes_moved"] == 1
    assert state["effort"]["model_boxes_accepted"] == 1
    submitted["rec1"] = _page_boxes(state)
    page.keys(ENTER)

    # ... and answers "no objects" on the third, rejecting both suggestions with one key
    state = page.wait_task(not_task="rec1")
    assert state["task"] == "rec2" and state["pending"] == 2, state
    page.keys("e")
    submitted["rec2"] = []

    # ... and on the fourth keeps the first suggestion (selected on arrival) and drops the rest
    state = page.wait_task(not_task="rec2")
    assert state["task"] == "rec3" and state["pending"] == 2, state
    page.keys("y", "r")
    state = page.state()
    assert state["pending"] == 0 and len(state["boxes"]) == 1, state
    submitted["rec3"] = _page_boxes(state)
    assert _near(submitted["rec3"][0], 0, 40, 50, 60, 40), state
    page.keys(ENTER)
    _wait_batch_end(page)

    # THEN the labels the runner writes hold exactly those boxes, and nothing else
    results = {r.record_id: r for r in batch.join()}
    assert set(results) == {"rec0", "rec1", "rec2", "rec3"}
    for record_id, boxes in submitted.items():
        manifest = _manifest_boxes(results[record_id])
        assert [sorted(b) for b in manifest] == [sorted(b) for b in boxes], record_id
        for got, want in zip(manifest, boxes, strict=True):
            assert [got[k] for k in sorted(got)] == pytest.approx([want[k] for k in sorted(got)])
    assert results["rec0"].worker_seconds > 0 and results["rec1"].worker_seconds > 0
    effort = workforce.job_summary("run-it0-label")["effort"]
    assert effort["images"] == 4 and effort["preannotated_images"] == 3
    assert effort["boxes_drawn"] == 2 and effort["model_boxes_accepted"] == 2
    assert effort["model_boxes_moved"] == 1 and effort["model_boxes_deleted"] == 3
    assert page.error() == ""


def test_labeling_app_shows_the_server_error_message(
    tmp_path: Path, workforce: BrowserWorkforce, label_page: Callable[[str], LabelPage]
) -> None:
    # GIVEN a running batch WHEN the page is opened with a wrong token
    _Batch(workforce, make_tasks(tmp_path, 1, preannotated=set(), job="job-err")).start()
    url = (workforce.url or "").replace(TOKEN, "not-the-token-of-this-run")
    page = label_page(url)
    page.driver.get(url)
    # THEN the page shows the API's own message, not a generic failure
    page.wait(lambda: page.error(), "an error banner")
    assert "token" in page.error().lower() or "unauthorized" in page.error().lower()


# -- a server killed mid-batch -------------------------------------------------------------------

_SERVE = """
import sys
from pathlib import Path
sys.path.insert(0, {here!r})
from _batch import TOKEN, make_tasks
from boxloop.local.workforce.browser import BrowserWorkforce
folder = Path({folder!r})
wf = BrowserWorkforce(folder / "labeling", port={port}, token=TOKEN, announce=print, poll_s=0.2)
results = list(wf.label(make_tasks(folder, 3, preannotated=set(), job="run-it0-label")))
print("RESULTS", len(results), flush=True)
sys.stdin.readline()  # a run's server outlives its batch: the page asks again after the last answer
wf.close()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(folder: Path, port: int) -> subprocess.Popen[str]:
    """A labeling run's server in its own process (so it can be killed like a crash)."""
    here = str(Path(__file__).resolve().parent)
    code = _SERVE.format(here=here, folder=str(folder), port=port)
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the labeling server did not start")


def _journal_answers(folder: Path) -> dict[str, list[dict[str, Any]]]:
    store = JournalStore(folder / "labeling" / JOURNAL_FILE)
    try:
        return {
            f"rec{i}": [b.to_json() for a in store.answers(f"rec{i}") for b in a.boxes]
            for i in range(3)
            if store.answers(f"rec{i}")
        }
    finally:
        store.close()


def test_labeling_app_keeps_every_submitted_label_when_the_server_is_killed_mid_batch(
    tmp_path: Path, label_page: Callable[[str], LabelPage]
) -> None:
    # GIVEN a run serving three images, and a person who labeled two of them
    port = _free_port()
    url = f"http://127.0.0.1:{port}/#token={TOKEN}"
    server = _serve(tmp_path, port)
    page = label_page(url)
    try:
        page.open("Ada")
        first = page.wait_task()
        page.drag(20, 20, 60, 70)
        page.keys(ENTER)
        second = page.wait_task(not_task=first["task"])
        page.keys("e")  # an explicit "no objects" answer
        third = page.wait_task(not_task=second["task"])
        page.drag(100, 100, 150, 140)  # drawn, not yet submitted: kept as the page's draft
    finally:
        # WHEN the server dies mid-batch (SIGKILL: no shutdown, no flush)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    kept = _journal_answers(tmp_path)
    assert set(kept) == {first["task"], second["task"]}, kept

    # ... and the run is resumed on the same folder
    server = _serve(tmp_path, port)
    try:
        page.driver.refresh()
        resumed = page.wait_task()
        # THEN only the unanswered image is served, with the box drawn before the crash
        assert resumed["task"] == third["task"], resumed
        assert _near(_page_boxes(resumed)[0], 0, 100, 100, 50, 40), resumed
        assert "done 2" in page.driver.find_element("id", "progress").text
        page.keys(ENTER)
        _wait_batch_end(page)
        out, _ = server.communicate(input="\n", timeout=15)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    assert "RESULTS 3" in out, out
    answers = _journal_answers(tmp_path)
    assert answers[first["task"]] == kept[first["task"]]
    assert answers[second["task"]] == [] and len(answers[third["task"]]) == 1
    assert _near({"class_id": 0, **answers[first["task"]][0]}, 0, 20, 20, 40, 50)
