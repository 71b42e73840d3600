from __future__ import annotations

import random
from contextlib import ExitStack as DoesNotRaise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boxloop.core.boxes import Box, iou
from boxloop.core.consolidation import Consolidated, ConsolidationConfig, consolidate
from boxloop.core.detections import Detections
from boxloop.core.errors import BoxError, ConfigError

IMAGE_WH = (640, 480)


def box(xyxy: tuple[float, float, float, float], class_id: int = 0,
        score: float | None = None) -> Box:
    return Box.from_xyxy(xyxy, class_id=class_id, score=score)


def worker(*boxes: Box, image_id: str = "img", image_wh: tuple[int, int] = IMAGE_WH) -> Detections:
    return Detections(image_id, image_wh, boxes)


def xyxys(consolidated: Consolidated) -> list[tuple[float, ...]]:
    return [b.xyxy for b in consolidated.detections]


@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        # the defaults
        ({}, DoesNotRaise()),
        # the ends of both ranges
        ({"iou_threshold": 1.0, "min_agreement": 0.0}, DoesNotRaise()),
        ({"iou_threshold": 1e-9, "min_agreement": 1.0}, DoesNotRaise()),
        # a zero IoU threshold would cluster disjoint boxes
        ({"iou_threshold": 0.0}, pytest.raises(ConfigError, match="iou_threshold")),
        # above 1
        ({"iou_threshold": 1.5}, pytest.raises(ConfigError, match="iou_threshold")),
        # NaN
        ({"min_agreement": float("nan")}, pytest.raises(ConfigError, match="min_agreement")),
        # a percentage instead of a fraction
        ({"min_agreement": 50}, pytest.raises(ConfigError, match="min_agreement")),
        # a bool is not a threshold
        ({"iou_threshold": True}, pytest.raises(ConfigError, match="iou_threshold")),
        # a string flag
        ({"class_aware": "yes"}, pytest.raises(ConfigError, match="class_aware")),
    ],
)
def test_consolidation_config_validates(kwargs: dict, expectation: DoesNotRaise) -> None:
    with expectation:
        ConsolidationConfig(**kwargs)


def test_consolidation_config_lists_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        ConsolidationConfig(iou_threshold=2.0, min_agreement=-1.0, weight_by_score=1)
    assert len(caught.value.problems) == 3


@pytest.mark.parametrize(
    ("min_agreement", "n_workers", "required"),
    [
        (0.5, 1, 1),  # a single worker always suffices
        (0.5, 2, 2),  # strict majority of 2 is both
        (0.5, 3, 2),  # 2 of 3
        (0.5, 4, 3),  # 2 of 4 is a tie, not a majority
        (0.5, 5, 3),  # 3 of 5
        (0.0, 5, 1),  # any one worker
        (1.0, 5, 5),  # unanimous, capped at the number of workers
        (0.6, 5, 4),  # more than 60 % of 5 = more than 3
        (0.29, 100, 30),  # 0.29 * 100 is 28.999... in floats; still more than 29 needed
    ],
)
def test_consolidation_config_required_support(
    min_agreement: float, n_workers: int, required: int
) -> None:
    assert ConsolidationConfig(min_agreement=min_agreement).required_support(n_workers) == required


@pytest.mark.parametrize(
    "boxes",
    [
        (),  # empty image
        (box((10, 10, 50, 50), 3, 0.9),),  # one box (scored: the score is dropped)
        tuple(box((30 * i, 20, 30 * i + 25, 60), i % 4) for i in range(20)),  # 20 boxes
        (box((0, 0, 640, 480), 17), box((5, 5, 5, 9), 2)),  # edge-to-edge box, zero-width box
    ],
)
def test_consolidate_single_worker_keeps_boxes_with_zero_confidence(boxes: tuple) -> None:
    # Ground Truth reports confidence 0.00 for every object labeled by one worker.
    result = consolidate([worker(*boxes)])
    assert xyxys(result) == [b.xyxy for b in boxes]
    assert result.detections.class_ids == tuple(b.class_id for b in boxes)
    assert result.detections.scores == (None,) * len(boxes)
    assert result.confidences == (0.0,) * len(boxes)


def test_consolidate_keeps_image_identity() -> None:
    result = consolidate([worker(image_id="abc", image_wh=(300, 900))] * 2)
    assert (result.detections.image_id, result.detections.image_wh) == ("abc", (300, 900))
    assert result.detections.is_empty()
    assert result.confidences == ()


@pytest.mark.parametrize(
    ("workers", "match"),
    [
        ([], "at least one worker"),  # no workers at all
        ([worker(), worker(image_id="other")], "same image"),  # another image id
        ([worker(), worker(image_wh=(480, 640))], "same image"),  # transposed size
    ],
)
def test_consolidate_raises_when_workers_unusable(workers: list, match: str) -> None:
    with pytest.raises(BoxError, match=match):
        consolidate(workers)


