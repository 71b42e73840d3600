"""The synthesized state machine on moto when Ingest has no time to read every image header.

A header read costs about 1.75 ms of a Lambda's CPU, so at a million images Ingest reads what
its 15 minutes allow and CheckImages (the Ingest Lambda again) reads the rest, pass after pass.
Here each invocation's time runs out after 10 reads: 38 images (two the transform cannot take,
last in the manifest so a later pass finds them) need Ingest and three CheckImages passes, and
the run still SUCCEEDED with every image checked once and the bad ones reported.
"""

from __future__ import annotations

import io
import itertools
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from e2e_harness import BUCKET, SMALL_RUN
from e2e_runners import read_manifest
from PIL import Image

from boxloop.aws.clients import client
from boxloop.core.detections import Detections
from boxloop.core.manifests import record_id

if TYPE_CHECKING:
    from collections.abc import Callable

    from e2e_harness import E2ERun, WorkflowHarness

READS_PER_CALL = 10
BAD_IMAGES = {"grey.jpg": "L", "cmyk.jpg": "CMYK"}


class _ShortContext:
    """A Lambda context whose time runs out once ``reads`` header reads have asked for it."""

    def __init__(self, context: Any, reads: int) -> None:
        self._context = context
        self._reads = reads
        self._asked = itertools.count()

    def get_remaining_time_in_millis(self) -> int:
        """The real remaining time for the first ``reads`` asks, then none."""
        if next(self._asked) < self._reads:
            return self._context.get_remaining_time_in_millis()
        return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


@dataclass(slots=True)
class HeaderReadsPerCall:
    """Wraps the Ingest handler: each invocation has time for ``reads`` header reads."""

    reads: int
    events: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """The wrapped handler."""

        def short(event: Any, context: Any) -> Any:
            self.events.append(event)
            return handler(event, _ShortContext(context, self.reads))

        return short


def _jpeg(mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (96, 64)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def short_time() -> HeaderReadsPerCall:
    return HeaderReadsPerCall(READS_PER_CALL)


@pytest.fixture(scope="module")
def passes_run(harness: WorkflowHarness, short_time: HeaderReadsPerCall) -> E2ERun:
    lines = [json.dumps(line) for line in read_manifest(harness.input_manifest)]
    for name, mode in BAD_IMAGES.items():
        key = f"passes/{name}"
        client("s3").put_object(Bucket=BUCKET, Key=key, Body=_jpeg(mode))
        uri = f"s3://{BUCKET}/{key}"
        harness.reference[uri] = Detections.empty(record_id(uri), (96, 64))
        lines.append(json.dumps({"source-ref": uri}))
    body = "\n".join(lines) + "\n"
    client("s3").put_object(Bucket=BUCKET, Key="input/passes.manifest", Body=body)
    manifest = f"s3://{BUCKET}/input/passes.manifest"
    return harness.run(
        "passes", {"manifest": manifest, "overrides": SMALL_RUN}, wrap={"ingest": short_time}
    )


def _checked(ledger: str) -> dict[str, str]:
    """Record id -> image_check, for the images a ledger version has checked."""
    return {
        line["id"]: line["boxloop"]["image_check"]
        for line in read_manifest(ledger)
        if line.get("boxloop", {}).get("image_check")
    }


def test_image_check_passes_run_succeeds_after_three_check_images_passes(
    passes_run: E2ERun, short_time: HeaderReadsPerCall
) -> None:
    # GIVEN 38 images and an Ingest Lambda with time for 10 header reads per invocation
    result = passes_run.result
    # WHEN the run ends
    # THEN it SUCCEEDED, Ingest and three CheckImages passes reading the headers
    assert result.status == "SUCCEEDED", f"{result.error}: {result.cause}"
    assert passes_run.entered("Ingest") == 1
    assert passes_run.entered("CheckImages") == 3
    assert passes_run.entered("ImagesToCheck") == 4
    states = result.visited_states
    assert states.index("PrepareLabeling") > max(
        i for i, s in enumerate(states) if s == "CheckImages"
    )
    # AND each CheckImages pass was given only the run block
    assert [sorted(e) for e in short_time.events[-3:]] == [["run"]] * 3


def test_image_check_passes_read_each_image_once_into_ledger_parts(passes_run: E2ERun) -> None:
    # GIVEN the run's ledger versions, oldest first
    ledgers = passes_run.ledgers()
    names = [uri.rsplit("/", 1)[1] for uri in ledgers]
    assert names[:4] == [
        "iter-000-0-ingest.jsonl",
        "iter-000-0-ingest.part-002.jsonl",
        "iter-000-0-ingest.part-003.jsonl",
        "iter-000-0-ingest.part-004.jsonl",
    ]
    # WHEN the checked images of each ingest version are compared
    checked = [_checked(uri) for uri in ledgers[:4]]
    # THEN each pass kept every earlier result and checked at most 10 more
    for before, after in itertools.pairwise(checked):
        assert after.items() >= before.items()
        assert 0 < len(after) - len(before) <= READS_PER_CALL
    # AND the last checked all 38 images, and the counts say each was checked once
    total = len(read_manifest(ledgers[0]))
    assert total == 38
    assert len(checked[-1]) == total
    for uri in ledgers[:4]:
        assert len(read_manifest(uri)) == total  # every version holds every image
    final = passes_run.result.output
    assert final["counts"]["unpredictable"] == len(BAD_IMAGES)


def test_image_check_passes_report_and_set_aside_images_found_in_later_passes(
    passes_run: E2ERun,
) -> None:
    # GIVEN the bad images, last in the manifest, so the first pass had no time for them
    root = passes_run.root
    key_prefix = root.removeprefix(f"s3://{BUCKET}/") + "/output/rejected"
    reports = sorted(
        obj["Key"]
        for obj in client("s3").list_objects_v2(Bucket=BUCKET, Prefix=key_prefix)["Contents"]
    )
    # WHEN the reports of every pass are read
    rejected = [line for key in reports for line in read_manifest(f"s3://{BUCKET}/{key}")]
    # THEN each bad image is reported once, by a CheckImages pass, with its reason and fix
    found = {line["source-ref"].rsplit("/", 1)[1]: line["check"] for line in rejected}
    assert found == dict.fromkeys(BAD_IMAGES, "channels")
    assert len(rejected) == len(BAD_IMAGES)
    assert all(line["fix"] and line["in_ledger"] for line in rejected)
    assert reports[0].endswith("/rejected.jsonl")
    assert all(".part-" in key for key in reports[1:])
    # AND no batch transform was sent them, while the output manifest still holds them
    for request in passes_run.transform.requests:
        uri = request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        body = client("s3").get_object(Bucket=BUCKET, Key=uri.split(f"s3://{BUCKET}/", 1)[1])
        keys = json.loads(body["Body"].read())[1:]
        assert not {k.rsplit("/", 1)[-1] for k in keys} & set(BAD_IMAGES)
    outputs = {line["source-ref"].rsplit("/", 1)[1] for line in passes_run.output_lines().values()}
    assert set(BAD_IMAGES) <= outputs
