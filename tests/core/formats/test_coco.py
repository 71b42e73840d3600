from __future__ import annotations

import contextlib
import copy
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from boxloop.core.boxes import Box
from boxloop.core.detections import Detections
from boxloop.core.errors import ManifestError
from boxloop.core.formats.coco import coco_categories, coco_to_detections, detections_to_coco
from boxloop.core.metrics import mean_average_precision

from ._helpers import assert_same_boxes, pixel_detections

CLASS_MAP = {3: "cat", 17: "dog", 1000: "zebra"}  # non-contiguous ids


def box(x0: float, y0: float, x1: float, y1: float, c: int = 3, s: float | None = None) -> Box:
    return Box(x_min=x0, y_min=y0, x_max=x1, y_max=y1, class_id=c, score=s)


def dataset(*annotations: dict, images: list | None = None) -> dict:
    return {
        "images": images
        or [
            {"id": 1, "file_name": "wide.jpg", "width": 1000, "height": 200},
            {"id": 7, "file_name": "empty.jpg", "width": 64, "height": 64},
        ],
        "annotations": [
            {"id": i + 1, "image_id": 1, "category_id": 3, "iscrowd": 0, **a}
            for i, a in enumerate(annotations)
        ],
        "categories": [{"id": c, "name": n} for c, n in CLASS_MAP.items()],
    }


@pytest.mark.parametrize(
    ("annotations", "expected_boxes"),
    [
        # no annotations: empty images
        ((), ()),
        # pixel xywh -> xyxy
        (({"bbox": [10, 20, 30, 40]},), (box(10, 20, 40, 60),)),
        # zero-size box
        (({"bbox": [5, 5, 0, 0]},), (box(5, 5, 5, 5),)),
        # box on the edge of the 1000x200 image
        (({"bbox": [0, 0, 1000, 200]},), (box(0, 0, 1000, 200),)),
        # non-square: x = 900 fits the width (1000) while the height is only 200
        (({"bbox": [900, 150, 100, 50]},), (box(900, 150, 1000, 200),)),
        # overshoot under 0.5 px is clipped onto the edge
        (({"bbox": [990, 0, 10.3, 200.2]},), (box(990, 0, 1000, 200),)),
        # non-contiguous category ids and a prediction score
        (
            (
                {"bbox": [0, 0, 1, 1], "category_id": 1000, "score": 0.25},
                {"bbox": [2, 2, 1, 1], "category_id": 17},
            ),
            (box(0, 0, 1, 1, 1000, 0.25), box(2, 2, 3, 3, 17)),
        ),
        # many boxes, annotation order kept
        (
            tuple({"bbox": [i * 50, 0, 40, 10]} for i in range(20)),
            tuple(box(i * 50, 0, i * 50 + 40, 10) for i in range(20)),
        ),
    ],
)
def test_coco_to_detections_reads_images_in_order(annotations, expected_boxes):
    (name_1, wide), (name_7, empty) = coco_to_detections(dataset(*annotations))
    assert (name_1, name_7) == ("wide.jpg", "empty.jpg")
    assert_same_boxes(wide, Detections("1", (1000, 200), expected_boxes))
    assert_same_boxes(empty, Detections.empty("7", (64, 64)))


def test_coco_categories_keeps_ids():
    assert coco_categories(dataset()) == CLASS_MAP


def test_coco_to_detections_accepts_a_dataset_without_annotations_key():
    data = dataset()
    del data["annotations"]
    assert [len(d) for _, d in coco_to_detections(data)] == [0, 0]


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        # box outside the non-square image: y = 150 + 100 > 200
        (
            lambda d: d["annotations"][1].update(bbox=[0, 150, 10, 100]),
            r"annotations\[1\]\.bbox .* outside the 1000x200 image",
        ),
        # left edge 1 px outside the image, beyond the 0.5 px rounding tolerance
        (lambda d: d["annotations"][1].update(bbox=[-1, 0, 1.5, 0.5]), r"annotations\[1\]\.bbox"),
        # unknown image id
        (
            lambda d: d["annotations"][1].update(image_id=99),
            r"annotations\[1\]\.image_id refers to unknown image id 99",
        ),
        # unknown category
        (
            lambda d: d["annotations"][1].update(category_id=4),
            r"annotations\[1\]\.category_id refers to unknown category 4",
        ),
        # bbox missing
        (lambda d: d["annotations"][1].pop("bbox"), r"annotations\[1\]\.bbox is missing"),
        # bbox with 3 numbers
        (lambda d: d["annotations"][1].update(bbox=[1, 2, 3]), r"annotations\[1\]\.bbox must be 4"),
        # bbox as a string
        (
            lambda d: d["annotations"][1].update(bbox="1 2 3 4"),
            r"annotations\[1\]\.bbox must be of type list",
        ),
        # negative width
        (lambda d: d["annotations"][1].update(bbox=[10, 10, -3, 4]), r"must be >= 0"),
        # crowd region
        (lambda d: d["annotations"][1].update(iscrowd=1), r"annotations\[1\]\.iscrowd"),
        # score above 1
        (lambda d: d["annotations"][1].update(score=1.5), r"annotations\[1\]\.score"),
        # image id as a string
        (lambda d: d["images"][0].update(id="1"), r"images\[0\]\.id must be of type int"),
        # repeated image id
        (lambda d: d["images"][1].update(id=1), r"images\[1\]\.id repeats"),
        # image without a size
        (lambda d: d["images"][1].update(width=0), r"images\[1\]\.width must be positive"),
        # repeated category id
        (lambda d: d["categories"].append({"id": 3, "name": "cat2"}), r"categories\[3\]\.id"),
        # no categories at all
        (lambda d: d.pop("categories"), r"categories is missing"),
    ],
)
def test_coco_to_detections_raises_naming_the_field(edit, match):
    data = dataset({"bbox": [0, 0, 1, 1]}, {"bbox": [1, 1, 1, 1]})
    edit(data)
    with pytest.raises(ManifestError, match=match):
        coco_to_detections(data, source="instances.json")


