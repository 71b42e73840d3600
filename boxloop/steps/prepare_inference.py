"""Prepare inference: the quality gate, and the ManifestFile batch transform reads.

Batch transform reads the images in place through a ManifestFile (no copy), and writes
``<output>/<key>.out`` for each listed key; the records file written beside it maps each key
back to its record id, so post-processing joins by full key, never by file name.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from boxloop.aws.s3 import S3Uri, open_for_write
from boxloop.aws.sagemaker_jobs import SUPERSEDED_KEY, stop_superseded_jobs
from boxloop.core.manifests import write_json_line
from boxloop.steps.run import RunState, iter_records

if TYPE_CHECKING:
    from boxloop.core.config import LoopConfig
    from boxloop.core.records import Record

RECORDS_FILE = "records.jsonl"


def metric_value(metrics: list[dict[str, Any]] | None, name: str) -> float | None:
    """A final metric by name (``FinalMetricDataList``), never by position."""
    for metric in metrics or []:
        if metric.get("MetricName") == name:
            return float(metric["Value"])
    return None


def quality_gate(training: dict[str, Any], config: LoopConfig) -> dict[str, Any]:
    """Whether this iteration's model may auto-label, from its validation metric."""
    value = metric_value((training.get("result") or {}).get("metrics"), config.quality_gate_metric)
    passed = value is not None and value >= config.quality_gate_map
    if value is None and config.quality_gate_map == 0:
        passed = True
    return {
        "metric": config.quality_gate_metric,
        "value": value,
        "floor": config.quality_gate_map,
        "passed": passed,
    }


def _needs_prediction(record: Record) -> bool:
    if not record.provenance.is_predictable:
        return False  # ingest found an image the transform cannot take: one fails the job
    role = record.provenance.role
    if role in ("validation", "test"):
        return record.is_human_labeled
    return not record.is_labeled


def prepare_inference(
    run: RunState, config: LoopConfig, training: dict[str, Any]
) -> dict[str, Any]:
    """Write the ManifestFile and records file; returns the ``inference`` block.

    Images ingest marked as not predictable (``Provenance.image_check``) are left out, as are
    images outside the first image's bucket (a ManifestFile has one prefix; ingest sets such
    lines aside, so only a ledger resumed from before that check holds any): one image the
    transform cannot read fails the whole job. ``excluded`` counts both; they go to humans.

    First, when Train's job is a retried attempt (``<job_name>-<n>``, ``n > 0``), the earlier
    attempts still running are stopped (``boxloop.aws.sagemaker_jobs``): a create call that
    SageMaker accepted but answered with a fault leaves its job training on, unattended.
    ``SUPERSEDED_KEY`` names them for the iteration report.
    """
    # Train names each attempt's job <job_name>-<retry count>; the real name is in its result.
    job_name = (training.get("result") or {}).get("job_name") or training["job_name"]
    superseded = stop_superseded_jobs("training", job_name, base=training["job_name"])
    attr = config.label_attribute
    manifest_uri = run.paths.step(run.iteration, "inference", "input.manifest")
    records_uri = run.paths.step(run.iteration, "inference", RECORDS_FILE)
    bucket: str | None = None
    count = excluded = 0
    with open_for_write(manifest_uri) as manifest, open_for_write(records_uri) as records:
        for record in iter_records(run.ledger, attr, trusted=True):
            if not _needs_prediction(record):
                excluded += not record.provenance.is_predictable
                continue
            uri = S3Uri.parse(record.source_ref)
            if bucket is None:
                bucket = uri.bucket
                manifest.write("[" + json.dumps({"prefix": f"s3://{bucket}/"}))
            elif uri.bucket != bucket:
                excluded += 1
                continue
            manifest.write(",\n" + json.dumps(uri.key))
            write_json_line(
                records,
                {
                    "id": record.id,
                    "source-ref": record.source_ref,
                    "key": uri.key,
                    "image_wh": record.image_wh,
                },
            )
            count += 1
        manifest.write("]\n" if bucket else "[]\n")
    return {
        "count": count,
        "excluded": excluded,
        "gate": quality_gate(training, config),
        "model_name": job_name,
        "model_artifacts": (training.get("result") or {}).get("model_artifacts"),
        SUPERSEDED_KEY: list(superseded),
        "job_name": run.job_name(config, "infer"),
        "manifest_file": manifest_uri,
        "records": records_uri,
        "output_path": run.paths.scratch(run.iteration, "transform"),
        "postprocess": {
            "job_name": run.job_name(config, "post"),
            "output_path": run.paths.step(run.iteration, "postprocess"),
            "arguments": [
                "--score-floor",
                str(config.score_floor),
                "--keep-threshold",
                str(config.keep_threshold),
                "--aggregator",
                config.aggregator,
            ],
        },
    }
