"""The local workforce: simulated annotator noise, consolidation, lookup rules, label imports."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from boxloop.core.boxes import Box, is_inside
from boxloop.core.detections import Detections
from boxloop.core.errors import ConfigError, ManifestError
from boxloop.core.formats.coco import detections_to_coco
from boxloop.core.formats.groundtruth import Label, label_to_fields, record_to_label
from boxloop.core.formats.voc import detections_to_voc
from boxloop.core.formats.yolo import detections_to_yolo
from boxloop.core.matching import match_boxes
from boxloop.local.workforce import (
    AnnotatorNoise,
    ImportWorkforce,
    JobSpec,
    LabelLookup,
    LabelTask,
    SimulatedWorkforce,
    TaskResult,
    Workforce,
    draw_worker_boxes,
)

CLASSES = ("cat", "dog", "bird")
CLASS_MAP = dict(enumerate(CLASSES))
NOW = "2024-01-02T03:04:05.000006"


def clock() -> str:
    return NOW


def random_reference(
    rng: random.Random, image_id: str, image_wh: tuple[int, int], n_boxes: int
) -> Detections:
    width, height = image_wh
    boxes = []
    for _ in range(n_boxes):
        # whole pixels, so that Ground Truth's 1e-3 px rounding keeps them exactly
        w, h = round(rng.uniform(0.08, 0.4) * width), round(rng.uniform(0.08, 0.4) * height)
        x, y = round(rng.uniform(0, width - w)), round(rng.uniform(0, height - h))
        boxes.append(Box.from_xyxy((x, y, x + w, y + h), rng.randrange(len(CLASSES))))
    return Detections(image_id, image_wh, tuple(boxes))


def make_reference(
    n_images: int, n_boxes: int = 5, image_wh: tuple[int, int] = (640, 400), seed: int = 7
) -> dict[str, Detections]:
    rng = random.Random(seed)
    return {
        f"s3://data/images/img_{i:04d}.jpg": random_reference(rng, f"img_{i}", image_wh, n_boxes)
        for i in range(n_images)
    }


def make_tasks(
    source_refs, *, workers: int = 1, job: str = "job-1", image_wh: tuple[int, int] | None = None
) -> list[LabelTask]:
    spec = JobSpec(name=job, workers_per_object=workers, class_map=CLASS_MAP)
    return [
        LabelTask(
            record_id=f"rec{i:04d}",
            source_ref=ref,
            image_path=Path("unused.jpg"),
            image_wh=image_wh,
            job=spec,
        )
        for i, ref in enumerate(source_refs)
    ]


def label_all(workforce: Workforce, tasks: list[LabelTask]) -> dict[str, TaskResult]:
    return {result.record_id: result for result in workforce.label(tasks)}


def quality(
    reference: dict[str, Detections], tasks: list[LabelTask], results: dict[str, TaskResult]
) -> tuple[float, float, float]:
    """Mean IoU of matched boxes, missed share of reference boxes, extra boxes per image."""
    ious: list[float] = []
    missed = extra = total = 0
    for task in tasks:
        label = results[task.record_id].label
        assert label is not None
        truth = reference[task.source_ref].boxes
        matching = match_boxes(label.detections.boxes, truth, class_aware=False)
        ious.extend(pair.iou for pair in matching.pairs)
        missed += len(matching.unmatched_reference)
        extra += len(matching.unmatched_predicted)
        total += len(truth)
    return sum(ious) / len(ious), missed / total, extra / len(tasks)


# --- annotator noise ----------------------------------------------------------------------


def test_simulated_workforce_noise_matches_human_agreement_at_defaults():
    reference = make_reference(300)
    tasks = make_tasks(reference)
    results = label_all(SimulatedWorkforce(reference, clock=clock), tasks)
    mean_iou, missed, extra = quality(reference, tasks, results)
    assert 0.85 <= mean_iou <= 0.95
    assert 0.01 <= missed <= 0.045  # configured 0.025 over 1,500 boxes
    assert extra <= 0.04  # configured 0.015 per image


@pytest.mark.parametrize(
    "noise",
    [
        AnnotatorNoise(box_jitter=0.0),  # the default rates, measured exactly (no jitter)
        AnnotatorNoise(
            box_jitter=0.0, miss_rate=0.2, extra_rate=0.3, class_confusion_rate=0.1
        ),  # high rates, far from the defaults
    ],
)
def test_draw_worker_boxes_rates_are_near_configured(noise):
    reference = make_reference(1500, n_boxes=4, seed=3)
    missed = extra = confused = kept = 0
    for index, truth in enumerate(reference.values()):
        drawn = draw_worker_boxes(truth, noise, random.Random(f"w{index}"), class_ids=range(3))
        truth_xyxy = [b.xyxy for b in truth.boxes]
        drawn_xyxy = [b.xyxy for b in drawn.boxes]
        missed += sum(xyxy not in drawn_xyxy for xyxy in truth_xyxy)
        extra += sum(xyxy not in truth_xyxy for xyxy in drawn_xyxy)
        for box in drawn.boxes:
            if box.xyxy in truth_xyxy:
                kept += 1
                confused += box.class_id != truth.boxes[truth_xyxy.index(box.xyxy)].class_id
    for measured, rate, n in (
        (missed / 6000, noise.miss_rate, 6000),
        (extra / 1500, noise.extra_rate, 1500),
        (confused / kept, noise.class_confusion_rate, kept),
    ):
        four_sigma = 4 * math.sqrt(rate * (1 - rate) / n)  # binomial spread of the estimate
        assert measured == pytest.approx(rate, abs=four_sigma + 1e-3)


def test_draw_worker_boxes_keeps_every_box_inside_a_non_square_image():
    image_wh = (900, 120)
    edge = Box.from_xyxy((850, 0, 900, 120), 0)  # touches the right, top and bottom edges
    tiny = Box.from_xyxy((10, 10, 10.4, 10.3), 1)  # under a pixel: widened to one
    truth = Detections("wide", image_wh, (edge, tiny))
    noise = AnnotatorNoise(box_jitter=0.2, miss_rate=0.0, extra_rate=1.0)
    for seed in range(200):
        drawn = draw_worker_boxes(truth, noise, random.Random(seed), range(3))
        assert drawn.image_wh == image_wh
        for box in drawn.boxes:
            assert is_inside(box, image_wh, tolerance_px=0.0)
            assert box.width >= 1.0 and box.height >= 1.0
            assert box.score is None


def test_annotator_noise_lists_every_bad_rate():
    with pytest.raises(ConfigError) as info:
        AnnotatorNoise(
            box_jitter=-0.1, miss_rate=2, extra_rate=float("nan"), class_confusion_rate=True
        )
    assert len(info.value.problems) == 4


# --- the simulated crowd ------------------------------------------------------------------


def test_simulated_workforce_is_deterministic_per_seed_record_and_worker():
    reference = make_reference(40)
    tasks = make_tasks(reference, workers=3)
    first = label_all(SimulatedWorkforce(reference, seed=1, clock=clock), tasks)
    again = label_all(SimulatedWorkforce(reference, seed=1, clock=clock), tasks[::-1])
    split = label_all(SimulatedWorkforce(reference, seed=1, clock=clock), tasks[:7])
    other = label_all(SimulatedWorkforce(reference, seed=2, clock=clock), tasks)
    assert first == again  # order of tasks does not matter
    assert all(split[rid] == first[rid] for rid in split)  # nor the batch a task comes in
    assert any(other[rid] != first[rid] for rid in first)


def test_simulated_workforce_consolidation_of_more_workers_reduces_noise():
    reference = make_reference(150)
    quality_by_workers = {}
    for workers in (1, 3, 5):
        tasks = make_tasks(reference, workers=workers)
        results = label_all(SimulatedWorkforce(reference, clock=clock), tasks)
        assert all(r.n_workers == workers for r in results.values())
        quality_by_workers[workers] = quality(reference, tasks, results)
    (iou1, miss1, extra1), (iou3, miss3, extra3), (iou5, _, _) = quality_by_workers.values()
    assert iou1 + 0.03 < iou3 < iou5
    assert miss3 < miss1 / 3
    assert extra3 <= extra1 and extra3 == 0.0  # a stray box never wins a majority


def test_simulated_workforce_label_is_a_ground_truth_human_label():
    reference = make_reference(1, n_boxes=3)
    [task] = make_tasks(reference, workers=2, job="iter-3-label")
    [result] = SimulatedWorkforce(reference, noise=AnnotatorNoise.none(), clock=clock).label([task])
    label = result.label
    assert label.human_annotated and label.job_name == "labeling-job/iter-3-label"
    assert label.creation_date == NOW and label.class_map == CLASS_MAP
    assert label.detections.image_id == task.record_id
    assert label.detections.boxes == reference[task.source_ref].boxes  # scores None
    assert label.confidences == (1.0, 1.0, 1.0)  # two workers in perfect agreement
    parsed = record_to_label(label_to_fields(label, "boxes"), "boxes", image_id=task.record_id)
    assert (parsed.detections, parsed.confidences) == (label.detections, label.confidences)


@pytest.mark.parametrize(
    ("n_boxes", "workers"),
    [
        (0, 1),  # an empty image stays empty: no box to draw, no stray box kept by one worker
        (0, 3),  # the same with consolidation
        (20, 1),  # a crowded image
        (20, 5),  # a crowded image, five workers
    ],
)
def test_simulated_workforce_handles_empty_and_crowded_images(n_boxes, workers):
    reference = make_reference(1, n_boxes=n_boxes, image_wh=(333, 517))
    noise = AnnotatorNoise(extra_rate=0.0, miss_rate=0.0)
    [task] = make_tasks(reference, workers=workers)
    [result] = SimulatedWorkforce(reference, noise=noise, clock=clock).label([task])
    assert len(result.label.detections.boxes) == n_boxes
    assert result.worker_seconds == 35.0 * n_boxes * workers
    fields = label_to_fields(result.label, "boxes")
    assert fields["boxes"]["image_size"] == [{"width": 333, "height": 517, "depth": 3}]
    assert record_to_label(fields, "boxes", image_id="x") is not None


def test_simulated_workforce_fails_tasks_at_the_failure_rate_independently_per_job():
    reference = make_reference(400, n_boxes=1)
    workforce = SimulatedWorkforce(reference, failure_rate=0.3, clock=clock)
    first = label_all(workforce, make_tasks(reference, job="job-a"))
    retry = label_all(workforce, make_tasks(reference, job="job-b"))
    failed_first = {rid for rid, r in first.items() if r.label is None}
    failed_retry = {rid for rid, r in retry.items() if r.label is None}
    assert 0.25 <= len(failed_first) / 400 <= 0.35
    assert all("expired" in first[rid].failure_reason for rid in failed_first)
    assert all(first[rid].worker_seconds == 0.0 for rid in failed_first)
    assert len(failed_first & failed_retry) < len(failed_first) / 2  # a retry can succeed


def test_simulated_workforce_names_an_image_without_reference():
    reference = make_reference(2)
    tasks = make_tasks([*reference, "s3://data/images/unknown.jpg"])
    with pytest.raises(
        ConfigError, match=r"no reference label for 's3://data/images/unknown\.jpg'"
    ):
        list(SimulatedWorkforce(reference).label(tasks))


def test_simulated_workforce_refuses_a_reference_for_another_image_size():
    reference = make_reference(1, image_wh=(640, 400))
    tasks = make_tasks(reference, image_wh=(400, 640))  # the width/height swap
    with pytest.raises(ConfigError, match=r"640x400 image, but .* is 400x640"):
        list(SimulatedWorkforce(reference).label(tasks))


def test_simulated_workforce_reads_its_reference_from_a_groundtruth_manifest(tmp_path):
    reference = make_reference(3, n_boxes=2)
    manifest = tmp_path / "reference.manifest"
    lines = []
    for ref, truth in reference.items():
        label = Label(
            detections=truth,
            confidences=(0.0,) * len(truth.boxes),
            class_map=CLASS_MAP,
            human_annotated=True,
            job_name="j",
            creation_date=NOW,
        )
        lines.append(json.dumps({"source-ref": ref, **label_to_fields(label, "truth")}))
    manifest.write_text("\n".join(lines) + "\n")
    workforce = SimulatedWorkforce.from_groundtruth(str(manifest), noise=AnnotatorNoise.none())
    results = label_all(workforce, make_tasks(reference))
    assert [r.label.detections.boxes for r in results.values()] == [
        tuple(b.with_score(None) for b in truth.boxes) for truth in reference.values()
    ]


def test_simulated_workforce_lists_every_bad_argument():
    with pytest.raises(ConfigError) as info:
        SimulatedWorkforce({}, failure_rate=1.5, workers_per_object=0, seconds_per_box=-1)
    assert len(info.value.problems) == 3


# --- lookup rule --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "source_ref", "expected"),
    [
        (["s3://b/run/img.jpg"], "s3://b/run/img.jpg", "s3://b/run/img.jpg"),  # exact source-ref
        (["run/img.jpg"], "s3://b/run/img.jpg", "run/img.jpg"),  # relative path (COCO)
        (["img.jpg"], "s3://b/run/img.jpg", "img.jpg"),  # bare file name (VOC)
        (["img.jpg", "run/img.jpg"], "s3://b/run/img.jpg", "run/img.jpg"),  # longest wins
        (
            ["a/img.jpg", "s3://b/run/img.jpg"],
            "s3://b/run/img.jpg",
            "s3://b/run/img.jpg",
        ),  # exact beats a shorter suffix
        (["other/img.jpg"], "s3://b/run/img.jpg", None),  # a different folder is no match
        (["g.jpg"], "s3://b/run/img.jpg", None),  # a name suffix is not a segment suffix
        ([".\\run\\img.jpg"], "s3://b/run/img.jpg", ".\\run\\img.jpg"),  # Windows separators
        (["/data/run/img.jpg"], "/data/run/img.jpg", "/data/run/img.jpg"),  # local path
    ],
)
def test_label_lookup_matches_by_longest_path_suffix(keys, source_ref, expected):
    lookup = LabelLookup(((key, key) for key in keys), source="labels")
    match = lookup.find(source_ref)
    assert (match[0] if match else None) == expected


@pytest.mark.parametrize(
    ("keys", "source_refs"),
    [
        (["run/img.jpg", "./run//img.jpg"], ["s3://b/run/img.jpg"]),  # one path spelt twice
        (["img.jpg", "img.jpg"], ["s3://b/img.jpg"]),  # the same key twice
        (["img.jpg"], ["s3://b/x/img.jpg", "s3://b/y/img.jpg"]),  # one key for two images
    ],
)
def test_label_lookup_refuses_ambiguous_matches(keys, source_refs):
    lookup = LabelLookup(((key, key) for key in keys), source="labels")
    with pytest.raises(ConfigError, match="labels: "):
        lookup.find_all(source_refs)


def test_label_lookup_strips_the_image_extension_for_yolo_names():
    lookup = LabelLookup([("train/img.v2", 1)], source="labels", strip_extension=True)
    assert lookup.find("s3://b/images/train/img.v2.jpg") == ("train/img.v2", 1)
    assert lookup.find("s3://b/images/train/img.jpg") is None


# --- imported labels ----------------------------------------------------------------------

IMAGE_WH = (320, 200)
IMPORTED = Detections(
    "cat.jpg",
    IMAGE_WH,
    (
        Box.from_xyxy((10, 20, 110, 120), 0),
        Box.from_xyxy((200, 0, 320, 64), 2),  # on the right and top edges
    ),
)
IMPORT_REFS = ["s3://data/run/cat.jpg", "s3://data/run/none.jpg"]


def write_coco(tmp_path: Path) -> str:
    # COCO numbers classes its own way: 7 = bird, 3 = cat (names decide, not ids)
    shifted = IMPORTED.with_boxes(
        Box.from_xyxy(b.xyxy, {0: 3, 2: 7}[b.class_id]) for b in IMPORTED.boxes
    )
    dataset = detections_to_coco([("run/cat.jpg", shifted)], {3: "cat", 7: "bird"})
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(dataset))
    return str(path)


def write_voc(tmp_path: Path) -> Path:
    folder = tmp_path / "Annotations"
    folder.mkdir()
    (folder / "cat.xml").write_text(detections_to_voc(IMPORTED, CLASS_MAP, file_name="cat.jpg"))
    return folder


def write_groundtruth(tmp_path: Path) -> str:
    label = Label(
        detections=IMPORTED,
        confidences=(0.5, 0.25),
        class_map=CLASS_MAP,
        human_annotated=True,
        job_name="elsewhere",
        creation_date=NOW,
    )
    path = tmp_path / "labels.manifest"
    path.write_text(
        json.dumps({"source-ref": IMPORT_REFS[0], **label_to_fields(label, "b")})
        + "\n"
        + json.dumps({"source-ref": "s3://data/run/unlabeled.jpg"})
        + "\n"
    )
    return str(path)


def write_yolo(tmp_path: Path) -> Path:
    folder = tmp_path / "labels"
    folder.mkdir()
    # classes.txt in another order than the job: YOLO 0 = bird, 1 = cat
    (folder / "classes.txt").write_text("bird\ncat\n")
    swapped = IMPORTED.with_boxes(
        Box.from_xyxy(b.xyxy, {0: 1, 2: 0}[b.class_id]) for b in IMPORTED.boxes
    )
    (folder / "cat.txt").write_text(detections_to_yolo(swapped))
    return folder


IMPORTERS = {
    "coco": lambda tmp: ImportWorkforce.from_coco(write_coco(tmp), class_names=CLASSES),
    "voc": lambda tmp: ImportWorkforce.from_voc(write_voc(tmp), class_names=CLASSES),
    "groundtruth": lambda tmp: ImportWorkforce.from_groundtruth(
        write_groundtruth(tmp), class_names=CLASSES
    ),
    "yolo": lambda tmp: ImportWorkforce.from_yolo(write_yolo(tmp), class_names=CLASSES),
}


@pytest.mark.parametrize("kind", list(IMPORTERS))  # every format, one label each
def test_import_workforce_serves_labels_in_job_class_ids(kind, tmp_path):
    workforce = IMPORTERS[kind](tmp_path)
    assert workforce.name == f"import:{kind}"
    tasks = make_tasks(IMPORT_REFS, image_wh=IMAGE_WH)
    results = label_all(workforce, tasks)
    label = results[tasks[0].record_id].label
    assert label.human_annotated and label.job_name == "labeling-job/job-1"
    assert label.detections.image_id == tasks[0].record_id
    assert [b.class_id for b in label.detections.boxes] == [0, 2]
    for got, want in zip(label.detections.boxes, IMPORTED.boxes, strict=True):
        assert got.xyxy == pytest.approx(want.xyxy, abs=1e-6)
        assert got.score is None
    assert label.confidences == (0.0, 0.0)
    missing = results[tasks[1].record_id]
    assert missing.label is None and "no imported label for s3://data/run/none.jpg" in (
        missing.failure_reason
    )


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("coco", ConfigError),  # category 'cat' is unknown to a job of other classes
        ("voc", ManifestError),  # object name 'cat' is unknown
        ("groundtruth", ConfigError),  # class-map name 'cat' is unknown
        ("yolo", ConfigError),  # classes.txt name 'bird' is unknown
    ],
)
def test_import_workforce_refuses_class_names_the_job_lacks(kind, error, tmp_path):
    other = ("car", "truck", "bus")
    loaders = {
        "coco": lambda: ImportWorkforce.from_coco(write_coco(tmp_path), class_names=other),
        "voc": lambda: ImportWorkforce.from_voc(write_voc(tmp_path), class_names=other),
        "groundtruth": lambda: ImportWorkforce.from_groundtruth(
            write_groundtruth(tmp_path), class_names=other
        ),
        "yolo": lambda: ImportWorkforce.from_yolo(write_yolo(tmp_path), class_names=other),
    }
    with pytest.raises(error, match=r"cat|bird"):
        loaders[kind]()


def test_import_workforce_fails_a_yolo_task_without_image_size(tmp_path):
    workforce = ImportWorkforce.from_yolo(write_yolo(tmp_path), class_names=CLASSES)
    [result] = workforce.label(make_tasks(IMPORT_REFS[:1], image_wh=None))
    assert result.label is None and "needs the image size" in result.failure_reason


def test_import_workforce_refuses_an_empty_folder(tmp_path):
    with pytest.raises(ConfigError, match="no Pascal VOC"):
        ImportWorkforce.from_voc(tmp_path, class_names=CLASSES)
    with pytest.raises(ConfigError, match="no YOLO"):
        ImportWorkforce.from_yolo(tmp_path, class_names=CLASSES)


def test_workforces_satisfy_the_protocol(tmp_path):
    assert isinstance(SimulatedWorkforce({}), Workforce)
    assert isinstance(IMPORTERS["voc"](tmp_path), Workforce)
