from __future__ import annotations

from typing import Any

import pytest

from boxloop.local.progress import threshold_text


@pytest.mark.parametrize(
    ("model", "text"),
    [
        ({}, "none (not enough evidence yet)"),  # no model yet
        ({"threshold": None, "would_be_threshold": None}, "none (not enough evidence yet)"),
        ({"threshold": 0.4, "would_be_threshold": 0.4}, "0.400"),
        ({"threshold": 0.4}, "0.400"),  # a run state from before would_be_threshold
        (
            {"threshold": None, "deferred_threshold": 0.3631, "would_be_threshold": 0.2387},
            "none (0.363 certified, held for the last model: defer_auto_labels)",
        ),
        (
            {"threshold": None, "would_be_threshold": 0.2427},
            "none (validation alone: 0.243, not yet trusted for the pool's images there)",
        ),
        (
            {"threshold": 0.309, "would_be_threshold": 0.272},
            "0.309 (validation alone: 0.272, not yet trusted for the pool's images there)",
        ),
    ],
)
def test_threshold_text_says_why_no_or_a_higher_threshold_was_applied(
    model: dict[str, Any], text: str
) -> None:
    assert threshold_text(model) == text
