"""Prepare labeling: choose the images humans label next and write their input manifest.

Unlabeled validation images always go first (no calibration without them); then, until the
training seed is complete, a random seed; after that the pool images the selection strategy
ranks first plus a random audit share of would-be auto-labels: images the validation
evidence alone would accept that the applied threshold held back (see
``filter_low_confidence``). In the round after a round that applied auto-labels, a uniform
random ``audit_share`` of those applied labels goes to humans too (``audit_size``, within
``human_label_budget``): the only evidence of what the user receives, on AWS as locally. Merge
makes audited images validation images (a human label replaces the auto-label; a failed audit
keeps it); ``boxloop.steps.audit`` scores them.

Ground Truth takes at most 100,000 objects per labeling job (``max_objects_per_labeling_job``),
and iteration 0 alone sends every unlabeled validation image plus the seed. So the iteration's
choice is written once, in order, to ``iter-<k>/labeling/selection.jsonl``, and sent in parts of
at most that many images, one job each (``label``, ``label-2``, ...): the state machine loops
PrepareLabeling -> Label -> MergeHumanLabels while ``remaining > 0``, before any training. Which
part comes next is read from the run state itself: merge writes part ``p``'s ledger under a name
of its own (``RunPaths.ledger(..., part)``), so a retried or re-run step sees the same ledger
and repeats the same part, and images that failed in an earlier part are not sent again in this
iteration.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boxloop.aws.s3 import iter_lines, open_for_write, write_text
from boxloop.core.errors import ConfigError, ManifestError
from boxloop.core.manifests import SOURCE_REF, iter_json_lines, write_json_line
from boxloop.core.records import ID_KEY, PROVENANCE_KEY, Record, Role
from boxloop.core.selection import Candidate, audit_size, sample_for_audit, select
from boxloop.labeling.preannotations import PREANNOTATIONS_KEY, wants_preannotations
from boxloop.steps.preannotate import preannotations_for
from boxloop.steps.run import KMS_ENV, MAX_LEDGER_PARTS, RunState, iter_records, part_name

if TYPE_CHECKING:
    from collections.abc import Iterator

    from boxloop.core.config import LoopConfig

LABEL_CATEGORIES = "label-categories.json"
SELECTION = "selection.jsonl"
"""The iteration's choice, one ``{"id", "changes"}`` line per image in the order it is sent."""
INPUT_MANIFEST = "input.manifest"
_CHANGES = "changes"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Scan:
    """What one pass over the ledger tells selection."""

    validation_gaps: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    applied: tuple[str, ...]
    """Machine labels the previous iteration applied: what the applied audit draws from."""
    human_training: int
    human_total: int


def _is_open(record: Record, config: LoopConfig) -> bool:
    return not record.is_labeled and record.provenance.attempts < config.max_label_attempts


def _is_applied_last_round(record: Record, run: RunState) -> bool:
    """A machine label the previous iteration applied (never a human label)."""
    return (
        run.iteration > 0
        and record.is_labeled
        and not record.is_human_labeled
        and record.provenance.iteration == run.iteration - 1
    )


def _scan(run: RunState, config: LoopConfig) -> _Scan:
    gaps: list[str] = []
    candidates: list[Candidate] = []
    applied: list[str] = []
    human_training = human_total = 0
    for record in iter_records(run.ledger, config.label_attribute, trusted=True):
        role = record.provenance.role
        human_total += record.is_human_labeled
        if record.is_human_labeled and role in ("seed", "pool"):
            human_training += 1
        if _is_applied_last_round(record, run):
            applied.append(record.id)
        if not _is_open(record, config):
            continue
        if role == "validation":
            gaps.append(record.id)
        elif role in ("seed", "pool"):
            candidates.append(Candidate(record.id, record.provenance.confidence))
    return _Scan(
        validation_gaps=tuple(gaps),
        candidates=tuple(candidates),
        applied=tuple(applied),
        human_training=human_training,
        human_total=human_total,
    )


