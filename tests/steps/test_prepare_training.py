from __future__ import annotations

from pathlib import Path

import pytest

from boxloop.steps.prepare_training import NotEnoughLabelsError, label_width, prepare_training
from boxloop.steps.run import run_hash

ONE = [(0, 10, 10, 20, 20)]


def _ref(name: str) -> str:
    return f"s3://imgs/{name}.jpg"


@pytest.fixture
def ledger(ledger_line, gt_fields):
    """Human labels in every role, a machine label, an unlabeled image; 4 boxes at most."""
    four = [(0, 1, 1, 5, 5), (1, 10, 10, 5, 5), (2, 20, 20, 5, 5), (0, 30, 30, 5, 5)]
    return [
        ledger_line(_ref("seed-0"), label=gt_fields(boxes=ONE), role="seed"),
        ledger_line(_ref("pool-0"), label=gt_fields(boxes=[])),
        ledger_line(_ref("pool-1"), label=gt_fields(boxes=ONE)),
        ledger_line(_ref("val-0"), label=gt_fields(boxes=four), role="validation"),
        ledger_line(_ref("val-1"), label=gt_fields(boxes=ONE), role="validation"),
        ledger_line(_ref("test-0"), label=gt_fields(boxes=ONE * 2), role="test"),
        ledger_line(_ref("auto-0"), label=gt_fields(boxes=ONE, human=False, scores=[0.9])),
        ledger_line(_ref("open-0")),
    ]


def _refs(read_jsonl, uri: str) -> set[str]:
    return {Path(line["source-ref"]).stem for line in read_jsonl(uri)}


def _channel(training: dict, name: str) -> dict:
    return next(c for c in training["channels"] if c["ChannelName"] == name)


def test_prepare_training_splits_human_labels_by_role(make_config, make_run, read_jsonl, ledger):
    # GIVEN human labels on seed, pool, validation and test images plus a machine label
    config = make_config()
    run = make_run(ledger, config)
    # WHEN training is prepared
    training = prepare_training(run, config)
    # THEN train holds seed and pool, validation only validation, test and machine in neither
    train_uri = _channel(training, "train")["DataSource"]["S3DataSource"]["S3Uri"]
    validation_uri = _channel(training, "validation")["DataSource"]["S3DataSource"]["S3Uri"]
    assert _refs(read_jsonl, train_uri) == {"seed-0", "pool-1"}
    assert _refs(read_jsonl, validation_uri) == {"val-0", "val-1"}
    # AND the empty image (no box) is in neither channel but in a manifest of its own
    assert _refs(read_jsonl, training["empty_manifest"]) == {"pool-0"}
    assert training["num_empty_images"] == 1


def test_prepare_training_counts_samples_from_the_train_manifest(
    make_config, make_run, read_jsonl, ledger
):
    config = make_config()
    training = prepare_training(make_run(ledger, config), config)
    train_uri = _channel(training, "train")["DataSource"]["S3DataSource"]["S3Uri"]
    lines = read_jsonl(train_uri)
    assert training["hyperparameters"]["num_training_samples"] == str(len(lines)) == "2"
    assert training["num_validation_samples"] == 2
    # augmented manifest lines: the image and its label, which the channel's attributes name
    assert set(lines[0]) == {"source-ref", "boxes", "boxes-metadata"}
    assert _channel(training, "train")["DataSource"]["S3DataSource"]["AttributeNames"] == [
        "source-ref",
        "boxes",
    ]


def test_prepare_training_derives_label_width_and_num_classes(make_config, make_run, ledger):
    # GIVEN at most 4 boxes on one training-or-validation image (the test image's 2 not counted)
    config = make_config()
    hyperparameters = prepare_training(make_run(ledger, config), config)["hyperparameters"]
    # THEN label_width is 2 + 5 * 4 plus room for a box, to the next ten, and num_classes the
    # label config's 3
    assert hyperparameters["label_width"] == "30"
    assert hyperparameters["num_classes"] == "3"
    assert hyperparameters["epochs"] == config.hyperparameters["epochs"]
    assert all(isinstance(v, str) for v in hyperparameters.values())


@pytest.mark.parametrize(
    ("iteration", "epochs"),
    [
        (3, "30"),  # an earlier model: the configured epochs
        (4, "75"),  # the last model (max_iterations 6 with finish_with_humans): 2.5 x 30
    ],
)
def test_prepare_training_trains_the_last_model_longer(
    make_config, make_run, ledger, iteration, epochs
):
    config = make_config(max_iterations=6, finish_with_humans=True, last_model_epochs_factor=2.5)
    run = make_run(ledger, config, iteration=iteration)

    hyperparameters = prepare_training(run, config)["hyperparameters"]

    assert config.hyperparameters["epochs"] == "30"
    assert hyperparameters["epochs"] == epochs


@pytest.mark.parametrize(
    ("max_boxes", "width"),
    [
        (0, 10),  # only empty images: the algorithm still needs room for one box
        (1, 20),  # header 2 + one box 5, one box more, to the next ten
        (10, 60),  # the documentation's example: 10 boxes need 52, use "such as 60"
        (13, 80),  # 67 needed, 72 with a box more, to the next ten
        (14, 80),  # 72 + 5 = 77 -> 80
    ],
)
def test_label_width_pads_for_the_most_boxes_with_the_documented_margin(max_boxes, width):
    assert label_width(max_boxes) == width


@pytest.mark.parametrize(
    ("model", "initial", "expected"),
    [
        # the previous iteration's model wins
        (
            {"name": "m", "artifacts": "s3://b/m/model.tar.gz"},
            "s3://b/init/",
            "s3://b/m/model.tar.gz",
        ),
        # no model yet (iteration 0): the configured initial model
        (None, "s3://b/init/", "s3://b/init/"),
        # a model block without artifacts (e.g. no training happened): the initial model
        ({"name": "m", "artifacts": None}, "s3://b/init/", "s3://b/init/"),
        # neither: no model channel at all
        (None, None, None),
    ],
)
def test_prepare_training_warm_starts_from_the_latest_model(
    make_config, make_run, ledger, model, initial, expected
):
    config = make_config(initial_model_uri=initial)
    training = prepare_training(make_run(ledger, config, model=model), config)
    names = [c["ChannelName"] for c in training["channels"]]
    assert training["warm_start"] == expected
    if expected is None:
        assert names == ["train", "validation"]
    else:
        assert names == ["train", "validation", "model"]
        assert _channel(training, "model")["DataSource"]["S3DataSource"]["S3Uri"] == expected


def test_prepare_training_names_the_job_and_output(make_config, make_run, ledger, tmp_path):
    config = make_config()
    training = prepare_training(make_run(ledger, config, iteration=4), config, kms_key_arn="k")
    assert training["job_name"] == f"bl-{run_hash('test-run')}-004-train"
    assert training["output_config"] == {
        "S3OutputPath": str(tmp_path / "run" / "iter-004" / "training" / "output"),
        "KmsKeyId": "k",
    }


@pytest.mark.parametrize(
    "keep",
    [
        set(),  # no human label at all
        {"val-0", "val-1"},  # validation only: nothing to train on
        {"seed-0", "pool-1"},  # training only: nothing to validate on
    ],
)
def test_prepare_training_raises_when_a_channel_would_be_empty(make_config, make_run, ledger, keep):
    lines = [x for x in ledger if Path(x["source-ref"]).stem in keep | {"auto-0", "open-0"}]
    config = make_config()
    with pytest.raises(NotEnoughLabelsError, match="iteration 0"):
        prepare_training(make_run(lines, config), config)
