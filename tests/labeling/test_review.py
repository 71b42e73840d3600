"""Review mode: a local run's output as a gallery; corrections become human labels."""

from __future__ import annotations

import json
import signal

import pytest
from PIL import Image

from boxloop.core.formats.groundtruth import record_to_label
from boxloop.core.manifests import record_id
from boxloop.labeling import API_BASE, ApiRequest, ImageSigner, JournalStore, LabelingApi, TokenAuth
from boxloop.local.review import PRISTINE, REVIEW_JOURNAL, LocalReview

from ._helpers import TOKEN

ATTR = "boxes"


def _fields(boxes, *, human, scores=None):
    return {
        ATTR: {
            "image_size": [{"width": 40, "height": 30, "depth": 3}],
            "annotations": [
                {"class_id": c, "left": x, "top": y, "width": w, "height": h}
                for c, x, y, w, h in boxes
            ],
        },
        f"{ATTR}-metadata": {
            "objects": [{"confidence": s} for s in (scores or [0.0] * len(boxes))],
            "class-map": {"0": "car", "1": "person"},
            "type": "groundtruth/object-detection",
            "human-annotated": "yes" if human else "no",
            "creation-date": "2026-01-02T03:04:05.000000",
            "job-name": "labeling-job/x" if human else "boxloop-auto",
        },
    }


def _out(tmp_path):
    out = tmp_path / "out"
    images = tmp_path / "images"
    images.mkdir()
    refs = []
    for name in ("human", "auto-low", "auto-high", "left"):
        path = images / f"{name}.png"
        Image.new("RGB", (40, 30)).save(path)
        refs.append(str(path))
    lines = [
        {"source-ref": refs[0], **_fields([(0, 1, 1, 5, 5)], human=True), "boxloop": {}},
        {
            "source-ref": refs[1],
            **_fields([(1, 2, 2, 10, 10)], human=False, scores=[0.7]),
            "boxloop": {"confidence": 0.61},
        },
        {
            "source-ref": refs[2],
            **_fields([(0, 3, 3, 8, 8)], human=False, scores=[0.9]),
            "boxloop": {"confidence": 0.95},
        },
        {"source-ref": refs[3], "boxloop": {"image_wh": [40, 30]}},
    ]
    out.mkdir()
    (out / "output.manifest").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (out / "report.json").write_text(json.dumps({"counts": {"total": 4, "human": 1, "auto": 2}}))
    categories = [{"id": 0, "name": "car"}, {"id": 1, "name": "person"}]
    (out / "coco.json").write_text(json.dumps({"categories": categories}))
    return out, refs


def _api(out):
    store = JournalStore(out / "labeling" / REVIEW_JOURNAL)
    review = LocalReview(out, store)
    signer = ImageSigner(b"k" * 32)
    api = LabelingApi(
        store,
        TokenAuth(TOKEN),
        image_url=lambda t: signer.url(API_BASE, t.task_id),
        signer=signer,
        review=review,
    )

    def call(method, path, body=None, query=None):
        return api.handle(
            ApiRequest(
                method=method,
                path=API_BASE + path,
                query=query or {},
                headers={"authorization": f"Bearer {TOKEN}", "x-boxloop-worker": "rev"},
                body=body,
            )
        )

    return call, store, review


def _manifest(out):
    lines = [json.loads(x) for x in (out / "output.manifest").read_text().splitlines()]
    return {record_id(line["source-ref"]): line for line in lines}


def test_session_and_gallery_filter_sort(tmp_path):
    out, refs = _out(tmp_path)
    call, _, _ = _api(out)
    session = call("GET", "/session").body
    assert session["mode"] == "review"
    assert session["job"]["classes"] == [{"id": 0, "name": "car"}, {"id": 1, "name": "person"}]
    assert session["job"]["counts"]["total"] == 4
    page = call("GET", "/review/items", query={"filter": "auto", "sort": "confidence"}).body
    assert [i["source_ref"] for i in page["items"]] == [refs[1], refs[2]]  # least confident first
    assert page["total"] == 2
    assert page["items"][0]["boxes"] == [
        {"class_id": 1, "left": 2, "top": 2, "width": 10, "height": 10, "score": 0.7}
    ]
    everything = call("GET", "/review/items", query={"limit": "2", "offset": "2"}).body
    assert everything["total"] == 4 and len(everything["items"]) == 2
    left = call("GET", "/review/items", query={"filter": "left"}).body["items"]
    assert [i["kind"] for i in left] == ["left"] and left[0]["width"] == 40
    assert call("GET", "/review/items", query={"filter": "bogus"}).status == 400
    # The image comes only from the item's own file, by signed URL.
    path, _, query = page["items"][0]["image_url"].partition("?")
    params = dict(p.split("=") for p in query.split("&"))
    image = call("GET", path[len(API_BASE) :], query=params)
    assert image.status == 200 and image.file == refs[1]


