"""The synthesized state machine, run end to end on moto: the happy path.

The definition is the one ``cdk synth`` writes (DefinitionString + DefinitionSubstitutions,
resolved), the Lambdas are ``lambdas/<folder>/app.py`` with the template's environment, the
labeling job is the local Ground Truth runner with a simulated workforce and post-processing is
the real processing script; training and transform are stand-ins (``e2e_runners``) whose model
is right and sure on half of the images and wrong and unsure on the other half.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest
from e2e_harness import ATTR
from e2e_runners import is_unsure, read_json, read_manifest

from boxloop.cli import main
from boxloop.core.formats.groundtruth import METADATA_SUFFIX

if TYPE_CHECKING:
    from e2e_harness import E2ERun, WorkflowHarness

MAX_STATE_BYTES = 8 * 1024
PIXEL_TOLERANCE = 0.5


@pytest.fixture(scope="module")
def happy_run(harness: WorkflowHarness) -> E2ERun:
    return harness.run("happy")


def _key(source_ref: str) -> str:
    return source_ref.split("/", 3)[3]


def _snake_case(state: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", state).lower()


def _metadata(line: dict[str, Any]) -> dict[str, Any]:
    return line[ATTR + METADATA_SUFFIX]


def test_workflow_routes_each_lambda_state_to_its_folder_when_synthesized(
    harness: WorkflowHarness,
) -> None:
    # GIVEN the definition resolved from the synthesized template
    states = json.loads(harness.workflow.definition)["States"]
    # WHEN each Lambda task's function ARN is traced back to the function's own folder
    routed = {
        name: harness.workflow.functions[state["Resource"].split(":function:", 1)[1]]
        for name, state in states.items()
        if ":function:" in state.get("Resource", "")
    }
    # THEN every one of the seven step functions serves the state named after its folder, and
    # CheckImages (ingest's later passes of image checks) is the Ingest function again
    assert routed == {name: _snake_case(name) for name in routed} | {"CheckImages": "ingest"}
    assert sorted(set(routed.values())) == sorted(harness.workflow.functions.values())
    assert len(routed) == 8


def test_workflow_succeeds_over_several_iterations_when_run_from_the_synthesized_template(
    happy_run: E2ERun,
) -> None:
    # GIVEN the synthesized stack's state machine and 36 images, half of them hard for the model
    # WHEN one execution runs
    result = happy_run.result
    # THEN it succeeds after more than one round of human labeling and training
    assert result.status == "SUCCEEDED", f"{result.error}: {result.cause}"
    assert result.visited_states[0] == "Ingest"
    assert result.visited_states[-2:] == ("NotifySuccess", "Done")
    assert happy_run.entered("PrepareLabeling") >= 2
    assert happy_run.entered("Train") >= 2
    assert "NotifyFailure" not in result.visited_states
    assert result.task_errors == ()


def test_workflow_trains_with_a_valid_request_each_iteration_when_it_loops(
    happy_run: E2ERun,
) -> None:
    # GIVEN the stand-in training job, which checks every request against the algorithm's rules
    training = happy_run.training
    # WHEN the loop trains once per iteration
    # THEN no request broke a rule, later iterations warm-start, and each transform used the
    # model the same iteration trained (CreateModel wired to the training artifact)
    assert training.problems == []
    assert len(training.requests) == happy_run.entered("Train")
    warm = [
        any(c["ChannelName"] == "model" for c in r["InputDataConfig"]) for r in training.requests
    ]
    assert warm == [False] + [True] * (len(warm) - 1)
    trained = [r["TrainingJobName"] for r in training.requests]
    assert happy_run.transform.models == trained


def test_workflow_labels_every_image_with_some_auto_labels_when_it_succeeds(
    happy_run: E2ERun,
) -> None:
    # GIVEN a finished run
    # WHEN its output manifest is read
    lines = happy_run.output_lines()
    annotated = [_metadata(line)["human-annotated"] for line in lines.values() if ATTR in line]
    # THEN every image carries a label, from humans or from the model
    assert len(lines) == 36
    assert len(annotated) == 36
    assert annotated.count("no") > 0
    assert annotated.count("yes") > 0
    assert happy_run.result.output["counts"]["unlabeled"] == 0
    assert happy_run.result.output["stop_reason"] == "all images labeled"


def test_workflow_output_keeps_every_human_label_when_it_succeeds(happy_run: E2ERun) -> None:
    # GIVEN every label the workforce returned across the run's labeling jobs
    human = happy_run.human_labels()
    lines = happy_run.output_lines()
    # WHEN they are looked up in the output manifest
    # THEN each is there unchanged, marked human-annotated, and nothing else claims to be human
    assert len(happy_run.labeling_jobs) == happy_run.entered("Label")
    assert human
    for record_id, fields in human.items():
        line = lines[record_id]
        assert line[ATTR] == fields[ATTR], record_id
        assert _metadata(line) == fields[ATTR + METADATA_SUFFIX], record_id
        assert _metadata(line)["human-annotated"] == "yes"
    human_in_output = {
        rid for rid, line in lines.items() if _metadata(line)["human-annotated"] == "yes"
    }
    assert human_in_output == set(human)


def test_workflow_auto_labels_only_confident_images_when_the_model_is_unsure_on_others(
    happy_run: E2ERun, harness: WorkflowHarness
) -> None:
    # GIVEN a model that is right at confidence 0.95 and wrong at 0.6, and a calibration target
    # (mean IoU 0.7) that only the confident images meet
    lines = happy_run.output_lines()
    auto = {rid: line for rid, line in lines.items() if _metadata(line)["human-annotated"] == "no"}
    later_jobs = happy_run.labeling_jobs[1:]
    # WHEN the loop decides what to auto-label and what to send to humans
    # THEN every auto-label is a confident image whose boxes are the model's (the reference),
    # converted from normalized coordinates back to the same pixels
    for line in auto.values():
        assert not is_unsure(_key(line["source-ref"])), line["source-ref"]
        reference = harness.reference[line["source-ref"]]
        boxes = sorted(
            (a["class_id"], a["left"], a["top"], a["width"], a["height"])
            for a in line[ATTR]["annotations"]
        )
        expected = sorted(
            (b.class_id, b.x_min, b.y_min, b.width, b.height) for b in reference.boxes
        )
        assert len(boxes) == len(expected)
        for got, want in zip(boxes, expected, strict=True):
            assert got[0] == want[0]
            assert got[1:] == pytest.approx(want[1:], abs=PIXEL_TOLERANCE)
    # AND after the seed round humans only get the images the model is unsure about, but for
    # the random audit of the auto-labels applied (confident ones, by construction)
    assert later_jobs
    for job in later_jobs:
        sent = read_manifest(job.input_manifest)
        refs = [line["source-ref"] for line in sent if not line["boxloop"].get("audit")]
        assert all(is_unsure(_key(ref)) for ref in refs), job.name


def test_workflow_calibrates_a_threshold_that_refuses_the_unsure_images_when_validating(
    happy_run: E2ERun,
) -> None:
    # GIVEN the first iteration's report
    report = read_json(f"{happy_run.root}/iter-000/report/report.json")
    calibration = report["calibration"]
    # WHEN the threshold was calibrated on the human-labeled validation images
    # THEN it sits at the confident image's confidence, above the unsure one, and met the
    # target there (the margin aggregator: (0.95 - keep_threshold 0.6) / (1 - 0.6))
    assert calibration["applied_threshold"] == pytest.approx(0.875)
    assert calibration["expected_accuracy"] >= calibration["target"] == pytest.approx(0.7)
    assert report["auto_labeled"] > 0
    assert report["decision"] == "continue"


def test_workflow_output_manifest_passes_validate_when_it_succeeds(
    happy_run: E2ERun, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the output manifest and the run's label category config, both in S3
    manifest = happy_run.result.output["output_manifest"]
    categories = f"{happy_run.root}/iter-000/labeling/label-categories.json"
    # WHEN `boxloop validate` checks it
    code = main(["validate", manifest, "--class-map", categories, "--label-attribute", ATTR])
    # THEN every line is a valid Ground Truth bounding-box line
    out = capsys.readouterr().out
    assert code == 0, out
    assert "36 lines, 36 good (36 labeled), 0 bad" in out


def test_workflow_state_payloads_stay_small_when_the_loop_runs(happy_run: E2ERun) -> None:
    # GIVEN the execution history of the whole run
    # WHEN the largest state output is measured
    size, state = happy_run.largest_state_output()
    # THEN it is far below Step Functions' 256 KiB: payloads carry URIs and counts only
    assert 0 < size < MAX_STATE_BYTES, f"{state} output is {size} bytes"


def test_workflow_publishes_the_result_when_it_succeeds(happy_run: E2ERun) -> None:
    # GIVEN the SQS queue subscribed to the stack's topic
    # WHEN the run ends
    notes = happy_run.notifications
    # THEN exactly one success notification carries the run's result
    assert [n["Subject"] for n in notes] == ["boxloop run finished"]
    assert json.loads(notes[0]["Message"]) == happy_run.result.output
