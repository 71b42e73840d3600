from __future__ import annotations

import contextlib
import io
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval, Params

from boxloop.core.boxes import Box
from boxloop.core.detections import Detections
from boxloop.core.metrics import (
    COCO_IOU_THRESHOLDS,
    COCO_RECALL_THRESHOLDS,
    MeanAveragePrecision,
    MeanIoU,
    exact_match_accuracy,
    image_mean_iou,
    is_exact_match,
    mean_average_precision,
    mean_iou,
)

WH = (640, 480)


def box(x0: float, y0: float, x1: float, y1: float, c: int = 0, s: float | None = None) -> Box:
    return Box(x_min=x0, y_min=y0, x_max=x1, y_max=y1, class_id=c, score=s)


def dets(*boxes: Box, image_id: str = "img", wh: tuple[int, int] = WH) -> Detections:
    return Detections(image_id=image_id, image_wh=wh, boxes=boxes)


# ---------------------------------------------------------------- pycocotools reference


def cocoeval_stats(pairs: list[tuple[Detections, Detections]]) -> tuple[float, float]:
    """COCOeval bbox stats[0], stats[1]; image ids follow the order of ``pairs``."""
    images, annotations, results, class_ids = [], [], [], set()
    for image_index, (predicted, reference) in enumerate(pairs, start=1):
        width, height = reference.image_wh
        images.append({"id": image_index, "width": width, "height": height,
                       "file_name": f"{image_index}.jpg"})
        for b in reference.boxes:
            class_ids.add(b.class_id)
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_index, "category_id": b.class_id,
                "bbox": [b.x_min, b.y_min, b.width, b.height], "area": b.area, "iscrowd": 0,
            })
        for b in predicted.boxes:
            class_ids.add(b.class_id)
            results.append({"image_id": image_index, "category_id": b.class_id,
                            "bbox": [b.x_min, b.y_min, b.width, b.height], "score": b.score})
    categories = [{"id": c, "name": f"c{c}"} for c in sorted(class_ids)]
    gt, dt = COCO(), COCO()
    gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        if results:
            dt = gt.loadRes(results)
        else:  # loadRes indexes results[0]; an empty result set is this
            dt.dataset = {"images": images, "annotations": [], "categories": categories}
            dt.createIndex()
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0]), float(evaluator.stats[1])


def random_pairs(seed: int, *, integer: bool) -> list[tuple[Detections, Detections]]:
    """Images of several sizes with 0, 1, 20 or a few boxes; jittered, missed and extra predictions.

    ``integer`` snaps coordinates and scores to coarse grids so IoU and score ties happen.
    """
    rng = random.Random(seed)
    classes = [3, 7, 42, 1000]  # non-contiguous ids
    pairs = []
    for index in range(rng.randint(6, 10)):
        wh = rng.choice([(640, 480), (300, 900), (1000, 200), (64, 64)])
        n_ref = rng.choice([0, 1, 20, rng.randint(2, 6)])
        refs = []
        for _ in range(n_ref):
            w, h = rng.uniform(2, wh[0] / 3), rng.uniform(2, wh[1] / 3)
            x, y = rng.uniform(0, wh[0] - w), rng.uniform(0, wh[1] - h)
            if integer:
                x, y, w, h = round(x), round(y), max(1, round(w)), max(1, round(h))
            refs.append(box(x, y, x + w, y + h, rng.choice(classes)))
        preds = []
        for ref in refs:
            if rng.random() < 0.2:
                continue  # missed
            jitter = 0 if rng.random() < 0.2 else rng.uniform(0, 0.3)
            dx = jitter * ref.width * rng.uniform(-1, 1)
            dy = jitter * ref.height * rng.uniform(-1, 1)
            if integer:
                dx, dy = round(dx), round(dy)
            cls = ref.class_id if rng.random() < 0.9 else rng.choice(classes)
            score = round(rng.random(), 1) if integer else rng.random()
            preds.append(box(ref.x_min + dx, ref.y_min + dy, ref.x_max + dx, ref.y_max + dy,
                             cls, score))
            if rng.random() < 0.1:  # duplicate of a true positive
                preds.append(preds[-1].with_score(score * 0.5))
        for _ in range(rng.choice([0, 0, 1, 3])):  # background false positives
            x, y = rng.uniform(0, wh[0] / 2), rng.uniform(0, wh[1] / 2)
            if integer:
                x, y = round(x), round(y)
            preds.append(box(x, y, x + wh[0] / 4, y + wh[1] / 4, rng.choice(classes),
                             round(rng.random(), 1) if integer else rng.random()))
        if index == 0:
            preds = []  # an image without predictions
        rng.shuffle(preds)
        pairs.append((dets(*preds, image_id=str(index), wh=wh),
                      dets(*refs, image_id=str(index), wh=wh)))
    return pairs


