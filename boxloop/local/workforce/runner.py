"""The local Ground Truth bounding-box job: input manifest -> workforce -> output manifest.

`make_labeling_runner` returns the runner `boxloop.local.emulator` calls for
``CreateLabelingJob``. It does what Ground Truth does with the request, in process:

1. reads the label category config (``LabelCategoryConfigS3Uri``) and the input manifest
   (``InputConfig.DataSource.S3DataSource.ManifestS3Uri``), streamed, in batches of
   ``HumanTaskConfig.MaxConcurrentTaskCount`` objects (default 1,000, Ground Truth's maximum);
2. copies each batch's images (``source-ref``: ``s3://`` through boto3, which moto serves
   locally, or a local path, used in place) into ``image_dir/s3/<bucket>/<key>``, cached by the
   full key, never by file name; an image that cannot be read fails its object, as it does on
   Ground Truth;
3. gives the batch to the workforce with ``NumberOfHumanWorkersPerDataObject`` and the class map;
4. writes ``<S3OutputPath>/<LabelingJobName>/manifests/output/output.manifest``: every input
   line with its fields kept, plus ``<LabelAttributeName>`` and ``-metadata`` for a labeled
   object, or only ``-metadata`` with ``failure-reason`` for a failed one. An object the
   workforce returned nothing for (expired, or the reviewer stopped) is left out and counted
   ``Unlabeled``; merge-human-labels returns both kinds to the pool.

**When the job fails.** Ground Truth documents no failure threshold for objects that fail (jobs
finish "Complete" with a share of objects unlabeled, and fail on bad input or configuration), so
the rule here is: the job is ``Failed`` when its manifest holds no object, when not one object
was labeled, or, if ``max_failed_share`` is set, when more than that share of objects failed or
expired. Bad input (an unreadable manifest, an unknown class, a missing reference label) fails
the job with ``ClientError: <what and where>``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from boxloop.aws.clients import client
from boxloop.aws.s3 import (
    S3Uri,
    is_s3_uri,
    iter_lines,
    open_for_write,
    read_image_size,
    read_text,
    write_text,
)
from boxloop.core.errors import BoxloopError, ConfigError, ManifestError
from boxloop.core.formats.groundtruth import check_label_attribute_name, label_to_fields
from boxloop.core.image_size import ImageHeaderError
from boxloop.core.labels import LabelConfig
from boxloop.core.manifests import SOURCE_REF, iter_source_objects, record_id, write_json_line
from boxloop.core.records import PROVENANCE_KEY
from boxloop.labeling.output import (
    JobStats,
    failure_fields,
    ground_truth_now,
    kept_fields,
    output_manifest_uri,
    stats_uri,
)
from boxloop.local.emulator.sagemaker_jobs import JobResult
from boxloop.local.workforce.base import JobSpec, LabelTask, TaskResult
from boxloop.local.workforce.results import check_result, count_result

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from boxloop.local.workforce.base import Workforce

MAX_CONCURRENT_TASKS = 1000
"""Ground Truth's largest ``MaxConcurrentTaskCount``, the batch size when the request has none."""
_S3_ERRORS = {
    "404": "no such object",
    "NoSuchKey": "no such object",
    "403": "access denied",
    "AccessDenied": "access denied",
    "NoSuchBucket": "no such bucket",
}


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    obj: dict[str, Any]
    source_ref: str
    record_id: str


def _request_field(request: dict[str, Any], *path: str) -> Any:
    value: Any = request
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise ConfigError([f"CreateLabelingJob request has no {'.'.join(path)}"])
        value = value[key]
    return value


def _cache_path(image_dir: Path, uri: S3Uri) -> Path:
    """``image_dir/s3/<bucket>/<key>``; a key that could escape the folder is hashed instead."""
    parts = uri.key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        digest = hashlib.blake2b(uri.key.encode(), digest_size=16).hexdigest()
        name = digest + PurePosixPath(parts[-1]).suffix
        return image_dir / "s3" / uri.bucket / "_hashed" / name
    return image_dir.joinpath("s3", uri.bucket, *parts)


