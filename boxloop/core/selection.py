"""Choose which pool images go to humans: the learning batch plus an audit of auto-labels.

One pass over a stream of candidates, with bounded heaps, so memory grows with the batch size
``k`` and not with the pool. Every ranking ends in a keyed hash of ``(seed, record_id)``, so a
selection depends only on the seed and the set of candidates, never on their order. Audits of
would-be auto-labels (:func:`select`) and of applied ones (:func:`sample_for_audit`) draw by
the same audit hash.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from boxloop.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable

Strategy = Literal["random", "least_confidence", "closest_to_threshold"]
"""How the learning batch is ranked (see :func:`select`)."""

STRATEGIES: tuple[Strategy, ...] = ("random", "least_confidence", "closest_to_threshold")

_Key = tuple[int, float, int, str]
"""(would-be auto-label 0/1, strategy value, keyed hash, record id): smaller ranks first."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A pool image as selection sees it.

    Attributes:
        record_id: The ledger id; assumed unique in the pool.
        confidence: The image confidence in ``[0, 1]``; ``None`` when the model has not
            predicted it yet (ranked as the least certain image).

    Raises:
        ValueError: For an empty id or a confidence outside ``[0, 1]``.
    """

    record_id: str
    confidence: float | None

    def __post_init__(self) -> None:
        if not isinstance(self.record_id, str) or not self.record_id:
            raise ValueError(f"record_id must be a non-empty string, got {self.record_id!r}")
        conf = self.confidence
        if conf is not None and not (
            isinstance(conf, int | float) and not isinstance(conf, bool) and 0.0 <= conf <= 1.0
        ):
            raise ValueError(
                f"{self.record_id}: confidence must be in [0, 1] or None, got {conf!r}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """The images to send to humans this round.

    Attributes:
        for_humans: The learning batch, best-ranked first.
        audit: Would-be auto-labels sent to humans to measure the real accuracy of
            auto-labeling, in random (hash) order; disjoint from ``for_humans``.
        n_pool: Candidates seen.
        n_auto: Candidates at or above the threshold (would-be auto-labels).
    """

    for_humans: tuple[str, ...]
    audit: tuple[str, ...]
    n_pool: int
    n_auto: int


def keyed_hash(seed: int | str, record_id: str, *, salt: str = "select") -> int:
    """A 64-bit integer from ``(salt, seed, record_id)``, stable across processes and runs.

    Python's ``hash`` is salted per process, so selections use blake2b instead.
    """
    digest = hashlib.blake2b(f"{salt}\x1f{seed}\x1f{record_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _audit_key(seed: int | str, record_id: str) -> _Key:
    """The rank of an image in an audit draw: its audit hash alone (uniform, reproducible)."""
    return (0, 0.0, keyed_hash(seed, record_id, salt="audit"), record_id)


def audit_size(n_audited: int, audit_share: float) -> int:
    """How many of ``n_audited`` auto-labels an audit takes: ``audit_share`` of them, half up.

    At least one when there are any and the share is positive: one audited image is weak
    evidence, none is no evidence at all.
    """
    if n_audited <= 0 or audit_share <= 0:
        return 0
    return max(1, min(n_audited, math.floor(audit_share * n_audited + 0.5)))


@dataclass(slots=True)
class _Entry:
    key: _Key
    candidate: Candidate

    def __lt__(self, other: _Entry) -> bool:
        return self.key > other.key  # reversed: the heap's root is the worst-ranked entry


class _Best:
    """The ``size`` candidates with the smallest keys seen so far, in O(size) memory."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._heap: list[_Entry] = []

    def push(self, key: _Key, candidate: Candidate) -> None:
        if len(self._heap) < self.size:
            heapq.heappush(self._heap, _Entry(key, candidate))
        elif self.size and key < self._heap[0].key:
            heapq.heapreplace(self._heap, _Entry(key, candidate))

    def ranked(self) -> list[_Entry]:
        return sorted(self._heap, key=lambda entry: entry.key)


def _strategy_value(strategy: Strategy, conf: float | None, threshold: float | None) -> float:
    """The strategy's ranking value (smaller first); -1 puts unpredicted images first."""
    if strategy == "random":
        return 0.0
    if conf is None:
        return -1.0
    if strategy == "least_confidence":
        return conf
    return abs(conf - (threshold if threshold is not None else 0.0))


