from __future__ import annotations

import math
import random

from bench.calibration.__main__ import _Rest, real_split, render, replay
from bench.calibration.rules import RULES


def _rows(n: int, seed: int = 0) -> list[list]:
    """Synthetic images: confidence uniform, exact with a logistic chance, one box each."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        c = rng.random()
        exact = int(rng.random() < 1 / (1 + math.exp(-12 * (c - 0.55))))
        rows.append(
            [
                c,
                exact,
                0.9 if exact else 0.3,
                1,
                exact,
                0.9 if exact else 0.0,
                0,
                "v" if i % 5 == 0 else "p",
            ]
        )
    rows.sort(key=lambda r: -r[0])
    return rows


def test_rest_counts_and_oracle_match_brute_force() -> None:
    rows = _rows(300)
    rest = _Rest(rows)
    for threshold in (0.0, 0.3, 0.55, 0.8, 1.0):
        assert rest.accepted(threshold) == sum(r[0] >= threshold for r in rows)
    assert rest.accepted(None) == 0
    best = max(
        (k for k in range(1, len(rows) + 1) if sum(r[1] for r in rows[:k]) / k >= 0.9),
        default=0,
    )
    assert rest.oracle() == best


def test_replay_reports_every_rule_and_the_new_one_keeps_its_promise() -> None:
    result = replay(_rows(600), 120, draws=60, seed=1)
    assert set(result) == set(RULES)
    new = result["new"]
    assert new["coverage"] >= 0.8
    assert 0 < new["certified_share"] <= new["oracle_share"] * 1.2
    assert result["fixed-0.5"]["certified_share"] > new["certified_share"]  # the loose cut


def test_real_split_and_render_produce_the_doc_block() -> None:
    rows = _rows(600)
    run = {
        "command": "synthetic",
        "images": len(rows),
        "validation": sum(r[7] == "v" for r in rows),
        "draws": {"120": replay(rows, 120, draws=20, seed=2)},
        "split": real_split(rows),
    }
    text = render({"command": "cmd", "draws": 20, "sizes": [120], "runs": {"synthetic": run}})
    assert "| `new` | 120 |" in text
    assert "| synthetic |" in text
    assert run["split"]["oracle"]["pool"] == sum(r[7] == "p" for r in rows)