def test_consolidate_identical_workers_give_full_confidence() -> None:
    boxes = (box((10, 10, 50, 50), 1), box((100, 100, 200, 150), 4))
    result = consolidate([worker(*boxes)] * 3)
    assert xyxys(result) == [b.xyxy for b in boxes]
    assert result.confidences == (1.0, 1.0)


def test_consolidate_averages_coordinates_and_scores_agreement() -> None:
    a, b, c = box((0, 0, 100, 100)), box((10, 0, 110, 100)), box((0, 10, 100, 110))
    result = consolidate([worker(a), worker(b), worker(c)])
    assert xyxys(result) == [pytest.approx((10 / 3, 10 / 3, 310 / 3, 310 / 3))]
    mean_pairwise = (iou(a, b) + iou(a, c) + iou(b, c)) / 3
    assert result.confidences == (pytest.approx(mean_pairwise),)


def test_consolidate_drops_box_drawn_by_minority() -> None:
    # Workers 0 and 1 agree on one object; only worker 2 drew a second one.
    shared = box((10, 10, 50, 50))
    extra = box((300, 300, 350, 350))
    result = consolidate([worker(shared), worker(shared), worker(shared, extra)])
    assert xyxys(result) == [shared.xyxy]


@pytest.mark.parametrize(
    ("min_agreement", "expected_count"),
    [
        (0.0, 3),  # union: every box any worker drew
        (0.5, 2),  # strict majority: 2 of 3 workers
        (1.0, 1),  # unanimous
    ],
)
def test_consolidate_min_agreement_controls_kept_boxes(
    min_agreement: float, expected_count: int
) -> None:
    everyone = box((0, 0, 40, 40))
    two = box((100, 100, 140, 140))
    one = box((200, 200, 240, 240))
    workers = [worker(everyone, two, one), worker(everyone, two), worker(everyone)]
    result = consolidate(workers, ConsolidationConfig(min_agreement=min_agreement))
    assert len(result.detections) == expected_count
    # confidence = share of workers * mean pairwise IoU (1.0 here): 3/3, 2/3, and 0 for a lone box
    assert result.confidences == pytest.approx((1.0, 2 / 3, 0.0)[:expected_count])


def test_consolidate_class_by_majority_vote() -> None:
    place = box((10, 10, 50, 50))
    workers = [worker(box(place.xyxy, class_id=c)) for c in (7, 2, 7)]
    result = consolidate(workers)
    assert result.detections.class_ids == (7,)
    assert result.confidences == (pytest.approx(2 / 3),)  # 2 of 3 workers chose class 7


def test_consolidate_class_tie_goes_to_earliest_worker() -> None:
    workers = [worker(box((10, 10, 50, 50), 5)), worker(box((10, 10, 50, 50), 2))]
    assert consolidate(workers).detections.class_ids == (5,)


@pytest.mark.parametrize(
    ("class_aware", "min_agreement", "class_ids"),
    [
        (False, 0.5, (9,)),  # class-agnostic: one object, class voted (tie -> worker 0)
        (True, 0.5, ()),  # class-aware: two lone boxes, neither has a majority
        (True, 0.0, (9, 4)),  # class-aware union: both boxes kept, one per class
    ],
)
def test_consolidate_class_aware_clustering(
    class_aware: bool, min_agreement: float, class_ids: tuple
) -> None:
    workers = [worker(box((10, 10, 50, 50), 9)), worker(box((10, 10, 50, 50), 4))]
    config = ConsolidationConfig(class_aware=class_aware, min_agreement=min_agreement)
    assert consolidate(workers, config).detections.class_ids == class_ids


def test_consolidate_at_most_one_box_per_worker_per_cluster() -> None:
    # Worker 0 drew the object twice; worker 1 once. The closer duplicate joins worker 1's box,
    # the other stays alone (and is dropped: 1 of 2 workers is not a majority).
    close, loose = box((0, 0, 100, 100)), box((20, 0, 120, 100))
    result = consolidate([worker(loose, close), worker(box((2, 0, 102, 100)))])
    assert xyxys(result) == [pytest.approx((1, 0, 101, 100))]
    union = consolidate([worker(loose, close), worker(box((2, 0, 102, 100)))],
                        ConsolidationConfig(min_agreement=0.0))
    assert len(union.detections) == 2


def test_consolidate_complete_linkage_does_not_chain() -> None:
    # a~b and b~c clear 0.5 (IoU 7/13) but a~c does not (IoU 1/4): no three-box cluster.
    a, b, c = box((0, 0, 10, 10)), box((3, 0, 13, 10)), box((6, 0, 16, 10))
    assert iou(a, b) >= 0.5
    assert iou(a, c) < 0.5
    result = consolidate([worker(a), worker(b), worker(c)])
    assert xyxys(result) == [pytest.approx((1.5, 0, 11.5, 10))]
    assert result.confidences == (pytest.approx(2 / 3 * 7 / 13),)


