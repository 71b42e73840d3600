"""Filter low confidence: decide the auto-label threshold, label the confident open images.

A thin adapter over :func:`boxloop.core.decision.decide`. Two streaming passes join the
id-sorted ledger with the id-sorted predictions: the first scores the human-labeled validation
images' would-be auto-labels (:class:`~boxloop.core.calibration.ImageEvidence`) and collects the
open images' confidences; the decision is made from them; the second pass writes the next
ledger, auto-labeling open images at or above the threshold. The audited images humans labeled
this round are scored against the previous model's predictions (``boxloop.steps.audit``): the
live estimate of what the previous decision delivers. Then the stop rules decide whether the
loop goes on. With ``defer_auto_labels`` the threshold is applied only with the last model (a
third pass when a stop rule ends the loop sooner).

The labels a round applies are audited in the next round (prepare-labeling). So when this
round's labels leave nothing unlabeled, the loop goes on for one audit-only round instead of
finalizing (unless ``audit_share`` is 0 or the human label budget or the cost cap is used up):
prepare-labeling then sends only the audit sample, and the ASL's AllLabeled Choice goes from
merge to Finalize without training. The other stop rules (budget, cost cap, max_iterations,
patience, exhausted attempts) finalize as they are, with open images left; the labels applied
in that last round then go unaudited.
"""

from __future__ import annotations

import json
from array import array
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from boxloop.aws.s3 import iter_lines, write_text
from boxloop.aws.sagemaker_jobs import SUPERSEDED_KEY, stop_superseded_jobs
from boxloop.core.calibration import ImageEvidence, image_evidence
from boxloop.core.cost import PriceTable, iteration_cost
from boxloop.core.decision import Decision, decide
from boxloop.core.detections import Detections
from boxloop.core.errors import ManifestError
from boxloop.core.formats.groundtruth import Label
from boxloop.core.model_state import ModelState
from boxloop.core.records import PROVENANCE_KEY
from boxloop.steps.audit import audit_report
from boxloop.steps.finalize import all_labeled_reason
from boxloop.steps.postprocess import PREDICTIONS_FILE, read_predictions
from boxloop.steps.run import RunState, iter_records, write_records

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from boxloop.core.config import LoopConfig
    from boxloop.core.cost import IterationCost
    from boxloop.core.predictions import Prediction
    from boxloop.core.records import Record

HISTOGRAM_BINS = 20


def _role(obj: dict[str, Any]) -> Any:
    """A raw ledger line's role (pool when left out)."""
    provenance = obj.get(PROVENANCE_KEY)
    return provenance.get("role", "pool") if isinstance(provenance, dict) else "pool"


def _can_be_auto_labeled(record: Record, prediction: Prediction) -> bool:
    """An unlabeled seed or pool image with a prediction: what a threshold may auto-label."""
    return (
        not record.is_labeled
        and not prediction.missing
        and record.provenance.role in ("seed", "pool")
    )


def _joined(
    run: RunState,
    config: LoopConfig,
    predictions_uri: str | None,
    *,
    where: Callable[[dict[str, Any]], bool] | None = None,
) -> Iterator[tuple[Record, Prediction | None]]:
    """Ledger records with their prediction (or ``None``), both streams sorted by id.

    ``predictions_uri`` is ``None`` when batch transform had nothing to predict; ``where``
    picks ledger lines before they are parsed (see ``iter_records``).
    """
    predictions: Iterator[Prediction] = (
        read_predictions(iter_lines(predictions_uri), predictions_uri)
        if predictions_uri
        else iter(())
    )
    nxt = next(predictions, None)
    for record in iter_records(run.ledger, config.label_attribute, where=where, trusted=True):
        while nxt is not None and nxt.image_id < record.id:
            nxt = next(predictions, None)
        if nxt is not None and nxt.image_id == record.id:
            yield record, nxt
            nxt = next(predictions, None)
        else:
            yield record, None


