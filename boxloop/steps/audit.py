"""The audit as live evidence: what the previous round's decision delivers, from human labels.

Prepare-labeling sends a uniform random share of the would-be auto-labels (open images at or
above the previous decision's threshold) to humans; merge marks them ``audit``. Once their
human labels are in, each is scored here against the auto-label the previous model would have
given it (its line in the previous iteration's predictions), so the estimate needs no
reference data and works on AWS as it does locally. Per round and in total, next to the
promise, in the iteration report's ``audit`` block.

The audited images' scores are kept in that block (five numbers each, a few per round), and
each round's total adds its own to the previous report's, so no earlier file is read twice.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from boxloop.aws.s3 import iter_lines, try_read_text
from boxloop.core.calibration import ImageEvidence, image_evidence
from boxloop.core.decision import estimate
from boxloop.steps.postprocess import read_predictions
from boxloop.steps.preannotate import latest_predictions
from boxloop.steps.run import iter_records

if TYPE_CHECKING:
    from collections.abc import Iterator

    from boxloop.core.config import LoopConfig
    from boxloop.core.predictions import Prediction
    from boxloop.core.records import Record
    from boxloop.steps.run import RunState

REPORT_FILE = "report.json"
AUDIT_LEVEL = 0.9
"""Two-sided coverage of the audit's intervals."""


def _is_validation_line(obj: dict[str, Any]) -> bool:
    provenance = obj.get("boxloop")
    return isinstance(provenance, dict) and provenance.get("role") == "validation"


def _audited_now(run: RunState, config: LoopConfig) -> Iterator[Record]:
    """Audited images whose human label came in this iteration, in id order."""
    for record in iter_records(
        run.ledger, config.label_attribute, where=_is_validation_line, trusted=True
    ):
        if (
            record.provenance.audit
            and record.provenance.iteration == run.iteration
            and record.is_human_labeled
            and record.label is not None
        ):
            yield record


def audited_evidence(run: RunState, config: LoopConfig) -> list[ImageEvidence]:
    """This round's audited images, each scored against the previous model's would-be label.

    Both streams are sorted by id; an audited image the previous model did not predict (it
    never was a would-be auto-label then) is skipped.
    """
    uri = latest_predictions(run)
    if uri is None:
        return []
    predictions: Iterator[Prediction] = read_predictions(iter_lines(uri), uri)
    nxt = next(predictions, None)
    evidence = []
    for record in _audited_now(run, config):
        while nxt is not None and nxt.image_id < record.id:
            nxt = next(predictions, None)
        if nxt is None or nxt.image_id != record.id or nxt.missing or record.label is None:
            continue
        evidence.append(
            image_evidence(
                nxt.confidence, nxt.detections, record.label.detections, config.target_metric
            )
        )
    return evidence


def _row(item: ImageEvidence) -> list[Any]:
    return [item.confidence, item.score, item.boxes, item.box_score, item.empty]


def _item(row: list[Any]) -> ImageEvidence:
    confidence, score, boxes, box_score, empty = row
    return ImageEvidence(
        confidence=confidence, score=score, boxes=boxes, box_score=box_score, empty=empty
    )


def _earlier(run: RunState) -> list[ImageEvidence]:
    """Every audited image of the earlier rounds, from the previous iteration report."""
    if run.iteration == 0:
        return []
    text = try_read_text(run.paths.step(run.iteration - 1, "report", REPORT_FILE))
    if not text:
        return []
    block = json.loads(text).get("audit") or {}
    return [_item(row) for row in block.get("all_evidence", [])]


def audit_report(run: RunState, config: LoopConfig) -> dict[str, Any]:
    """The iteration report's ``audit`` block: this round's estimate and the running total.

    ``for_iteration`` is the round whose decision the audited images test (the previous
    one); ``threshold`` the would-be threshold they were drawn above; ``promise`` what that
    round promised (target at level), for the reader to set the estimate against.
    """
    now = audited_evidence(run, config)
    everything = [*_earlier(run), *now]
    model = run.model
    calibration = config.calibration
    return {
        "for_iteration": run.iteration - 1 if run.iteration else None,
        "threshold": model.would_be_threshold if model is not None else None,
        "promise": {
            "metric": calibration.metric,
            "target": calibration.resolved_target,
            "confidence_level": calibration.confidence_level,
        },
        "round": estimate(now, calibration.metric, level=AUDIT_LEVEL).to_json(),
        "total": estimate(everything, calibration.metric, level=AUDIT_LEVEL).to_json(),
        "evidence": [_row(item) for item in now],
        "all_evidence": [_row(item) for item in everything],
    }