def assert_same_as_cocoeval(pairs: list[tuple[Detections, Detections]]) -> None:
    expected_map50_95, expected_map50 = cocoeval_stats(pairs)
    result = mean_average_precision(pairs)
    if expected_map50_95 == -1:
        assert result.map50_95 is None
        assert result.map50 is None
    else:
        assert result.map50_95 == pytest.approx(expected_map50_95, abs=1e-6)
        assert result.map50 == pytest.approx(expected_map50, abs=1e-6)


# ---------------------------------------------------------------- mAP


def test_coco_thresholds_equal_pycocotools_params():
    params = Params(iouType="bbox")
    assert list(COCO_IOU_THRESHOLDS) == params.iouThrs.tolist()
    assert list(COCO_RECALL_THRESHOLDS) == params.recThrs.tolist()


@pytest.mark.parametrize("seed", range(12))
def test_mean_average_precision_equals_cocoeval_on_random_data(seed):
    assert_same_as_cocoeval(random_pairs(seed, integer=False))


@pytest.mark.parametrize("seed", range(12))
def test_mean_average_precision_equals_cocoeval_when_iou_and_score_ties(seed):
    assert_same_as_cocoeval(random_pairs(100 + seed, integer=True))


@pytest.mark.parametrize(
    "pairs",
    [
        # IoU exactly 0.5: a TP at 0.50, a FP from 0.55 on (COCOeval compares with >=)
        [(dets(box(0, 0, 10, 5, 1, 0.9)), dets(box(0, 0, 10, 10, 1)))],
        # IoU exactly 0.6 is below numpy's 0.6000000000000001 threshold
        [(dets(box(0, 0, 10, 6, 1, 0.9)), dets(box(0, 0, 10, 10, 1)))],
        # two references at equal IoU 0.5: COCOeval gives the prediction the later one, so the
        # second prediction, which only overlaps that one, is a false positive at IoU 0.5
        [(dets(box(0, 0, 10, 10, 1, 0.9), box(0, -10, 10, 5, 1, 0.8)),
          dets(box(0, 0, 10, 20, 1), box(0, -10, 10, 10, 1)))],
        # equal scores across images: ties keep image order
        [(dets(box(0, 0, 10, 10, 2, 0.5), image_id="a"),
          dets(box(50, 50, 60, 60, 2), image_id="a")),
         (dets(box(0, 0, 10, 10, 2, 0.5), image_id="b"),
          dets(box(0, 0, 10, 10, 2), image_id="b"))],
        # a class predicted but never in the reference is left out of the mean
        [(dets(box(0, 0, 10, 10, 5, 0.9), box(0, 0, 10, 10, 9, 0.9)),
          dets(box(0, 0, 10, 10, 5)))],
        # a reference image with no prediction next to a perfect one
        [(dets(image_id="a"), dets(box(0, 0, 10, 10, 5), image_id="a")),
         (dets(box(0, 0, 10, 10, 5, 0.3), image_id="b"), dets(box(0, 0, 10, 10, 5), image_id="b"))],
        # zero-size boxes overlap nothing
        [(dets(box(5, 5, 5, 9, 1, 0.9)), dets(box(5, 5, 5, 9, 1), box(0, 0, 4, 4, 1)))],
        # no prediction anywhere: AP 0
        [(dets(image_id="a"), dets(box(0, 0, 10, 10, 5), image_id="a")),
         (dets(image_id="b"), dets(image_id="b"))],
        # only predictions, no reference anywhere: COCOeval reports -1
        [(dets(box(0, 0, 10, 10, 1, 0.9)), dets())],
    ],
)
def test_mean_average_precision_equals_cocoeval_on_edge_cases(pairs):
    assert_same_as_cocoeval(pairs)


