"""Merge human labels: fold a labeling job's output manifest into the ledger.

Images the job failed on, or never returned, go back to the pool with their attempt count
raised, so a bounded number of retries happens and the loop cannot spin on expiring tasks.

An audited image becomes a validation image with its human label. When the audit was of an
applied auto-label, the human label replaces it (it is the better label, and paid for), and the
provenance keeps the auto-label's ``threshold`` and ``model``: they name the decision the audit
tests (``boxloop.steps.audit`` tells applied audits from would-be ones by them). A failed or
expired audit of an applied auto-label keeps the auto-label (``merge_record`` keeps the current
label when the update has none): the image is labeled either way.

A box a worker drew partly outside the image is clipped to it, and a box with no area inside
it is dropped, each with a warning line in ``iter-<k>/report/label-warnings.jsonl``: the labels
are paid for, and one bad box must not end the run. An image whose every box was dropped goes
back for relabeling like a failed object (attempts raised), rather than being taken as empty:
its worker did mark objects, so "no object" would be a wrong human label, trained on and
trusted as validation truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from boxloop.aws.s3 import iter_lines, open_for_write
from boxloop.aws.sagemaker_jobs import SUPERSEDED_KEY, stop_superseded_jobs
from boxloop.core.errors import ManifestError
from boxloop.core.formats.groundtruth import METADATA_SUFFIX, repair_boxes
from boxloop.core.ledger import MergeStats, merge_sorted, sort_by_id
from boxloop.core.manifests import SOURCE_REF, iter_json_lines, write_json_line
from boxloop.core.records import Record, record_from_json
from boxloop.steps.run import RunState, iter_records, part_name, write_records

if TYPE_CHECKING:
    from collections.abc import Iterator

    from boxloop.core.config import LoopConfig

FAILURE_KEY = "failure-reason"
WARNINGS_FILE = "label-warnings.jsonl"


@dataclass(slots=True)
class BoxRepairs:
    """What merge did to bad boxes, for the run's counts."""

    images: int = 0
    clipped: int = 0
    dropped: int = 0
    relabel: int = 0


PROGRESS_BASELINE_KEYS = ("human_before_iteration", "auto_before_iteration")


def _check_labels(record: Record, config: LoopConfig, *, source: str, line: int) -> None:
    """Every box's class is the run's, under the same name.

    A job labeled with another label category config (other names, or the same ones in
    another order) would otherwise put its boxes under the wrong classes without a word.
    """
    expected = config.labels.class_map
    for class_id, name in (record.label.class_map if record.label else {}).items():
        if class_id in expected and expected[class_id] != name:
            raise ManifestError(
                f"names class {class_id} {name!r}, but this run's label config calls it "
                f"{expected[class_id]!r}",
                source=source,
                line=line,
                field=f"{config.label_attribute}{METADATA_SUFFIX}.class-map",
                hint="label with the run's label category config, which prepare-labeling writes",
            )
    for i, box in enumerate(record.label.detections if record.label else ()):
        if box.class_id not in expected:
            raise ManifestError(
                f"{box.class_id} is not a class of this run's label config",
                source=source,
                line=line,
                field=f"{config.label_attribute}.annotations[{i}].class_id",
            )


def _failed(record: Record) -> Record:
    attempts = record.provenance.attempts + 1
    return record.replace(label=None).with_provenance(attempts=attempts, audit=False)


