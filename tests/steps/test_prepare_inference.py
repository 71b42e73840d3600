from __future__ import annotations

import json
from pathlib import Path

import pytest

from boxloop.core.manifests import record_id
from boxloop.steps.prepare_inference import metric_value, prepare_inference, quality_gate

ONE = [(0, 10, 10, 20, 20)]
TRAINING = {
    "job_name": "bl-abcd-001-train",
    "result": {"model_artifacts": "s3://b/model.tar.gz", "metrics": []},
}


def _ref(key: str, bucket: str = "imgs") -> str:
    return f"s3://{bucket}/{key}"


@pytest.fixture
def ledger(ledger_line, gt_fields):
    """Every kind of record once; the ones batch transform must see are named ``want-*``."""
    return [
        ledger_line(_ref("a/want-pool.jpg")),
        ledger_line(_ref("b/want-seed.png"), role="seed", attempts=1),
        ledger_line(_ref("want-exhausted.jpg"), attempts=5, image_wh=[30, 20]),
        ledger_line(_ref("c/want-val.jpg"), label=gt_fields((64, 48), ONE), role="validation"),
        ledger_line(_ref("d/want-test.jpg"), label=gt_fields(boxes=ONE), role="test"),
        ledger_line(_ref("val-open.jpg"), role="validation"),
        ledger_line(_ref("test-open.jpg"), role="test"),
        ledger_line(_ref("pool-human.jpg"), label=gt_fields(boxes=ONE)),
        ledger_line(_ref("pool-auto.jpg"), label=gt_fields(boxes=ONE, human=False, scores=[1])),
    ]


def test_prepare_inference_writes_a_valid_manifest_file(make_config, make_run, ledger):
    # GIVEN a ledger with unlabeled pool images and human-labeled validation and test images
    config = make_config()
    # WHEN inference is prepared
    inference = prepare_inference(make_run(ledger, config), config, TRAINING)
    # THEN the ManifestFile is one JSON array: the bucket prefix, then the keys to predict
    document = json.loads(Path(inference["manifest_file"]).read_text(encoding="utf-8"))
    assert document[0] == {"prefix": "s3://imgs/"}
    assert sorted(document[1:]) == sorted(
        [
            "a/want-pool.jpg",
            "b/want-seed.png",
            "want-exhausted.jpg",
            "c/want-val.jpg",
            "d/want-test.jpg",
        ]
    )
    assert inference["count"] == 5


def test_prepare_inference_records_map_each_key_to_its_record(
    make_config, make_run, ledger, read_jsonl
):
    config = make_config()
    inference = prepare_inference(make_run(ledger, config), config, TRAINING)
    records = {r["key"]: r for r in read_jsonl(inference["records"])}
    document = json.loads(Path(inference["manifest_file"]).read_text(encoding="utf-8"))
    assert set(records) == set(document[1:])
    for key, record in records.items():
        assert record["id"] == record_id(_ref(key))
        assert record["source-ref"] == _ref(key)
    # known sizes travel along (from the label or the provenance); unknown ones are null
    assert records["c/want-val.jpg"]["image_wh"] == [64, 48]
    assert records["want-exhausted.jpg"]["image_wh"] == [30, 20]
    assert records["a/want-pool.jpg"]["image_wh"] is None
    # in ledger order (by id), which post-processing keeps and filter-low-confidence relies on
    ids = [r["id"] for r in read_jsonl(inference["records"])]
    assert ids == sorted(ids)


def test_prepare_inference_writes_an_empty_manifest_file_when_nothing_needs_predicting(
    make_config, make_run, ledger_line, gt_fields
):
    config = make_config()
    run = make_run([ledger_line(_ref("x.jpg"), label=gt_fields(boxes=ONE))], config)
    inference = prepare_inference(run, config, TRAINING)
    assert inference["count"] == 0
    assert json.loads(Path(inference["manifest_file"]).read_text(encoding="utf-8")) == []