def collect_evidence(
    run: RunState, config: LoopConfig, predictions_uri: str | None
) -> tuple[list[ImageEvidence], array[float]]:
    """The validation images' evidence and the open images' confidences, in one pass.

    Validation images count when humans labeled them and the model predicted them; audited
    images are left out (they were drawn from the would-be auto-labels, not at random, and
    would tilt the validation sample; they are the audit's evidence instead). Only the lines
    needed are parsed; the open images' confidences take 8 bytes each.
    """
    attr = config.label_attribute
    pool: array[float] = array("d")

    def needed(obj: dict[str, Any]) -> bool:
        role = _role(obj)
        return role == "validation" or (role in ("seed", "pool") and attr not in obj)

    evidence: list[ImageEvidence] = []
    for record, prediction in _joined(run, config, predictions_uri, where=needed):
        if prediction is None or prediction.missing:
            continue
        if _can_be_auto_labeled(record, prediction):
            pool.append(prediction.confidence)
        elif (
            record.provenance.role == "validation"
            and not record.provenance.audit
            and record.is_human_labeled
            and record.label is not None
        ):
            evidence.append(
                image_evidence(
                    prediction.confidence,
                    prediction.detections,
                    record.label.detections,
                    config.target_metric,
                )
            )
    return evidence, pool


def _auto_label(
    record: Record,
    prediction: Prediction,
    config: LoopConfig,
    model: str,
    run: RunState,
    source: str,
) -> Label:
    """The machine label of a pool image from its prediction.

    Raises:
        ManifestError: when the model predicted a class the label config lacks. Such a label
            must not reach the ledger, which the next steps read without re-validating it
            (``record_from_ledger``).
    """
    detections = prediction.detections
    class_map = config.labels.class_map
    for i, box in enumerate(detections):
        if box.class_id not in class_map:
            raise ManifestError(
                f"image {record.id}: class {box.class_id} is not in the label config "
                f"(0..{config.labels.num_classes - 1})",
                source=source,
                field=f"kept[{i}]",
                hint="the model must be trained with this run's labels (num_classes)",
            )
    detections = Detections(
        image_id=record.id, image_wh=detections.image_wh, boxes=detections.boxes
    )
    return Label(
        detections=detections,
        confidences=tuple(b.score or 0.0 for b in detections),
        class_map=class_map,
        human_annotated=False,
        job_name=f"boxloop/{model}",
        creation_date=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f"),
    )


def _add_to_histogram(bins: list[int], value: float) -> None:
    """Count ``value`` (in [0, 1]) in one of ``HISTOGRAM_BINS`` equal bins, 1.0 in the last."""
    bins[min(HISTOGRAM_BINS - 1, int(value * HISTOGRAM_BINS))] += 1


@dataclass(frozen=True, slots=True)
class _Written:
    """What one pass over the ledger wrote: the next ledger, its counts and this round's tallies."""

    ledger: str
    counts: dict[str, Any]
    spent: IterationCost
    auto: int
    histogram: list[int]

    def new_labels(self, run: RunState) -> int:
        """Labels this iteration added, human and machine."""
        previous = run.counts or {}
        return (self.counts["human"] + self.counts["auto"]) - (
            previous.get("human_before_iteration", 0) + previous.get("auto_before_iteration", 0)
        )


def _spending_stop(config: LoopConfig, written: _Written) -> str | None:
    """Why human labeling must stop for its spending (budget used, cost cap reached), or None."""
    counts, spent_usd = written.counts, float(written.spent.total_usd)
    if config.human_label_budget is not None and counts["human"] >= config.human_label_budget:
        return f"human_label_budget ({config.human_label_budget}) used"
    if config.cost_cap_usd is not None and spent_usd >= config.cost_cap_usd:
        return f"cost_cap_usd ({config.cost_cap_usd}) reached"
    return None