def _iter_updates(
    output_manifest: str,
    config: LoopConfig,
    iteration: int,
    returned: set[str],
    warnings: IO[str],
    repairs: BoxRepairs,
) -> Iterator[Record]:
    """Records as the job returned them: labeled, or failed with a reason."""
    attr = config.label_attribute
    for item in iter_json_lines(iter_lines(output_manifest), source=output_manifest):
        if isinstance(item, ManifestError):
            raise item
        line_no, obj = item
        metadata = obj.get(attr + METADATA_SUFFIX)
        failed = isinstance(metadata, dict) and FAILURE_KEY in metadata and attr not in obj
        if failed:
            obj = {k: v for k, v in obj.items() if k != attr + METADATA_SUFFIX}
        obj, box_warnings, dropped = repair_boxes(obj, attr)
        all_dropped = bool(box_warnings) and not obj[attr]["annotations"]
        try:
            record = record_from_json(obj, attr)
        except ManifestError as exc:
            raise exc.at(source=output_manifest, line=line_no) from None
        returned.add(record.id)
        if box_warnings:
            repairs.images += 1
            repairs.dropped += dropped
            repairs.clipped += len(box_warnings) - dropped
            repairs.relabel += all_dropped
            write_json_line(
                warnings,
                {
                    "id": record.id,
                    SOURCE_REF: record.source_ref,
                    "source": output_manifest,
                    "line": line_no,
                    "warnings": box_warnings,
                    "action": "sent back for relabeling" if all_dropped else "label kept",
                },
            )
        if failed or record.label is None or all_dropped:
            yield _failed(record)
            continue
        _check_labels(record, config, source=output_manifest, line=line_no)
        role = "validation" if record.provenance.audit else record.provenance.role
        yield record.with_provenance(
            role=role,
            iteration=iteration,
            confidence=None,
            image_wh=record.label.detections.image_wh,
        )


def _iter_missing(input_manifest: str, config: LoopConfig, returned: set[str]) -> Iterator[Record]:
    """Input records the job did not return at all (expired or stopped)."""
    for record in iter_records(input_manifest, config.label_attribute):
        if record.id not in returned:
            yield _failed(record)


def merge_human_labels(run: RunState, config: LoopConfig, labeling: dict[str, Any]) -> RunState:
    """Write the next ledger version with the job's labels; returns the updated run state.

    Re-running it with the same inputs writes the same ledger: the updates derive from the
    job's files and the ledger version it started from, never from the previous merge. So each
    part of an iteration's selection (``labeling.part``, see prepare-labeling) is merged into a
    ledger version (and warnings report) of its own, never over the version it read.

    First, when Label's job is a retried attempt (``<job_name>-<n>``, ``n > 0``), the earlier
    attempts still running are stopped, so that humans stop labeling the same images twice (the
    window this leaves open is in ``boxloop.aws.sagemaker_jobs``); the run's counts carry their
    names (``SUPERSEDED_KEY``, over the iteration's parts) to the iteration report.
    """
    result = labeling.get("result") or {}
    superseded = stop_superseded_jobs(
        "labeling", result.get("job_name") or "", base=labeling.get("job_name") or ""
    )
    attr = config.label_attribute
    returned: set[str] = set()
    output_manifest = result.get("output_manifest")
    repairs = BoxRepairs()
    part = int(labeling.get("part", 1))
    warnings_uri = run.paths.step(run.iteration, "report", part_name(WARNINGS_FILE, part))
    with open_for_write(warnings_uri) as warnings:
        updates: list[Iterator[Record]] = []
        if output_manifest:
            updates.append(
                _iter_updates(output_manifest, config, run.iteration, returned, warnings, repairs)
            )
        updates.append(_iter_missing(labeling["input_manifest"], config, returned))

        def chained() -> Iterator[Record]:
            for stream in updates:  # in order: _iter_missing needs `returned` filled first
                yield from stream

        stats = MergeStats()
        merged = merge_sorted(
            iter_records(run.ledger, attr, trusted=True), sort_by_id(chained(), attr), stats
        )
        ledger = run.paths.ledger(run.iteration, "merge", part)
        counts = write_records(ledger, merged, attr, max_attempts=config.max_label_attempts)
    if stats.unknown_ids:
        raise ManifestError(
            f"the labeling output holds {len(stats.unknown_ids)} images that are not in the "
            f"ledger (first: {stats.unknown_ids[0]})",
            source=output_manifest or "",
            hint="check that the job's input manifest came from this run",
        )
    # filter-low-confidence measures progress against the counts it left; keep them.
    baseline = {k: v for k, v in (run.counts or {}).items() if k in PROGRESS_BASELINE_KEYS}
    return run.replace(
        ledger=ledger,
        counts={
            **counts.to_json(),
            "merged": stats.updated,
            "kept_human": stats.kept_human,
            "box_warnings": {
                "images": repairs.images,
                "clipped": repairs.clipped,
                "dropped": repairs.dropped,
                "relabel": repairs.relabel,
                "report": warnings_uri,
            },
            SUPERSEDED_KEY: [*(run.counts or {}).get(SUPERSEDED_KEY, []), *superseded],
            **baseline,
        },
    )
