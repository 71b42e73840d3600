"""The backbone folded for inference must compute what the trained one computes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from boxloop.local.detector.backbone import EfficientLiteBackbone


@pytest.fixture(scope="module")
def backbone() -> EfficientLiteBackbone:
    return EfficientLiteBackbone(pretrained=True).eval()


@pytest.mark.parametrize("side", [256, 320])
def test_folded_backbone_gives_the_same_features(
    backbone: EfficientLiteBackbone, side: int
) -> None:
    images = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(side)) * 2 - 1
    with torch.inference_mode():
        expected = backbone(images)
        folded = copy.deepcopy(backbone).fold_for_inference()
        got = folded(images)

    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert [f.shape for f in got] == [f.shape for f in expected]
    for ours, reference in zip(got, expected, strict=True):
        assert torch.allclose(ours, reference, atol=1e-4, rtol=1e-4)


def test_folding_moves_only_symmetric_padding_into_the_convolution(
    backbone: EfficientLiteBackbone,
) -> None:
    folded = copy.deepcopy(backbone).fold_for_inference()

    remaining_pads = [
        m.static_padding.padding
        for m in folded.modules()
        if hasattr(m, "static_padding") and isinstance(m.static_padding, nn.ZeroPad2d)
    ]

    assert remaining_pads, "strided convolutions keep their one-sided TF 'same' padding"
    assert all(pad[0] != pad[1] or pad[2] != pad[3] for pad in remaining_pads)
