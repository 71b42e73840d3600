"""The audit of applied auto-labels: how many (``audit_size``) and which (``sample_for_audit``)."""

from __future__ import annotations

import pytest

from boxloop.core.errors import ConfigError
from boxloop.core.selection import Candidate, audit_size, keyed_hash, sample_for_audit, select


@pytest.mark.parametrize(
    ("n_applied", "share", "expected"),
    [
        (563, 0.05, 28),  # 28.15 -> 28
        (30, 0.05, 2),  # 1.5 rounds half up to 2
        (10, 0.05, 1),  # 0.5 rounds half up to 1
        (3, 0.05, 1),  # 0.15 would round to 0: at least one when there are any
        (1, 1.0, 1),  # the whole of one
        (4, 1.0, 4),  # a share of 1 audits every applied label
        (0, 0.5, 0),  # nothing applied, nothing to audit
        (50, 0.0, 0),  # audit_share 0 switches the audit off
    ],
)
def test_audit_size_rounds_half_up_with_at_least_one(
    n_applied: int, share: float, expected: int
) -> None:
    assert audit_size(n_applied, share) == expected


def test_sample_for_audit_takes_the_smallest_audit_hashes_whatever_the_order() -> None:
    ids = [f"r{i}" for i in range(200)]
    sample = sample_for_audit(ids, 7, "0-3")
    expected = sorted(ids, key=lambda rid: keyed_hash("0-3", rid, salt="audit"))[:7]
    assert sample == tuple(expected)
    assert sample_for_audit(reversed(ids), 7, "0-3") == sample  # the order does not matter
    assert sample_for_audit(ids, 7, "0-4") != sample  # the seed does


def test_sample_for_audit_draws_as_select_audits_would_be_labels() -> None:
    # GIVEN the same images as would-be auto-labels (select) and as applied ones (sample)
    ids = [f"r{i}" for i in range(50)]
    picked = select(
        [Candidate(rid, 0.99) for rid in ids], 10, "random", 5, threshold=0.5, audit_share=0.5
    )
    # THEN both audits draw the same images: one hash, no second copy of it
    assert set(sample_for_audit(ids, 5, 5)) == set(picked.audit)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, ()),  # an empty sample
        (5, ("a", "b")),  # more than there are: all of them
    ],
)
def test_sample_for_audit_edges(n: int, expected: tuple[str, ...]) -> None:
    assert set(sample_for_audit(["a", "b"], n, 1)) == set(expected)


def test_sample_for_audit_refuses_a_negative_size() -> None:
    with pytest.raises(ConfigError, match="k must be an int >= 0"):
        sample_for_audit(["a"], -1, 1)
