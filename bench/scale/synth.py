"""Deterministic synthetic data for the scale benchmark: images, labels and model output.

Every image ``i`` has a hidden "truth" (size, 0-5 boxes, a difficulty) drawn from a PRNG seeded
by ``i``, so each file below can be written in one streaming pass, in any order, and agrees
with the others: the pre-labels of the input manifest, the humans' labels in a labeling job's
output manifest, the batch-transform ``.out`` files and the image sizes an image header would
give. Predictions are the truth jittered in proportion to the difficulty, with scores that
fall as it rises, so confidence correlates with accuracy and calibration finds a threshold.
"""

from __future__ import annotations

import json
import random
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boxloop.aws.s3 import ImageBytes

if TYPE_CHECKING:
    from collections.abc import Iterator

CLASS_NAMES = ("car", "person", "bike")
IMAGE_BUCKET = "bench-images"
PRELABEL_ATTRIBUTE = "prior-boxes"
"""Pre-labels arrive under another job's attribute name, as chained Ground Truth jobs write."""
IMAGE_SIZES = ((640, 480), (1280, 720), (1920, 1080), (800, 600))
BOX_COUNT_WEIGHTS = (10, 30, 25, 15, 12, 8)
"""Relative frequency of 0, 1, ..., 5 boxes per image."""
PRELABELED_SHARE = 0.10
LABELING_FAILED_SHARE = 0.02
"""Share of a labeling job's images that come back with a ``failure-reason``."""
LABELING_MISSING_SHARE = 0.01
"""Share of a labeling job's images that do not come back at all (tasks expired)."""
BAD_LINE_EVERY = 10_000
"""One malformed extra line per this many images (bad JSON, no source-ref, a duplicate)."""
_DIGITS = 7


@dataclass(frozen=True, slots=True)
class Truth:
    """The hidden facts of one synthetic image.

    Attributes:
        image_wh: ``(width, height)`` in pixels.
        boxes: ``(class_id, x_min, y_min, x_max, y_max)`` in integer pixels.
        difficulty: In ``[0, 1)``; 0 is an image the model gets right with high scores.
    """

    image_wh: tuple[int, int]
    boxes: tuple[tuple[int, int, int, int, int], ...]
    difficulty: float


def source_ref(index: int) -> str:
    """``s3://bench-images/images/0000123.jpg`` for image 123."""
    return f"s3://{IMAGE_BUCKET}/images/{index:0{_DIGITS}d}.jpg"


def index_of(ref_or_key: str) -> int:
    """The image index back from a source-ref or an S3 key (``images/0000123.jpg``)."""
    return int(ref_or_key.rsplit("/", 1)[-1].split(".", 1)[0])


def truth(index: int) -> Truth:
    """The truth of image ``index``; the same in any process, so every file agrees."""
    rng = random.Random(index)
    w, h = IMAGE_SIZES[rng.randrange(len(IMAGE_SIZES))]
    n = rng.choices(range(len(BOX_COUNT_WEIGHTS)), weights=BOX_COUNT_WEIGHTS)[0]
    boxes = []
    for _ in range(n):
        bw = max(4, int(w * rng.uniform(0.05, 0.4)))
        bh = max(4, int(h * rng.uniform(0.05, 0.4)))
        x0 = rng.randrange(0, w - bw)
        y0 = rng.randrange(0, h - bh)
        boxes.append((rng.randrange(len(CLASS_NAMES)), x0, y0, x0 + bw, y0 + bh))
    return Truth(image_wh=(w, h), boxes=tuple(boxes), difficulty=rng.random())


def image_size(ref: str) -> tuple[int, int]:
    """What a header read of the image would return: its ``(width, height)``."""
    return truth(index_of(ref)).image_wh


def first_attempt(base: str) -> str:
    """The name a SageMaker task's first attempt gives its job (the ASL's ``<name>-<retry>``)."""
    return f"{base}-0"


SYNTHETIC_PNG_BYTES = 400_000
"""The size ingest's image check is told each synthetic PNG has (under any payload limit)."""
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def image_bytes(ref: str) -> ImageBytes:
    """What ingest's ranged read of the image would return: an RGB PNG header of its size.

    The benchmark has no images; ingest's checks (format, channels, payload, end marker) still
    run on these bytes, but the S3 round trip of each read is not measured.
    """
    width, height = image_size(ref)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + b"\0" * 4
    return ImageBytes(head, SYNTHETIC_PNG_BYTES, lambda offset, length: _PNG_END[-length:])


def groundtruth_fields(t: Truth, attr: str, job_name: str) -> dict[str, Any]:
    """A human label in Ground Truth's bounding-box output format (pixel left/top/width/height)."""
    w, h = t.image_wh
    return {
        attr: {
            "image_size": [{"width": w, "height": h, "depth": 3}],
            "annotations": [
                {"class_id": c, "left": x0, "top": y0, "width": x1 - x0, "height": y1 - y0}
                for c, x0, y0, x1, y1 in t.boxes
            ],
        },
        f"{attr}-metadata": {
            "objects": [{"confidence": 0.0} for _ in t.boxes],
            "class-map": {str(c): CLASS_NAMES[c] for c, *_ in t.boxes},
            "type": "groundtruth/object-detection",
            "human-annotated": "yes",
            "creation-date": "2026-01-02T03:04:05.000000",
            "job-name": f"labeling-job/{job_name}",
        },
    }


