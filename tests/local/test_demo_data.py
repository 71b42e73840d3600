from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from boxloop.core.boxes import is_inside
from boxloop.core.errors import ConfigError
from boxloop.local.demo_data import (
    CLASS_SHAPES,
    LOOKALIKES,
    SceneParams,
    generate_demo_dataset,
    render_demo_sample,
)
from boxloop.local.demo_data.render import clutter_shapes
from boxloop.local.demo_data.shapes import ALL_SHAPES

if TYPE_CHECKING:
    from pathlib import Path

    from boxloop.local.demo_data import DemoSample

DEFAULT = SceneParams.from_difficulty(0.3)


def _render(
    index: int,
    *,
    seed: int = 3,
    n_classes: int = 3,
    difficulty: float = 0.3,
    image_wh: tuple[int, int] = (256, 256),
    with_background: bool = False,
) -> DemoSample:
    return render_demo_sample(
        index,
        seed=seed,
        n_classes=n_classes,
        params=SceneParams.from_difficulty(difficulty),
        image_wh=image_wh,
        with_background=with_background,
    )


@pytest.fixture(scope="module")
def default_sample() -> list[DemoSample]:
    """300 images at the default settings, shared by the statistical tests."""
    return [_render(i, seed=21) for i in range(300)]


def _files(out_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out_dir / "images").iterdir())}


def test_generate_demo_dataset_is_identical_when_seed_is_repeated(tmp_path: Path) -> None:
    first = generate_demo_dataset(tmp_path / "a", n_images=12, seed=5)
    again = generate_demo_dataset(tmp_path / "b", n_images=12, seed=5)

    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert [d for _, d in first.items] == [d for _, d in again.items]


def test_generate_demo_dataset_differs_when_seed_differs(tmp_path: Path) -> None:
    first = generate_demo_dataset(tmp_path / "a", n_images=12, seed=5)
    other = generate_demo_dataset(tmp_path / "b", n_images=12, seed=6)

    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert all(a[name] != b[name] for name in a)
    assert [d.boxes for _, d in first.items] != [d.boxes for _, d in other.items]


def test_generate_demo_dataset_keeps_first_images_when_n_images_grows(tmp_path: Path) -> None:
    small = generate_demo_dataset(tmp_path / "a", n_images=4, seed=9)
    large = generate_demo_dataset(tmp_path / "b", n_images=9, seed=9)

    assert [d for _, d in small.items] == [d for _, d in large.items[:4]]
    assert _files(tmp_path / "a").items() <= _files(tmp_path / "b").items()


def test_generate_demo_dataset_writes_one_labelled_jpeg_per_image(tmp_path: Path) -> None:
    dataset = generate_demo_dataset(tmp_path, n_images=6, n_classes=4, seed=1)

    assert dataset.class_names == ("star5", "triangle", "ring", "cross")
    assert len(dataset.items) == 6
    for path, reference in dataset.items:
        assert path.parent == tmp_path / "images"
        assert reference.image_id == path.name
        assert reference.image_wh == (256, 256)
        with Image.open(path) as image:
            assert (image.format, image.size, image.mode) == ("JPEG", (256, 256), "RGB")
        for box in reference:
            assert box.is_human
            assert 0 <= box.class_id < 4


def test_generate_demo_dataset_is_empty_when_n_images_is_zero(tmp_path: Path) -> None:
    assert generate_demo_dataset(tmp_path, n_images=0).items == ()


@pytest.mark.parametrize(
    ("image_wh", "difficulty"),
    [
        ((256, 256), 0.3),  # default: square, default difficulty
        ((320, 240), 0.3),  # landscape: x runs further than y
        ((200, 300), 0.3),  # portrait: y runs further than x
        ((256, 256), 0.0),  # easiest: large, high contrast, no occlusion
        ((256, 256), 1.0),  # hardest: occlusion, truncation, low contrast, noise
    ],
)
def test_render_demo_sample_boxes_are_the_visible_masks_bounds(
    image_wh: tuple[int, int], difficulty: float
) -> None:
    width, height = image_wh
    for index in range(25):
        sample = _render(index, difficulty=difficulty, image_wh=image_wh, with_background=True)
        assert sample.image.shape == (height, width, 3)
        assert len(sample.boxes) == len(sample.visible_masks)
        for box, mask in zip(sample.boxes, sample.visible_masks, strict=True):
            assert is_inside(box, image_wh, tolerance_px=0.0)
            ys, xs = np.nonzero(mask)
            assert box.xyxy == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert mask.sum() >= 40


@pytest.mark.parametrize(
    ("difficulty", "min_mean_diff"),
    [
        (0.0, 20.0),  # easiest: strong contrast everywhere
        (0.3, 15.0),  # default: mostly good contrast
        (1.0, 3.0),  # hardest: low-contrast blending, opacity 0.7, still not invisible
    ],
)
def test_render_demo_sample_objects_differ_from_background_inside_their_masks(
    difficulty: float, min_mean_diff: float
) -> None:
    for index in range(40):
        sample = _render(index, seed=8, difficulty=difficulty, with_background=True)
        assert sample.background is not None
        diff = np.abs(sample.image.astype(np.int16) - sample.background.astype(np.int16))
        for mask in sample.visible_masks:
            assert diff[mask].mean() >= min_mean_diff


