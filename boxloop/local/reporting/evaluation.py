"""Accuracy of a run's output manifest against a reference manifest (the local engine's truth)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from boxloop.aws.s3 import iter_lines
from boxloop.core.errors import NothingUsableError
from boxloop.core.manifests import ValidationReport, validate_manifest
from boxloop.core.metrics import MeanAveragePrecision, MeanIoU, is_exact_match
from boxloop.steps.run import iter_records

if TYPE_CHECKING:
    from pathlib import Path

    from boxloop.core.detections import Detections

MATCH_IOU = 0.5
"""IoU a label box needs to count as the reference box it overlaps (exact match and mean IoU)."""
MAX_LISTED_ERRORS = 20
"""Bad reference lines are all counted; only this many messages are kept in the result."""


@dataclass(slots=True)
class _Group:
    """Exact-match and mean-IoU accumulators for one group of labeled images."""

    count: int = 0
    exact: int = 0
    iou: MeanIoU = field(default_factory=lambda: MeanIoU(iou_threshold=MATCH_IOU))

    def add(self, labeled: Detections, reference: Detections) -> None:
        self.count += 1
        self.exact += is_exact_match(labeled, reference, iou_threshold=MATCH_IOU)
        self.iou.update(labeled, reference)

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "exact": self.exact,
            "exact_match": self.exact / self.count if self.count else None,
            "mean_iou": self.iou.compute(),
        }


def _load_reference(
    reference_manifest: Path, reference_attribute: str
) -> tuple[dict[str, Detections], ValidationReport]:
    """Record id -> reference Detections (ids hash source-ref, as the ledger's do)."""
    source = str(reference_manifest)
    report = ValidationReport(source=source)
    references = {
        line.id: line.label.detections
        for line in validate_manifest(
            iter_lines(source), source=source, attr=reference_attribute, report=report
        )
        if line.label is not None
    }
    if not references:
        first = f"; first error: {report.errors[0].message}" if report.errors else ""
        raise NothingUsableError(
            f"has no line labeled under {reference_attribute!r} ({report.summary()}){first}",
            source=source,
            hint="pass the reference label attribute if it differs from the run's",
        )
    return references, report


def evaluate_against_reference(
    output_manifest: Path,
    reference_manifest: Path,
    label_attribute: str,
    *,
    reference_attribute: str | None = None,
) -> dict[str, Any]:
    """How close a run's labels are to reference labels, per label source and per iteration.

    Images are joined by ``source-ref`` (through its hashed record id). Each labeled image of
    the output manifest is compared with its reference label: *exact match* means every
    reference box is matched one-to-one by a box of the same class at IoU >= 0.5 and no box is
    extra (``core.metrics.is_exact_match``); *mean IoU* is Ground Truth's dataset metric
    (``core.metrics.MeanIoU``). Groups: ``auto`` (``human-annotated: "no"``, the auto-labels
    the run is judged by), ``human`` (which measures the simulated annotators' noise) and
    ``all`` (the final dataset). ``auto_by_iteration`` groups auto-labels by the provenance
    iteration that produced them, and ``auto_map`` is COCO mAP of the auto-labels (their boxes
    carry the model scores) against the reference.

    The output manifest is streamed; the reference is held in memory as Detections (the
    local engine's data sets are small). Images left unlabeled, images with no reference label
    and images whose size differs from the reference's (pixel boxes would not be comparable)
    are counted, never compared.

    Args:
        output_manifest: The run's ``output.manifest`` (JSON Lines, Ground Truth layout plus
            the ``boxloop`` provenance key).
        reference_manifest: A Ground Truth manifest holding the reference labels.
        label_attribute: The run's label attribute.
        reference_attribute: The reference's label attribute; the run's when ``None``.

    Returns:
        A JSON-ready dict: ``images``, ``unlabeled``, ``no_reference``, ``size_mismatch``,
        ``reference_only`` (reference images absent from the output), ``auto``, ``human``,
        ``all`` (each ``count``, ``exact``, ``exact_match``, ``mean_iou``; rates are ``None``
        for an empty group), ``auto_by_iteration`` (list sorted by iteration, ``None`` last),
        ``auto_map`` (``map50``, ``map50_95``) and ``reference`` (its line counts and up to
        `MAX_LISTED_ERRORS` error messages).

    Raises:
        ManifestError: A line of the output manifest cannot be parsed (file and line named).
        NothingUsableError: The reference manifest has no labeled line to compare against.
    """
    ref_attr = reference_attribute or label_attribute
    references, ref_report = _load_reference(reference_manifest, ref_attr)
    n_references = len(references)
    groups = {"auto": _Group(), "human": _Group(), "all": _Group()}
    by_iteration: dict[int | None, _Group] = {}
    auto_map = MeanAveragePrecision()
    images = unlabeled = no_reference = size_mismatch = 0
    for record in iter_records(str(output_manifest), label_attribute):
        images += 1
        if record.label is None:
            unlabeled += 1
            continue
        reference = references.pop(record.id, None)
        if reference is None:
            no_reference += 1
            continue
        labeled = record.label.detections
        if labeled.image_wh != reference.image_wh:
            size_mismatch += 1
            continue
        kind = "human" if record.is_human_labeled else "auto"
        groups[kind].add(labeled, reference)
        groups["all"].add(labeled, reference)
        if kind == "auto":
            by_iteration.setdefault(record.provenance.iteration, _Group()).add(labeled, reference)
            auto_map.update(labeled, reference)
    map_result = auto_map.compute()
    ordered = sorted(by_iteration, key=lambda k: (k is None, k or 0))
    return {
        "label_attribute": label_attribute,
        "reference_attribute": ref_attr,
        "match_iou": MATCH_IOU,
        "images": images,
        "unlabeled": unlabeled,
        "no_reference": no_reference,
        "size_mismatch": size_mismatch,
        "reference_only": len(references),
        **{name: group.to_json() for name, group in groups.items()},
        "auto_by_iteration": [{"iteration": k, **by_iteration[k].to_json()} for k in ordered],
        "auto_map": {"map50": map_result.map50, "map50_95": map_result.map50_95},
        "reference": {
            "source": str(reference_manifest),
            "labeled": n_references,
            "good_lines": ref_report.good,
            "bad_lines": ref_report.bad,
            "errors": [e.message for e in ref_report.errors[:MAX_LISTED_ERRORS]],
        },
    }
