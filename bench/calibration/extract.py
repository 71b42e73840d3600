"""Reduce a kept demo run (``--keep-run-files``) to the few numbers the benchmark replays.

Per image the last model predicted (the validation images and the open pool when it ran),
scored against the generated reference: its confidence, whether its auto-label is exactly
right, its mean IoU, its boxes (pairs + missed + extra), the boxes right and their IoU sum,
whether it is empty, and its role then (``v`` validation, ``p`` open pool). A run of 600
images becomes ~25 kB of JSON, committed under ``bench/calibration/inputs/``, so the
benchmark replays in minutes without the hours of training behind it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from boxloop.aws.s3 import iter_lines
from boxloop.core.calibration import image_evidence
from boxloop.core.detections import Detections
from boxloop.core.manifests import iter_json_lines
from boxloop.core.records import record_from_json
from boxloop.local.app import RUN_FILES
from boxloop.local.demo import REFERENCE_ATTRIBUTE, REFERENCE_MANIFEST
from boxloop.steps.postprocess import read_predictions

ROW_FIELDS = ("confidence", "exact", "iou", "boxes", "boxes_right", "box_iou", "empty", "role")


def _last_predictions(run_files: Path) -> tuple[int, Path]:
    """The iteration and predictions file of the last model that predicted."""
    found = {
        int(re.sub(r"\D", "", path.parent.parent.name)): path
        for path in run_files.glob("**/iter-*/postprocess/predictions.jsonl")
    }
    if not found:
        raise SystemExit(
            f"{run_files}: no predictions.jsonl; was the run made with --keep-run-files?"
        )
    last = max(found)  # by number: iter-10 comes after iter-9
    return last, found[last]


def _ledger_before_filter(run_files: Path, iteration: int) -> Path:
    """The ledger the filter of ``iteration`` read: the newest version written before it."""
    versions = sorted(p for p in run_files.glob("**/ledger/*.jsonl") if "-filter" not in p.name)
    before = [p for p in versions if int(p.name[5:8]) <= iteration]
    return before[-1]


def _roles(ledger: Path, attr: str) -> dict[str, tuple[str, str]]:
    """Record id -> (role letter, image file name) for human validation and open pool images."""
    roles = {}
    for item in iter_json_lines(iter_lines(str(ledger)), source=str(ledger)):
        if isinstance(item, Exception):
            raise item
        record = record_from_json(item[1], attr)
        role = record.provenance.role
        name = record.source_ref.rsplit("/", 1)[-1]
        if role == "validation" and record.is_human_labeled and not record.provenance.audit:
            roles[record.id] = ("v", name)
        elif role in ("seed", "pool") and not record.is_labeled:
            roles[record.id] = ("p", name)
    return roles


def _reference(out_dir: Path) -> dict[str, Detections]:
    """Image file name -> reference boxes."""
    path = out_dir / "data" / REFERENCE_MANIFEST
    found = {}
    for item in iter_json_lines(iter_lines(str(path)), source=str(path)):
        if isinstance(item, Exception):
            raise item
        record = record_from_json(item[1], REFERENCE_ATTRIBUTE)
        if record.label is not None:
            found[record.source_ref.rsplit("/", 1)[-1]] = record.label.detections
    return found


def extract_run(out_dir: Path, *, attr: str = "boxes") -> dict[str, Any]:
    """The benchmark's input for one kept run in ``out_dir``."""
    run_files = out_dir / RUN_FILES
    iteration, predictions = _last_predictions(run_files)
    roles = _roles(_ledger_before_filter(run_files, iteration), attr)
    reference = _reference(out_dir)
    rows = []
    for prediction in read_predictions(iter_lines(str(predictions)), str(predictions)):
        if prediction.missing or prediction.image_id not in roles:
            continue
        role, name = roles[prediction.image_id]
        truth = reference[name]
        truth = Detections(image_id=prediction.image_id, image_wh=truth.image_wh, boxes=truth.boxes)
        exact = image_evidence(prediction.confidence, prediction.detections, truth, "exact_match")
        iou = image_evidence(prediction.confidence, prediction.detections, truth, "mean_iou")
        rows.append(
            [
                round(prediction.confidence, 5),
                int(exact.score),
                round(iou.score, 4),
                exact.boxes,
                int(exact.box_score),
                round(iou.box_score, 4),
                int(exact.empty),
                role,
            ]
        )
    rows.sort(key=lambda r: (-r[0], r[7]))
    return {"iteration": iteration, "fields": list(ROW_FIELDS), "rows": rows}


def main() -> None:
    """``python -m bench.calibration.extract OUT NAME``: write ``inputs/NAME.json``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "out", type=Path, help="the demo's --out folder (run with --keep-run-files)"
    )
    parser.add_argument("name", help="the input's name, e.g. demo-s0")
    parser.add_argument("--describe", default="", help="how the run was made (its command)")
    args = parser.parse_args()
    data = {"name": args.name, "command": args.describe, **extract_run(args.out)}
    target = Path(__file__).parent / "inputs" / f"{args.name}.json"
    target.write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
    n_val = sum(r[7] == "v" for r in data["rows"])
    print(
        f"{target}: {len(data['rows'])} images ({n_val} validation), iteration {data['iteration']}"
    )


if __name__ == "__main__":
    main()