def test_prepare_inference_leaves_out_images_in_another_bucket(make_config, make_run, ledger_line):
    # GIVEN a ledger resumed from before ingest set other buckets' lines aside
    config = make_config()
    run = make_run([ledger_line(_ref("a.jpg", "one")), ledger_line(_ref("b.jpg", "two"))], config)
    # WHEN inference is prepared
    inference = prepare_inference(run, config, TRAINING)
    # THEN the ManifestFile holds the first bucket's image only; the other is counted, not fatal
    document = json.loads(Path(inference["manifest_file"]).read_text(encoding="utf-8"))
    assert len(document) == 2
    assert (inference["count"], inference["excluded"]) == (1, 1)


@pytest.mark.parametrize("check", ["format", "channels", "payload", "incomplete", "unreadable"])
def test_prepare_inference_leaves_out_images_ingest_found_unpredictable(
    make_config, make_run, ledger_line, read_jsonl, check
):
    # GIVEN an open pool image ingest found the transform cannot take, and a good one
    config = make_config()
    bad, good = _ref("bad.jpg"), _ref("good.jpg")
    run = make_run(
        [ledger_line(bad, image_check=check), ledger_line(good, image_check="ok")], config
    )
    # WHEN inference is prepared
    inference = prepare_inference(run, config, TRAINING)
    # THEN only the good image is sent to batch transform
    assert [r["source-ref"] for r in read_jsonl(inference["records"])] == [good]
    assert (inference["count"], inference["excluded"]) == (1, 1)


def test_prepare_inference_names_jobs_and_paths(make_config, make_run, ledger):
    config = make_config(score_floor=0.1, keep_threshold=0.4, aggregator="min")
    inference = prepare_inference(make_run(ledger, config, iteration=2), config, TRAINING)
    assert inference["model_name"] == "bl-abcd-001-train"
    assert inference["model_artifacts"] == "s3://b/model.tar.gz"
    assert inference["job_name"].endswith("-002-infer")
    assert inference["postprocess"]["job_name"].endswith("-002-post")
    assert inference["postprocess"]["output_path"].endswith("iter-002/postprocess/")
    assert inference["postprocess"]["arguments"] == [
        "--score-floor",
        "0.1",
        "--keep-threshold",
        "0.4",
        "--aggregator",
        "min",
    ]


METRICS = [
    {"MetricName": "train:progress", "Value": 100.0},
    {"MetricName": "validation:mAP", "Value": 0.42},
    {"MetricName": "train:cross_entropy", "Value": 0.7},
]


@pytest.mark.parametrize(
    ("metrics", "floor", "value", "passed"),
    [
        (METRICS, 0.4, 0.42, True),  # read by name, not position: mAP is second
        (METRICS[::-1], 0.4, 0.42, True),  # same metrics in another order
        (METRICS, 0.5, 0.42, False),  # below the floor
        (METRICS[:1], 0.4, None, False),  # a floor but no mAP reported: fail safe
        (METRICS[:1], 0.0, None, True),  # no floor configured: the gate is open
        (None, 0.0, None, True),  # no metrics at all, no floor
    ],
)
def test_quality_gate_reads_the_metric_by_name(make_config, metrics, floor, value, passed):
    config = make_config(quality_gate_map=floor)
    gate = quality_gate({"result": {"metrics": metrics}}, config)
    assert gate == {"metric": "validation:mAP", "value": value, "floor": floor, "passed": passed}


def test_prepare_inference_applies_the_gate_to_the_training_metrics(make_config, make_run, ledger):
    config = make_config(quality_gate_map=0.5)
    training = {**TRAINING, "result": {**TRAINING["result"], "metrics": METRICS}}
    inference = prepare_inference(make_run(ledger, config), config, training)
    assert inference["gate"]["value"] == 0.42
    assert inference["gate"]["passed"] is False


def test_metric_value_uses_the_configured_metric_name():
    assert metric_value(METRICS, "train:cross_entropy") == 0.7
    assert metric_value(METRICS, "validation:missing") is None