def _audit_due(config: LoopConfig, written: _Written) -> bool:
    """Whether this round's auto-labels still get their audit when nothing is left unlabeled.

    The audit-only round trains nothing, so max_iterations and patience do not hold it back;
    it spends human labels, so the budget and the cost cap do.
    """
    return written.auto > 0 and config.audit_share > 0 and _spending_stop(config, written) is None


def _decide(run: RunState, config: LoopConfig, written: _Written) -> tuple[str, str | None, int]:
    counts = written.counts
    stalled = 0 if written.new_labels(run) else run.stalled + 1
    open_images = counts["unlabeled"] - counts["exhausted"]
    if counts["unlabeled"] == 0:
        if _audit_due(config, written):
            return "continue", None, stalled  # one more round: the audit of these labels
        return "finalize", all_labeled_reason(counts), stalled
    if open_images <= 0:
        return "finalize", "the remaining images failed labeling too often", stalled
    if run.iteration + 1 >= config.max_iterations:
        return "finalize", f"max_iterations ({config.max_iterations}) reached", stalled
    spending = _spending_stop(config, written)
    if spending is not None:
        return "finalize", spending, stalled
    if stalled >= config.patience:
        return "finalize", f"no new labels for {stalled} iterations", stalled
    return "continue", None, stalled


def _write_next_ledger(
    run: RunState,
    config: LoopConfig,
    predictions_uri: str | None,
    threshold: float | None,
    model: str,
) -> _Written:
    """Write the next ledger, auto-labeling the open images at or above ``threshold``."""
    histogram = [0] * HISTOGRAM_BINS  # of pool confidences; a list of them was O(pool)
    auto = 0

    def updated() -> Iterator[Record]:
        nonlocal auto
        for record, prediction in _joined(run, config, predictions_uri):
            if prediction is None or not _can_be_auto_labeled(record, prediction):
                yield record
                continue
            confidence = prediction.confidence
            _add_to_histogram(histogram, confidence)
            if threshold is not None and confidence >= threshold:
                auto += 1
                label = _auto_label(record, prediction, config, model, run, predictions_uri or "")
                yield record.replace(label=label).with_provenance(
                    iteration=run.iteration, confidence=confidence, threshold=threshold, model=model
                )
            else:
                # Keep the size post-processing read from the image header (an unlabeled image
                # has no other): the next rounds' inference records carry it, so no header is
                # fetched again (a ranged GET per image per round on S3).
                yield record.with_provenance(
                    confidence=confidence,
                    image_wh=record.provenance.image_wh or prediction.image_wh,
                )

    ledger = run.paths.ledger(run.iteration, "filter")
    counts = write_records(
        ledger, updated(), config.label_attribute, max_attempts=config.max_label_attempts
    ).to_json()
    prices = PriceTable.from_label_prices(
        human_label_usd=config.price_per_human_label_usd,
        auto_label_usd=config.price_per_auto_label_usd,
    )
    spent = iteration_cost(human_labels=counts["human"], auto_labels=counts["auto"], prices=prices)
    return _Written(ledger, counts, spent, auto, histogram)


def calibration_view(
    decision: Decision, *, applied: float | None, deferred: bool
) -> dict[str, Any]:
    """The report's ``calibration`` block: the decision's headline figures, flat.

    The plots and the run page read these keys; the full typed value is the ``auto_label``
    block (:meth:`Decision.from_json`).
    """
    accepted = decision.accepted
    return {
        "threshold": decision.threshold,
        "applied_threshold": applied,
        "deferred": deferred,
        "rule": decision.rule,
        "reason": decision.reason,
        "metric": decision.metric,
        "target": decision.target,
        "expected_accuracy": accepted.image_accuracy,
        "lower_bound": accepted.image_bound,
        "box_accuracy": accepted.box_accuracy,
        "box_lower_bound": accepted.box_bound,
        "coverage": accepted.images / decision.n_validation if decision.n_validation else 0.0,
        "n_validation": decision.n_validation,
        "n_accepted": accepted.images,
        "n_accepted_empty": accepted.empty_images,
        "n_pool_accepted": decision.n_pool_accepted,
        "curve": [list(point) for point in decision.curve],
    }


