"""The audit as live evidence: what the previous round's decision delivers, from human labels.

Prepare-labeling sends two kinds of audited images to humans, each a uniform random sample;
merge marks them ``audit``:

* **applied**: auto-labels the previous iteration applied, which the user receives (the
  human label replaces the audited one). Their estimate is the delivered accuracy.
* **would-be**: open images at or above the previous decision's threshold while it is
  deferred (``defer_auto_labels``): what applying it would deliver.

Once their human labels are in, each is scored here against the auto-label the previous model
gave it or would have given it (its line in the previous iteration's predictions, which is what
an applied auto-label was made from), so the estimate needs no reference data and works on AWS
as it does locally. Per round and in total, next to the promise, in the iteration report's
``audit`` block; Finalize scores the last round's audits when that round goes straight to it
(no filter after the last human round) and puts the block in the run report.

The audited images' scores are kept in that block (six numbers each, a few per round), and
each round's total adds its own to the previous report's, so no earlier file is read twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Audited:
    """One audited image's score, and whether its auto-label was applied or only would-be."""

    evidence: ImageEvidence
    applied: bool


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


def audited_evidence(run: RunState, config: LoopConfig) -> list[Audited]:
    """This round's audited images, each scored against the previous model's label.

    Both streams are sorted by id; an audited image the previous model did not predict (it
    never was a would-be auto-label then) is skipped. An audit of an applied auto-label is
    known by the threshold its auto-label passed, which merge keeps in the provenance.
    """
    uri = latest_predictions(run)
    if uri is None:
        return []
    predictions: Iterator[Prediction] = read_predictions(iter_lines(uri), uri)
    nxt = next(predictions, None)
    audited = []
    for record in _audited_now(run, config):
        while nxt is not None and nxt.image_id < record.id:
            nxt = next(predictions, None)
        if nxt is None or nxt.image_id != record.id or nxt.missing or record.label is None:
            continue
        evidence = image_evidence(
            nxt.confidence, nxt.detections, record.label.detections, config.target_metric
        )
        audited.append(Audited(evidence, applied=record.provenance.threshold is not None))
    return audited


def _row(item: Audited) -> list[Any]:
    e = item.evidence
    return [e.confidence, e.score, e.boxes, e.box_score, e.empty, item.applied]


def _item(row: list[Any]) -> Audited:
    confidence, score, boxes, box_score, empty = row[:5]
    evidence = ImageEvidence(
        confidence=confidence, score=score, boxes=boxes, box_score=box_score, empty=empty
    )
    return Audited(evidence, applied=bool(row[5]) if len(row) > 5 else False)  # 5: older runs


def _earlier(run: RunState) -> list[Audited]:
    """Every audited image of the earlier rounds, from the previous iteration report."""
    if run.iteration == 0:
        return []
    text = try_read_text(run.paths.step(run.iteration - 1, "report", REPORT_FILE))
    if not text:
        return []
    block = json.loads(text).get("audit") or {}
    return [_item(row) for row in block.get("all_evidence", [])]


def _kinds(now: list[Audited], everything: list[Audited]) -> dict[str, dict[str, int]]:
    """How many audited images were applied and would-be auto-labels, this round and in all."""
    applied_now = sum(item.applied for item in now)
    applied_all = sum(item.applied for item in everything)
    return {
        "applied": {"round": applied_now, "total": applied_all},
        "would_be": {"round": len(now) - applied_now, "total": len(everything) - applied_all},
    }


def audit_report(run: RunState, config: LoopConfig) -> dict[str, Any]:
    """The ``audit`` block of an iteration report (and of the run report): estimates and totals.

    ``for_iteration`` is the round whose decision the audited images test (the previous
    one); ``threshold`` the would-be threshold they were drawn above; ``promise`` what that
    round promised (target at level), for the reader to set the estimates against.
    ``round`` and ``total`` estimate from every audited image, this round and in all rounds;
    ``applied`` and ``would_be`` count the two kinds (see the module docstring); ``delivered``
    estimates from the applied ones of all rounds alone: the accuracy of the auto-labels the
    user receives.
    """
    now = audited_evidence(run, config)
    everything = [*_earlier(run), *now]
    model = run.model
    calibration = config.calibration

    def measured(items: list[Audited]) -> dict[str, Any]:
        evidence = [item.evidence for item in items]
        return estimate(evidence, calibration.metric, level=AUDIT_LEVEL).to_json()

    return {
        "for_iteration": run.iteration - 1 if run.iteration else None,
        "threshold": model.would_be_threshold if model is not None else None,
        "promise": {
            "metric": calibration.metric,
            "target": calibration.resolved_target,
            "confidence_level": calibration.confidence_level,
        },
        "round": measured(now),
        "total": measured(everything),
        **_kinds(now, everything),
        "delivered": measured([item for item in everything if item.applied]),
        "evidence": [_row(item) for item in now],
        "all_evidence": [_row(item) for item in everything],
    }