def _bad_line(k: int, first_ref: str) -> str:
    kind = k % 3
    if kind == 0:
        return '{"source-ref": "s3://' + IMAGE_BUCKET + '/images/broken.jpg"'  # truncated JSON
    if kind == 1:
        return json.dumps({"image": "no source-ref key"})
    return json.dumps({"source-ref": first_ref})  # repeats an image already listed


def iter_input_lines(n_images: int, seed: int = 0) -> Iterator[str]:
    """The input manifest: ``n_images`` images, ~10 % pre-labeled, plus a few bad lines."""
    rng = random.Random(f"input-{seed}")
    for i in range(n_images):
        obj: dict[str, Any] = {"source-ref": source_ref(i)}
        if rng.random() < PRELABELED_SHARE:
            obj.update(groundtruth_fields(truth(i), PRELABEL_ATTRIBUTE, "prior-job"))
        yield json.dumps(obj, separators=(",", ":"))
        if i and i % BAD_LINE_EVERY == 0:
            yield _bad_line(i // BAD_LINE_EVERY, source_ref(0))


def write_input_manifest(path: Path, n_images: int, seed: int = 0) -> int:
    """Write the input manifest; returns its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for line in iter_input_lines(n_images, seed):
            f.write(line)
            f.write("\n")
    return path.stat().st_size


def write_labeling_output(
    input_manifest: Path, output_manifest: Path, attr: str, job_name: str, seed: int = 0
) -> dict[str, int]:
    """Play the Ground Truth job: its output manifest for a labeling input manifest.

    Each input line comes back with every input field plus the label (the truth), or with a
    ``failure-reason`` in its metadata, or not at all, in the shares set above.

    Returns:
        Ground Truth's ``LabelCounters`` for the job.
    """
    rng = random.Random(f"labeling-{job_name}-{seed}")
    counters = {"TotalLabeled": 0, "HumanLabeled": 0, "FailedNonRetryableError": 0, "Unlabeled": 0}
    output_manifest.parent.mkdir(parents=True, exist_ok=True)
    with input_manifest.open(encoding="utf-8") as src, output_manifest.open("w") as out:
        for raw in src:
            obj = json.loads(raw)
            draw = rng.random()
            if draw < LABELING_MISSING_SHARE:
                counters["Unlabeled"] += 1
                continue
            if draw < LABELING_MISSING_SHARE + LABELING_FAILED_SHARE:
                obj[f"{attr}-metadata"] = {
                    "failure-reason": "ClientError: the worker rejected the task",
                    "job-name": f"labeling-job/{job_name}",
                }
                counters["FailedNonRetryableError"] += 1
            else:
                obj.update(groundtruth_fields(truth(index_of(obj["source-ref"])), attr,
                                              job_name))
                counters["TotalLabeled"] += 1
                counters["HumanLabeled"] += 1
            out.write(json.dumps(obj, separators=(",", ":")))
            out.write("\n")
    return counters


def _clip01(v: float) -> float:
    return min(1.0, max(0.0, v))


def prediction(t: Truth, rng: random.Random) -> dict[str, list[list[float]]]:
    """A ``.out`` document: normalized ``[class, score, xmin, ymin, xmax, ymax]`` rows.

    Each true box is found unless missed (more often on hard images), jittered in proportion to
    the difficulty; hard images also get confident false positives, and every image some
    low-score noise rows, as a detector's raw output has.
    """
    w, h = t.image_wh
    d = t.difficulty
    rows: list[list[float]] = []
    for c, x0, y0, x1, y1 in t.boxes:
        if rng.random() < 0.3 * d:
            continue
        bw, bh = x1 - x0, y1 - y0
        j = 0.25 * d
        nx0 = x0 + rng.uniform(-j, j) * bw
        ny0 = y0 + rng.uniform(-j, j) * bh
        nx1 = x1 + rng.uniform(-j, j) * bw
        ny1 = y1 + rng.uniform(-j, j) * bh
        score = _clip01(0.97 - 0.7 * d + rng.uniform(-0.05, 0.05))
        rows.append([float(c), round(score, 4), *(round(_clip01(v), 4) for v in
                                                  (nx0 / w, ny0 / h, nx1 / w, ny1 / h))])
    n_false = int(rng.random() < d) + int(rng.random() < d * d)
    n_noise = rng.randrange(0, 8)
    for k in range(n_false + n_noise):
        score = rng.uniform(0.3, 0.8) if k < n_false else rng.uniform(0.0, 0.2)
        cx, cy, s = rng.random(), rng.random(), rng.uniform(0.03, 0.3)
        rows.append([float(rng.randrange(len(CLASS_NAMES))), round(score, 4),
                     round(_clip01(cx - s / 2), 4), round(_clip01(cy - s / 2), 4),
                     round(_clip01(cx + s / 2), 4), round(_clip01(cy + s / 2), 4)])
    return {"prediction": rows}


def write_transform_output(records_file: Path, output_dir: Path, seed: int = 0) -> int:
    """Play batch transform: one ``<output_dir>/<key>.out`` per line of the records file.

    Returns:
        The number of ``.out`` files written.
    """
    rng = random.Random(f"transform-{seed}")
    count = 0
    made: set[Path] = set()
    with records_file.open(encoding="utf-8") as src:
        for raw in src:
            key = json.loads(raw)["key"]
            path = output_dir / f"{key}.out"
            if path.parent not in made:
                path.parent.mkdir(parents=True, exist_ok=True)
                made.add(path.parent)
            doc = prediction(truth(index_of(key)), rng)
            path.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
            count += 1
    return count
