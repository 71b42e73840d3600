"""Every LoopConfig setting walked through every step that reads it.

Each row of ``VALID`` sets one setting to a valid value other than its default, runs one
iteration of the loop's steps on a small run (ingest, prepare-labeling, merge with simulated
human labels, prepare-training, prepare-inference, post-processing through the Processing
script's own entry point with the arguments prepare-inference gives it, filter-low-confidence,
and the next prepare-labeling and finalize) and checks the value's effect where one iteration
shows it. ``INVALID`` holds a value per setting that LoopConfig must refuse, all reported at once.
Both tables must name every LoopConfig field, so a new setting cannot skip the walk.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from boxloop.core.config import DEFAULT_HYPERPARAMETERS, SETTINGS, LoopConfig
from boxloop.core.errors import ConfigError
from boxloop.core.labels import LabelConfig
from boxloop.core.records import PROVENANCE_KEY
from boxloop.labeling.preannotations import PREANNOTATIONS_KEY
from boxloop.steps.filter_low_confidence import filter_low_confidence
from boxloop.steps.finalize import finalize
from boxloop.steps.ingest import IngestRequest, ingest
from boxloop.steps.merge_human_labels import merge_human_labels
from boxloop.steps.postprocess import PREDICTIONS_FILE
from boxloop.steps.prepare_inference import prepare_inference
from boxloop.steps.prepare_labeling import prepare_labeling
from boxloop.steps.prepare_training import prepare_training
from stacks.context import DEFAULT_CONTEXT, ContextReader

if TYPE_CHECKING:
    from collections.abc import Callable

    from boxloop.steps.run import RunState

REPO = Path(__file__).resolve().parents[2]
N_IMAGES = 120
WH = (640, 480)
BOX = (0, 100, 100, 200, 100)  # class 0, left/top/width/height in pixels
PREDICTED = [0, 0.95, 100 / 640, 100 / 480, 300 / 640, 200 / 480]  # the same box, normalized
WRONG = [1, 0.45, 0.0, 0.0, 0.1, 0.1]


def _ref(i: int) -> str:
    return f"s3://imgs/walk/{i:04d}.jpg"


@dataclass
class Walk:
    """What each step of one walk returned, by step name."""

    config: LoopConfig
    out: dict[str, Any] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)


def _processing_module() -> ModuleType:
    """``processing/postprocess.py``, the Processing job's entry point, as the job runs it."""
    path = REPO / "processing" / "postprocess.py"
    spec = importlib.util.spec_from_file_location("boxloop_walk_processing", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


PROCESSING = _processing_module()


def _label(walk: Walk, labeling: dict[str, Any], tmp: Path, gt_fields) -> str:
    """Ground Truth's output manifest for a job: every image gets the one box, as drawn."""
    attr = walk.config.label_attribute
    out = tmp / f"labels-{labeling['job_name']}.manifest"
    with Path(labeling["input_manifest"]).open(encoding="utf-8") as lines:
        labeled = [
            {**json.loads(line), **gt_fields(WH, [BOX], attr=attr, job=labeling["job_name"])}
            for line in lines
        ]
    out.write_text("".join(json.dumps(x) + "\n" for x in labeled), encoding="utf-8")
    return str(out)


def _predict(records_uri: str, folder: Path, ledger: str) -> None:
    """The built-in algorithm's ``.out`` files: every other image right and sure, else wrong."""
    roles = {}
    with Path(ledger).open(encoding="utf-8") as lines:
        for line in lines:
            obj = json.loads(line)
            roles[obj["id"]] = (obj.get(PROVENANCE_KEY) or {}).get("role", "pool")
    with Path(records_uri).open(encoding="utf-8") as lines:
        for n, line in enumerate(lines):
            record = json.loads(line)
            rows = [WRONG] if n % 2 else [PREDICTED]
            path = folder / (record["key"] + ".out")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"prediction": rows}), encoding="utf-8")


