"""Image checks: what batch transform can take, read from each image's header within a deadline.

One image the built-in algorithm cannot decode fails the whole transform job, every round, so
ingest (and the CheckImages passes) read each image's header once, with a ranged GET, and mark
in the record's provenance the images to keep out of inference; they stay for humans.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from boxloop.aws.s3 import image_reader
from boxloop.core.image_size import (
    TAIL_BYTES,
    ImageHeaderError,
    ImageProblem,
    incomplete_problem,
    is_complete,
    read_image_header,
    transform_problem,
    unreadable_problem,
)
from boxloop.core.manifests import SOURCE_REF, write_json_line
from boxloop.core.records import IMAGE_OK, Record

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from boxloop.aws.s3 import ImageBytes

MAX_PAYLOAD_MB = 50
"""The Transform state's ``MaxPayloadInMB`` (statemachine/boxloop.asl.json; a test keeps them
equal): batch transform sends each image as one record, and fails the whole job on an image
over it. CreateTransformJob allows at most 100 MB, and ``MaxConcurrentTransforms *
MaxPayloadInMB`` at most 100 where concurrency is set (built-in algorithms set their own, and
none takes HTTP chunked encoding, the only way past it); 50 is above Ground Truth's 40 MB image
limit, so every image humans can label can be predicted, and leaves room for two concurrent
transforms."""
IMAGE_CHECK_WORKERS = 32
"""Header reads in flight at once: each is one ranged GET, mostly waiting on S3."""
RESERVE_S = 20.0
"""Seconds a pass keeps after its last header read whatever the dataset's size: the reads
still in flight, the uploads of the ledger and report, the Lambda's own start."""
RECORD_COST_S = 60e-6
"""Seconds per record of the rest of a pass (stream, validate, sort, write; S3 transfers):
ingest without image checks took 19 us a record at 1,000,000 on an idle core
(docs/benchmarks.md, Scale) and 33-36 us at 200,000 on a loaded one; a CheckImages pass
without checks 7-11 us. 60 leaves room for a slower vCPU and the S3 transfers."""
MIN_CHECKS_PER_PASS = 1
"""Headers a pass reads even when its time is short, so the passes always come to an end."""


def check_image(
    image: ImageBytes, *, max_payload_mb: int
) -> tuple[tuple[int, int] | None, ImageProblem | None]:
    """``(image size, None)``, or ``(None, why the batch transform cannot take it)``.

    From the header only. The end of a PNG larger than the first read is fetched too (one more
    small ranged GET): a PNG cut short keeps its header and fails the decoder, and so the whole
    transform job. A JPEG cut short is decoded with its missing rows grey, so only a JPEG read
    whole is checked for its end marker.
    """
    try:
        header = read_image_header(image.head, image.read_at)
        problem = transform_problem(header, image.size_bytes, max_payload_mb=max_payload_mb)
        tail = None
        if problem is None and image.size_bytes <= len(image.head):
            tail = image.head
        elif problem is None and header.format == "png":
            tail = image.read_at(max(0, image.size_bytes - TAIL_BYTES), TAIL_BYTES)
        if tail is not None and not is_complete(header.format, tail):
            problem = incomplete_problem(header, image.size_bytes)
    except ImageHeaderError as exc:
        return None, unreadable_problem(exc)
    if problem is not None:
        return None, problem
    return header.image_wh, None


@dataclass(slots=True)
class ImageChecks:
    """Counts of ingest's image checks, for the run's counts."""

    checked: int = 0
    problems: int = 0
    unchecked: int = 0

    def to_counts(self, before: Mapping[str, Any] | None = None) -> dict[str, int]:
        """The run's image-check counts: this pass's added to ``before`` (an earlier pass's)."""
        before = before or {}
        return {
            "images_checked": before.get("images_checked", 0) + self.checked,
            "images_not_predictable": before.get("images_not_predictable", 0) + self.problems,
            "images_unchecked": self.unchecked,
        }


