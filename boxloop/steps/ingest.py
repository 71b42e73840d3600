"""Ingest: validate the input manifest, quarantine bad lines, assign roles, write the ledger.

A resumed run (the execution input names an existing ledger) copies that ledger instead, so
every label already paid for carries over and nothing is relabeled.

Each image's header is read once, within the Lambda's time: a pass stops reading headers
while there is still time to write its ledger, and the state machine's CheckImages state calls
the same Lambda again (``check_images``) until no image is left unchecked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from boxloop.aws.s3 import (
    S3Uri,
    is_s3_uri,
    iter_lines,
    object_size,
    open_for_write,
    write_text,
)
from boxloop.core.errors import BoxloopError, ConfigError, ManifestError, NothingUsableError
from boxloop.core.formats.groundtruth import METADATA_SUFFIX
from boxloop.core.ledger import LedgerCounts, assign_role, sort_lines_by_key
from boxloop.core.manifests import SOURCE_REF, ValidationReport, validate_manifest, write_json_line
from boxloop.core.records import (
    ID_KEY,
    PROVENANCE_KEY,
    Provenance,
    Record,
    record_to_line,
)
from boxloop.steps.image_checks import CheckDeadline, ImageChecks, with_image_checks
from boxloop.steps.run import (
    MAX_LEDGER_PARTS,
    RunState,
    default_config,
    iter_records,
    load_config,
    part_name,
    run_id_for,
    write_records,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from boxloop.aws.s3 import ImageBytes
    from boxloop.core.config import LoopConfig

REJECTED_FILE = "rejected.jsonl"
MIN_LINE_BYTES = 48
"""Bytes of a short input line (``{"source-ref": "s3://my-bucket/images/0001.jpg"}``): the
input's size over it bounds how many records the first pass will write, before it has read
them all."""
@dataclass(frozen=True, slots=True, kw_only=True)
class IngestRequest:
    """The execution input, parsed.

    Attributes:
        run_id: The execution name.
        root: Where the run writes, e.g. ``s3://bucket/runs/<run_id>``.
        manifest: Input manifest URI (``{"source-ref": ...}`` per line; labeled lines allowed).
        ledger: An existing ledger to resume from, instead of ``manifest``.
        overrides: LoopConfig settings that differ from the stack's defaults for this run.
    """

    run_id: str
    root: str
    manifest: str | None = None
    ledger: str | None = None
    overrides: dict[str, Any] | None = None

    @classmethod
    def from_event(cls, event: dict[str, Any], *, bucket: str) -> IngestRequest:
        """Parse ``{"execution": name, "execution_arn": arn, "input": {...}}``.

        Every problem is reported at once. The run id is ``run_id_for(name, arn)``: each
        execution gets its own folder and job names, even when names collide.
        """
        data = event.get("input") or {}
        problems = []
        if not isinstance(data, dict):
            raise ConfigError([f"execution input must be a JSON object, got {data!r}"])
        if bool(data.get("manifest")) == bool(data.get("ledger")):
            problems.append(
                'execution input needs exactly one of "manifest" (a new run) or '
                '"ledger" (resume from an earlier run\'s ledger)'
            )
        overrides = data.get("overrides") or {}
        if not isinstance(overrides, dict):
            problems.append(f"overrides must be an object, got {overrides!r}")
        if isinstance(overrides, dict) and "job_prefix" in overrides:
            problems.append(
                "overrides.job_prefix cannot change per run: IAM allows only the "
                "stack's jobPrefix (redeploy with -c jobPrefix=...)"
            )
        unknown = sorted(set(data) - {"manifest", "ledger", "overrides"})
        if unknown:
            problems.append(f"unknown execution input keys {unknown}")
        if problems:
            raise ConfigError(problems)
        arn = event.get("execution_arn")
        run_id = run_id_for(str(event.get("execution") or "run"), str(arn) if arn else None)
        return cls(
            run_id=run_id,
            root=f"s3://{bucket}/runs/{run_id}",
            manifest=data.get("manifest"),
            ledger=data.get("ledger"),
            overrides=overrides,
        )


@dataclass(slots=True)
class _Buckets:
    """The run's image bucket (its first image's) and how many lines each bucket had."""

    first: str | None = None
    lines: dict[str, int] = field(default_factory=dict)

    def other_bucket_error(
        self, line_no: int, source_ref: str, source: str
    ) -> ManifestError | None:
        """The error of a line whose image is not in the run's bucket, or ``None``.

        A batch transform's ManifestFile has one prefix, so a run's images share one bucket;
        a line in another bucket is set aside here, before anything is paid for, instead of
        failing the first batch transform after the seed round's labels.
        """
        if not is_s3_uri(source_ref):
            return None
        try:
            bucket = S3Uri.parse(source_ref).bucket
        except ValueError as exc:
            return ManifestError(str(exc), source=source, line=line_no, field=SOURCE_REF)
        self.lines[bucket] = self.lines.get(bucket, 0) + 1
        if self.first is None:
            self.first = bucket
        if bucket == self.first:
            return None
        return ManifestError(
            f"is in s3://{bucket}/, but this run's images are in s3://{self.first}/ (the "
            "bucket of its first image): batch transform reads the images of one bucket",
            source=source,
            line=line_no,
            field=SOURCE_REF,
            hint=f"copy the image into s3://{self.first}/ and list the copy, or label the "
            f"images of s3://{bucket}/ in a run of their own",
        )

    def check_majority(self, source: str) -> None:
        """Fail when the first line's bucket holds fewer lines than the others together.

        Raises:
            NothingUsableError: then the first line is most likely the stray one, and going on
                would leave most of the dataset out of the run.
        """
        if self.first is None:
            return
        kept = self.lines[self.first]
        others = sum(self.lines.values()) - kept
        if others > kept:
            counts = ", ".join(f"s3://{b}/: {n}" for b, n in sorted(self.lines.items()))
            raise NothingUsableError(
                f"the images are spread over several buckets ({counts}); the run would keep "
                f"only the {kept} in s3://{self.first}/, its first line's bucket",
                source=source,
                hint="put every image in one bucket (or start with a line of the main one)",
            )


def _new_records(
    manifest: str, config: LoopConfig, report: ValidationReport, buckets: _Buckets
) -> Iterator[tuple[int | None, Record]]:
    """Valid input lines as ``(line number, record)``.

    A label under any attribute name becomes the run's label. A line whose image is in
    another bucket than the first line's goes to ``report`` instead.
    """
    for line in validate_manifest(
        iter_lines(manifest), source=manifest, label_config=config.labels, report=report
    ):
        other_bucket = buckets.other_bucket_error(line.line, line.source_ref, manifest)
        if other_bucket is not None:
            report.good -= 1
            report.labeled -= line.label is not None
            report.errors.append(other_bucket)
            continue
        skip = {SOURCE_REF, ID_KEY, PROVENANCE_KEY}
        if line.label_attribute:
            skip |= {line.label_attribute, line.label_attribute + METADATA_SUFFIX}
        role = assign_role(
            line.id,
            seed=config.seed,
            validation_fraction=config.validation_fraction,
            test_fraction=config.test_fraction,
        )
        image_wh = line.label.detections.image_wh if line.label else None
        yield (
            line.line,
            Record(
                id=line.id,
                source_ref=line.source_ref,
                label=line.label,
                provenance=Provenance(role=role, image_wh=image_wh),
                extra={k: v for k, v in line.fields.items() if k not in skip},
            ),
        )


def write_sorted(
    location: str, records: Iterable[Record], attr: str, *, max_attempts: int | None = None
) -> LedgerCounts:
    """Write records sorted by id as a ledger and return their counts.

    Counts are taken as the records stream in (they do not depend on order), and the sorted
    lines go straight to the file: unlike ``write_records(sort_by_id(...))`` no line is parsed
    back into a ``Record`` after the sort, which was a third of ingest's time at a million.
    """
    counts = LedgerCounts()

    def keyed_lines() -> Iterator[tuple[str, str]]:
        for record in records:
            counts.add(record, max_attempts=max_attempts)
            yield record.id, record_to_line(record, attr)

    with open_for_write(location) as out:
        for _, line in sort_lines_by_key(keyed_lines()):
            out.write(line)
            out.write("\n")
    return counts


def ingest(
    request: IngestRequest,
    config: LoopConfig,
    *,
    read_image: Callable[[str], ImageBytes] | None = None,
    remaining_ms: Callable[[], int] | None = None,
) -> RunState:
    """Write the run's config and first ledger; returns the initial run state.

    Each image's header is read once (``with_image_checks``); ``read_image`` replaces the
    ranged S3 GET that reads it (a benchmark without real images passes its own). With
    ``remaining_ms`` (the Lambda context's) the reads stop in time to write the ledger; the
    images left have no ``image_check`` and are counted in ``images_unchecked``, for
    ``check_images`` to take on.

    ``output/rejected.jsonl`` lists each manifest line set aside (bad, repeated, or in another
    bucket: not in the ledger) and each image the batch transform cannot take (in the ledger,
    ``"in_ledger": true``, for humans only); the counts say how many of each.

    Raises:
        NothingUsableError: when no line of the input manifest is usable, or when most lines
            name images in other buckets than the first line's.
    """
    run = RunState(run_id=request.run_id, root=request.root, ledger="")
    write_text(run.paths.config(), json.dumps(config.to_dict(), indent=2, sort_keys=True))
    ledger = run.paths.ledger(0, "ingest")
    attr = config.label_attribute
    checks = ImageChecks()
    rejected_uri = run.paths.output(REJECTED_FILE)
    report = ValidationReport(source=request.manifest or request.ledger or "")
    buckets = _Buckets()
    deadline = None
    if remaining_ms is not None:
        source = request.manifest or request.ledger or ""
        deadline = CheckDeadline(
            remaining_ms=remaining_ms,
            expected_records=lambda: object_size(source) // MIN_LINE_BYTES,
        )
    with open_for_write(rejected_uri) as rejected_out:
        if request.ledger:
            lines: Iterable[tuple[int | None, Record]] = (
                (None, r) for r in iter_records(request.ledger, attr)
            )
        else:
            lines = _new_records(request.manifest or "", config, report, buckets)
        records = with_image_checks(lines, rejected_out, checks, read=read_image, deadline=deadline)
        counts = write_sorted(ledger, records, attr, max_attempts=config.max_label_attempts)
        for error in report.errors:
            write_json_line(
                rejected_out, {"line": error.line, "field": error.field, "reason": error.detail}
            )
    if not request.ledger:
        if counts.total == 0:
            raise NothingUsableError(
                f"no usable line ({report.summary()}); see {rejected_uri}", source=report.source
            )
        buckets.check_majority(report.source)
    counts_json = {**counts.to_json(), "rejected": report.bad, **checks.to_counts()}
    return run.replace(ledger=ledger, counts=counts_json)


def check_images(
    run: RunState,
    config: LoopConfig,
    *,
    read_image: Callable[[str], ImageBytes] | None = None,
    remaining_ms: Callable[[], int] | None = None,
) -> RunState:
    """One more pass of image checks: the next ledger part, with more images checked.

    Streams the run's ledger (sorted by id, so it is written back in order, unsorted) and
    reads the headers of images with no ``image_check`` yet until ``remaining_ms`` says the
    pass must write its ledger. Images the transform cannot take are listed in
    ``output/rejected.part-<NNN>.jsonl`` (``part_name``), as ingest lists its own in
    ``rejected.jsonl``, without a manifest line number (the ledger keeps none). A re-run of a
    pass reads the same ledger and writes the same names.

    Raises:
        BoxloopError: when the ledger is not ingest's, or the passes reach
            ``MAX_LEDGER_PARTS`` (a dataset far beyond what one run's Lambdas can take).
    """
    part = run.paths.ledger_part(run.ledger, 0, "ingest") + 1
    if part == 1 or run.iteration != 0:
        raise BoxloopError(
            f"image checks continue ingest's ledger, but the run's ledger is {run.ledger}"
        )
    if part > MAX_LEDGER_PARTS:
        raise BoxloopError(
            f"the image checks need more than {MAX_LEDGER_PARTS} passes; split the input "
            "manifest into runs of a few million images"
        )
    attr = config.label_attribute
    checks = ImageChecks()
    deadline = None
    if remaining_ms is not None:
        total = int(run.counts.get("total", 0))
        deadline = CheckDeadline(remaining_ms=remaining_ms, expected_records=lambda: total)
    ledger = run.paths.ledger(0, "ingest", part)
    with open_for_write(run.paths.output(part_name(REJECTED_FILE, part))) as rejected_out:
        records = with_image_checks(
            ((None, r) for r in iter_records(run.ledger, attr, trusted=True)),
            rejected_out,
            checks,
            read=read_image,
            deadline=deadline,
        )
        counts = write_records(ledger, records, attr, max_attempts=config.max_label_attempts)
    counts_json = {
        **counts.to_json(),
        "rejected": run.counts.get("rejected", 0),
        **checks.to_counts(run.counts),
    }
    return run.replace(ledger=ledger, counts=counts_json)


def ingest_step(
    event: dict[str, Any], *, bucket: str, remaining_ms: Callable[[], int] | None = None
) -> RunState:
    """The Ingest Lambda's one call: a new run, or the next pass of its image checks.

    Args:
        event: The Ingest state's input (``{"execution", "execution_arn", "input"}``) or the
            CheckImages state's (``{"run": <the run block>}``).
        bucket: The stack's data bucket, where a new run writes.
        remaining_ms: The Lambda context's ``get_remaining_time_in_millis``; ``None`` reads
            every header in one pass.
    """
    if "run" in event:
        run = RunState.from_json(event["run"])
        return check_images(run, load_config(run), remaining_ms=remaining_ms)
    request = IngestRequest.from_event(event, bucket=bucket)
    config = default_config().with_overrides(request.overrides or {})
    return ingest(request, config, remaining_ms=remaining_ms)