def walk_loop(config: LoopConfig, tmp: Path, image_reader, gt_fields) -> Walk:
    """Iteration 0 of the loop with ``config``, then iteration 1's selection and finalize."""
    walk = Walk(config)
    manifest = tmp / "input.manifest"
    manifest.write_text(
        "".join(json.dumps({"source-ref": _ref(i)}) + "\n" for i in range(N_IMAGES)),
        encoding="utf-8",
    )
    run: RunState = ingest(
        IngestRequest(run_id="walk", root=str(tmp / "run"), manifest=str(manifest)),
        config,
        read_image=image_reader(),
    )
    walk.out["ingest"] = run
    labeling = prepare_labeling(run, config)
    walk.out["prepare_labeling"] = labeling
    walk.out["labeling_parts"] = [labeling]
    while True:  # the ASL's MoreToLabel: every part of the selection is merged before training
        run = merge_human_labels(
            run,
            config,
            {
                "input_manifest": labeling["input_manifest"],
                "part": labeling["part"],
                "result": {"output_manifest": _label(walk, labeling, tmp, gt_fields)},
            },
        )
        if not labeling["remaining"]:
            break
        labeling = prepare_labeling(run, config)
        walk.out["labeling_parts"].append(labeling)
    walk.out["merge_human_labels"] = run
    training = prepare_training(run, config)
    walk.out["prepare_training"] = training
    metrics = [{"MetricName": "validation:mAP", "Value": 0.5}]
    trained = {**training, "result": {"model_artifacts": "s3://b/model.tar.gz", "metrics": metrics}}
    inference = prepare_inference(run, config, trained)
    walk.out["prepare_inference"] = inference
    predictions = tmp / "transform"
    _predict(inference["records"], predictions, run.ledger)
    code = PROCESSING.main(
        [
            "--records",
            inference["records"],
            "--predictions",
            str(predictions),
            "--output",
            inference["postprocess"]["output_path"],
            "--processes",
            "1",
            *inference["postprocess"]["arguments"],
        ]
    )
    assert code == 0, "the Processing job refused the arguments prepare-inference gave it"
    walk.out["postprocess"] = inference["postprocess"]["output_path"]
    run = filter_low_confidence(run, config, inference)
    walk.out["filter_low_confidence"] = run
    walk.out["report"] = json.loads(
        Path(run.paths.step(0, "report", "report.json")).read_text(encoding="utf-8")
    )
    if run.decision == "continue":
        walk.out["next_labeling"] = prepare_labeling(run.replace(iteration=1), config)
    walk.out["finalize"] = finalize(run, config)
    return walk


def _roles(walk: Walk) -> dict[str, int]:
    return walk.out["ingest"].counts["by_role"]


def _input_roles(labeling: dict[str, Any]) -> list[str]:
    with Path(labeling["input_manifest"]).open(encoding="utf-8") as lines:
        return [json.loads(x)[PROVENANCE_KEY].get("role", "pool") for x in lines]


def _final_report(walk: Walk) -> dict[str, Any]:
    return json.loads(Path(walk.out["finalize"]["report"]).read_text(encoding="utf-8"))


def _predictions(walk: Walk) -> list[dict[str, Any]]:
    path = Path(walk.out["postprocess"]) / PREDICTIONS_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _input_lines(labeling: dict[str, Any]) -> list[dict[str, Any]]:
    with Path(labeling["input_manifest"]).open(encoding="utf-8") as lines:
        return [json.loads(x) for x in lines]


def _task(walk: Walk) -> dict[str, Any]:
    return walk.out["prepare_labeling"]["task"]


@dataclass(frozen=True)
class Row:
    """One setting's walk: the value, other settings it needs, the steps that read it."""

    name: str
    value: Any
    steps: tuple[str, ...]
    effect: Callable[[Walk], object] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name


LABELING = ("prepare_labeling",)
TASK = ("prepare_labeling",)
FILTER = ("filter_low_confidence",)
CONFIDENCE = ("prepare_inference", "postprocess", "filter_low_confidence")
EVERY = (
    "ingest",
    "prepare_labeling",
    "merge_human_labels",
    "prepare_training",
    "prepare_inference",
    "postprocess",
    "filter_low_confidence",
    "finalize",
)

