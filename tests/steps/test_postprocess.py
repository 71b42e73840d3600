from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image

from boxloop.aws.s3 import read_image_size
from boxloop.core.confidence import ConfidenceConfig
from boxloop.core.errors import ManifestError
from boxloop.steps import postprocess as postprocess_module
from boxloop.steps.postprocess import PREDICTIONS_FILE, postprocess

if TYPE_CHECKING:
    from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]


def _write_records(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _write_out(predictions: Path, key: str, rows: list[list[float]]) -> None:
    out = predictions / f"{key}.out"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"prediction": rows}), encoding="utf-8")


def _record(rid: str, key: str, image_wh: list[int] | None, ref: str | None = None) -> dict:
    return {"id": rid, "source-ref": ref or f"s3://imgs/{key}", "key": key, "image_wh": image_wh}


def _no_header_reads(ref: str) -> tuple[int, int]:
    raise AssertionError(f"image size of {ref} was known; no header read expected")


def _run(tmp_path: Path, records: list[dict], **kwargs: Any) -> tuple[dict[str, dict], Any]:
    records_path = _write_records(tmp_path / "records.jsonl", records)
    stats = postprocess(
        records_path,
        tmp_path / "predictions",
        tmp_path / "output",
        confidence=kwargs.pop("confidence", ConfidenceConfig()),
        image_size=kwargs.pop("image_size", _no_header_reads),
        **kwargs,
    )
    lines = (tmp_path / "output" / PREDICTIONS_FILE).read_text(encoding="utf-8").splitlines()
    return {json.loads(x)["id"]: json.loads(x) for x in lines}, stats


def test_postprocess_joins_out_files_by_full_key(tmp_path):
    # GIVEN two images with the same file name in different folders, each with its own .out
    predictions = tmp_path / "predictions"
    _write_out(predictions, "a/img.jpg", [[0, 0.9, 0.0, 0.0, 0.5, 0.5]])
    _write_out(predictions, "b/img.jpg", [[2, 0.8, 0.5, 0.5, 1.0, 1.0]])
    records = [_record("id-a", "a/img.jpg", [100, 100]), _record("id-b", "b/img.jpg", [100, 100])]
    # WHEN post-processed
    lines, stats = _run(tmp_path, records)
    # THEN each image gets its own boxes, not its namesake's
    assert lines["id-a"]["kept"] == [[0, 0.9, 0.0, 0.0, 50.0, 50.0]]
    assert lines["id-b"]["kept"] == [[2, 0.8, 50.0, 50.0, 100.0, 100.0]]
    assert (stats.images, stats.missing_output) == (2, 0)


def test_postprocess_converts_normalized_boxes_to_pixels_on_a_non_square_image(tmp_path):
    # GIVEN a 640x480 image, a kept box, an ambiguous box, a dropped one and a padding row
    _write_out(
        tmp_path / "predictions",
        "wide.jpg",
        [
            [1, 0.9, 0.1, 0.2, 0.5, 0.75],  # kept
            [0, 0.3, 0.6, 0.6, 0.7, 0.7],  # ambiguous: in [0.15, 0.5)
            [0, 0.01, 0.0, 0.0, 1.0, 1.0],  # under the score floor
            [-1, 0.0, 0.0, 0.0, 0.0, 0.0],  # padding
        ],
    )
    # WHEN post-processed
    lines, _ = _run(tmp_path, [_record("w", "wide.jpg", [640, 480])])
    # THEN x scales by the width and y by the height; the confidence sees the ambiguous box
    line = lines["w"]
    assert line["kept"] == [[1, 0.9, 64.0, 96.0, 320.0, 360.0]]
    assert line["image_wh"] == [640, 480]
    assert line["n_ambiguous"] == 1
    assert line["confidence"] == pytest.approx(0.7)  # min(0.9, 1 - 0.3)
    assert line["is_empty"] is False


