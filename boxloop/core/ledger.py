"""Ledger operations that stream: sort by id, idempotent merge, counts and role assignment.

The ledger is a JSON Lines file sorted by record id. Keeping it sorted makes every merge a
single pass over two sorted streams, so memory stays flat however many images there are;
updates that arrive unsorted go through ``sort_by_id``, an external merge sort that spills to
temporary files past ``chunk_records``.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import tempfile
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from boxloop.core.records import Record, Role, record_from_ledger, record_to_line

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

DEFAULT_CHUNK_RECORDS = 50_000


def unit_hash(seed: int | str, key: str) -> float:
    """A uniform number in [0, 1) fixed by ``(seed, key)``.

    Random, yet reproducible and independent of the order records arrive in.
    """
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign_role(
    record_id: str, *, seed: int, validation_fraction: float, test_fraction: float
) -> Role:
    """The fixed role of an image: validation, test or pool, drawn by hash of its id.

    A hash draw (not a shuffle) keeps the split stable when the manifest grows or is
    re-ordered, and needs no memory.
    """
    u = unit_hash(f"role-{seed}", record_id)
    if u < validation_fraction:
        return "validation"
    if u < validation_fraction + test_fraction:
        return "test"
    return "pool"


def _spill(lines: list[tuple[str, str]]) -> IO[str]:
    lines.sort(key=lambda kv: kv[0])
    # One "<key as JSON>\t<line>" row per pair: the JSON key holds no raw tab, so the first tab
    # splits the row, and the line is stored as it is (no second JSON encoding to undo).
    spill = tempfile.TemporaryFile("w+", encoding="utf-8", newline="\n")  # see _read_spill
    for key, line in lines:
        spill.write(f"{json.dumps(key)}\t{line}\n")
    spill.seek(0)
    return spill


def _read_spill(spill: IO[str]) -> Iterator[tuple[str, str]]:
    with spill:
        for raw in spill:
            key, _, line = raw[:-1].partition("\t")
            yield json.loads(key), line


def sort_lines_by_key(
    items: Iterable[tuple[str, str]], *, chunk_records: int = DEFAULT_CHUNK_RECORDS
) -> Iterator[tuple[str, str]]:
    """Sort ``(key, line)`` pairs by key, stable, holding at most ``chunk_records`` in memory.

    Raises:
        ValueError: for a line with a newline in it (a spill file holds one pair per row).
    """
    chunk: list[tuple[str, str]] = []
    spills: list[IO[str]] = []
    for item in items:
        if "\n" in item[1]:
            raise ValueError(f"line of key {item[0]!r} holds a newline; sort single lines only")
        chunk.append(item)
        if len(chunk) >= chunk_records:
            spills.append(_spill(chunk))
            chunk = []
    if not spills:
        yield from sorted(chunk, key=lambda kv: kv[0])
        return
    if chunk:
        spills.append(_spill(chunk))
    yield from heapq.merge(*(_read_spill(s) for s in spills), key=lambda kv: kv[0])


def sort_by_id(
    records: Iterable[Record], attr: str, *, chunk_records: int = DEFAULT_CHUNK_RECORDS
) -> Iterator[Record]:
    """Records sorted by id with bounded memory (see ``sort_lines_by_key``).

    The lines coming back are the ones just written from ``records``, so they are parsed with
    the trusted ``record_from_ledger``: whatever ``records`` held was validated already.
    """
    pairs = ((r.id, record_to_line(r, attr)) for r in records)
    for _, line in sort_lines_by_key(pairs, chunk_records=chunk_records):
        yield record_from_ledger(json.loads(line), attr, text=line)


@dataclass(slots=True)
class MergeStats:
    """What a merge did; ``unknown_ids`` are updates for images not in the ledger."""

    updated: int = 0
    kept_human: int = 0
    unknown_ids: list[str] = field(default_factory=list)


def merge_record(current: Record, update: Record) -> tuple[Record, bool]:
    """Apply one update to one record; returns the result and whether a human label was kept.

    A human label is never replaced by a machine label: humans cost money and are the
    reference. Anything else in the update wins, so re-applying it gives the same record.
    """
    if current.is_human_labeled and update.label is not None and not update.is_human_labeled:
        return current, True
    extra = {**current.extra, **update.extra}
    label = update.label if update.label is not None else current.label
    return current.replace(label=label, provenance=update.provenance, extra=extra), False


def merge_sorted(
    ledger: Iterable[Record], updates: Iterable[Record], stats: MergeStats | None = None
) -> Iterator[Record]:
    """Merge id-sorted updates into an id-sorted ledger, in one pass.

    Several updates for one id apply in order. Updates whose id the ledger lacks are not added
    (the ledger's membership is fixed at ingest); their ids are listed in ``stats`` so the step
    can report them instead of dropping them silently.
    """
    stats = stats if stats is not None else MergeStats()
    pending = iter(updates)
    nxt = next(pending, None)
    for record in ledger:
        while nxt is not None and nxt.id < record.id:
            stats.unknown_ids.append(nxt.id)
            nxt = next(pending, None)
        while nxt is not None and nxt.id == record.id:
            record, kept = merge_record(record, nxt)
            stats.updated += 1
            stats.kept_human += kept
            nxt = next(pending, None)
        yield record
    while nxt is not None:
        stats.unknown_ids.append(nxt.id)
        nxt = next(pending, None)


@dataclass(slots=True)
class LedgerCounts:
    """Counts over a ledger; small enough for a Step Functions payload whatever the size.

    ``unlabeled`` counts the images the loop still has to label: the ASL's AllLabeled Choice
    finalizes at 0. Test images only measure and nothing labels them, so the unlabeled ones are
    counted apart, in ``unlabeled_test``; with ``test_fraction > 0`` "all labeled" still fires.
    """

    total: int = 0
    human: int = 0
    auto: int = 0
    unlabeled: int = 0
    by_role: dict[str, int] = field(default_factory=dict)
    unlabeled_pool: int = 0
    exhausted: int = 0
    unlabeled_test: int = 0
    unpredictable: int = 0

    def add(self, record: Record, *, max_attempts: int | None = None) -> None:
        """Count one record."""
        self.total += 1
        role = record.provenance.role
        self.by_role[role] = self.by_role.get(role, 0) + 1
        if not record.provenance.is_predictable:
            self.unpredictable += 1  # the batch transform cannot take it (see Provenance)
        if record.is_human_labeled:
            self.human += 1
        elif record.is_labeled:
            self.auto += 1
        elif role == "test":
            self.unlabeled_test += 1
        else:
            self.unlabeled += 1
            if role in ("pool", "seed"):
                self.unlabeled_pool += 1
            if max_attempts is not None and record.provenance.attempts >= max_attempts:
                self.exhausted += 1

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "total": self.total,
            "human": self.human,
            "auto": self.auto,
            "unlabeled": self.unlabeled,
            "unlabeled_pool": self.unlabeled_pool,
            "exhausted": self.exhausted,
            "unlabeled_test": self.unlabeled_test,
            "unpredictable": self.unpredictable,
            "by_role": dict(sorted(self.by_role.items())),
        }


def count_records(records: Iterable[Record], *, max_attempts: int | None = None) -> LedgerCounts:
    """Counts of a ledger stream."""
    counts = LedgerCounts()
    for record in records:
        counts.add(record, max_attempts=max_attempts)
    return counts
