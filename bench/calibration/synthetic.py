"""Synthetic stand-ins for kept runs: ``python -m bench.calibration.synthetic``.

It writes ``inputs/synthetic-<kind>.json``, for the rules' promise where the truth is known.

Each image holds ``m`` objects (none for 5 % of images); its confidence ``c`` is Beta-drawn,
and each box is right with probability ``q(c)``, a logistic curve: an image is exactly right
when every box is (an empty image: when the model adds nothing, also ``q(c)``). A wrong box
counts twice among the boxes judged (the missed object and the extra box), with no credit;
a right box earns IoU 0.85. The kinds mimic the shapes the runs are meant to cover (a demo-like
detector, a harder dataset, a dense scene of many small objects); they test the rules' promise
where the truth is known, not the detector.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

KINDS = {
    # kind: (Beta a, b of confidence, logistic slope, centre, max objects per image)
    "demo-like": (4.0, 2.0, 14.0, 0.45, 4),
    "hard": (3.0, 2.5, 8.0, 0.5, 4),
    "dense": (4.0, 2.0, 14.0, 0.35, 16),
}


def make_rows(kind: str, n: int, seed: int) -> list[list]:
    """``n`` synthetic images in the extract's row format, most confident first."""
    a, b, slope, centre, most = KINDS[kind]
    rng = random.Random(f"{kind}-{seed}")
    rows = []
    for index in range(n):
        c = rng.betavariate(a, b)
        q = 1.0 / (1.0 + math.exp(-slope * (c - centre)))
        m = 0 if rng.random() < 0.05 else rng.randint(1, most)
        if m == 0:
            exact = rng.random() < q
            boxes, right, iou = (0, 0, 1.0) if exact else (1, 0, 0.0)
            rows.append([round(c, 5), int(exact), iou, boxes, right, 0.0, 1, "pv"[index % 8 == 0]])
            continue
        right = sum(rng.random() < q for _ in range(m))
        boxes = m + (m - right)
        rows.append(
            [
                round(c, 5),
                int(right == m),
                round(0.85 * right / boxes, 4),
                boxes,
                right,
                round(0.85 * right, 4),
                0,
                "pv"[index % 8 == 0],
            ]
        )
    rows.sort(key=lambda r: (-r[0], r[7]))
    return rows


def main() -> None:
    here = Path(__file__).parent / "inputs"
    here.mkdir(exist_ok=True)
    for kind in KINDS:
        data = {
            "name": f"synthetic-{kind}",
            "command": f"python -m bench.calibration.synthetic  # {kind}, 800 images, seed 0",
            "iteration": None,
            "fields": [
                "confidence",
                "exact",
                "iou",
                "boxes",
                "boxes_right",
                "box_iou",
                "empty",
                "role",
            ],
            "rows": make_rows(kind, 800, 0),
        }
        path = here / f"synthetic-{kind}.json"
        path.write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
        print(path)


if __name__ == "__main__":
    main()