def test_postprocess_reads_unknown_sizes_from_image_headers(tmp_path):
    # GIVEN real JPEG and PNG files of non-square sizes whose records carry no size
    jpeg, png = tmp_path / "img" / "photo.jpg", tmp_path / "img" / "scan.png"
    jpeg.parent.mkdir()
    Image.new("RGB", (300, 200), (200, 30, 30)).save(jpeg, quality=80)
    Image.new("L", (90, 120), 128).save(png)
    _write_out(tmp_path / "predictions", "photo.jpg", [[0, 0.9, 0.0, 0.0, 1.0, 1.0]])
    _write_out(tmp_path / "predictions", "scan.png", [[0, 0.9, 0.0, 0.0, 1.0, 1.0]])
    records = [
        _record("p", "photo.jpg", None, ref=str(jpeg)),
        _record("s", "scan.png", None, ref=str(png)),
        _record("k", "known.jpg", [10, 10], ref=str(tmp_path / "img" / "absent.jpg")),
    ]
    # WHEN post-processed, reading headers with the real reader
    lines, stats = _run(tmp_path, records, image_size=read_image_size, workers=2)
    # THEN the sizes come from the headers and full-image boxes span them
    assert lines["p"]["image_wh"] == [300, 200]
    assert lines["p"]["kept"][0][2:] == [0.0, 0.0, 300.0, 200.0]
    assert lines["s"]["image_wh"] == [90, 120]
    assert lines["s"]["kept"][0][2:] == [0.0, 0.0, 90.0, 120.0]
    assert stats.sizes_read == 2  # the known size was not read (its file does not even exist)


def test_postprocess_marks_an_image_without_out_file_missing(tmp_path):
    # GIVEN two records, of which only one has a .out file
    _write_out(tmp_path / "predictions", "here.jpg", [])
    records = [_record("here", "here.jpg", [50, 40]), _record("gone", "gone.jpg", [50, 40])]
    # WHEN post-processed
    lines, stats = _run(tmp_path, records)
    # THEN the missing one is flagged, without a confidence; the empty one is a confident "none"
    assert lines["gone"] == {"id": "gone", "image_wh": [50, 40], "missing": True}
    assert lines["here"]["kept"] == []
    assert lines["here"]["is_empty"] is True
    assert lines["here"]["confidence"] == 1.0
    assert stats.missing_output == 1


def test_postprocess_keeps_record_order(tmp_path):
    records = [_record(f"id-{i:02d}", f"k{i}.jpg", [10, 10]) for i in range(300)]
    for i in range(300):
        _write_out(tmp_path / "predictions", f"k{i}.jpg", [])
    lines, _ = _run(tmp_path, records, workers=4)
    assert list(lines) == [r["id"] for r in records]


def test_postprocess_rejects_a_malformed_out_file_naming_it(tmp_path):
    out = tmp_path / "predictions" / "bad.jpg.out"
    out.parent.mkdir(parents=True)
    out.write_text('{"prediction": [[0, 0.5, 0.1]]}', encoding="utf-8")
    with pytest.raises(ManifestError, match=r"bad\.jpg\.out"):
        _run(tmp_path, [_record("b", "bad.jpg", [10, 10])])


def _mixed_predictions(tmp_path: Path, n: int) -> list[dict[str, Any]]:
    """``n`` records: kept, ambiguous and empty predictions, and every 9th .out missing."""
    records = []
    for i in range(n):
        key = f"img-{i:03d}.jpg"
        records.append(_record(f"id-{i:03d}", key, [200 + i, 100]))
        if i % 9:
            score = (i % 10) / 10
            _write_out(tmp_path / "predictions", key, [[i % 3, score, 0.1, 0.1, 0.6, 0.7]])
    return records


def test_postprocess_in_worker_processes_writes_what_one_process_writes(tmp_path, monkeypatch):
    # GIVEN 50 varied images in chunks of 7, so several chunks are in flight at once
    monkeypatch.setattr(postprocess_module, "CHUNK_IMAGES", 7)
    records = _mixed_predictions(tmp_path, 50)
    # WHEN post-processed in one process and in two worker processes
    outputs, all_stats = [], []
    for processes in (1, 2):
        _, stats = _run(tmp_path, records, processes=processes)
        outputs.append((tmp_path / "output" / PREDICTIONS_FILE).read_bytes())
        all_stats.append((stats.images, stats.missing_output))
    # THEN the files are byte for byte the same, in the records' order, and so are the counts
    assert outputs[0] == outputs[1]
    assert [json.loads(x)["id"] for x in outputs[1].splitlines()] == [r["id"] for r in records]
    assert all_stats == [(50, 6), (50, 6)]


def test_postprocess_in_worker_processes_names_a_malformed_out_file(tmp_path, monkeypatch):
    # GIVEN a malformed .out file in the third chunk of five
    monkeypatch.setattr(postprocess_module, "CHUNK_IMAGES", 4)
    records = _mixed_predictions(tmp_path, 20)
    (tmp_path / "predictions" / "img-010.jpg.out").write_text(
        '{"prediction": [[0, 0.5, 0.1]]}', encoding="utf-8"
    )
    # WHEN post-processed in two worker processes THEN the worker's error reaches the caller
    # whole: the same type, file and message as in one process
    errors = []
    for processes in (1, 2):
        with pytest.raises(ManifestError) as caught:
            _run(tmp_path, records, processes=processes)
        errors.append((type(caught.value), str(caught.value)))
    assert errors[0] == errors[1]
    assert "img-010.jpg.out" in errors[1][1]


