from __future__ import annotations

import random
import tracemalloc
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boxloop.core.errors import ConfigError
from boxloop.core.selection import STRATEGIES, Candidate, Selection, keyed_hash, select

if TYPE_CHECKING:
    from collections.abc import Iterator

    from boxloop.core.selection import Strategy


def pool(*confidences: float | None) -> list[Candidate]:
    """Candidates named a, b, c, ... with the given confidences and no classes."""
    return [Candidate(chr(ord("a") + i), c) for i, c in enumerate(confidences)]


@pytest.mark.parametrize(
    ("strategy", "confidences", "k", "threshold", "expected"),
    [
        # least confidence: the unpredicted image first, then the lowest
        ("least_confidence", (0.9, 0.1, None, 0.5), 2, None, ("c", "b")),
        # least confidence, k = 1 picks the single least certain
        ("least_confidence", (0.9, 0.1, 0.05), 1, None, ("c",)),
        # least confidence, k = 0 picks nothing
        ("least_confidence", (0.9, 0.1), 0, None, ()),
        # k larger than the pool: everything, best first
        ("least_confidence", (0.9, 0.1, 0.5), 10, None, ("b", "c", "a")),
        # closest to threshold 0.5: images below it first (d, e are would-be auto-labels)
        ("closest_to_threshold", (0.9, 0.45, 0.2, 0.55, 0.6), 2, 0.5, ("b", "c")),
        # closest to threshold: once those run out, the nearest would-be auto-label
        ("closest_to_threshold", (0.9, 0.45, 0.2, 0.55, 0.6), 3, 0.5, ("b", "c", "d")),
        # closest to threshold: an unpredicted image counts as the most uncertain
        ("closest_to_threshold", (0.45, None), 1, 0.5, ("b",)),
        # least confidence with a threshold: would-be auto-labels only fill the rest
        ("least_confidence", (0.95, 0.7, 0.8), 2, 0.75, ("b", "c")),
    ],
)
def test_select_ranking_table(
    strategy: Strategy, confidences: tuple, k: int, threshold: float | None, expected: tuple
) -> None:
    result = select(pool(*confidences), k, strategy, 0, threshold=threshold)
    assert result.for_humans == expected
    assert result.audit == ()


def test_select_random_takes_smallest_keyed_hashes() -> None:
    candidates = [Candidate(f"r{i}", random.Random(i).random()) for i in range(100)]
    expected = sorted(candidates, key=lambda c: keyed_hash(42, c.record_id))[:10]
    result = select(iter(candidates), 10, "random", 42)
    assert result.for_humans == tuple(c.record_id for c in expected)
    assert select(candidates, 10, "random", 43).for_humans != result.for_humans


def test_select_ties_when_all_confidences_equal_follow_the_seed() -> None:
    candidates = [Candidate(f"r{i}", 0.5) for i in range(30)]
    result = select(candidates, 5, "least_confidence", "seed-a")
    assert result.for_humans == select(candidates, 5, "random", "seed-a").for_humans


def test_select_audits_a_random_share_of_would_be_auto_labels() -> None:
    candidates = [Candidate(f"r{i:03}", i / 100) for i in range(100)]  # 50 at or above 0.5
    result = select(candidates, 20, "least_confidence", 1, threshold=0.5, audit_share=0.25)
    auto = {c.record_id for c in candidates if c.confidence is not None and c.confidence >= 0.5}
    assert len(result.audit) == 5
    assert set(result.audit) <= auto
    assert result.for_humans == tuple(f"r{i:03}" for i in range(15))
    by_hash = sorted(auto, key=lambda record_id: keyed_hash(1, record_id, salt="audit"))
    assert result.audit == tuple(by_hash[:5])
    assert (result.n_pool, result.n_auto) == (100, 50)