def stop_superseded_inference_jobs(inference: dict[str, Any]) -> list[str]:
    """Stop the earlier attempts of this iteration's transform and post-processing jobs.

    Transform and PostProcess name each attempt's job ``<job_name>-<retry count>`` and put the
    real name in their results; an attempt whose create call SageMaker accepted but answered
    with a fault would otherwise run on, unattended. Returns the names stopped.
    """
    stopped: list[str] = []
    transform = inference.get("transform")
    if transform:
        stopped += stop_superseded_jobs(
            "transform", transform["job_name"], base=inference["job_name"]
        )
    postprocess = inference.get("postprocess") or {}
    if postprocess.get("result"):
        stopped += stop_superseded_jobs(
            "processing", postprocess["result"]["job_name"], base=postprocess["job_name"]
        )
    return stopped


def filter_low_confidence(run: RunState, config: LoopConfig, inference: dict[str, Any]) -> RunState:
    """Write the next ledger and the iteration report; returns the run state for the Choice.

    The report's ``superseded_jobs_stopped`` names every superseded job attempt stopped this
    iteration: labeling jobs (by merge-human-labels, in the run's counts), the training job (by
    prepare-inference, in ``inference``) and the transform and post-processing jobs (here).
    """
    superseded = [
        *(run.counts or {}).get(SUPERSEDED_KEY, []),
        *inference.get(SUPERSEDED_KEY, []),
        *stop_superseded_inference_jobs(inference),
    ]
    predictions_uri = (
        inference["postprocess"]["output_path"] + PREDICTIONS_FILE
        if inference.get("count")
        else None
    )
    gate = inference.get("gate") or {"passed": True}
    evidence, pool = collect_evidence(run, config, predictions_uri)
    decision = decide(
        evidence,
        pool,
        config.calibration,
        fixed_threshold=config.fixed_threshold,
        gate_passed=bool(gate.get("passed")),
    )
    threshold = decision.threshold
    model = inference.get("model_name") or ""
    deferring = (
        config.defer_auto_labels
        and threshold is not None
        and run.iteration < config.last_training_iteration
    )
    applied = None if deferring else threshold
    written = _write_next_ledger(run, config, predictions_uri, applied, model)
    next_step, reason, stalled = _decide(run, config, written)
    if deferring and next_step == "finalize":
        # The loop stops here, so no later model will label these images: label them now.
        applied = threshold
        written = _write_next_ledger(run, config, predictions_uri, applied, model)
        next_step, reason, stalled = _decide(run, config, written)
    counts, spent = written.counts, written.spent
    held = threshold if deferring and applied is None else None
    report = {
        "iteration": run.iteration,
        "counts": counts,
        "auto_labeled": written.auto,
        "gate": gate,
        "auto_label": decision.to_json(),
        "applied_threshold": applied,
        "deferred": held is not None,
        "audit": audit_report(run, config),
        "calibration": calibration_view(decision, applied=applied, deferred=held is not None),
        "confidence_histogram": written.histogram,
        "cost_to_date": spent.to_dict(),
        "decision": next_step,
        "stop_reason": reason,
        SUPERSEDED_KEY: superseded,
    }
    write_text(run.paths.step(run.iteration, "report", "report.json"), json.dumps(report, indent=2))
    counts_next = {
        **counts,
        "human_before_iteration": counts["human"],
        "auto_before_iteration": counts["auto"],
    }
    return run.replace(
        ledger=written.ledger,
        counts=counts_next,
        iteration=run.iteration + 1,
        model=ModelState(
            name=model,
            artifacts=inference.get("model_artifacts"),
            threshold=applied,
            deferred_threshold=held,
            gate=gate.get("passed"),
        ),
        decision=next_step,
        stop_reason=reason,
        stalled=stalled,
    )