def test_coco_to_detections_error_names_the_source():
    data = dataset({"bbox": [0, 0, 1, 1], "image_id": 5})
    with pytest.raises(ManifestError, match=r"^instances\.json: annotations\[0\]\.image_id"):
        coco_to_detections(data, source="instances.json")


def test_detections_to_coco_writes_coco_fields():
    items = [
        (
            "wide.jpg",
            Detections(
                "a", (1000, 200), (box(10, 20, 40, 60, 17), box(0, 0, 1000, 200, 1000, 0.5))
            ),
        ),
        ("empty.jpg", Detections.empty("b", (64, 64))),
    ]
    data = detections_to_coco(items, CLASS_MAP)
    assert data["images"] == [
        {"id": 1, "file_name": "wide.jpg", "width": 1000, "height": 200},
        {"id": 2, "file_name": "empty.jpg", "width": 64, "height": 64},
    ]
    assert data["annotations"] == [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 17,
            "bbox": [10, 20, 30, 40],
            "area": 1200,
            "iscrowd": 0,
        },
        {
            "id": 2,
            "image_id": 1,
            "category_id": 1000,
            "bbox": [0, 0, 1000, 200],
            "area": 200_000,
            "iscrowd": 0,
            "score": 0.5,
        },
    ]
    assert [(c["id"], c["name"]) for c in data["categories"]] == sorted(CLASS_MAP.items())


def test_detections_to_coco_keeps_numeric_image_ids():
    items = [("x.jpg", Detections.empty("42", (8, 8))), ("y.jpg", Detections.empty("5", (8, 8)))]
    assert [i["id"] for i in detections_to_coco(items, CLASS_MAP)["images"]] == [42, 5]


def test_detections_to_coco_raises_for_a_class_missing_from_the_map():
    items = [("a.jpg", Detections("a", (8, 8), (box(0, 0, 1, 1, 3), box(0, 0, 1, 1, 4))))]
    with pytest.raises(ManifestError, match=r"a\.jpg: boxes\[1\]\.class_id"):
        detections_to_coco(items, CLASS_MAP)


def test_detections_to_coco_is_read_by_pycocotools():
    # GIVEN references and predictions exported by boxloop
    reference = [
        ("a.jpg", Detections("1", (1000, 200), (box(10, 20, 40, 60, 17), box(0, 0, 50, 50, 3)))),
        ("b.jpg", Detections("2", (300, 900), (box(100, 100, 200, 800, 1000),))),
    ]
    predicted = [
        (
            "a.jpg",
            Detections("1", (1000, 200), (box(12, 20, 40, 62, 17, 0.9), box(0, 0, 20, 50, 3, 0.8))),
        ),
        (
            "b.jpg",
            Detections(
                "2", (300, 900), (box(100, 120, 200, 800, 1000, 0.7), box(0, 0, 10, 10, 1000, 0.95))
            ),
        ),
    ]
    gt_data = detections_to_coco(reference, CLASS_MAP)
    results = detections_to_coco(predicted, CLASS_MAP)["annotations"]
    # WHEN pycocotools evaluates them
    gt = COCO()
    gt.dataset = json.loads(json.dumps(gt_data))
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # THEN it scores what boxloop's metric scores on the same Detections
    ours = mean_average_precision(
        (p, r) for (_, p), (_, r) in zip(predicted, reference, strict=True)
    )
    assert ours.map50_95 == pytest.approx(evaluator.stats[0], abs=1e-6)
    assert ours.map50 == pytest.approx(evaluator.stats[1], abs=1e-6)


@st.composite
def items(draw: st.DrawFn) -> list[tuple[str, Detections]]:
    result = []
    for index in range(draw(st.integers(0, 4))):
        detections = draw(pixel_detections(str(index + 1), sorted(CLASS_MAP)))
        result.append((f"{index}.jpg", detections))
    return result


@settings(max_examples=150, deadline=None)
@given(items())
def test_coco_round_trip_keeps_boxes(original):
    data = json.loads(json.dumps(detections_to_coco(original, CLASS_MAP)))
    assert coco_categories(data) == CLASS_MAP
    restored = list(coco_to_detections(copy.deepcopy(data)))
    assert [name for name, _ in restored] == [name for name, _ in original]
    for (_, got), (_, want) in zip(restored, original, strict=True):
        assert_same_boxes(got, want)