# fmt: off
VALID: tuple[Row, ...] = (
    # four classes: the training job's num_classes follows
    Row("labels", LabelConfig(("car", "person", "bike", "truck")), EVERY,
        lambda w: w.out["prepare_training"]["hyperparameters"]["num_classes"] == "4"),
    # the output manifest's label key
    Row("label_attribute", "bbox", EVERY,
        lambda w: "bbox" in Path(w.out["finalize"]["output_manifest"]).read_text()),
    Row("job_prefix", "My-Run-2", ("prepare_labeling", "prepare_training", "prepare_inference"),
        lambda w: w.out["prepare_labeling"]["job_name"].startswith("My-Run-2-")),
    # another hash draw: other images become validation images
    Row("seed", 7, ("ingest", "prepare_labeling"), lambda w: _roles(w)["validation"] > 0),
    Row("seed_size", 6, LABELING,
        lambda w: _input_roles(w.out["prepare_labeling"]).count("seed") == 6),
    Row("validation_fraction", 0.4, ("ingest",), lambda w: _roles(w)["validation"] > 36),
    # test images are never labeled, yet "all labeled" must still be reachable
    Row("test_fraction", 0.1, ("ingest", "finalize"),
        lambda w: w.out["finalize"]["counts"]["unlabeled_test"] == _roles(w)["test"] > 0),
    Row("batch_size", 5, LABELING,
        lambda w: w.out["next_labeling"]["count"] == 5),
    # no threshold held images back, so there is nothing to audit: accepted, nothing more
    Row("audit_share", 0.4, LABELING),
    # the open images tie on confidence: any strategy picks a batch of them
    Row("selection_strategy", "random", LABELING),
    Row("max_label_attempts", 4, ("prepare_labeling", "merge_human_labels", "finalize")),
    Row("workers_per_object", 2, TASK, lambda w: _task(w)["workers_per_object"] == 2),
    # the next round's pool images reach the labeler without the model's boxes
    Row("preannotate", "none", LABELING,
        lambda w: not any(PREANNOTATIONS_KEY in x for x in _input_lines(w.out["next_labeling"]))),
    Row("task_title", "Box every car (ünïcode too)", TASK,
        lambda w: _task(w)["title"] == "Box every car (ünïcode too)"),
    Row("task_description", "d" * 255, TASK, lambda w: _task(w)["description"] == "d" * 255),
    Row("task_time_limit_s", 28_800, TASK, lambda w: _task(w)["time_limit_s"] == 28_800),
    Row("task_availability_s", 60, TASK, lambda w: _task(w)["availability_s"] == 60),
    Row("max_concurrent_tasks", 5000, TASK, lambda w: _task(w)["max_concurrent_tasks"] == 5000),
    # the seed round's selection goes in several jobs of at most 10 images
    Row("max_objects_per_labeling_job", 10, LABELING,
        lambda w: len(w.out["labeling_parts"]) > 1
        and all(p["count"] <= 10 for p in w.out["labeling_parts"])),
    # the metric alone brings its own target
    Row("target_metric", "mean_iou", FILTER,
        lambda w: w.out["report"]["calibration"]["target"] == 0.6),
    Row("target_value", 1.0, FILTER, lambda w: w.out["report"]["calibration"]["target"] == 1.0),
    Row("confidence_level", None, FILTER),
    Row("min_validation", 1, ("prepare_labeling", "filter_low_confidence")),
    # more than the validation set holds: no threshold is trusted
    Row("min_accepted", 1000, FILTER,
        lambda w: w.out["report"]["calibration"]["threshold"] is None),
    Row("fixed_threshold", 0.99, FILTER,
        lambda w: w.out["report"]["calibration"]["applied_threshold"] == 0.99),
    # a later model will be trained: nothing is auto-labeled yet
    Row("defer_auto_labels", True, FILTER,
        lambda w: w.out["filter_low_confidence"].counts["auto"] == 0),
    # iteration 0 trains the last model of max_iterations 1: twice the epochs
    Row("last_model_epochs_factor", 2.0, ("prepare_training",),
        lambda w: w.out["prepare_training"]["hyperparameters"]["epochs"] == "60",
        extra={"max_iterations": 1}),
    Row("aggregator", "ambiguity", CONFIDENCE,
        lambda w: "ambiguity" in w.out["prepare_inference"]["postprocess"]["arguments"]),
    Row("score_floor", 0.0, CONFIDENCE,
        lambda w: w.out["prepare_inference"]["postprocess"]["arguments"][1] == "0.0"),
    # every box the walk predicts (0.95 and 0.45) is below 1.0: nothing is kept
    Row("keep_threshold", 1.0, CONFIDENCE, lambda w: not any(p["kept"] for p in _predictions(w))),
    # the model's mAP (0.5) is below the floor: the gate fails and nothing is auto-labeled
    Row("quality_gate_map", 0.9, ("prepare_inference", "filter_low_confidence"),
        lambda w: not w.out["prepare_inference"]["gate"]["passed"]
        and w.out["filter_low_confidence"].counts["auto"] == 0),
    # a metric the training job did not report: the gate cannot pass a floor on it
    Row("quality_gate_metric", "validation:loss", ("prepare_inference",),
        lambda w: w.out["prepare_inference"]["gate"]["value"] is None),
    Row("max_iterations", 1, ("prepare_labeling", "prepare_training", "filter_low_confidence"),
        lambda w: "max_iterations (1)" in w.out["filter_low_confidence"].stop_reason),
    # the last iteration (1 of 2) sends every open image to humans
    Row("finish_with_humans", True, LABELING,
        lambda w: w.out["next_labeling"]["count"]
        == w.out["filter_low_confidence"].counts["unlabeled_pool"],
        extra={"max_iterations": 2}),
    # 34 validation images and 2 of the 4 seed images use it up
    Row("human_label_budget", 36, ("prepare_labeling", "filter_low_confidence"),
        lambda w: w.out["prepare_labeling"]["count"] == 36
        and "human_label_budget (36) used" in w.out["filter_low_confidence"].stop_reason),
    Row("cost_cap_usd", 1.0, FILTER,
        lambda w: "cost_cap_usd" in w.out["filter_low_confidence"].stop_reason),
    Row("patience", 5, FILTER),
    Row("hyperparameters", {"epochs": "7", "mini_batch_size": "8"}, ("prepare_training",),
        lambda w: w.out["prepare_training"]["hyperparameters"]["epochs"] == "7"),
    Row("initial_model_uri", "s3://models/start/model.tar.gz", ("prepare_training",),
        lambda w: w.out["prepare_training"]["warm_start"] == "s3://models/start/model.tar.gz"),
    Row("price_per_human_label_usd", 1.0, ("filter_low_confidence", "finalize"),
        lambda w: _final_report(w)["all_human_cost"] != _final_report(w)["cost"]),
    Row("price_per_auto_label_usd", 0.0, ("filter_low_confidence", "finalize")),
)
# fmt: on

