"""Letterboxing, label loading and augmentation: boxes must follow the pixels."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest
import torch
from PIL import Image, ImageDraw

from boxloop.core.boxes import Box
from boxloop.core.detections import Detections
from boxloop.core.errors import BoxError
from boxloop.local.detector.data import (
    AugmentConfig,
    augment,
    letterbox,
    letterbox_scale,
    load_rgb,
    load_training_image,
)

if TYPE_CHECKING:
    from pathlib import Path

WHITE_BOX = (60.0, 30.0, 140.0, 70.0)


def _white_box_image(path: Path, wh: tuple[int, int] = (300, 150)) -> Detections:
    """A black image with one white rectangle, labelled exactly."""
    image = Image.new("RGB", wh, (0, 0, 0))
    ImageDraw.Draw(image).rectangle(
        [WHITE_BOX[0], WHITE_BOX[1], WHITE_BOX[2] - 1, WHITE_BOX[3] - 1], fill=(255, 255, 255)
    )
    image.save(path)
    return Detections(image_id="white", image_wh=wh, boxes=(Box.from_xyxy(WHITE_BOX, 0),))


@pytest.mark.parametrize(
    ("wh", "expected"),
    [
        ((512, 256), 0.5),  # landscape: the width fits
        ((100, 400), 0.64),  # portrait: the height fits
        ((256, 256), 1.0),  # already the input size
        ((64, 32), 4.0),  # small image: upscaled
    ],
)
def test_letterbox_scale_fits_the_longer_side(wh: tuple[int, int], expected: float) -> None:
    assert letterbox_scale(wh, 256) == pytest.approx(expected)


def test_letterbox_keeps_aspect_ratio_and_pads_bottom_right(tmp_path: Path) -> None:
    _white_box_image(tmp_path / "a.png")
    image = Image.open(tmp_path / "a.png").convert("RGB")

    tensor, scale = letterbox(image, 256)

    assert tensor.shape == (3, 256, 256)
    assert scale == pytest.approx(256 / 300)
    x0, y0, x1, y1 = (round(v * scale) for v in WHITE_BOX)
    assert tensor[:, y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].min().item() > 0.95
    assert tensor[:, 140:, :].sub(128 / 255).abs().max().item() < 0.01  # padding below the image


def test_load_rgb_decodes_large_jpegs_reduced_but_reports_the_file_size(tmp_path: Path) -> None:
    big = Image.new("RGB", (2400, 1200), (0, 0, 0))
    ImageDraw.Draw(big).rectangle([600, 300, 1399, 699], fill=(255, 255, 255))
    big.save(tmp_path / "big.jpg", quality=95)

    image, original_wh = load_rgb(tmp_path / "big.jpg", fit_side=256)
    tensor, scale = letterbox(image, 256, original_wh)

    assert original_wh == (2400, 1200)
    assert 256 <= image.width < 2400
    assert scale == pytest.approx(256 / 2400)
    x0, y0, x1, y1 = (round(v * scale) for v in (600, 300, 1400, 700))
    assert tensor[:, y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].min().item() > 0.9
    assert tensor[:, y1 + 2 : 126, :].max().item() < 0.1  # black below the box, above the padding


def test_load_training_image_maps_boxes_of_a_reduced_jpeg(tmp_path: Path) -> None:
    big = Image.new("RGB", (2400, 1200), (0, 0, 0))
    big.save(tmp_path / "big.jpg")
    detections = Detections(
        image_id="big", image_wh=(2400, 1200), boxes=(Box.from_xyxy((600, 300, 1400, 700), 0),)
    )

    sample, _ = load_training_image(tmp_path / "big.jpg", detections, num_classes=1, max_side=300)

    assert sample.image.size == (300, 150)
    assert sample.boxes.tolist() == [[75.0, 37.5, 175.0, 87.5]]


def _white_fraction(tensor: torch.Tensor, box: list[float]) -> float:
    x0, y0, x1, y1 = (round(v) for v in box)
    inner = tensor[:, y0 + 2 : y1 - 2, x0 + 2 : x1 - 2]
    return float((inner.mean(dim=0) > 0.5).float().mean())


@pytest.mark.parametrize("seed", range(12))
def test_augment_moves_boxes_with_the_pixels(tmp_path: Path, seed: int) -> None:
    detections = _white_box_image(tmp_path / "a.png")
    sample, _ = load_training_image(tmp_path / "a.png", detections, num_classes=1, max_side=400)
    config = AugmentConfig(scale_range=(0.8, 1.4), min_visible_fraction=0.5)

    tensor, boxes, labels = augment(sample, random.Random(seed), image_size=128, config=config)

    assert tensor.shape == (3, 128, 128)
    assert bool(((boxes >= 0) & (boxes <= 128)).all())
    assert labels.tolist() in ([0], [])
    for box in boxes.tolist():
        if min(box[2] - box[0], box[3] - box[1]) > 6:
            assert _white_fraction(tensor, box) > 0.9


def test_augment_crops_a_window_at_the_inference_scale(tmp_path: Path) -> None:
    detections = _white_box_image(tmp_path / "a.png", wh=(256, 256))
    sample, _ = load_training_image(tmp_path / "a.png", detections, num_classes=1, max_side=400)
    config = AugmentConfig(scale_range=(1.0, 1.0), min_visible_fraction=0.5)
    whole_widths = []

    for seed in range(40):
        tensor, boxes, _ = augment(
            sample, random.Random(seed), image_size=320, config=config, crop_size=224
        )

        assert tensor.shape == (3, 224, 224)
        assert bool(((boxes >= 0) & (boxes <= 224)).all())
        for box in boxes.tolist():
            assert _white_fraction(tensor, box) > 0.9
            if box[0] > 0 and box[2] < 224:
                whole_widths.append(box[2] - box[0])

    assert whole_widths  # the box lay wholly inside some windows, at the letterbox scale 1.25
    assert whole_widths == pytest.approx([1.25 * (WHITE_BOX[2] - WHITE_BOX[0])] * len(whole_widths))


def test_augment_flips_boxes_with_the_image(tmp_path: Path) -> None:
    detections = _white_box_image(tmp_path / "a.png", wh=(256, 256))
    sample, _ = load_training_image(tmp_path / "a.png", detections, num_classes=1, max_side=256)
    config = AugmentConfig(
        hflip_probability=1.0, scale_range=(1.0, 1.0), brightness=0.0, contrast=0.0, saturation=0.0
    )

    tensor, boxes, _ = augment(sample, random.Random(0), image_size=256, config=config)

    assert boxes.tolist() == [[256 - WHITE_BOX[2], WHITE_BOX[1], 256 - WHITE_BOX[0], WHITE_BOX[3]]]
    assert _white_fraction(tensor, boxes[0].tolist()) == 1.0


def test_load_training_image_downscales_large_images_with_their_boxes(tmp_path: Path) -> None:
    detections = _white_box_image(tmp_path / "a.png", wh=(600, 300))

    sample, skipped = load_training_image(
        tmp_path / "a.png", detections, num_classes=1, max_side=300
    )

    assert sample.image.size == (300, 150)
    assert sample.boxes.tolist() == [[v / 2 for v in WHITE_BOX]]
    assert skipped == 0


def test_load_training_image_skips_degenerate_boxes_and_clips_overhanging_ones(
    tmp_path: Path,
) -> None:
    _white_box_image(tmp_path / "a.png")
    detections = Detections(
        image_id="a",
        image_wh=(300, 150),
        boxes=(
            Box.from_xyxy((10, 10, 10, 50), 0),  # zero width
            Box.from_xyxy((250, 100, 400, 200), 1),  # hangs over the bottom-right corner
        ),
    )

    sample, skipped = load_training_image(
        tmp_path / "a.png", detections, num_classes=2, max_side=300
    )

    assert skipped == 1
    assert sample.boxes.tolist() == [[250.0, 100.0, 300.0, 150.0]]
    assert sample.labels.tolist() == [1]


@pytest.mark.parametrize(
    ("detections", "message"),
    [
        # labels made for another size of the image: boxes would land in the wrong place
        (Detections(image_id="a", image_wh=(300, 151)), "300x150 px but its labels say 300x151"),
        # a class id the model has no output for
        (
            Detections(image_id="a", image_wh=(300, 150), boxes=(Box.from_xyxy((0, 0, 5, 5), 3),)),
            "class_id 3 >= num_classes 3",
        ),
    ],
)
def test_load_training_image_rejects_labels_that_do_not_fit(
    tmp_path: Path, detections: Detections, message: str
) -> None:
    _white_box_image(tmp_path / "a.png")

    with pytest.raises(BoxError, match=message):
        load_training_image(tmp_path / "a.png", detections, num_classes=3, max_side=300)