def choose_for_humans(run: RunState, config: LoopConfig) -> dict[str, dict[str, Any]]:
    """Record id -> provenance changes (role, audit) for every image humans label next.

    In order: unlabeled validation images; the audit of the auto-labels the previous
    iteration applied (a keyed-hash sample, so a re-run picks the same); the seed or the
    batch. The human label budget caps them in that order.

    Memory is O(pool ids) for the candidate list handed to selection, which keeps only O(k),
    and the ids of the labels the previous iteration applied: those left the pool then, so the
    two together hold no more ids than the candidate list of an earlier round.
    """
    scan = _scan(run, config)
    budget = None
    if config.human_label_budget is not None:
        budget = max(0, config.human_label_budget - scan.human_total)
    chosen: dict[str, dict[str, Any]] = {}
    for rid in scan.validation_gaps[:budget]:
        chosen[rid] = {}
    n_audit = audit_size(len(scan.applied), config.audit_share)
    if budget is not None:
        n_audit = min(n_audit, budget - len(chosen))
    seed = f"{config.seed}-{run.iteration}"
    chosen.update({rid: {"audit": True} for rid in sample_for_audit(scan.applied, n_audit, seed)})
    batch = config.batch_size
    candidates = scan.candidates
    if config.finish_with_humans and run.iteration > config.last_training_iteration:
        batch = len(candidates)  # after the last model: everything still open goes to humans
    room = batch if budget is None else max(0, min(batch, budget - len(chosen)))
    if room == 0 or not candidates:
        return chosen
    seed_missing = config.seed_size - scan.human_training
    if seed_missing > 0:
        # The seed round takes the whole seed (seed_size may exceed batch_size), but never more
        # than the budget leaves; later rounds complete a seed within the batch.
        n_seed = min(seed_missing, room)
        if not run.iteration:
            n_seed = seed_missing if budget is None else min(seed_missing, budget - len(chosen))
        picked = select(candidates, n_seed, "random", f"{config.seed}-seed")
        chosen.update({rid: {"role": "seed"} for rid in picked.for_humans})
        return chosen
    # Would-be auto-labels: images the validation evidence alone accepts. Everything at or above
    # the applied threshold was auto-labeled, so only the images it held back remain.
    threshold = run.model.would_be_threshold if run.model else None
    strategy = config.selection_strategy
    if strategy == "closest_to_threshold" and threshold is None:
        strategy = "least_confidence"  # no calibrated threshold (yet, or the gate failed)
    picked = select(
        candidates,
        room,
        strategy,
        seed,
        threshold=threshold,
        audit_share=config.audit_share if threshold is not None else 0.0,
    )
    chosen.update({rid: {} for rid in picked.for_humans})
    chosen.update({rid: {"audit": True} for rid in picked.audit})
    return chosen


def label_category_config_uri(run: RunState, config: LoopConfig) -> str:
    """Write the run's label category config (from its label config) and return its URI."""
    uri = run.paths.step(run.iteration, "labeling", LABEL_CATEGORIES)
    write_text(uri, json.dumps(config.labels.to_label_category_config(), indent=2))
    return uri


def merged_parts(run: RunState) -> int:
    """How many parts of this iteration's selection are merged, read off the run's ledger.

    0 when the ledger is not a merge of this iteration (ingest's, or the last filter's): the
    iteration starts, and its selection is chosen afresh.
    """
    return run.paths.ledger_part(run.ledger, run.iteration, "merge")


def _write_selection(run: RunState, config: LoopConfig, uri: str) -> int:
    """Choose this iteration's images and write them, in order, to ``uri``; returns how many.

    Validation images come first (no calibration without them), then the seed or the batch,
    in ``choose_for_humans``'s order, which is deterministic: a re-run writes the same file.
    """
    chosen = choose_for_humans(run, config)
    with open_for_write(uri) as out:
        for rid, changes in chosen.items():
            write_json_line(out, {ID_KEY: rid, _CHANGES: changes})
    return len(chosen)


