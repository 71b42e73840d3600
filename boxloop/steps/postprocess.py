"""Post-processing of batch-transform output: join, convert to pixels, score each image.

Runs inside the SageMaker Processing job (``processing/postprocess.py`` is its entry point)
and in the local engine, on local folders: the job's inputs and outputs are mounted paths.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boxloop.core.confidence import ConfidenceConfig, image_confidence
from boxloop.core.errors import ManifestError
from boxloop.core.formats.od_prediction import parse_od_prediction
from boxloop.core.image_size import ImageHeaderError
from boxloop.core.manifests import iter_json_lines, json_line
from boxloop.core.predictions import Prediction, iter_predictions

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from pathlib import Path

PREDICTIONS_FILE = "predictions.jsonl"
_HEADER_BATCH = 256


@dataclass(slots=True)
class PostprocessStats:
    """Counts for the step's log and report."""

    images: int = 0
    missing_output: int = 0
    sizes_read: int = 0
    unreadable: int = 0


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
    """Fill unknown image sizes from image headers, a batch of concurrent reads at a time.

    An image whose header cannot be read gets ``"unreadable"`` (the reason) instead of a size:
    that image is written as missing and goes to humans; it never ends the job.
    """

    def size_or_error(record: dict[str, Any]) -> tuple[int, int] | ImageHeaderError:
        try:
            return image_size(record["source-ref"])
        except ImageHeaderError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=workers) as pool:
        batch: list[dict[str, Any]] = []

        def flush() -> Iterator[dict[str, Any]]:
            unknown = [r for r in batch if not r.get("image_wh")]
            for record, size in zip(unknown, pool.map(size_or_error, unknown), strict=True):
                if isinstance(size, ImageHeaderError):
                    record["unreadable"] = str(size)
                    stats.unreadable += 1
                    continue
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
    processes: int = 1,
) -> PostprocessStats:
    """Write ``predictions.jsonl``: one ``Prediction`` line per image (kept boxes, confidence).

    An image whose ``.out`` file is missing (the transform could not read it), or whose header
    cannot be read for its size, is written with ``"missing": true`` and no confidence, so it
    stays unlabeled and goes to humans.

    Scoring is CPU-bound at about 70 µs an image (1M images: over a minute on one core), so with
    ``processes`` > 1 chunks of ``CHUNK_IMAGES`` are scored in that many worker processes, the
    Processing instance's vCPUs; a single chunk is scored here, as starting workers would cost
    more than it saves. The output is the same either way, in the records' order.
    """
    stats = PostprocessStats()
    output_dir.mkdir(parents=True, exist_ok=True)
    records = _with_sizes(_iter_records(records_path), image_size, stats, workers)
    with (output_dir / PREDICTIONS_FILE).open("w", encoding="utf-8") as out:
        for text, images, missing in _scored(
            _chunks(records), predictions_dir, confidence, processes
        ):
            out.write(text)
            stats.images += images
            stats.missing_output += missing
    return stats


CHUNK_IMAGES = 2000
"""Images a worker process scores per task: pickling them costs a few % of the scoring."""


def _chunks(records: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= CHUNK_IMAGES:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _scored(
    chunks: Iterator[list[dict[str, Any]]],
    predictions_dir: Path,
    confidence: ConfidenceConfig,
    processes: int,
) -> Iterator[tuple[str, int, int]]:
    """``score_chunk`` of every chunk, in order; at most ``2 * processes`` chunks in flight."""
    head = list(itertools.islice(chunks, 2))
    if processes <= 1 or len(head) < 2:
        for chunk in itertools.chain(head, chunks):
            yield score_chunk(chunk, predictions_dir, confidence)
        return
    # spawn, not fork: the parent runs the header-read threads, which fork would not copy.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        pending: deque[Future[tuple[str, int, int]]] = deque()
        for chunk in itertools.chain(head, chunks):
            pending.append(pool.submit(score_chunk, chunk, predictions_dir, confidence))
            if len(pending) >= 2 * processes:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def score_chunk(
    records: list[dict[str, Any]], predictions_dir: Path, confidence: ConfidenceConfig
) -> tuple[str, int, int]:
    """The ``predictions.jsonl`` text of some records, their count and how many lack a ``.out``.

    Public (and a module-level function) so that worker processes can import it.
    """
    lines: list[str] = []
    missing = 0
    for record in records:
        if record.get("unreadable"):
            missing += 1
            lines.append(
                json_line(Prediction.absent(record["id"], reason=record["unreadable"]).to_json())
            )
            continue
        out_file = predictions_dir / (record["key"] + ".out")
        image_wh = (int(record["image_wh"][0]), int(record["image_wh"][1]))
        content = _read_out_file(out_file)
        if content is None:
            missing += 1
            lines.append(json_line(Prediction.absent(record["id"], image_wh).to_json()))
            continue
        detections = parse_od_prediction(
            content,
            record["id"],
            image_wh,
            source=str(out_file),
            score_floor=confidence.score_floor,  # image_confidence drops these anyway
        )
        result = image_confidence(detections, confidence)
        lines.append(json_line(Prediction.scored(record["id"], image_wh, result).to_json()))
    lines.append("")  # the last line's newline
    return "\n".join(lines), len(records), missing


def _read_out_file(path: Path) -> bytes | None:
    """The ``.out`` file's content, or ``None`` when the transform wrote none.

    One ``open`` instead of ``is_file()`` and then a read: a stat less per image.
    """
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def read_predictions(location_lines: Iterable[bytes], source: str) -> Iterator[Prediction]:
    """Parse ``predictions.jsonl`` lines (streamed from S3 or disk) into ``Prediction`` values."""
    return iter_predictions(location_lines, source=source)


def stats_json(stats: PostprocessStats) -> str:
    """The stats as one JSON line, for the job's log."""
    return json.dumps(
        {
            "images": stats.images,
            "missing_output": stats.missing_output,
            "sizes_read": stats.sizes_read,
            "unreadable": stats.unreadable,
        }
    )
