"""Ctrl-C in ``boxloop local run --workforce browser`` loses nothing; --resume asks only the rest.

Two real CLI subprocesses on one output folder: the first is interrupted (SIGINT) after two
images were labeled, and says how to resume; the second resumes from the saved ledger and the
journal, and serves only the images not answered yet.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

from labeling._client import Labeler  # tests/labeling (tests/ is on sys.path)

from boxloop.local.demo import write_demo_data

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = [
    "seed_size=4",
    "batch_size=4",
    "validation_fraction=0.25",
    "min_validation=2",
    "max_iterations=1",
    "label_attribute=boxes",
]
BOX = [{"class_id": 0, "left": 1, "top": 1, "width": 5, "height": 5}]


def _start(data: Path, out: Path, *extra: str) -> tuple[subprocess.Popen, list[str], str]:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "boxloop.cli", "local", "run"),
            *("--images", str(data / "images"), "--labels", str(data / "labels.json")),
            *("--workforce", "browser", "--out", str(out), "--image-steps", "8", *extra),
            *("--set", *SETTINGS),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    for line in proc.stdout:  # type: ignore[union-attr]
        lines.append(line)
        if "#token=" in line:
            break
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()  # type: ignore[arg-type]
    assert "#token=" in lines[-1], "".join(lines)
    return proc, lines, lines[-1].split()[-1]


def _label(url: str, worker: str, limit: int) -> list[str]:
    labeler, done = Labeler(url, worker), []
    while len(done) < limit:
        task, reason = labeler.next_task()
        if task is None:
            assert reason in ("done", "no-job"), reason  # the batch may close at once
            break
        assert labeler.submit(task, BOX)[0] == 200
        done.append(task["task_id"])
    return done


def _interrupt(proc: subprocess.Popen, lines: list[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    return code, "".join(lines)


def test_ctrl_c_then_resume_serves_only_what_is_left(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    write_demo_data(data, n_images=8, n_classes=2, seed=5, difficulty=0.2)
    proc, lines, url = _start(data, out)
    first = _label(url, "a", 2)
    code, output = _interrupt(proc, lines)
    ledger = out / "ledger.jsonl"
    assert code == 2, output[-3000:]
    assert f"resume with --resume {ledger}" in output
    assert ledger.is_file()
    journal = out / "labeling" / "journal.jsonl"
    assert len(journal.read_text().splitlines()) == 2

    proc, lines, url = _start(data, out, "--resume", str(ledger))
    status, session = Labeler(url, "b").request("GET", "/api/v1/session")
    assert status == 200 and session["job"]["counts"]["done"] == 2, session
    rest = _label(url, "b", 100)
    _interrupt(proc, lines)
    assert len(rest) == session["job"]["counts"]["left"] and not set(rest) & set(first)
    assert len(journal.read_text().splitlines()) == 2 + len(rest)