BASE: dict[str, Any] = {
    "labels": LabelConfig(("car", "person", "bike")),
    "seed_size": 4,
    "batch_size": 3,
    "validation_fraction": 0.25,
    "min_validation": 20,
    "min_accepted": 10,
    "audit_share": 0.0,
    # one iteration shows auto-labels only when they are not deferred to a later model
    "defer_auto_labels": False,
    "finish_with_humans": False,
}
"""The walk's config before a row's setting: small batches, calibration possible at once."""


def test_valid_table_covers_every_loop_config_field() -> None:
    names = [f.name for f in dataclasses.fields(LoopConfig)]
    assert [row.name for row in VALID] == names, "add a row for the new setting (in field order)"


@pytest.mark.parametrize("row", VALID, ids=str)
def test_every_setting_walks_through_every_step_that_reads_it(
    row: Row, tmp_path, image_reader, gt_fields
) -> None:
    # GIVEN a config with the row's value (not the walk's own)
    assert row.value != getattr(LoopConfig(**BASE), row.name)
    config = LoopConfig(**{**BASE, **row.extra, row.name: row.value})
    # WHEN one iteration of the loop runs with it
    walk = walk_loop(config, tmp_path, image_reader, gt_fields)
    # THEN every step that reads it ran, and it had its effect
    assert set(row.steps) <= set(walk.out)
    if row.effect is not None:
        assert row.effect(walk)


def _command_line_text(value: Any) -> str:
    """``value`` as a user types it after ``-c key=`` (every CDK context value is text)."""
    if isinstance(value, LabelConfig):
        return ",".join(value.class_names)
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _as_json(value: Any) -> Any:
    """``value`` as an execution input's JSON carries it."""
    return list(value.class_names) if isinstance(value, LabelConfig) else value


