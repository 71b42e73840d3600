"""Post-processing of batch-transform output: join, convert to pixels, score each image.

Runs inside the SageMaker Processing job (``processing/postprocess.py`` is its entry point)
and in the local engine, on local folders: the job's inputs and outputs are mounted paths.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boxloop.core.confidence import ConfidenceConfig, image_confidence
from boxloop.core.errors import ManifestError
from boxloop.core.formats.od_prediction import parse_od_prediction
from boxloop.core.manifests import iter_json_lines, write_json_line

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

PREDICTIONS_FILE = "predictions.jsonl"
_HEADER_BATCH = 256


@dataclass(slots=True)
class PostprocessStats:
    """Counts for the step's log and report."""

    images: int = 0
    missing_output: int = 0
    sizes_read: int = 0


def _iter_records(records_path: Path) -> Iterator[dict[str, Any]]:
    with records_path.open("rb") as f:
        for item in iter_json_lines(f, source=str(records_path)):
            if isinstance(item, ManifestError):
                raise item
            yield item[1]


def _with_sizes(
    records: Iterator[dict[str, Any]],
    image_size: Callable[[str], tuple[int, int]],
    stats: PostprocessStats,
    workers: int,
) -> Iterator[dict[str, Any]]:
    """Fill unknown image sizes from image headers, a batch of concurrent reads at a time."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        batch: list[dict[str, Any]] = []

        def flush() -> Iterator[dict[str, Any]]:
            unknown = [r for r in batch if not r.get("image_wh")]
            for record, size in zip(
                unknown, pool.map(lambda r: image_size(r["source-ref"]), unknown), strict=True
            ):
                record["image_wh"] = list(size)
                stats.sizes_read += 1
            yield from batch
            batch.clear()

        for record in records:
            batch.append(record)
            if len(batch) >= _HEADER_BATCH:
                yield from flush()
        yield from flush()


def postprocess(
    records_path: Path,
    predictions_dir: Path,
    output_dir: Path,
    *,
    confidence: ConfidenceConfig,
    image_size: Callable[[str], tuple[int, int]],
    workers: int = 16,
) -> PostprocessStats:
    """Write ``predictions.jsonl``: per image its kept pixel boxes with scores and confidence.

    An image whose ``.out`` file is missing (the transform could not read it) is written with
    ``"missing": true`` and no confidence, so it stays unlabeled and goes to humans.
    """
    stats = PostprocessStats()
    output_dir.mkdir(parents=True, exist_ok=True)
    records = _with_sizes(_iter_records(records_path), image_size, stats, workers)
    with (output_dir / PREDICTIONS_FILE).open("w", encoding="utf-8") as out:
        for record in records:
            stats.images += 1
            out_file = predictions_dir / (record["key"] + ".out")
            image_wh = (int(record["image_wh"][0]), int(record["image_wh"][1]))
            content = _read_out_file(out_file)
            if content is None:
                stats.missing_output += 1
                write_json_line(out, {"id": record["id"], "image_wh": image_wh, "missing": True})
                continue
            detections = parse_od_prediction(
                content,
                record["id"],
                image_wh,
                source=str(out_file),
                score_floor=confidence.score_floor,  # image_confidence drops these anyway
            )
            result = image_confidence(detections, confidence)
            write_json_line(
                out,
                {
                    "id": record["id"],
                    "image_wh": image_wh,
                    "confidence": round(result.value, 6),
                    "is_empty": result.is_empty,
                    "n_ambiguous": result.n_ambiguous,
                    "kept": [
                        [
                            b.class_id,
                            round(b.score or 0.0, 6),
                            round(b.x_min, 3),
                            round(b.y_min, 3),
                            round(b.x_max, 3),
                            round(b.y_max, 3),
                        ]
                        for b in result.kept
                    ],
                },
            )
    return stats


def _read_out_file(path: Path) -> bytes | None:
    """The ``.out`` file's content, or ``None`` when the transform wrote none.

    One ``open`` instead of ``is_file()`` and then a read: a stat less per image.
    """
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def read_predictions(location_lines: Iterator[bytes], source: str) -> Iterator[dict[str, Any]]:
    """Parse ``predictions.jsonl`` lines (streamed from S3 or disk)."""
    for item in iter_json_lines(location_lines, source=source):
        if isinstance(item, ManifestError):
            raise item
        yield item[1]


def stats_json(stats: PostprocessStats) -> str:
    """The stats as one JSON line, for the job's log."""
    return json.dumps(
        {
            "images": stats.images,
            "missing_output": stats.missing_output,
            "sizes_read": stats.sizes_read,
        }
    )