@dataclass(slots=True, kw_only=True)
class CheckDeadline:
    """Whether a pass may read one more image header and still write its ledger in time.

    A header read costs ~1.75 ms of client CPU (signing, parsing; threads do not help under
    the GIL), so a million take ~30 minutes: twice a Lambda's 15. A pass reads headers while
    the time left exceeds ``RESERVE_S`` plus ``RECORD_COST_S`` per record it will write, and
    leaves the rest unchecked for the next pass. Once spent it stays spent.

    Attributes:
        remaining_ms: The Lambda context's ``get_remaining_time_in_millis``.
        expected_records: How many records the pass writes in all (called once, on the
            first check: the first pass estimates it from its input's size).
    """

    remaining_ms: Callable[[], int]
    expected_records: Callable[[], int]
    _margin_ms: float | None = None
    _granted: int = 0
    is_spent: bool = False

    def allows_check(self) -> bool:
        """True while one more header read leaves the pass time to finish."""
        if not self.is_spent:
            if self._margin_ms is None:
                self._margin_ms = 1000 * (RESERVE_S + RECORD_COST_S * self.expected_records())
            self.is_spent = self.remaining_ms() < self._margin_ms
        if self.is_spent and self._granted >= MIN_CHECKS_PER_PASS:
            return False
        self._granted += 1
        return True


def _checked_record(
    record: Record, read: Callable[[str], ImageBytes], max_payload_mb: int
) -> tuple[Record, ImageProblem | None]:
    try:
        image_wh, problem = check_image(read(record.source_ref), max_payload_mb=max_payload_mb)
    except ImageHeaderError as exc:  # the object itself could not be read
        image_wh, problem = None, unreadable_problem(exc)
    if problem is not None:
        marked = record.with_provenance(image_check=problem.code, image_problem=problem.reason)
        return marked, problem
    if record.label is not None or record.provenance.image_wh is not None:
        image_wh = record.provenance.image_wh  # a label's own size stays the one that counts
    return record.with_provenance(image_check=IMAGE_OK, image_wh=image_wh), None


_Pending = tuple[int | None, Record, "Future[tuple[Record, ImageProblem | None]] | None"]


def with_image_checks(
    records: Iterable[tuple[int | None, Record]],
    rejected: IO[str],
    stats: ImageChecks,
    *,
    read: Callable[[str], ImageBytes] | None = None,
    workers: int = IMAGE_CHECK_WORKERS,
    max_payload_mb: int = MAX_PAYLOAD_MB,
    deadline: CheckDeadline | None = None,
) -> Iterator[Record]:
    """Records with their image checked (``Provenance.image_check``), in the order they came.

    Reads run in a pool of ``workers`` threads with at most ``2 * workers`` records in flight,
    so memory stays flat however many images there are. A record checked before (a resumed
    ledger, an earlier pass) is not read again. Each image the transform cannot take gets a
    line in ``rejected``: it stays in the ledger, and humans can still label it. Once
    ``deadline`` is spent the remaining records pass unchecked (``image_check`` unset),
    counted in ``stats.unchecked``.
    """
    read = read or image_reader(max_connections=workers)
    pending: deque[_Pending] = deque()

    def finish(item: _Pending) -> Record:
        line_no, record, future = item
        if future is None:
            return record
        checked, problem = future.result()
        stats.checked += 1
        if problem is not None:
            stats.problems += 1
            write_json_line(
                rejected,
                {
                    "line": line_no,
                    "id": record.id,
                    SOURCE_REF: record.source_ref,
                    "check": problem.code,
                    "reason": problem.reason,
                    "fix": problem.fix,
                    "in_ledger": True,
                },
            )
        return checked

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for line_no, record in records:
            future = None
            if record.provenance.image_check is None:
                if deadline is None or deadline.allows_check():
                    future = pool.submit(_checked_record, record, read, max_payload_mb)
                else:
                    stats.unchecked += 1
            pending.append((line_no, record, future))
            if len(pending) >= 2 * workers:
                yield finish(pending.popleft())
        while pending:
            yield finish(pending.popleft())