@pytest.fixture(scope="module")
def processing_script() -> ModuleType:
    """``processing/postprocess.py``, loaded from its file as the Processing job runs it."""
    path = REPO_ROOT / "processing" / "postprocess.py"
    spec = importlib.util.spec_from_file_location("boxloop_test_processing_postprocess", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_processing_main_postprocesses_a_folder_end_to_end(tmp_path, processing_script, capsys):
    # GIVEN the job's inputs on disk: a records file, .out files and an image without a size
    image = tmp_path / "images" / "tall.png"
    image.parent.mkdir()
    Image.new("RGB", (40, 100)).save(image)
    (tmp_path / "input" / "records").mkdir(parents=True)
    records = _write_records(
        tmp_path / "input" / "records" / "records.jsonl",
        [_record("t", "x/tall.png", None, ref=str(image)), _record("m", "x/gone.png", [5, 5])],
    )
    _write_out(tmp_path / "input" / "predictions", "x/tall.png", [[0, 0.4, 0.0, 0.0, 0.5, 0.5]])
    # WHEN the entry point runs with the state machine's arguments
    code = processing_script.main(
        [
            "--records",
            str(records),
            "--predictions",
            str(tmp_path / "input" / "predictions"),
            "--output",
            str(tmp_path / "output"),
            "--score-floor",
            "0.05",
            "--keep-threshold",
            "0.3",
            "--aggregator",
            "min",
        ]
    )
    # THEN it exits 0, logs its counts and writes predictions.jsonl
    assert code == 0
    assert json.loads(capsys.readouterr().out) == {
        "images": 2,
        "missing_output": 1,
        "sizes_read": 1,
        "unreadable": 0,
    }
    lines = [
        json.loads(x)
        for x in (tmp_path / "output" / PREDICTIONS_FILE).read_text(encoding="utf-8").splitlines()
    ]
    assert lines[0]["kept"] == [[0, 0.4, 0.0, 0.0, 20.0, 50.0]]  # kept at --keep-threshold 0.3
    assert lines[0]["confidence"] == pytest.approx(0.4)  # --aggregator min
    assert lines[1]["missing"] is True


def test_processing_main_exits_2_on_bad_input(tmp_path, processing_script, capsys):
    records = _write_records(tmp_path / "records.jsonl", [_record("b", "b.jpg", [10, 10])])
    _write_out(tmp_path / "predictions", "b.jpg", [[0, 7.0, 0, 0, 1, 1]])  # score above 1
    code = processing_script.main(
        [
            "--records",
            str(records),
            "--predictions",
            str(tmp_path / "predictions"),
            "--output",
            str(tmp_path / "output"),
        ]
    )
    assert code == 2
    assert "b.jpg.out" in capsys.readouterr().err


def test_postprocess_marks_an_image_whose_header_cannot_be_read(tmp_path):
    # GIVEN records of unknown size: a good JPEG, a file cut inside its header, a missing file
    img = tmp_path / "img"
    img.mkdir()
    Image.new("RGB", (30, 20)).save(img / "ok.jpg")
    (img / "cut.jpg").write_bytes((img / "ok.jpg").read_bytes()[:6])
    for key in ("ok.jpg", "cut.jpg", "gone.jpg"):
        _write_out(tmp_path / "predictions", key, [[0, 0.9, 0.0, 0.0, 1.0, 1.0]])
    records = [
        _record("ok", "ok.jpg", None, ref=str(img / "ok.jpg")),
        _record("cut", "cut.jpg", None, ref=str(img / "cut.jpg")),
        _record("gone", "gone.jpg", None, ref=str(img / "gone.jpg")),
    ]
    # WHEN post-processed with the real header reader
    lines, stats = _run(tmp_path, records, image_size=read_image_size, workers=2)
    # THEN the unreadable ones are written as missing with the reason; the job goes on
    assert lines["ok"]["image_wh"] == [30, 20]
    assert lines["cut"]["missing"] is True
    assert "frame header" in lines["cut"]["reason"]
    assert lines["gone"]["missing"] is True
    assert (stats.unreadable, stats.missing_output, stats.images) == (2, 2, 3)
