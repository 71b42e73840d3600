"""The synthesized state machine on moto with images the batch transform cannot take.

An oversized, a CMYK, a grey and a truncated image join the demo dataset. Each must be reported
at ingest, kept out of every batch transform (one such image fails the real job, every round),
and still be labeled by humans, with the run SUCCEEDED.
"""

from __future__ import annotations

import io
import json

import pytest
from e2e_harness import ATTR, BUCKET, SMALL_RUN
from e2e_runners import read_manifest
from PIL import Image

from boxloop.aws.clients import client
from boxloop.core.detections import Detections
from boxloop.core.manifests import record_id
from boxloop.steps.image_checks import MAX_PAYLOAD_MB


def _jpeg(mode: str, size: tuple[int, int] = (96, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color=90 if mode == "L" else (90, 40, 20, 0)[: len(mode)]).save(
        buffer, format="JPEG"
    )
    return buffer.getvalue()


def _png_rgb(size: tuple[int, int] = (300, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


BAD_IMAGES = {
    # a valid JPEG header followed by padding: over MaxPayloadInMB as a record
    "oversized.jpg": ("payload", lambda: _jpeg("RGB")[:-2] + bytes(MAX_PAYLOAD_MB * 10**6)),
    "cmyk.jpg": ("channels", lambda: _jpeg("CMYK")),
    "grey.jpg": ("channels", lambda: _jpeg("L")),
    # a PNG larger than the header read, cut short: its header is intact, its end is not
    "truncated.png": ("incomplete", lambda: _png_rgb()[:-2000]),
}


@pytest.fixture(scope="module")
def bad_run(harness):
    """A run over the demo dataset plus the four bad images."""
    lines = [json.dumps(line) for line in read_manifest(harness.input_manifest)]
    for name, (_, make) in BAD_IMAGES.items():
        key = f"bad/{name}"
        client("s3").put_object(Bucket=BUCKET, Key=key, Body=make())
        uri = f"s3://{BUCKET}/{key}"
        size = (300, 200) if name.endswith(".png") else (96, 64)
        harness.reference[uri] = Detections.empty(record_id(uri), size)
        lines.append(json.dumps({"source-ref": uri}))
    client("s3").put_object(Bucket=BUCKET, Key="input/bad.manifest", Body="\n".join(lines) + "\n")
    manifest = f"s3://{BUCKET}/input/bad.manifest"
    return harness.run("bad-images", {"manifest": manifest, "overrides": SMALL_RUN})


def test_workflow_succeeds_and_reports_images_the_transform_cannot_take(bad_run):
    # GIVEN a dataset with an oversized, a CMYK, a grey and a truncated image
    run = bad_run
    # WHEN the run ends
    # THEN it SUCCEEDED
    assert run.result.status == "SUCCEEDED", f"{run.result.error}: {run.result.cause}"
    # AND rejected.jsonl names each bad image with the reason found in its header
    rejected = {
        line["source-ref"].rsplit("/", 1)[1]: line
        for line in read_manifest(f"{run.root}/output/rejected.jsonl")
    }
    assert {name: line["check"] for name, line in rejected.items()} == {
        name: check for name, (check, _) in BAD_IMAGES.items()
    }
    assert all(line["fix"] and line["in_ledger"] for line in rejected.values())
    # AND no batch transform was sent any of them
    for request in run.transform.requests:
        keys = json.loads(
            client("s3")
            .get_object(
                Bucket=BUCKET,
                Key=request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"].split(
                    f"s3://{BUCKET}/", 1
                )[1],
            )["Body"]
            .read()
        )[1:]
        assert not {k.rsplit("/", 1)[-1] for k in keys} & set(BAD_IMAGES)
    # AND the transform request allows the payload the check allowed
    assert {r["MaxPayloadInMB"] for r in run.transform.requests} == {MAX_PAYLOAD_MB}
    # AND each bad image is still in the output manifest, labeled by humans or reported open
    lines = {line["source-ref"].rsplit("/", 1)[1]: line for line in run.output_lines().values()}
    for name in BAD_IMAGES:
        line = lines[name]
        assert line["boxloop"]["image_check"] == BAD_IMAGES[name][0]
        if ATTR in line:
            assert line[f"{ATTR}-metadata"]["human-annotated"] == "yes"
    assert run.result.output["counts"]["unpredictable"] == len(BAD_IMAGES)


def _with_bad_worker_boxes(handler):
    """MergeHumanLabels, first called on a job output whose first two labels have bad boxes.

    The output is rewritten before merge reads it, as a worker's drawing would leave it: one box
    running 3 px past the image's right edge, and on another image an extra box of no width.
    """
    touched: list[str] = []

    def wrapped(event, context):
        uri = event["labeling"]["result"]["output_manifest"]
        if not touched:
            lines = read_manifest(uri)
            labeled = [line for line in lines if line.get(ATTR, {}).get("annotations")]
            over, flat = labeled[0], labeled[1]
            width = over[ATTR]["image_size"][0]["width"]
            box = over[ATTR]["annotations"][0]
            box["width"] = width - box["left"] + 3
            flat[ATTR]["annotations"].append(
                {"class_id": 0, "left": 5, "top": 5, "width": 0, "height": 9}
            )
            flat[f"{ATTR}-metadata"]["objects"].append({"confidence": 0.9})
            touched.extend([over["id"], flat["id"]])
            bucket, key = uri.removeprefix("s3://").split("/", 1)
            body = "".join(json.dumps(line) + "\n" for line in lines)
            client("s3").put_object(Bucket=bucket, Key=key, Body=body)
        return handler(event, context)

    wrapped.touched = touched
    return wrapped


def test_workflow_keeps_labels_whose_worker_boxes_were_repaired(harness):
    # GIVEN a first labeling job whose output has a box past the image edge and one of no width
    wrap = _with_bad_worker_boxes
    wrappers: list = []

    def recording(handler):
        wrappers.append(wrap(handler))
        return wrappers[-1]

    # WHEN the run goes on from there
    run = harness.run("bad-worker-boxes", wrap={"merge_human_labels": recording})

    # THEN it SUCCEEDED
    assert run.result.status == "SUCCEEDED", f"{run.result.error}: {run.result.cause}"
    touched = wrappers[0].touched
    assert len(touched) == 2
    # AND the iteration's label warnings name both images, each label kept
    warnings = read_manifest(f"{run.root}/iter-000/report/label-warnings.jsonl")
    assert {w["id"] for w in warnings} == set(touched)
    assert all(w["action"] == "label kept" for w in warnings)
    # AND both images are in the output manifest as human labels, every box inside its image
    lines = run.output_lines()
    for rid in touched:
        label = lines[rid][ATTR]
        assert lines[rid][f"{ATTR}-metadata"]["human-annotated"] == "yes"
        size = label["image_size"][0]
        for box in label["annotations"]:
            assert box["width"] > 0 and box["height"] > 0
            assert box["left"] + box["width"] <= size["width"]
            assert box["top"] + box["height"] <= size["height"]