def test_a_correction_becomes_a_human_label_and_an_audit_result(tmp_path):
    out, refs = _out(tmp_path)
    call, store, _ = _api(out)
    auto = record_id(refs[1])
    box = {"class_id": 0, "left": 20, "top": 5, "width": 10, "height": 12}
    response = call("POST", f"/review/items/{auto}/correct", {"boxes": [box]})
    assert response.status == 200, response.body
    assert response.body["item"]["kind"] == "human"
    line = _manifest(out)[auto]
    label = record_to_label(line, ATTR, image_id=auto)
    assert label.human_annotated and label.job_name == "labeling-job/review"
    (got,) = label.detections.boxes
    assert (got.class_id, got.x_min, got.y_min, got.x_max, got.y_max) == (0, 20, 5, 30, 17)
    assert line["boxloop"]["audit"] is True and "id" not in line
    # An unchanged auto-label confirmed is checked but not wrong.
    high = record_id(refs[2])
    same = {"class_id": 0, "left": 3, "top": 3, "width": 8, "height": 8}
    assert call("POST", f"/review/items/{high}/correct", {"boxes": [same]}).status == 200
    left = record_id(refs[3])
    assert (
        call("POST", f"/review/items/{left}/correct", {"boxes": [], "no_objects": True}).status
        == 200
    )
    report = json.loads((out / "report.json").read_text())
    assert report["review"]["auto_reviewed"] == 2 and report["review"]["auto_wrong"] == 1
    assert report["review"]["left_labeled"] == 1
    assert report["counts"] == {"total": 4, "human": 4, "auto": 0, "unlabeled": 0}
    coco = json.loads((out / "coco.json").read_text())
    assert len(coco["images"]) == 4
    # A bad box is refused and changes nothing.
    bad = call("POST", f"/review/items/{auto}/correct", {"boxes": [{**box, "width": 99}]})
    assert bad.status == 400 and bad.body["error"]["field"] == "boxes[0].width"
    # Restart: the journal and the pristine copy give the same output again.
    store.close()
    before = (out / "output.manifest").read_text()
    (out / "output.manifest").write_text("")  # a crash mid-rewrite cannot lose corrections
    _api(out)
    assert (out / "output.manifest").read_text().count("\n") == before.count("\n") == 4
    assert _manifest(out)[auto]["boxes"] == line["boxes"]
    pristine = (out / "labeling" / PRISTINE).read_text()
    assert '"left": 2' in pristine  # the run's own output kept as it was


def test_review_routes_are_off_in_label_mode(tmp_path):
    from ._helpers import harness

    h = harness(tmp_path)
    assert h.call("GET", "/review/items").status == 404


@pytest.mark.parametrize(
    "stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c, sigint ignored on entry", "kill"]
)
def test_boxloop_review_command_serves_and_saves(tmp_path, stop):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from ._client import Labeler

    out, refs = _out(tmp_path)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "boxloop.cli", "review", str(out)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        # as a background job of a script starts: SIGINT ignored (Python then sets no handler)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        first = proc.stdout.readline()
        assert "Review 4 images in your browser: http://127.0.0.1:" in first, first
        labeler = Labeler(first.split()[-1], "rev")
        status, session = labeler.request("GET", "/api/v1/session")
        assert status == 200 and session["mode"] == "review"
        box = {"class_id": 1, "left": 0, "top": 0, "width": 4, "height": 4}
        status, body = labeler.request(
            "POST", f"/api/v1/review/items/{record_id(refs[3])}/correct", {"boxes": [box]}
        )
        assert status == 200, body
    finally:
        proc.send_signal(stop)
        assert proc.wait(timeout=20) == 0
    assert _manifest(out)[record_id(refs[3])]["boxes"]["annotations"] == [box]


def test_the_end_of_a_review_rewrites_the_page_and_the_accuracy_against_the_reference(tmp_path):
    # GIVEN a run's folder with its page and its accuracy against a reference that says the
    # low-confidence auto-label is wrong (the reference holds a person at 20,5 instead)
    out, refs = _out(tmp_path)
    reference = tmp_path / "reference.manifest"
    truth = [
        _fields([(0, 1, 1, 5, 5)], human=True),
        _fields([(0, 20, 5, 10, 12)], human=True),
        _fields([(0, 3, 3, 8, 8)], human=True),
        _fields([], human=True),
    ]
    reference.write_text(
        "".join(json.dumps({"source-ref": r, **t}) + "\n" for r, t in zip(refs, truth, strict=True))
    )
    from boxloop.local.reporting import evaluate_against_reference, write_html_report

    before = evaluate_against_reference(out / "output.manifest", reference, ATTR)
    (out / "reference_eval.json").write_text(json.dumps(before))
    report = json.loads((out / "report.json").read_text())
    write_html_report(report, out / "report.html", reference_eval=before)
    assert before["auto"]["count"] == 2 and before["auto"]["exact_match"] == 0.5
    call, store, review = _api(out)
    assert review.refresh_report_page() is None  # nothing corrected yet: the page stays
    # WHEN a reviewer corrects that auto-label to the reference's box and the review ends
    box = {"class_id": 0, "left": 20, "top": 5, "width": 10, "height": 12}
    assert (
        call("POST", f"/review/items/{record_id(refs[1])}/correct", {"boxes": [box]}).status == 200
    )
    page = review.refresh_report_page()
    store.close()
    # THEN the accuracy is measured again on the corrected labels, and the page shows it with
    # the review's own figures
    after = json.loads((out / "reference_eval.json").read_text())
    assert after["auto"]["count"] == 1 and after["auto"]["exact_match"] == 1.0
    assert after["all"]["exact_match"] == 1.0
    html = page.read_text()
    assert page == out / "report.html"
    assert "Auto-labels reviewed" in html and "right of 1 checked in boxloop review" in html
    assert "auto-labels 100.0% of 1" in html