class LabelingRunner:
    """The ``create_labeling_job`` runner; `jobs` keeps each finished job's `JobStats`."""

    def __init__(
        self,
        workforce: Workforce,
        *,
        image_dir: Path,
        max_failed_share: float | None = None,
        source_refs: Mapping[str, str] | None = None,
    ) -> None:
        """See `make_labeling_runner`."""
        if max_failed_share is not None and not 0.0 <= max_failed_share <= 1.0:
            raise ConfigError([f"max_failed_share must be in [0, 1], got {max_failed_share!r}"])
        self.workforce = workforce
        self.image_dir = Path(image_dir)
        self.max_failed_share = max_failed_share
        self.source_refs = dict(source_refs or {})
        self.jobs: dict[str, JobStats] = {}

    def __call__(self, request: dict[str, Any]) -> JobResult:
        """Run the labeling job ``request`` describes, to its end."""
        try:
            return self._run(request)
        except (BoxloopError, ClientError, FileNotFoundError) as exc:
            # One line, as SageMaker's FailureReason: a ConfigError's problems joined by "; ".
            why = (
                f"invalid configuration: {'; '.join(exc.problems)}"
                if isinstance(exc, ConfigError)
                else str(exc)
            )
            return JobResult(status="Failed", failure_reason=f"ClientError: {why}")

    def _run(self, request: dict[str, Any]) -> JobResult:
        name = str(_request_field(request, "LabelingJobName"))
        attr = str(_request_field(request, "LabelAttributeName"))
        problem = check_label_attribute_name(attr)
        if problem:
            raise ConfigError([problem])
        manifest = str(
            _request_field(request, "InputConfig", "DataSource", "S3DataSource", "ManifestS3Uri")
        )
        output_path = str(_request_field(request, "OutputConfig", "S3OutputPath")).rstrip("/")
        categories = str(_request_field(request, "LabelCategoryConfigS3Uri"))
        human = request.get("HumanTaskConfig") or {}
        job = JobSpec(
            name=name,
            workers_per_object=int(human.get("NumberOfHumanWorkersPerDataObject", 1)),
            class_map=LabelConfig.from_json(read_text(categories), source=categories).class_map,
        )
        batch_size = max(1, int(human.get("MaxConcurrentTaskCount", MAX_CONCURRENT_TASKS)))
        output = output_manifest_uri(output_path, name)
        stats = JobStats(job=name, workforce=self.workforce.name)
        s3 = client("s3")
        with open_for_write(output) as out:
            for line, result in self._iter_results(manifest, job, batch_size, s3, categories):
                count_result(stats, result)
                if result is None:
                    continue
                fields = kept_fields(line.obj, attr)
                if result.label is not None:
                    fields.update(result.output_fields)
                    fields.update(label_to_fields(result.label, attr))
                else:
                    reason = str(result.failure_reason)
                    fields.update(
                        failure_fields(
                            attr, reason, job_name=name, creation_date=ground_truth_now()
                        )
                    )
                write_json_line(out, fields)
        summary = getattr(self.workforce, "job_summary", None)
        stats_json = {**stats.to_json(), **(summary(name) if summary else {})}
        write_text(stats_uri(output_path, name), json.dumps(stats_json, indent=2))
        self.jobs[name] = stats
        return self._result(stats, output, manifest)

    def _result(self, stats: JobStats, output: str, manifest: str) -> JobResult:
        outputs = stats.outputs(output)
        reason = None
        if stats.objects == 0:
            reason = f"ClientError: the input manifest {manifest} holds no data objects"
        elif stats.labeled == 0:
            reason = (
                f"not one of the {stats.objects} data objects was labeled "
                f"(first failure: {stats.first_failure or 'expired'})"
            )
        elif (
            self.max_failed_share is not None
            and (stats.failed + stats.unlabeled) / stats.objects > self.max_failed_share
        ):
            reason = (
                f"{stats.failed + stats.unlabeled} of {stats.objects} data objects failed "
                f"or expired, over the allowed share {self.max_failed_share}"
            )
        if reason:
            return JobResult(status="Failed", failure_reason=reason, outputs=outputs)
        return JobResult(status="Completed", outputs=outputs)

    def _iter_lines(self, manifest: str) -> Iterator[_Line]:
        first_line: dict[str, int] = {}
        for number, obj in iter_source_objects(iter_lines(manifest), source=manifest):
            ref = obj[SOURCE_REF]
            rid = record_id(ref)
            if rid in first_line:
                raise ManifestError(
                    f"repeats the image of line {first_line[rid]}",
                    source=manifest,
                    line=number,
                    field=SOURCE_REF,
                )
            first_line[rid] = number
            yield _Line(number, obj, ref, rid)

    def _iter_results(
        self, manifest: str, job: JobSpec, batch_size: int, s3: Any, categories: str
    ) -> Iterator[tuple[_Line, TaskResult | None]]:
        batch: list[_Line] = []
        for line in self._iter_lines(manifest):
            batch.append(line)
            if len(batch) == batch_size:
                yield from self._label_batch(batch, job, s3, categories)
                batch = []
        if batch:
            yield from self._label_batch(batch, job, s3, categories)

    def _label_batch(
        self, batch: list[_Line], job: JobSpec, s3: Any, categories: str
    ) -> Iterator[tuple[_Line, TaskResult | None]]:
        results: dict[str, TaskResult] = {}
        tasks: dict[str, LabelTask] = {}
        for line in batch:
            fetched = self._fetch(line.source_ref, s3)
            if isinstance(fetched, str):
                results[line.record_id] = TaskResult.failed(line.record_id, fetched)
                continue
            tasks[line.record_id] = LabelTask(
                record_id=line.record_id,
                source_ref=self.source_refs.get(line.source_ref, line.source_ref),
                image_path=fetched,
                image_wh=self._image_wh(fetched, line.obj),
                job=job,
                fields=line.obj,
            )
        if tasks:
            for result in self.workforce.label(list(tasks.values())):
                task = tasks.get(result.record_id)
                if task is None or result.record_id in results:
                    raise ValueError(
                        f"workforce {self.workforce.name!r} returned a result for "
                        f"{result.record_id!r}, which is not an open task of this batch"
                    )
                results[result.record_id] = check_result(result, task, categories)
        for line in batch:
            yield line, results.get(line.record_id)

    def _fetch(self, source_ref: str, s3: Any) -> Path | str:
        """The local path of the image, or why it cannot be read (the object then fails)."""
        if not is_s3_uri(source_ref):
            path = Path(source_ref)
            return path if path.is_file() else f"ClientError: no image file at {source_ref}"
        try:
            uri = S3Uri.parse(source_ref)
        except ValueError as exc:
            return f"ClientError: {exc}"
        target = _cache_path(self.image_dir, uri)
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        try:
            s3.download_file(uri.bucket, uri.key, str(partial))
        except ClientError as exc:
            partial.unlink(missing_ok=True)
            code = str(exc.response.get("Error", {}).get("Code", "error"))
            why = _S3_ERRORS.get(code, code)  # download_file's HEAD reports bare HTTP codes
            return f"ClientError: cannot read the image {source_ref}: {why}"
        partial.replace(target)
        return target

    @staticmethod
    def _image_wh(path: Path, obj: dict[str, Any]) -> tuple[int, int] | None:
        """From the image header; else from boxloop's provenance; else unknown."""
        try:
            return read_image_size(str(path))
        except (ImageHeaderError, OSError):
            known = (obj.get(PROVENANCE_KEY) or {}).get("image_wh")
            return (int(known[0]), int(known[1])) if known else None


def make_labeling_runner(
    workforce: Workforce,
    *,
    image_dir: Path,
    max_failed_share: float | None = None,
    source_refs: Mapping[str, str] | None = None,
) -> LabelingRunner:
    """The local stand-in for a Ground Truth bounding-box labeling job, served by ``workforce``.

    Register it with ``boxloop.local.emulator.register_sagemaker_runner("create_labeling_job",
    runner)``, or call it with a CreateLabelingJob request dict.

    Args:
        workforce: Who labels: `SimulatedWorkforce`, `ImportWorkforce` or any `Workforce`.
        image_dir: Where images are copied (and cached across jobs) for the workforce.
        max_failed_share: Fail the job when more than this share of its objects failed or
            expired; ``None`` (default) fails it only when no object was labeled.
        source_refs: The job's ``source-ref`` -> the one the user's manifest names, where the
            two differ (the local engine stages images under emulated ``s3://`` URIs); the
            workforce sees the user's, so reference and imported labels match by it.

    Raises:
        ConfigError: ``max_failed_share`` is outside ``[0, 1]``.
    """
    return LabelingRunner(
        workforce, image_dir=image_dir, max_failed_share=max_failed_share, source_refs=source_refs
    )
