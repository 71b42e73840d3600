"""A labeling batch for the browser tests: small PNG images and their `LabelTask`s.

Importable without pytest, so the killed-server test's child process builds the same batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw

from boxloop.core.records import PROVENANCE_KEY
from boxloop.labeling.preannotations import PREANNOTATIONS_KEY
from boxloop.local.workforce.base import JobSpec, LabelTask

if TYPE_CHECKING:
    from pathlib import Path

TOKEN = "browser-test-token-0123456789"
CLASSES = {0: "car", 1: "person", 2: "bike"}
IMAGE_WH = (320, 240)
PRE_BOXES = [  # [class_id, score, left, top, width, height], as PrepareLabeling writes them
    [0, 0.91, 40.0, 50.0, 60.0, 40.0],
    [1, 0.62, 200.0, 120.0, 50.0, 80.0],
]


def write_image(path: Path, shade: int) -> Path:
    """A PNG with two coloured blocks where `PRE_BOXES` put the model's boxes."""
    image = Image.new("RGB", IMAGE_WH, (shade, 110, 130))
    draw = ImageDraw.Draw(image)
    draw.rectangle([40, 50, 100, 90], fill=(200, 60, 60))
    draw.rectangle([200, 120, 250, 200], fill=(60, 200, 60))
    image.save(path)
    return path


def make_tasks(folder: Path, n: int, *, preannotated: set[int], job: str) -> list[LabelTask]:
    """``n`` pool images ``rec0..`` in ``folder``; ``preannotated`` ones carry `PRE_BOXES`."""
    spec = JobSpec(name=job, workers_per_object=1, class_map=CLASSES)
    tasks = []
    for i in range(n):
        path = write_image(folder / f"img{i}.png", 60 + 40 * i)
        fields: dict[str, Any] = {PROVENANCE_KEY: {"role": "pool"}}
        if i in preannotated:
            fields[PREANNOTATIONS_KEY] = {"model": "iter-0", "boxes": PRE_BOXES}
        tasks.append(
            LabelTask(
                record_id=f"rec{i}",
                source_ref=str(path),
                image_path=path,
                image_wh=IMAGE_WH,
                job=spec,
                fields=fields,
            )
        )
    return tasks
