"""The report page: human effort, the least confident auto-labels, the ``boxloop review`` line.

Fast: a few tiny images and hand-made report blocks, no run.
"""

from __future__ import annotations

import base64
import io
import json
import re
from typing import TYPE_CHECKING, Any

from PIL import Image

from boxloop.core.boxes import Box
from boxloop.core.detections import Detections
from boxloop.core.formats.groundtruth import Label
from boxloop.core.manifests import record_id
from boxloop.core.records import Provenance, Record, record_to_json
from boxloop.local.reporting import write_html_report
from boxloop.local.reporting.effort import human_effort
from boxloop.local.reporting.gallery import least_confident_auto_labels

if TYPE_CHECKING:
    from pathlib import Path

ATTR = "boxes"
WH = (120, 80)


def _line(ref: str, *, human: bool, confidence: float | None, score: float = 0.9) -> str:
    box = Box.from_xyxy((10, 10, 60, 50), 1, None if human else score)
    label = Label(
        detections=Detections(record_id(ref), WH, (box,)),
        confidences=(0.0 if human else score,),
        class_map={0: "cat", 1: "dog"},
        human_annotated=human,
        job_name="job",
        creation_date="2026-12-07T00:00:00.000000",
    )
    provenance = Provenance(role="pool", iteration=2, confidence=confidence, threshold=0.4)
    record = Record(id=record_id(ref), source_ref=ref, label=label, provenance=provenance)
    return json.dumps(record_to_json(record, ATTR))


def _manifest(tmp_path: Path) -> Path:
    """Images a..e: four auto-labels of confidence .9/.5/.45/.7, one human label; one missing."""
    (tmp_path / "images").mkdir()
    for name in "abcd":
        Image.new("RGB", WH, "white").save(tmp_path / "images" / f"{name}.png")
    lines = [
        _line("images/a.png", human=False, confidence=0.9),
        _line("images/b.png", human=False, confidence=0.5),
        _line("images/c.png", human=True, confidence=0.1),  # human: never in the gallery
        _line("images/d.png", human=False, confidence=0.45),
        _line("images/gone.png", human=False, confidence=0.7),
    ]
    manifest = tmp_path / "output.manifest"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def _report(effort: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "run_id": "r1",
        "iterations": 1,
        "counts": {"total": 5, "human": 1, "auto": 4, "unlabeled": 0},
        "per_iteration": [],
        "output_manifest": "/out/output.manifest",
        "human_effort": effort,
    }


def test_least_confident_auto_labels_come_lowest_first_with_their_boxes_drawn(
    tmp_path: Path,
) -> None:
    gallery = least_confident_auto_labels(
        _manifest(tmp_path), ATTR, base_dir=tmp_path, limit=3, side=60
    )

    assert [(g.source_ref, g.confidence) for g in gallery] == [
        ("images/d.png", 0.45),
        ("images/b.png", 0.5),
        ("images/gone.png", 0.7),
    ]
    assert gallery[0].threshold == 0.4
    assert gallery[0].iteration == 2
    assert gallery[0].boxes == 1
    assert gallery[2].thumbnail is None  # the file is gone: a note, not a crash
    thumb = Image.open(io.BytesIO(gallery[0].thumbnail or b""))
    assert thumb.size == (60, 40)
    # the box's outline is drawn (white image elsewhere): a coloured pixel on its left edge
    red, green, blue = thumb.convert("RGB").getpixel((5, 15))
    assert (red, green, blue) != (255, 255, 255)


def test_report_page_shows_the_gallery_and_how_to_review_the_run(tmp_path: Path) -> None:
    gallery = least_confident_auto_labels(_manifest(tmp_path), ATTR, base_dir=tmp_path)
    out = tmp_path / "run-out"

    html = write_html_report(_report(), out / "report.html", gallery=gallery).read_text()

    assert f"boxloop review {out}" in html
    thumbs = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', html)
    assert len(thumbs) == 3
    assert base64.b64decode(thumbs[0]) == gallery[0].thumbnail
    assert html.index("confidence 0.450") < html.index("confidence 0.500")
    assert "confidence 0.450 (threshold 0.400), iteration 2, 1 box: d.png" in html
    assert 'title="images/d.png"' in html
    assert "gone.png: image not readable" in html


def test_report_page_without_auto_labels_still_says_how_to_review(tmp_path: Path) -> None:
    html = write_html_report(_report(), tmp_path / "report.html", gallery=[]).read_text()

    assert "No auto-labels to show." in html
    assert f"boxloop review {tmp_path}" in html


def test_report_page_shows_measured_human_time_next_to_the_simulated(tmp_path: Path) -> None:
    effort = human_effort(
        [
            {
                "workforce": "simulated",
                "labeled": 3,
                "boxes": 6,
                "worker_tasks": 3,
                "worker_seconds": 210.0,
            },
            {
                "workforce": "browser",
                "labeled": 10,
                "boxes": 25,
                "worker_tasks": 10,
                "worker_seconds": 200.0,
                "effort": {
                    "images": 10,
                    "seconds": 200.0,
                    "boxes": 25,
                    "boxes_drawn": 17,
                    "model_boxes_accepted": 6,
                    "model_boxes_moved": 2,
                    "model_boxes_deleted": 1,
                    "preannotated_images": 4,
                    "preannotated_seconds": 32.0,
                    "preannotated_boxes": 10,
                },
            },
        ]
    )

    html = write_html_report(_report(effort), tmp_path / "report.html").read_text()

    assert "<h2>Human effort</h2>" in html
    assert "<td>measured: all images</td><td>10</td><td>25</td><td>200</td><td>20.0 s</td>" in html
    assert "<td>measured: with pre-annotations</td><td>4</td><td>10</td><td>32</td>" in html
    assert "<td>measured: from scratch</td><td>6</td><td>15</td><td>168</td><td>28.0 s</td>" in html
    assert "Pre-annotations saved 20.0 s per image (71% of the time from scratch)." in html
    assert "model boxes accepted 6, moved 2, deleted 1" in html
    assert "Active-learning bounding-box labeling: run report." in html


def test_report_page_of_a_simulated_run_says_no_human_time_was_measured(tmp_path: Path) -> None:
    effort = human_effort(
        [
            {
                "workforce": "simulated",
                "labeled": 4,
                "boxes": 10,
                "worker_tasks": 4,
                "worker_seconds": 350.0,
            }
        ]
    )

    html = write_html_report(_report(effort), tmp_path / "report.html").read_text()

    assert "<td>workforce time (simulated)</td><td>4</td><td>10</td><td>350</td>" in html
    assert "<td>87.5 s</td><td>35.0 s</td>" in html
    assert "No human time was measured" in html
    assert "measured: all images" not in html
    assert "simulated run report." in html
