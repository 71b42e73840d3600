from __future__ import annotations

import math
import random

from bench.calibration.__main__ import _Rest, reachable_share, real_split, render, replay
from bench.calibration.rules import LEVEL, RULES, TARGET
from boxloop.core.calibration import clopper_pearson_lower


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


def test_reachable_share_is_what_an_unlucky_free_bound_on_the_expected_images_shows() -> None:
    # 100 images, the top 50 all right, the rest all wrong: the oracle share is 55 % (50 of 55
    # right is 0.909), but a bound on the images expected there must see them all right
    rows = [[1 - i / 100, int(i < 50), 0, 1, 0, 0, 0, "p"] for i in range(100)]
    assert _Rest(rows).oracle() == 55
    # 120 validation images expect 60 at 50 %, all right: shown; at 55 %, 60 of 66 right
    # (0.909) cannot show 0.9, and below the top half accuracy only falls
    reach = reachable_share(rows, 120)
    assert clopper_pearson_lower(60, 60, 1 - LEVEL) >= TARGET
    assert clopper_pearson_lower(60, 66, 1 - LEVEL) < TARGET
    assert 0.5 <= reach < 0.55
    # with 16 validation images, 8 all-right images cannot show 0.9 at level 0.8
    assert clopper_pearson_lower(8, 8, 1 - LEVEL) < TARGET
    assert reachable_share(rows, 16) < 0.5
    # and more validation images never reach less
    assert reachable_share(rows, 250) >= reach