@pytest.mark.parametrize(
    ("n_auto", "k", "audit_share", "threshold", "n_audit"),
    [
        # 10 % of 20 slots
        (50, 20, 0.1, 0.5, 2),
        # rounding half up: 10 % of 5 slots is 0.5 -> 1
        (50, 5, 0.1, 0.5, 1),
        # fewer would-be auto-labels than audit slots: all of them
        (2, 20, 0.25, 0.5, 2),
        # no threshold: nothing is auto-labeled, so nothing to audit
        (50, 20, 0.25, None, 0),
        # the whole batch as audit
        (50, 20, 1.0, 0.5, 20),
    ],
)
def test_select_audit_size_table(
    n_auto: int, k: int, audit_share: float, threshold: float | None, n_audit: int
) -> None:
    candidates = [Candidate(f"low{i}", 0.1) for i in range(50)]
    candidates += [Candidate(f"high{i}", 0.9) for i in range(n_auto)]
    result = select(candidates, k, "least_confidence", 0, threshold=threshold,
                    audit_share=audit_share)
    assert len(result.audit) == n_audit
    assert len(result.for_humans) + len(result.audit) == k
    assert not set(result.for_humans) & set(result.audit)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # negative batch
        ({"k": -1}, "k must be an int >= 0"),
        # unknown strategy
        ({"strategy": "margin"}, "strategy must be one of"),
        # closest_to_threshold without a threshold
        ({"strategy": "closest_to_threshold"}, "needs a threshold"),
        # threshold outside [0, 1]
        ({"threshold": 2.0}, "threshold must be in"),
        # audit share above 1
        ({"audit_share": 1.5}, "audit_share must be in"),
        # float seed would make hashes depend on float formatting
        ({"seed": 1.5}, "seed must be an int or a string"),
    ],
)
def test_select_raises_table(kwargs: dict, message: str) -> None:
    arguments = {"k": 2, "strategy": "least_confidence", "seed": 0, **kwargs}
    with pytest.raises(ConfigError, match=message):
        select(pool(0.5, 0.6), **arguments)


def test_select_lists_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        select([], -1, "closest_to_threshold", 0, audit_share=-0.1)
    assert len(info.value.problems) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # empty id
        (("", 0.5), "record_id must be a non-empty string"),
        # confidence above 1
        (("a", 1.2), "confidence must be in"),
    ],
)
def test_candidate_raises_table(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Candidate(*args)


def test_select_memory_grows_with_k_not_pool() -> None:
    def stream(n: int) -> Iterator[Candidate]:
        for i in range(n):
            yield Candidate(f"record-{i:08}", (i * 7919 % 10007) / 10007)

    tracemalloc.start()
    try:
        result = select(stream(20_000), 10, "least_confidence", 0, threshold=0.9,
                        audit_share=0.2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.n_pool == 20_000
    assert len(result.for_humans) + len(result.audit) == 10
    assert peak < 200_000  # holding the pool would take ~4 MB; the heaps take ~10 kB


def _oracle(candidates: list[Candidate], k: int, strategy: str, seed: int,
            threshold: float | None, audit_share: float) -> Selection:
    """Brute force: sort the whole pool."""
    def is_auto(c: Candidate) -> bool:
        return threshold is not None and c.confidence is not None and c.confidence >= threshold

    def value(c: Candidate) -> float:
        if strategy == "random":
            return 0.0
        if c.confidence is None:
            return -1.0
        if strategy == "least_confidence":
            return c.confidence
        return abs(c.confidence - (threshold or 0.0))

    n_audit = int(audit_share * k + 0.5) if threshold is not None else 0
    auto = sorted((c for c in candidates if is_auto(c)),
                  key=lambda c: (keyed_hash(seed, c.record_id, salt="audit"), c.record_id))
    audit = tuple(c.record_id for c in auto[:n_audit])
    ranked = sorted(candidates, key=lambda c: (is_auto(c), value(c),
                                               keyed_hash(seed, c.record_id), c.record_id))
    rest = [c.record_id for c in ranked if c.record_id not in audit]
    return Selection(for_humans=tuple(rest[: min(k, len(candidates)) - len(audit)]),
                     audit=audit, n_pool=len(candidates), n_auto=len(auto))


candidates_st = st.lists(
    st.builds(
        Candidate,
        st.text(alphabet="abcdef", min_size=1, max_size=4),
        st.one_of(st.none(), st.sampled_from([0.0, 0.2, 0.5, 0.7, 1.0]), st.floats(0, 1)),
    ),
    max_size=40,
    unique_by=lambda c: c.record_id,
)


@given(
    candidates=candidates_st,
    k=st.integers(0, 50),
    strategy=st.sampled_from(STRATEGIES),
    seed=st.integers(0, 3),
    threshold=st.one_of(st.none(), st.sampled_from([0.0, 0.5, 0.7, 1.0])),
    audit_share=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    order_seed=st.integers(0, 1000),
)
def test_select_matches_brute_force_and_ignores_input_order(
    candidates: list[Candidate], k: int, strategy: Strategy, seed: int,
    threshold: float | None, audit_share: float, order_seed: int,
) -> None:
    if strategy == "closest_to_threshold" and threshold is None:
        threshold = 0.5
    result = select(iter(candidates), k, strategy, seed, threshold=threshold,
                    audit_share=audit_share)
    assert result == _oracle(candidates, k, strategy, seed, threshold, audit_share)
    assert len(result.for_humans) + len(result.audit) == min(k, len(candidates))
    shuffled = list(candidates)
    random.Random(order_seed).shuffle(shuffled)
    assert select(shuffled, k, strategy, seed, threshold=threshold,
                  audit_share=audit_share) == result