def _iter_selection(uri: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(record id, provenance changes)`` of each selected image, in order (streamed)."""
    for item in iter_json_lines(iter_lines(uri), source=uri):
        if isinstance(item, ManifestError):
            raise item
        line_no, obj = item
        rid, changes = obj.get(ID_KEY), obj.get(_CHANGES)
        if not isinstance(rid, str) or not isinstance(changes, dict):
            raise ManifestError(
                f"expected {{{ID_KEY!r}: str, {_CHANGES!r}: object}}, got {obj!r}",
                source=uri,
                line=line_no,
                hint="prepare-labeling writes this file; re-run it for this iteration",
            )
        yield rid, changes


def _read_part(uri: str, start: int, stop: int) -> tuple[dict[str, dict[str, Any]], int]:
    """Lines ``[start, stop)`` of the selection as id -> changes, and the selection's size.

    Memory holds one part (at most the job cap), never the whole selection.
    """
    members: dict[str, dict[str, Any]] = {}
    size = 0
    for index, (rid, changes) in enumerate(_iter_selection(uri)):
        if start <= index < stop:
            members[rid] = changes
        size = index + 1
    return members, size


def _write_input_manifest(
    run: RunState, config: LoopConfig, members: dict[str, dict[str, Any]], manifest: str
) -> int:
    """Write the job's input manifest for ``members``; returns its line count.

    A human-labeled image is left out (a human label is never sent, and paid for, twice), and
    so is a machine-labeled one unless it was chosen as an audit. An input line carries no
    label, so the worker draws an audited image from scratch, without pre-annotations
    (``wants_preannotations``).
    """
    count = 0
    suggestions = preannotations_for(run, config, members)
    with open_for_write(manifest) as out:
        picked = iter_records(
            run.ledger,
            config.label_attribute,
            where=lambda obj: obj.get(ID_KEY) in members,
            trusted=True,
        )
        for record in picked:
            changes = members.get(record.id)
            if changes is None or record.is_human_labeled:
                continue
            if record.is_labeled and not changes.get("audit"):
                continue
            provenance = record.with_provenance(**changes).provenance.to_json()
            line = {SOURCE_REF: record.source_ref, ID_KEY: record.id, PROVENANCE_KEY: provenance}
            if record.id in suggestions and wants_preannotations(provenance, config.preannotate):
                line[PREANNOTATIONS_KEY] = suggestions[record.id]
            write_json_line(out, line)
            count += 1
    return count


def prepare_labeling(run: RunState, config: LoopConfig, *, kms_key_arn: str = "") -> dict[str, Any]:
    """Write the next part's human input manifest; returns the ``labeling`` block of the state.

    Each input line carries the record id and provenance: Ground Truth copies input fields to
    its output manifest, so merge-human-labels knows each image's role and audit flag without
    another lookup.

    The block holds counts and URIs, never ids: ``count`` (images in this job), ``part`` and
    ``parts`` (1-based), ``selected`` (the iteration's whole choice) and ``remaining`` (what
    later parts of this iteration still send), which the ASL's MoreToLabel Choice reads.
    """
    selection = run.paths.step(run.iteration, "labeling", SELECTION)
    done = merged_parts(run)
    if not done:
        _write_selection(run, config, selection)
    cap = config.max_objects_per_labeling_job
    part = done + 1
    while True:
        members, selected = _read_part(selection, (part - 1) * cap, part * cap)
        parts = math.ceil(selected / cap)
        if parts > MAX_LEDGER_PARTS:
            raise ConfigError(
                [
                    f"max_objects_per_labeling_job ({cap}) splits iteration {run.iteration}'s "
                    f"{selected} images into {parts} labeling jobs, over {MAX_LEDGER_PARTS} "
                    f"(fix: set it to at least {math.ceil(selected / MAX_LEDGER_PARTS)}; "
                    "Ground Truth takes 100,000)"
                ]
            )
        manifest = run.paths.step(run.iteration, "labeling", part_name(INPUT_MANIFEST, part))
        count = _write_input_manifest(run, config, members, manifest)
        if count or part >= parts:
            break
        part += 1  # every image of this part is labeled already: on to the next one
    output_config: dict[str, Any] = {
        "S3OutputPath": run.paths.step(run.iteration, "labeling", "output")
    }
    if kms_key_arn:
        output_config["KmsKeyId"] = kms_key_arn
    return {
        "count": count,
        "job_name": run.job_name(config, "label" if part == 1 else f"label-{part}"),
        "input_manifest": manifest,
        "selection": selection,
        "part": part,
        "parts": parts,
        "selected": selected,
        "remaining": max(0, selected - part * cap),
        "label_attribute": config.label_attribute,
        "label_category_config": label_category_config_uri(run, config) if count else "",
        "output_config": output_config,
        "task": {
            "title": config.task_title,
            "description": config.task_description,
            "workers_per_object": config.workers_per_object,
            "time_limit_s": config.task_time_limit_s,
            "availability_s": config.task_availability_s,
            "max_concurrent_tasks": config.max_concurrent_tasks,
        },
    }


def kms_key_from_env(environ: dict[str, str]) -> str:
    """The optional KMS key for job outputs ("" when the stack has none)."""
    return environ.get(KMS_ENV, "")


ROLE_SEED: Role = "seed"
