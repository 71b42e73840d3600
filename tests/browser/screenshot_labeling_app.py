"""Screenshot of the labeling app at work on a real local run, and what each image took.

Runs ``boxloop local run --workforce browser`` on generated demo images and plays the person in
headless Chromium: every image is labeled through the page with mouse drags and keys, drawing
the demo's reference boxes. On images that arrive with model suggestions it walks through them by
keys (the page selects each in turn: ``Y`` keeps one that matches a reference box, a class
key fixes its class, ``Delete`` drops the others) and draws what the model missed. The first
image with two or more suggestions is photographed as it arrives
(``docs/img/labeling-app.png``), and the actions and box counts per image are printed for
images with and without suggestions (a script's seconds are no human's).

    .venv/bin/python tests/browser/screenshot_labeling_app.py [--out docs/img/labeling-app.png]

Not a test (pytest does not collect it): it needs a few minutes for the run's training.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _page import ENTER, MISSING, LabelPage, start_chromium  # noqa: E402

from boxloop.core.manifests import record_id  # noqa: E402
from boxloop.local.engine import BUCKET  # noqa: E402

ROOT = HERE.parents[1]
BOXLOOP = [sys.executable, "-m", "boxloop.cli"]
URL = re.compile(r"http://127\.0\.0\.1:\d+/#token=\S+")
MATCH_IOU = 0.7


def _iou(a: dict[str, float], b: dict[str, float]) -> float:
    x0, y0 = max(a["left"], b["left"]), max(a["top"], b["top"])
    x1 = min(a["left"] + a["width"], b["left"] + b["width"])
    y1 = min(a["top"] + a["height"], b["top"] + b["height"])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a["width"] * a["height"] + b["width"] * b["height"] - inter
    return inter / union if union > 0 else 0.0


def _references(manifest: Path) -> dict[str, list[dict[str, Any]]]:
    """Record id in the run -> the reference boxes of its image.

    The run names each image by its emulated bucket URI (`upload_images`): one folder of
    images becomes ``s3://BUCKET/images/<file name>``, and the record id hashes that.
    """
    refs = {}
    for line in manifest.read_text().splitlines():
        record = json.loads(line)
        uri = f"s3://{BUCKET}/images/{Path(record['source-ref']).name}"
        refs[record_id(uri)] = record["reference"]["annotations"]
    return refs


class _Person:
    """Labels each image the page shows as the reference says, counting its actions."""

    def __init__(self, page: LabelPage, refs: dict[str, list[dict[str, Any]]]) -> None:
        self.page = page
        self.refs = refs
        self.rows: list[dict[str, Any]] = []

    def label(self, state: dict[str, Any], shot: Path | None) -> bool:
        """Label the shown image; photograph it as it arrived when it has suggestions."""
        page, refs = self.page, list(self.refs[state["task"]])
        suggestions = state["suggestions"]
        taken = False
        if shot is not None and len(suggestions) >= 2:
            time.sleep(0.3)  # the image decoded and painted
            page.driver.save_screenshot(str(shot))
            taken = True
        actions = 0
        todo = list(refs)
        # The page selects each suggestion in turn: Y keeps it, a class key fixes its class
        # and keeps it, Delete drops it; then the next one is selected.
        while True:
            current = page.state()
            chosen = [b for b in current["suggestions"] if b["id"] == current["selected"]]
            if not chosen:
                break
            s = chosen[0]
            best = max(todo, key=lambda r: _iou(r, s), default=None)
            if best is not None and _iou(best, s) >= MATCH_IOU:
                todo.remove(best)
                if best["class_id"] != s["class_id"]:
                    page.keys(str(best["class_id"] + 1))  # fixed and kept (edited)
                    actions += 1
                else:
                    page.keys("y")
                    actions += 1
            else:
                page.keys("\ue017")  # Delete
                actions += 1
        for r in todo:
            page.drag(r["left"], r["top"], r["left"] + r["width"], r["top"] + r["height"])
            page.keys(str(r["class_id"] + 1))
            actions += 2
        effort = page.state()["effort"]
        page.keys(ENTER if refs else "e")
        actions += 1
        self.rows.append(
            {"suggested": bool(suggestions), "boxes": len(refs), "actions": actions, **effort}
        )
        return taken


def main() -> None:
    """Run, label, photograph, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/img/labeling-app.png")
    parser.add_argument("--images", type=int, default=80)
    parser.add_argument("--image-steps", type=int, default=256)
    parser.add_argument(
        "--suggested-images",
        type=int,
        default=8,
        help="stop after this many images with suggestions",
    )
    args = parser.parse_args()
    if MISSING:
        sys.exit(MISSING)
    work = Path(tempfile.mkdtemp(prefix="boxloop-shot-"))
    data = work / "data"
    subprocess.run(
        [*BOXLOOP, "demo-data", str(data), "--images", str(args.images), "--seed", "3"],
        check=True,
        capture_output=True,
    )
    log = work / "run.log"
    with log.open("w") as out:
        run = subprocess.Popen(
            [
                *BOXLOOP,
                "local",
                "run",
                "--images",
                str(data / "images"),
                "--labels",
                str(data / "labels.json"),
                "--workforce",
                "browser",
                "--out",
                str(work / "out"),
                "--image-steps",
                str(args.image_steps),
                "--set",
                "seed_size=16",
                "batch_size=10",
                "validation_fraction=0.15",
                "max_iterations=3",
                "workers_per_object=1",  # one person labels this run
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )
    print(f"run log: {log}", flush=True)
    browser = start_chromium((1280, 760))
    try:
        deadline = time.monotonic() + 120
        url = None
        while url is None:
            found = URL.search(log.read_text())
            url = found.group(0) if found else None
            if run.poll() is not None or time.monotonic() > deadline:
                sys.exit("the run printed no labeling URL:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
        page = LabelPage(browser, url)
        page.open("Grace")
        person = _Person(page, _references(data / "reference.manifest"))
        shot: Path | None = args.out
        last = None
        while sum(r["suggested"] for r in person.rows) < args.suggested_images:
            try:
                state = page.wait_task(not_task=last, timeout_s=1500)
            except AssertionError:
                sys.exit("no next image; the run's log ends:\n" + log.read_text()[-3000:])
            if person.label(state, shot):
                shot = None
            last = state["task"]
    finally:
        browser.quit()
        run.terminate()
        run.wait(30)
    for suggested in (False, True):
        rows = [r for r in person.rows if r["suggested"] == suggested]
        if not rows:
            continue
        n = len(rows)
        print(
            f"{'with' if suggested else 'without'} suggestions: {n} images, "
            f"{sum(r['boxes'] for r in rows) / n:.2f} boxes/image, "
            f"{sum(r['actions'] for r in rows) / n:.2f} actions/image, "
            f"{sum(r['boxes_drawn'] for r in rows) / n:.2f} drawn, "
            f"{sum(r['model_boxes_accepted'] for r in rows) / n:.2f} accepted, "
            f"{sum(r['model_boxes_moved'] for r in rows) / n:.2f} edited, "
            f"{sum(r['model_boxes_deleted'] for r in rows) / n:.2f} deleted per image"
        )
    print(f"screenshot: {args.out}" if shot is None else "no pre-annotated image was shown")


if __name__ == "__main__":
    main()