def test_render_demo_sample_uses_the_width_axis_when_image_is_not_square() -> None:
    boxes = [b for i in range(40) for b in _render(i, image_wh=(320, 240)).boxes]

    assert max(b.x_max for b in boxes) > 240
    assert max(b.y_max for b in boxes) <= 240


def test_render_demo_sample_has_empty_images_when_sample_is_large(
    default_sample: list[DemoSample],
) -> None:
    empty = sum(1 for s in default_sample if not s.boxes)

    assert 0 < empty < 0.15 * len(default_sample)


def test_render_demo_sample_classes_are_balanced(default_sample: list[DemoSample]) -> None:
    counts = Counter(b.class_id for s in default_sample for b in s.boxes)

    mean = sum(counts.values()) / 3
    assert sorted(counts) == [0, 1, 2]
    assert all(0.8 * mean <= n <= 1.2 * mean for n in counts.values())


def test_render_demo_sample_uses_every_class_when_n_classes_is_eight() -> None:
    counts = Counter(b.class_id for i in range(160) for b in _render(i, n_classes=8).boxes)

    mean = sum(counts.values()) / 8
    assert sorted(counts) == list(range(8))
    assert all(0.5 * mean <= n <= 1.5 * mean for n in counts.values())


def test_render_demo_sample_objects_shrink_when_difficulty_rises() -> None:
    def median_side(difficulty: float) -> float:
        sides = [
            max(b.width, b.height)
            for i in range(30)
            for b in _render(i, difficulty=difficulty).boxes
        ]
        return float(np.median(sides))

    assert median_side(1.0) < median_side(0.3) < median_side(0.0)


def test_scene_params_hard_cases_grow_with_difficulty() -> None:
    easy, default, hard = (SceneParams.from_difficulty(d) for d in (0.0, 0.3, 1.0))

    assert easy.lookalike_rate == 0.0
    assert easy.lookalike_rate < default.lookalike_rate < hard.lookalike_rate
    assert easy.radius_px[0] > default.radius_px[0] > hard.radius_px[0]
    assert easy.min_contrast > default.min_contrast > hard.min_contrast
    assert easy.min_gap > default.min_gap > hard.min_gap
    assert default == DEFAULT


def test_lookalikes_are_never_class_shapes() -> None:
    assert set(LOOKALIKES) == set(CLASS_SHAPES)
    for near in LOOKALIKES.values():
        assert not set(near) & set(CLASS_SHAPES)
        assert set(near) <= set(ALL_SHAPES)


@pytest.mark.parametrize("n_classes", [1, 3, 8])  # one class, the default, every class
def test_clutter_shapes_exclude_classes_and_their_lookalikes(n_classes: int) -> None:
    active = CLASS_SHAPES[:n_classes]
    near = {s for c in active for s in LOOKALIKES[c]}

    clutter = set(clutter_shapes(n_classes))

    assert clutter
    assert not clutter & (set(CLASS_SHAPES) | near)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"difficulty": 1.5}, "difficulty"),  # above the knob's range
        ({"difficulty": -0.1}, "difficulty"),  # below the knob's range
        ({"n_classes": 0}, "n_classes"),  # no class at all
        ({"n_classes": 9}, "n_classes"),  # more classes than shapes
        ({"image_wh": (16, 256)}, "image_wh"),  # too narrow for an object
        ({"n_images": -1}, "n_images"),  # negative count
        ({"seed": -3}, "seed"),  # SeedSequence needs a non-negative seed
    ],
)
def test_generate_demo_dataset_raises_config_error_when_argument_is_bad(
    tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    arguments: dict[str, object] = {"n_images": 1, **kwargs}
    with pytest.raises(ConfigError, match=match):
        generate_demo_dataset(tmp_path, **arguments)  # type: ignore[arg-type]


def test_render_demo_sample_dense_scenes_hold_more_and_smaller_objects() -> None:
    dense = SceneParams.from_difficulty(0.3, density=4.0)
    samples = {
        name: [
            render_demo_sample(i, seed=5, n_classes=3, params=params, image_wh=(256, 256))
            for i in range(40)
        ]
        for name, params in (("default", DEFAULT), ("dense", dense))
    }
    counts = {name: np.mean([len(s.boxes) for s in drawn]) for name, drawn in samples.items()}
    sides = {
        name: np.median([max(b.width, b.height) for s in drawn for b in s.boxes])
        for name, drawn in samples.items()
    }

    assert dense.max_targets == 16
    assert counts["dense"] > 2 * counts["default"]
    assert sides["dense"] < 0.7 * sides["default"]


def test_scene_params_density_one_is_the_default_scene() -> None:
    assert SceneParams.from_difficulty(0.3, density=1.0) == DEFAULT
    assert DEFAULT.max_targets == 4


@pytest.mark.parametrize("density", [0.0, 9.0, True, "4"])
def test_scene_params_refuses_density_out_of_range(density: object) -> None:
    with pytest.raises(ConfigError, match="density must be"):
        SceneParams.from_difficulty(0.3, density=density)  # type: ignore[arg-type]