def test_consolidate_iou_threshold_is_inclusive() -> None:
    a, b = box((0, 0, 10, 10)), box((0, 0, 10, 5))  # IoU exactly 0.5
    assert len(consolidate([worker(a), worker(b)]).detections) == 1
    strict = ConsolidationConfig(iou_threshold=0.51)
    assert len(consolidate([worker(a), worker(b)], strict).detections) == 0


def test_consolidate_weight_by_score() -> None:
    confident, doubtful = box((0, 0, 100, 100), 0, 0.9), box((10, 0, 110, 100), 0, 0.1)
    workers = [worker(confident), worker(doubtful)]
    plain = consolidate(workers)
    weighted = consolidate(workers, ConsolidationConfig(weight_by_score=True))
    assert xyxys(plain) == [pytest.approx((5, 0, 105, 100))]
    assert xyxys(weighted) == [pytest.approx((1, 0, 101, 100))]
    assert weighted.detections.scores == (None,)


def test_consolidate_weight_by_score_falls_back_when_all_zero() -> None:
    workers = [worker(box((0, 0, 100, 100), 0, 0.0)), worker(box((10, 0, 110, 100), 0, 0.0))]
    result = consolidate(workers, ConsolidationConfig(weight_by_score=True))
    assert xyxys(result) == [pytest.approx((5, 0, 105, 100))]


def test_consolidate_zero_area_boxes_never_agree() -> None:
    dot = box((50, 50, 50, 50))
    assert consolidate([worker(dot)] * 3).detections.is_empty()


def test_consolidate_orders_boxes_by_earliest_worker_box() -> None:
    first, second = box((0, 0, 40, 40), 1), box((200, 200, 240, 240), 2)
    # Worker 0 lists them in one order, worker 1 in the other: worker 0's order wins.
    result = consolidate([worker(second, first), worker(first, second)])
    assert result.detections.class_ids == (2, 1)


def test_consolidate_recovers_20_objects_from_5_noisy_workers() -> None:
    rng = random.Random(3)
    truth = [box((30 * (i % 10), 100 * (i // 10), 30 * (i % 10) + 24, 100 * (i // 10) + 80),
                 class_id=(i * 7) % 11) for i in range(20)]
    workers = []
    for _ in range(5):
        drawn = [box((t.x_min + rng.uniform(-1, 1), t.y_min + rng.uniform(-1, 1),
                      t.x_max + rng.uniform(-1, 1), t.y_max + rng.uniform(-1, 1)), t.class_id)
                 for t in truth if rng.random() > 0.1]  # each worker misses ~10 %
        rng.shuffle(drawn)
        workers.append(worker(*drawn))
    result = consolidate(workers)
    assert len(result.detections) == 20
    for consolidated in result.detections:
        nearest = max(truth, key=lambda t, c=consolidated: iou(t, c))
        assert iou(nearest, consolidated) > 0.9
        assert nearest.class_id == consolidated.class_id
    assert all(0.5 < c <= 1.0 for c in result.confidences)


def test_consolidated_raises_when_confidences_do_not_match_boxes() -> None:
    detections = worker(box((0, 0, 1, 1)))
    with pytest.raises(BoxError, match="one confidence per box"):
        Consolidated(detections=detections, confidences=())
    with pytest.raises(BoxError, match=r"\[0, 1\]"):
        Consolidated(detections=detections, confidences=(1.5,))


# Boxes of at least 1 px on a 640x480 image, class ids 0..3.
positive_boxes = st.builds(
    lambda x, y, w, h, c: box((x, y, x + w, y + h), c),
    st.floats(0, 600), st.floats(0, 440), st.floats(1, 200), st.floats(1, 200),
    st.integers(0, 3),
)


@given(st.lists(positive_boxes, max_size=8), st.integers(2, 5))
def test_consolidate_copies_of_one_label_round_trip(boxes: list, n_workers: int) -> None:
    result = consolidate([worker(*boxes)] * n_workers)
    expected = sorted((b.xyxy, b.class_id) for b in boxes)
    actual = sorted((b.xyxy, b.class_id) for b in result.detections)
    assert [c for _, c in actual] == [c for _, c in expected]
    for (got, _), (want, _) in zip(actual, expected, strict=True):
        assert got == pytest.approx(want)
    assert result.confidences == (1.0,) * len(boxes)


@given(st.lists(st.lists(positive_boxes, max_size=6), min_size=1, max_size=5),
       st.floats(0.05, 1.0), st.floats(0.0, 1.0))
def test_consolidate_invariants(boxes_per_worker: list, iou_threshold: float,
                                min_agreement: float) -> None:
    config = ConsolidationConfig(iou_threshold=iou_threshold, min_agreement=min_agreement)
    result = consolidate([worker(*boxes) for boxes in boxes_per_worker], config)
    needed = config.required_support(len(boxes_per_worker))
    total = sum(len(boxes) for boxes in boxes_per_worker)
    assert len(result.detections) * needed <= total
    assert all(0.0 <= c <= 1.0 for c in result.confidences)
    assert all(b.is_human for b in result.detections)
    if len(boxes_per_worker) == 1:
        assert result.confidences == (0.0,) * total