def _check(
    k: int,
    strategy: str,
    seed: int | str,
    threshold: float | None,
    audit_share: float,
) -> None:
    problems: list[str] = []
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        problems.append(f"k must be an int >= 0, got {k!r}")
    if strategy not in STRATEGIES:
        problems.append(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | str):
        problems.append(f"seed must be an int or a string, got {seed!r}")
    if threshold is not None and not (
        isinstance(threshold, int | float) and 0.0 <= threshold <= 1.0
    ):
        problems.append(f"threshold must be in [0, 1] or None, got {threshold!r}")
    if strategy == "closest_to_threshold" and threshold is None:
        problems.append("strategy 'closest_to_threshold' needs a threshold")
    if not (isinstance(audit_share, int | float) and 0.0 <= audit_share <= 1.0):
        problems.append(f"audit_share must be in [0, 1], got {audit_share!r}")
    if problems:
        raise ConfigError(problems)


def select(
    candidates: Iterable[Candidate],
    k: int,
    strategy: Strategy,
    seed: int | str,
    *,
    threshold: float | None = None,
    audit_share: float = 0.0,
) -> Selection:
    """Pick ``min(k, pool size)`` images for humans in one pass over the pool.

    Would-be auto-labels are the candidates with ``confidence >= threshold``. The human batch
    has ``k`` slots:

    * **Audit:** ``round(audit_share * k)`` slots (half up) go to a uniformly random sample of
      the would-be auto-labels (smallest keyed hashes), or fewer if there are fewer. Their
      human labels measure the real accuracy of auto-labeling. No threshold, no audit.
    * **Learning batch:** the other slots, ranked by ``strategy``; would-be auto-labels rank
      after every other candidate, so they fill the batch only when the rest of the pool is
      too small:

      - ``random``: smallest keyed hash of ``(seed, record_id)``;
      - ``least_confidence``: lowest confidence first;
      - ``closest_to_threshold``: smallest ``|confidence - threshold|`` first.

      Candidates without a confidence rank first under both uncertainty strategies; ties
      fall back to the keyed hash, then the record id.

    Memory is O(k), whatever the pool.

    Args:
        candidates: The pool, streamed; record ids unique.
        k: Human batch size (audit included).
        strategy: Ranking of the learning batch.
        seed: Makes ``random``, the audit and all tie-breaks reproducible.
        threshold: The current auto-labeling threshold, or ``None`` when nothing is
            auto-labeled (then nothing is a would-be auto-label).
        audit_share: Share of the ``k`` slots given to the audit, in ``[0, 1]``.

    Returns:
        The learning batch and the audit, disjoint, ``min(k, pool)`` ids together.

    Raises:
        ConfigError: Listing every invalid argument.
    """
    _check(k, strategy, seed, threshold, audit_share)
    n_audit = math.floor(audit_share * k + 0.5) if threshold is not None else 0
    main, audit = _Best(k), _Best(n_audit)
    n_pool = n_auto = 0
    for candidate in candidates:
        n_pool += 1
        conf = candidate.confidence
        is_auto = threshold is not None and conf is not None and conf >= threshold
        n_auto += is_auto
        key: _Key = (
            int(is_auto),
            _strategy_value(strategy, conf, threshold),
            keyed_hash(seed, candidate.record_id),
            candidate.record_id,
        )
        main.push(key, candidate)
        if is_auto:
            audit.push(_audit_key(seed, candidate.record_id), candidate)

    audit_ids = tuple(entry.candidate.record_id for entry in audit.ranked())
    slots = min(k, n_pool) - len(audit_ids)
    taken = set(audit_ids)
    chosen: dict[str, _Entry] = {}
    for entry in main.ranked():
        if len(chosen) >= slots:
            break
        if entry.candidate.record_id not in taken:
            chosen[entry.candidate.record_id] = entry
    ranked = sorted(chosen.values(), key=lambda entry: entry.key)
    return Selection(
        for_humans=tuple(entry.candidate.record_id for entry in ranked),
        audit=audit_ids,
        n_pool=n_pool,
        n_auto=n_auto,
    )


def sample_for_audit(record_ids: Iterable[str], n: int, seed: int | str) -> tuple[str, ...]:
    """A uniform random sample of ``n`` ids (all of them when fewer), for an audit.

    The ids with the smallest audit hashes of ``(seed, record_id)`` (the draw :func:`select`
    audits would-be auto-labels by), so the same seed and set give the same sample whatever
    their order, and a re-run sends the same images. Memory is O(n).

    Args:
        record_ids: The images to draw from, streamed; unique.
        n: Sample size, >= 0.
        seed: Makes the draw reproducible.

    Returns:
        The sample, in hash order.

    Raises:
        ConfigError: For a negative ``n`` or a seed that is not an int or a string.
    """
    _check(n, "random", seed, None, 0.0)
    best = _Best(n)
    for record_id in record_ids:
        best.push(_audit_key(seed, record_id), Candidate(record_id, None))
    return tuple(entry.candidate.record_id for entry in best.ranked())