def test_mean_average_precision_keeps_top_100_predictions_per_image_and_class():
    # GIVEN 150 low-score predictions that hit, behind nothing; only 100 survive the cut
    refs = [box(i * 4, 0, i * 4 + 3, 3, 1) for i in range(150)]
    preds = [b.with_score(0.5) for b in refs]
    pairs = [(dets(*preds, wh=(640, 480)), dets(*refs, wh=(640, 480)))]
    # WHEN / THEN recall stops at 100/150, exactly as in COCOeval
    assert_same_as_cocoeval(pairs)
    result = mean_average_precision(pairs)
    assert result.map50 == pytest.approx(67 / 101)  # recall points 0.00..0.66 reach precision 1


def test_mean_average_precision_is_perfect_when_predictions_equal_reference():
    reference = dets(box(0, 0, 10, 10, 1), box(20, 20, 40, 50, 4))
    result = mean_average_precision([(reference.with_boxes(b.with_score(0.9) for b in reference),
                                      reference)])
    assert result.map50_95 == pytest.approx(1.0)
    assert result.ap50_by_class == {1: pytest.approx(1.0), 4: pytest.approx(1.0)}


def test_mean_average_precision_update_returns_self_and_reset_clears():
    metric = MeanAveragePrecision()
    assert metric.update(dets(box(0, 0, 1, 1, 0, 0.5)), dets(box(0, 0, 1, 1, 0))) is metric
    metric.reset()
    assert metric.compute().map50 is None


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_mean_average_precision_equals_cocoeval_for_any_seed(seed):
    assert_same_as_cocoeval(random_pairs(seed, integer=seed % 2 == 0))


# ---------------------------------------------------------------- Ground Truth's mean IoU


@pytest.mark.parametrize(
    ("predicted", "reference", "expected"),
    [
        # empty prediction on an empty reference: nothing missed, nothing extra
        (dets(), dets(), 1.0),
        # one perfect box
        (dets(box(0, 0, 10, 10, 1, 0.9)), dets(box(0, 0, 10, 10, 1)), 1.0),
        # one half-covered box: its IoU
        (dets(box(0, 0, 10, 5, 1, 0.9)), dets(box(0, 0, 10, 10, 1)), 0.5),
        # a missed reference box counts 0
        (dets(box(0, 0, 10, 10, 1, 0.9)), dets(box(0, 0, 10, 10, 1), box(50, 50, 60, 60, 1)), 0.5),
        # an extra prediction counts 0
        (dets(box(0, 0, 10, 10, 1, 0.9), box(50, 50, 60, 60, 1, 0.8)), dets(box(0, 0, 10, 10, 1)),
         0.5),
        # below the IoU threshold: a missed reference and an extra prediction
        (dets(box(0, 0, 10, 4, 1, 0.9)), dets(box(0, 0, 10, 10, 1)), 0.0),
        # wrong class: class 1 missed (0), class 2 extra (0)
        (dets(box(0, 0, 10, 10, 2, 0.9)), dets(box(0, 0, 10, 10, 1)), 0.0),
        # classes averaged unweighted: class 1 = (1 + 1 + 0) / 3, class 7 = 0.5
        (dets(box(0, 0, 10, 10, 1, 0.9), box(20, 20, 30, 30, 1, 0.9), box(40, 0, 50, 5, 7, 0.9)),
         dets(box(0, 0, 10, 10, 1), box(20, 20, 30, 30, 1), box(60, 60, 70, 70, 1),
              box(40, 0, 50, 10, 7)),
         (2 / 3 + 0.5) / 2),
        # predictions on an empty reference: one class, all extra
        (dets(box(0, 0, 10, 10, 3, 0.9)), dets(), 0.0),
    ],
)
def test_image_mean_iou_follows_ground_truth_definition(predicted, reference, expected):
    assert image_mean_iou(predicted, reference) == pytest.approx(expected)


