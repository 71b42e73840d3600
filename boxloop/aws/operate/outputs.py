"""A finished run's outputs: its report, its output manifest, its settings; the HTML report.

The deployed run leaves what a local run leaves (``output/report.json``,
``output/output.manifest``); the report page is the local runs' own
(``boxloop.local.reporting``), so a deployed run reads exactly like a local one.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from boxloop.aws.s3 import S3Uri, is_s3_uri, try_read_text
from boxloop.aws.stack_outputs import AwsSetupError
from boxloop.core.config import LoopConfig
from boxloop.steps.finalize import OUTPUT_MANIFEST, REPORT
from boxloop.steps.run import RunPaths

if TYPE_CHECKING:
    from pathlib import Path

    from boxloop.aws.operate.executions import Execution

PRESIGNED_URL_SECONDS = 7 * 24 * 3600
"""How long the report's image links work: SigV4's longest (a week)."""


def run_config(execution: Execution) -> LoopConfig:
    """The run's settings as Ingest wrote them (label attribute, class names, prices).

    Raises:
        AwsSetupError: Ingest never wrote them (the run failed before).
    """
    location = RunPaths(execution.root).config()
    text = try_read_text(location)
    if text is None:
        raise AwsSetupError(
            f"execution {execution.name} ({execution.status}) has no {location}: it ended "
            "before Ingest; start a new run"
        )
    return LoopConfig.from_dict(json.loads(text), source=location)


def output_location(execution: Execution, name: str) -> str:
    """Where the run's final output ``name`` is.

    Raises:
        AwsSetupError: the run has not written it (still running, or failed): the message says
            what to do.
    """
    location = RunPaths(execution.root).output(name)
    if execution.status != "SUCCEEDED":
        hint = (
            "wait for it (boxloop aws status --watch)"
            if execution.is_running
            else "resume it (boxloop aws resume) and export once it succeeds"
        )
        raise AwsSetupError(
            f"execution {execution.name} is {execution.status}: it has no {name} yet; {hint}"
        )
    return location


def output_manifest(execution: Execution) -> str:
    """The finished run's ``output.manifest`` URI."""
    return output_location(execution, OUTPUT_MANIFEST)


def final_report(execution: Execution) -> dict[str, Any]:
    """The finished run's ``report.json``."""
    location = output_location(execution, REPORT)
    text = try_read_text(location)
    if text is None:
        raise AwsSetupError(f"{location} is missing although the run succeeded")
    return json.loads(text)


def presigned_url(source_ref: str, *, expires_s: int = PRESIGNED_URL_SECONDS) -> str:
    """A GET link to an ``s3://`` image that a browser opens without credentials."""
    from boxloop.aws.clients import client

    if not is_s3_uri(source_ref):
        return source_ref
    uri = S3Uri.parse(source_ref)
    return str(
        client("s3").generate_presigned_url(
            "get_object", Params={"Bucket": uri.bucket, "Key": uri.key}, ExpiresIn=expires_s
        )
    )


def fetch_presigned(source_ref: str) -> bytes:
    """An image's bytes, fetched through a presigned URL as a browser would fetch it.

    Raises:
        OSError: the fetch failed (``requests`` errors are ``OSError``s): the thumbnail is
            left out, not the report.
    """
    import requests

    response = requests.get(presigned_url(source_ref), timeout=60)
    response.raise_for_status()
    return response.content


def write_report(execution: Execution, out_dir: Path) -> dict[str, Path]:
    """Download the report and render the local runs' HTML page from it.

    As a local run's report, it gets the human effort the labeling jobs measured (their stats
    files, next to each job's output) and the gallery of the least confident auto-labels,
    whose thumbnails are drawn from the images fetched through presigned URLs.

    Returns:
        ``report.json`` and ``report.html`` paths.
    """
    from boxloop.local.reporting import least_confident_auto_labels, write_html_report
    from boxloop.local.reporting.effort import human_effort, read_labeling_stats

    report = final_report(execution)
    stats = read_labeling_stats(RunPaths(execution.root), int(report.get("iterations") or 0))
    report["human_effort"] = human_effort(stats)
    gallery = least_confident_auto_labels(
        output_manifest(execution),
        run_config(execution).label_attribute,
        base_dir=out_dir,
        read_image=fetch_presigned,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    report_json = out_dir / REPORT
    report_json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    html = write_html_report(report, out_dir / "report.html", reference_eval=None, gallery=gallery)
    return {"report": report_json, "report_html": html}
