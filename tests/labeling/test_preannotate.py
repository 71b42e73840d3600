"""PrepareLabeling puts the latest model's kept boxes into pool images' input lines only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from boxloop.core.boxes import Box
from boxloop.core.config import LoopConfig
from boxloop.core.errors import ConfigError
from boxloop.core.labels import LabelConfig
from boxloop.core.ledger import sort_by_id
from boxloop.core.manifests import record_id
from boxloop.core.predictions import Prediction
from boxloop.core.records import record_from_json
from boxloop.labeling.preannotations import PREANNOTATIONS_KEY, preboxes_from_field
from boxloop.steps.postprocess import PREDICTIONS_FILE
from boxloop.steps.prepare_labeling import prepare_labeling
from boxloop.steps.run import RunState, write_records

ATTR = "boxes"


def _label(wh=(64, 48)):
    return {
        ATTR: {
            "image_size": [{"width": wh[0], "height": wh[1], "depth": 3}],
            "annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 5, "height": 5}],
        },
        f"{ATTR}-metadata": {
            "objects": [{"confidence": 0.0}],
            "class-map": {"0": "car"},
            "type": "groundtruth/object-detection",
            "human-annotated": "yes",
            "creation-date": "2026-01-02T03:04:05.000000",
            "job-name": "labeling-job/x",
        },
    }


def _config(**overrides):
    settings = {
        "labels": LabelConfig(("car", "person")),
        "label_attribute": ATTR,
        "job_prefix": "bl",
        "seed_size": 2,
        "batch_size": 4,
        "min_validation": 20,
        "audit_share": 0.0,
        **overrides,
    }
    return LoopConfig(**settings)


def _run(tmp_path, config, *, predictions=True):
    ref = lambda name: f"s3://imgs/{name}.jpg"  # noqa: E731
    lines = [
        {"source-ref": ref("seed-0"), **_label(), "boxloop": {"role": "seed"}},
        {"source-ref": ref("seed-1"), **_label(), "boxloop": {"role": "seed"}},
        {"source-ref": ref("val-0"), "boxloop": {"role": "validation"}},
        *({"source-ref": ref(f"pool-{i}"), "boxloop": {"confidence": 0.1 * i}} for i in range(4)),
    ]
    root = tmp_path / "run"
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps(config.to_dict()))
    run = RunState(run_id="r", root=str(root), ledger="", iteration=1)
    ledger = run.paths.ledger(1, "ingest")
    records = (record_from_json(obj, ATTR) for obj in lines)
    write_records(ledger, sort_by_id(records, ATTR), ATTR)
    if predictions:
        out = root / "iter-000" / "postprocess"
        out.mkdir(parents=True)
        box = Box(x_min=2.0, y_min=3.0, x_max=12.0, y_max=15.0, class_id=1, score=0.91)
        rows = sorted(
            (
                Prediction(
                    image_id=record_id(line["source-ref"]),
                    image_wh=(64, 48),
                    confidence=0.5,
                    kept=(box,),
                ).to_json()
                for line in lines
            ),
            key=lambda r: r["id"],
        )
        (out / PREDICTIONS_FILE).write_text(
            "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
        )
    return run.replace(ledger=ledger)


def _input_lines(labeling):
    with Path(labeling["input_manifest"]).open() as f:
        return [json.loads(line) for line in f]


def test_pool_images_get_the_models_kept_boxes_validation_never(tmp_path):
    config = _config()
    lines = _input_lines(prepare_labeling(_run(tmp_path, config), config))
    by_role = {}
    for line in lines:
        by_role.setdefault(line["boxloop"].get("role", "pool"), []).append(line)
    assert len(by_role["validation"]) == 1 and len(by_role["pool"]) == 4
    assert all(PREANNOTATIONS_KEY not in line for line in by_role["validation"])
    for line in by_role["pool"]:
        field = line[PREANNOTATIONS_KEY]
        (box,) = preboxes_from_field(field)
        assert (box.class_id, box.left, box.top, box.width, box.height) == (1, 2, 3, 10, 12)
        assert box.score == 0.91


def test_setting_none_and_no_predictions_send_no_boxes(tmp_path):
    config = _config(preannotate="none")
    lines = _input_lines(prepare_labeling(_run(tmp_path, config), config))
    assert lines and all(PREANNOTATIONS_KEY not in line for line in lines)
    config = _config()
    lines = _input_lines(prepare_labeling(_run(tmp_path / "b", config, predictions=False), config))
    assert lines and all(PREANNOTATIONS_KEY not in line for line in lines)


def test_audited_images_get_no_boxes(tmp_path):
    from boxloop.labeling.preannotations import wants_preannotations

    assert wants_preannotations({}, "pool")
    assert not wants_preannotations({"audit": True}, "pool")
    assert not wants_preannotations({"role": "validation"}, "pool")
    assert not wants_preannotations({"role": "seed"}, "pool")
    assert not wants_preannotations({}, "none")


def test_preannotate_setting_is_checked():
    with pytest.raises(ConfigError, match="preannotate"):
        LoopConfig.from_dict({"labels": ["car"], "preannotate": "everything"}, source="test")