def test_mean_iou_pools_classes_over_images_before_averaging():
    # GIVEN class 1: image a has IoU 1.0, image b misses; class 2 only in image b at IoU 0.5
    pairs = [
        (dets(box(0, 0, 10, 10, 1, 0.9), image_id="a"), dets(box(0, 0, 10, 10, 1), image_id="a")),
        (dets(box(0, 0, 10, 5, 2, 0.9), image_id="b"),
         dets(box(50, 50, 60, 60, 1), box(0, 0, 10, 10, 2), image_id="b")),
    ]
    # THEN class 1 = (1 + 0) / 2 and class 2 = 0.5, averaged over classes, not images
    assert mean_iou(pairs) == pytest.approx((0.5 + 0.5) / 2)
    assert mean_iou(pairs) != pytest.approx(
        (image_mean_iou(*pairs[0]) + image_mean_iou(*pairs[1])) / 2
    )


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        # no image at all: nothing to measure
        ([], None),
        # only empty images: perfect
        ([(dets(image_id="a"), dets(image_id="a"))], 1.0),
    ],
)
def test_mean_iou_when_nothing_to_match(pairs, expected):
    assert mean_iou(pairs) == expected


def test_mean_iou_iou_threshold_changes_what_counts_as_matched():
    pair = (dets(box(0, 0, 10, 4, 1, 0.9)), dets(box(0, 0, 10, 10, 1)))
    assert MeanIoU(iou_threshold=0.3).update(*pair).compute() == pytest.approx(0.4)
    assert MeanIoU(iou_threshold=0.5).update(*pair).compute() == pytest.approx(0.0)


def test_mean_iou_reset_forgets_images():
    metric = MeanIoU().update(dets(box(0, 0, 1, 1, 0, 0.5)), dets())
    metric.reset()
    assert metric.compute() is None


@pytest.mark.parametrize("iou_threshold", [0.0, -0.1, 1.5])  # 0 would pair disjoint boxes
def test_mean_iou_raises_when_iou_threshold_out_of_range(iou_threshold):
    with pytest.raises(ValueError, match="iou_threshold"):
        MeanIoU(iou_threshold=iou_threshold)


@pytest.mark.parametrize(
    "metric", [MeanIoU(), MeanAveragePrecision()], ids=["mean_iou", "map"]
)
def test_metric_update_raises_when_image_ids_differ(metric):
    with pytest.raises(ValueError, match="same image"):
        metric.update(dets(image_id="a"), dets(image_id="b"))


# ---------------------------------------------------------------- exact match


@pytest.mark.parametrize(
    ("predicted", "reference", "expected"),
    [
        # empty vs empty is exact
        (dets(), dets(), True),
        # every box matched with the right class
        (dets(box(0, 0, 10, 10, 1, 0.9), box(20, 20, 30, 30, 4, 0.6)),
         dets(box(20, 20, 30, 30, 4), box(1, 0, 10, 10, 1)), True),
        # IoU exactly 0.5 still matches
        (dets(box(0, 0, 10, 5, 1, 0.9)), dets(box(0, 0, 10, 10, 1)), True),
        # IoU below 0.5
        (dets(box(0, 0, 10, 4, 1, 0.9)), dets(box(0, 0, 10, 10, 1)), False),
        # right place, wrong class
        (dets(box(0, 0, 10, 10, 2, 0.9)), dets(box(0, 0, 10, 10, 1)), False),
        # one missed
        (dets(box(0, 0, 10, 10, 1, 0.9)), dets(box(0, 0, 10, 10, 1), box(50, 50, 60, 60, 1)),
         False),
        # one extra (a duplicate)
        (dets(box(0, 0, 10, 10, 1, 0.9), box(0, 0, 10, 10, 1, 0.8)), dets(box(0, 0, 10, 10, 1)),
         False),
        # predictions on an empty image
        (dets(box(0, 0, 10, 10, 1, 0.9)), dets(), False),
    ],
)
def test_is_exact_match(predicted, reference, expected):
    assert is_exact_match(predicted, reference) is expected


def test_exact_match_accuracy_is_the_fraction_of_exact_images():
    exact = (dets(image_id="a"), dets(image_id="a"))
    missed = (dets(image_id="b"), dets(box(0, 0, 1, 1, 0), image_id="b"))
    assert exact_match_accuracy([exact, missed, exact]) == pytest.approx(2 / 3)
    assert exact_match_accuracy([]) is None


def test_cocoeval_reference_helper_sees_every_box():
    # guards the harness itself: a perfect prediction must score 1.0 in pycocotools too
    reference = dets(box(0, 0, 10, 10, 1), box(20, 20, 40, 50, 4))
    predicted = reference.with_boxes(b.with_score(0.9) for b in reference)
    stats = cocoeval_stats([(predicted, reference)])
    assert np.allclose(stats, (1.0, 1.0))
