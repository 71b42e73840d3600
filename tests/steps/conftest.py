"""Builders for step tests: a loop config, Ground Truth label fields and a run on a local root.

The steps read and write through ``boxloop.aws.s3``, whose helpers take local paths as well as
``s3://`` URIs, so most tests run on ``tmp_path`` without moto; ``source-ref``s stay ``s3://``
because prepare-inference parses them into a bucket and a key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from boxloop.core.config import LoopConfig
from boxloop.core.labels import LabelConfig
from boxloop.core.ledger import sort_by_id
from boxloop.core.records import record_from_json
from boxloop.steps.run import RunState, write_records

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

CLASS_NAMES = ("car", "person", "bike")
ATTR = "boxes"

BoxSpec = tuple[int, float, float, float, float]
"""(class_id, left, top, width, height) in pixels, as Ground Truth writes a box."""


def _make_config(**overrides: Any) -> LoopConfig:
    settings: dict[str, Any] = {
        "labels": LabelConfig(CLASS_NAMES),
        "label_attribute": ATTR,
        "job_prefix": "bl",
        "seed_size": 4,
        "batch_size": 3,
        "validation_fraction": 0.25,
        "min_validation": 20,
        "audit_share": 0.0,
    }
    settings.update(overrides)
    return LoopConfig(**settings)


def _gt_fields(
    wh: tuple[int, int] = (640, 480),
    boxes: Iterable[BoxSpec] = (),
    *,
    attr: str = ATTR,
    human: bool = True,
    scores: Iterable[float] | None = None,
    job: str = "labeling-job/bl-1",
) -> dict[str, Any]:
    """The ``<attr>`` and ``<attr>-metadata`` fields of a bounding-box label."""
    boxes = list(boxes)
    confidences = list(scores) if scores is not None else [0.0] * len(boxes)
    return {
        attr: {
            "image_size": [{"width": wh[0], "height": wh[1], "depth": 3}],
            "annotations": [
                {"class_id": c, "left": x, "top": y, "width": w, "height": h}
                for c, x, y, w, h in boxes
            ],
        },
        f"{attr}-metadata": {
            "objects": [{"confidence": s} for s in confidences],
            "class-map": {str(c): CLASS_NAMES[c] for c, *_ in boxes if c < len(CLASS_NAMES)},
            "type": "groundtruth/object-detection",
            "human-annotated": "yes" if human else "no",
            "creation-date": "2026-01-02T03:04:05.000000",
            "job-name": job,
        },
    }


def _line(ref: str, *, label: dict[str, Any] | None = None, **provenance: Any) -> dict[str, Any]:
    """A ledger line: the image, its label fields (if any) and boxloop's provenance."""
    obj: dict[str, Any] = {"source-ref": ref, **(label or {})}
    if provenance:
        obj["boxloop"] = provenance
    return obj


def _read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture
def make_config() -> Callable[..., LoopConfig]:
    """A LoopConfig with three classes and small sizes; keyword arguments override settings."""
    return _make_config


@pytest.fixture
def gt_fields() -> Callable[..., dict[str, Any]]:
    """Ground Truth label fields for ``(wh, [(class_id, left, top, width, height), ...])``."""
    return _gt_fields


@pytest.fixture
def ledger_line() -> Callable[..., dict[str, Any]]:
    """A ledger line for ``ref`` with optional label fields and provenance keywords."""
    return _line


@pytest.fixture
def read_jsonl() -> Callable[[Path | str], list[dict[str, Any]]]:
    """The objects of a JSON Lines file."""
    return _read_jsonl


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., RunState]:
    """Write ``config.json`` and a ledger (sorted by id) under ``tmp_path/run``; the run state.

    Keywords: ``iteration``, ``model``, ``counts``, ``stalled``, ``run_id``.
    """

    def build(lines: Iterable[dict[str, Any]], config: LoopConfig, **state: Any) -> RunState:
        root = tmp_path / "run"
        run = RunState(run_id=state.pop("run_id", "test-run"), root=str(root), ledger="", **state)
        root.mkdir(parents=True, exist_ok=True)
        (root / "config.json").write_text(json.dumps(config.to_dict()), encoding="utf-8")
        ledger = run.paths.ledger(run.iteration, "ingest")
        records = (record_from_json(obj, config.label_attribute) for obj in lines)
        write_records(ledger, sort_by_id(records, config.label_attribute), config.label_attribute)
        return run.replace(ledger=ledger)

    return build


def jpeg_bytes(
    wh: tuple[int, int] = (640, 480), *, components: int = 3, complete: bool = True
) -> bytes:
    """A minimal JPEG as far as a header reader looks: SOI, a baseline frame header, EOI.

    Not decodable (no scan), which ingest never needs: it reads headers only.
    """
    sof = bytes([0xFF, 0xC0]) + (8 + 3 * components).to_bytes(2, "big") + bytes([8])
    sof += wh[1].to_bytes(2, "big") + wh[0].to_bytes(2, "big") + bytes([components])
    sof += b"".join(bytes([i + 1, 0x11, 0]) for i in range(components))
    return b"\xff\xd8" + sof + (b"\xff\xd9" if complete else b"")


@pytest.fixture(name="jpeg_bytes")
def jpeg_bytes_fixture() -> Callable[..., bytes]:
    """``jpeg_bytes``, for tests."""
    return jpeg_bytes


@pytest.fixture
def image_reader() -> Callable[..., Callable[[str], Any]]:
    """A reader for ``ingest(read_image=...)``: every image is ``data`` (default: an RGB JPEG).

    ``overrides`` maps a source-ref to other bytes, or to an exception to raise.
    """
    from boxloop.aws.s3 import ImageBytes

    def make(data: bytes | None = None, overrides: dict[str, Any] | None = None) -> Any:
        def read(location: str) -> ImageBytes:
            content = (overrides or {}).get(location, data if data is not None else jpeg_bytes())
            if isinstance(content, Exception):
                raise content
            return ImageBytes(content, len(content), lambda o, n: content[o : o + n])

        return read

    return make