@pytest.mark.parametrize("row", VALID, ids=str)
def test_every_setting_reaches_the_loop_from_cdk_context_and_from_run_overrides(row: Row) -> None:
    # GIVEN the row's value as `cdk deploy -c key=value` text and as an execution's overrides
    declared = {s.name: s for s in SETTINGS}
    values = {row.name: row.value, **row.extra}
    context = {declared[k].context_key: _command_line_text(v) for k, v in values.items()}
    overrides = json.loads(json.dumps({k: _as_json(v) for k, v in values.items()}))
    # WHEN the stack reads its context, and a run applies its overrides to the stack's config
    reader = ContextReader({**DEFAULT_CONTEXT, **context})
    from_context = reader.loop_config()
    from_run = LoopConfig(labels=BASE["labels"]).with_overrides(overrides)
    # THEN both hold the value the walk gives the steps
    assert reader.problems == []
    for config in (from_context, from_run):
        value = getattr(config, row.name)
        if row.name == "hyperparameters":  # merged over the defaults, name by name
            assert value == {**DEFAULT_HYPERPARAMETERS, **row.value}
        else:
            assert value == row.value


INVALID: dict[str, Any] = {
    "labels": ["car"],  # names, not a LabelConfig (from_dict builds that)
    "label_attribute": "boxes-metadata",
    "job_prefix": "-boxloop",
    "seed": -1,
    "seed_size": 1.5,
    "validation_fraction": 0.95,
    "test_fraction": 0.6,
    "batch_size": 0,
    "audit_share": 1.5,
    "selection_strategy": "entropy",
    "max_label_attempts": 0,
    "workers_per_object": 10,
    "preannotate": "sometimes",
    "task_title": "t" * 129,
    "task_description": "two\nlines",
    "task_time_limit_s": 29,
    "task_availability_s": 864_001,
    "max_concurrent_tasks": 5001,
    "max_objects_per_labeling_job": 100_001,
    "target_metric": "f1",
    "target_value": 0,
    "confidence_level": 1.0,
    "min_validation": 0,
    "min_accepted": 1.5,
    "fixed_threshold": 1.5,
    "defer_auto_labels": "false",
    "last_model_epochs_factor": 0.5,
    "aggregator": "max",
    "score_floor": -0.1,
    "keep_threshold": 0,
    "quality_gate_map": 2.0,
    "quality_gate_metric": "",
    "max_iterations": 0,
    "finish_with_humans": None,
    "human_label_budget": -1,
    "cost_cap_usd": float("inf"),
    "patience": 2.5,
    "hyperparameters": {"num_classes": "3"},
    "initial_model_uri": "model.tar.gz",
    "price_per_human_label_usd": -0.26,
    "price_per_auto_label_usd": "cheap",
}


def test_invalid_table_covers_every_loop_config_field() -> None:
    assert list(INVALID) == [f.name for f in dataclasses.fields(LoopConfig)]


@pytest.mark.parametrize("name", list(INVALID))
def test_each_invalid_value_is_refused_at_loop_config_naming_the_setting(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        LoopConfig(**{**BASE, name: INVALID[name]})
    assert [p.split(" ", 1)[0].split("[")[0].rstrip(":") for p in caught.value.problems] == [name]


def test_every_invalid_value_is_reported_at_once() -> None:
    # GIVEN every setting wrong at the same time WHEN the config is built
    with pytest.raises(ConfigError) as caught:
        LoopConfig(**INVALID)
    # THEN one error names each of them, in field order
    named = [p.split(" ", 1)[0] for p in caught.value.problems]
    assert named == list(INVALID)


@pytest.mark.parametrize(
    ("settings", "problems"),
    [
        # the three the issue names, together
        (
            {"target_value": 0, "min_accepted": 1.5, "keep_threshold": 0.04},
            ["target_value", "min_accepted", "keep_threshold must be >= score_floor"],
        ),
        # each share valid alone, no pool left together
        ({"validation_fraction": 0.6, "test_fraction": 0.4}, ["validation_fraction + test"]),
    ],
)
def test_settings_valid_alone_are_refused_together(settings: dict, problems: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        LoopConfig(**{**BASE, **settings})
    assert len(caught.value.problems) == len(problems)
    for problem, start in zip(caught.value.problems, problems, strict=True):
        assert problem.startswith(start)


def test_walk_with_pre_annotations_on_gives_pool_images_the_model_boxes(
    tmp_path, image_reader, gt_fields
) -> None:
    # the preannotate row's effect ("none": no line has them) is only worth something if the
    # walk's own value ("pool") does put them there
    walk = walk_loop(LoopConfig(**BASE), tmp_path, image_reader, gt_fields)
    assert any(PREANNOTATIONS_KEY in x for x in _input_lines(walk.out["next_labeling"]))
