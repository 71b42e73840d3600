"""End to end: ``boxloop local run --workforce browser`` with a scripted labeler over HTTP.

The run is a real subprocess (the CLI, the emulator, the detector with 8 image-steps, one
round); a thread reads the URL it prints, labels every image it is given until the run ends,
and the run's output manifest holds exactly the boxes it submitted, as human labels. Most of
its time is the detector's start and training (about 30 s on an idle core).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from labeling._client import Labeler  # tests/labeling (tests/ is on sys.path)

from boxloop.local.demo import write_demo_data

ROOT = Path(__file__).resolve().parents[2]


def _answer_for(image: bytes, width: int, height: int) -> list[dict]:
    """A box that depends on the image bytes, so each image's answer is recognisable."""
    n = int(hashlib.sha256(image).hexdigest()[:4], 16)
    if n % 5 == 0:
        return []  # an explicit "no objects" answer now and then
    w, h = max(4, width // 4), max(4, height // 4)
    return [
        {"class_id": 0, "left": n % (width - w), "top": n % (height - h), "width": w, "height": h}
    ]


def _labeler(proc: subprocess.Popen, answered: dict, lines: list[str], errors: list) -> None:
    url = None
    for line in proc.stdout:  # type: ignore[union-attr]
        lines.append(line)
        if "#token=" in line:
            url = line.strip().split()[-1]
            break
    if url is None:
        return
    # Keep draining the output in the background so the run never blocks on a full pipe.
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()  # type: ignore[arg-type]
    labeler = Labeler(url, "scripted")
    try:
        while proc.poll() is None:
            try:
                task, _ = labeler.next_task()
            except OSError:
                break  # the server is gone: the run has ended
            if task is None:
                threading.Event().wait(0.1)
                continue
            status, image = labeler.request("GET", task["image_url"])
            assert status == 200
            boxes = _answer_for(image, task["width"], task["height"])
            status, body = labeler.submit(task, boxes, effort={"seconds": 1.5})
            assert status == 200, body
            answered[hashlib.sha256(image).hexdigest()] = boxes
    except Exception as exc:
        errors.append(exc)


def test_local_run_with_browser_workforce_end_to_end(tmp_path):
    data = tmp_path / "data"
    write_demo_data(data, n_images=8, n_classes=2, seed=5, difficulty=0.2)
    images = data / "images"
    out = tmp_path / "out"
    settings = [
        "seed_size=4",
        "batch_size=4",
        "validation_fraction=0.25",
        "min_validation=2",
        "max_iterations=1",
        "finish_with_humans=true",
        "label_attribute=boxes",
    ]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "boxloop.cli",
            "local",
            "run",
            "--images",
            str(images if images.is_dir() else data),
            "--labels",
            str(data / "labels.json"),
            "--workforce",
            "browser",
            "--out",
            str(out),
            "--image-steps",
            "8",
            "--set",
            *settings,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    answered: dict[str, list] = {}
    lines: list[str] = []
    errors: list = []
    thread = threading.Thread(target=_labeler, args=(proc, answered, lines, errors))
    thread.start()
    try:
        code = proc.wait(timeout=400)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        proc.kill()
        thread.join(timeout=10)
    output = "".join(lines)
    assert code is not None, f"the run did not end; its output:\n{output[-4000:]}"
    assert code == 0, output[-4000:]
    assert not errors, errors
    manifest = [json.loads(x) for x in (out / "output.manifest").read_text().splitlines()]
    human = [m for m in manifest if (m.get("boxes-metadata") or {}).get("human-annotated") == "yes"]
    assert len(human) == len(answered) > 0
    for line in human:
        want = answered[hashlib.sha256(Path(line["source-ref"]).read_bytes()).hexdigest()]
        got = [
            {k: a[k] for k in ("class_id", "left", "top", "width", "height")}
            for a in line["boxes"]["annotations"]
        ]
        assert got == want, line["source-ref"]
        assert line["boxloop-workers"] == ["scripted"]  # who labeled it, kept to the end
    journal = (out / "labeling" / "journal.jsonl").read_text().splitlines()
    assert len(journal) == len(answered)
    assert output.count("#token=") == 1  # one URL for the whole run
