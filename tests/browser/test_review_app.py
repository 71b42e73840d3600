"""Review mode in a real browser: ``boxloop review OUT`` serves a run's labels as a gallery.

Headless Chromium filters the gallery to auto-labels, finds the least confident first, opens
it, corrects a box's class by key and saves; the run's output manifest then holds the
correction as a human label.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from boxloop.core.manifests import record_id

from ._batch import write_image
from ._page import ENTER, MISSING, LabelPage

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = [pytest.mark.browser, pytest.mark.skipif(bool(MISSING), reason=MISSING)]

ATTR = "boxes"
URL = re.compile(r"http://127\.0\.0\.1:\d+/#token=\S+")


def _fields(boxes: list[tuple[int, int, int, int, int]], *, scores: list[float] | None) -> dict:
    """Ground Truth output fields: a human label when ``scores`` is None, else the model's."""
    return {
        ATTR: {
            "image_size": [{"width": 320, "height": 240, "depth": 3}],
            "annotations": [
                {"class_id": c, "left": x, "top": y, "width": w, "height": h}
                for c, x, y, w, h in boxes
            ],
        },
        f"{ATTR}-metadata": {
            "objects": [{"confidence": s} for s in (scores or [0.0] * len(boxes))],
            "class-map": {"0": "car", "1": "person"},
            "type": "groundtruth/object-detection",
            "human-annotated": "no" if scores else "yes",
            "creation-date": "2026-01-02T03:04:05.000000",
            "job-name": "boxloop-auto" if scores else "labeling-job/x",
        },
    }


def _run_output(tmp_path: Path) -> tuple[Path, list[str]]:
    """A finished local run's folder: one human, two auto-labeled, one image left over."""
    out, images = tmp_path / "out", tmp_path / "images"
    out.mkdir()
    images.mkdir()
    refs = [str(write_image(images / f"{n}.png", 80)) for n in ("human", "sure", "unsure", "left")]
    lines = [
        {"source-ref": refs[0], **_fields([(0, 40, 50, 60, 40)], scores=None), "boxloop": {}},
        {
            "source-ref": refs[1],
            **_fields([(0, 40, 50, 60, 40)], scores=[0.97]),
            "boxloop": {"confidence": 0.96},
        },
        {
            "source-ref": refs[2],
            **_fields([(0, 40, 50, 60, 40), (0, 200, 120, 50, 80)], scores=[0.9, 0.55]),
            "boxloop": {"confidence": 0.58},
        },
        {"source-ref": refs[3], "boxloop": {"image_wh": [320, 240]}},
    ]
    (out / "output.manifest").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (out / "report.json").write_text(json.dumps({"counts": {"total": 4, "human": 1, "auto": 2}}))
    categories = [{"id": 0, "name": "car"}, {"id": 1, "name": "person"}]
    (out / "coco.json").write_text(json.dumps({"categories": categories}))
    return out, refs


def _manifest(out: Path) -> dict[str, dict[str, Any]]:
    lines = [json.loads(x) for x in (out / "output.manifest").read_text().splitlines()]
    return {line["source-ref"]: line for line in lines}


def test_review_gallery_filters_sorts_and_a_correction_becomes_a_human_label(
    tmp_path: Path, label_page: Callable[[str], LabelPage]
) -> None:
    # GIVEN a finished run's output served by `boxloop review`
    out, refs = _run_output(tmp_path)
    server = subprocess.Popen(
        [sys.executable, "-m", "boxloop.cli", "review", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None:
            line = server.stdout.readline() if server.stdout else ""
            assert line or server.poll() is None, "boxloop review exited without a URL"
            found = URL.search(line)
            url = found.group(0) if found else None
            assert time.monotonic() < deadline, "boxloop review printed no URL"
        page = label_page(url)
        page.open("Rev")
        driver = page.driver
        cards = lambda: driver.find_elements(By.CSS_SELECTOR, ".card")  # noqa: E731
        page.wait(lambda: len(cards()) == 4, "the gallery's four images")

        # WHEN the reviewer shows only auto-labels, least confident first
        Select(driver.find_element(By.ID, "review-filter")).select_by_value("auto")
        page.wait(lambda: len(cards()) == 2, "the two auto-labeled images")
        # THEN the doubtful one comes first
        ids = [c.get_attribute("data-item-id") for c in cards()]
        assert ids == [record_id(refs[2]), record_id(refs[1])]

        # WHEN they open it, select the second box, make it a person and save
        cards()[0].click()
        state = page.wait_task()
        assert state["mode"] == "review" and len(state["boxes"]) == 2, state
        page.click(225, 160)  # the middle of the box at (200, 120, 50, 80)
        page.keys("2", ENTER)
        page.wait(
            lambda: page.js("return !document.getElementById('gallery').hidden"),
            "the gallery after saving",
        )
        assert page.error() == ""
    finally:
        server.terminate()
        server.wait(10)

    # THEN the output manifest holds the correction as a human label; the rest is unchanged
    lines = _manifest(out)
    corrected = lines[refs[2]]
    assert corrected[f"{ATTR}-metadata"]["human-annotated"] == "yes"
    boxes = sorted(
        (b["class_id"], b["left"], b["top"], b["width"], b["height"])
        for b in corrected[ATTR]["annotations"]
    )
    assert boxes == [(0, 40, 50, 60, 40), (1, 200, 120, 50, 80)]
    assert lines[refs[1]][f"{ATTR}-metadata"]["human-annotated"] == "no"
