"""Feature points and the ltrb box coding."""

from __future__ import annotations

import pytest
import torch

from boxloop.local.detector.coding import centerness, decode, encode, make_points


def test_make_points_places_cell_centres_level_by_level() -> None:
    points, strides = make_points([(2, 3), (1, 1)], [8, 16])

    assert points.tolist() == [
        [4.0, 4.0],
        [12.0, 4.0],
        [20.0, 4.0],  # stride 8, row 0
        [4.0, 12.0],
        [12.0, 12.0],
        [20.0, 12.0],  # stride 8, row 1
        [8.0, 8.0],  # stride 16
    ]
    assert strides.tolist() == [8.0] * 6 + [16.0]


@pytest.mark.parametrize(
    ("point", "stride", "box"),
    [
        ((20.0, 20.0), 8.0, (10.0, 12.0, 60.0, 30.0)),  # ordinary box around the point
        ((100.0, 50.0), 32.0, (0.0, 0.0, 256.0, 256.0)),  # box covering the whole input
        ((5.0, 5.0), 8.0, (4.9, 4.9, 5.1, 5.1)),  # tiny box, distances far below one stride
        ((4.0, 252.0), 8.0, (0.0, 200.0, 8.0, 256.0)),  # box touching two image edges
    ],
)
def test_encode_then_decode_returns_the_box(
    point: tuple[float, float], stride: float, box: tuple[float, float, float, float]
) -> None:
    points, strides, boxes = torch.tensor([point]), torch.tensor([stride]), torch.tensor([box])

    decoded = decode(points, strides, encode(points, strides, boxes))

    assert torch.allclose(decoded, boxes, atol=1e-4)


def test_decode_accepts_a_batch_dimension() -> None:
    points, strides = make_points([(4, 4)], [8])
    regression = torch.randn(2, 16, 4)

    decoded = decode(points, strides, regression)

    assert decoded.shape == (2, 16, 4)
    assert bool((decoded[..., 2:] >= decoded[..., :2]).all())


def test_decode_stays_finite_for_huge_regression_outputs() -> None:
    points, strides = make_points([(1, 1)], [32])

    decoded = decode(points, strides, torch.full((1, 4), 1e4))

    assert bool(torch.isfinite(decoded).all())


@pytest.mark.parametrize(
    ("ltrb", "expected"),
    [
        ((5.0, 5.0, 5.0, 5.0), 1.0),  # the exact centre
        ((0.0, 5.0, 10.0, 5.0), 0.0),  # on the left edge
        ((2.0, 4.0, 8.0, 4.0), 0.5),  # a quarter of the way across: sqrt(2/8 * 1)
    ],
)
def test_centerness_values(ltrb: tuple[float, ...], expected: float) -> None:
    assert centerness(torch.tensor(ltrb)).item() == pytest.approx(expected)
