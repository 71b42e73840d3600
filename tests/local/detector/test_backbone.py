"""The backbone must compute what the library's EfficientNet-Lite0 computes, folded or not."""

from __future__ import annotations

import copy

import pytest
import torch
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from boxloop.local.detector.backbone import (
    MODEL_NAME,
    TAP_BLOCKS,
    EfficientLiteBackbone,
    SamePaddedConv2d,
)


@pytest.fixture(scope="module")
def backbone() -> EfficientLiteBackbone:
    return EfficientLiteBackbone(pretrained=True).eval()


def _library_taps(backbone: EfficientLiteBackbone, images: torch.Tensor) -> list[torch.Tensor]:
    """The tapped features as the library's own modules compute them, padding copies included."""
    net = EfficientNet.from_name(MODEL_NAME).eval()
    state = backbone.state_dict()
    stem = {k.removeprefix("stem."): v for k, v in state.items() if k.startswith("stem.")}
    net._conv_stem.load_state_dict({"weight": stem["0.weight"]})
    net._bn0.load_state_dict(
        {k.removeprefix("1."): v for k, v in stem.items() if k.startswith("1.")}
    )
    for index in range(TAP_BLOCKS[-1] + 1):
        prefix = f"blocks.{index}."
        net._blocks[index].load_state_dict(
            {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        )
    x = net._swish(net._bn0(net._conv_stem(images)))
    taps = []
    for index in range(TAP_BLOCKS[-1] + 1):
        x = net._blocks[index](x, drop_connect_rate=None)
        if index in TAP_BLOCKS:
            taps.append(x)
    return taps


@pytest.mark.parametrize("side", [256, 320])
def test_backbone_matches_the_library_and_stays_equal_once_folded(
    backbone: EfficientLiteBackbone, side: int
) -> None:
    images = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(side)) * 2 - 1
    with torch.inference_mode():
        reference = _library_taps(backbone, images)
        ours = backbone(images)
        folded = copy.deepcopy(backbone).fold_for_inference()
        folded_taps = folded(images)

    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    for plain, fold, expected in zip(ours, folded_taps, reference, strict=True):
        assert plain.shape == expected.shape
        assert torch.equal(plain, expected)
        assert torch.allclose(fold, expected, atol=1e-4, rtol=1e-4)


def test_every_convolution_pads_inside_and_keeps_the_library_parameter_names(
    backbone: EfficientLiteBackbone,
) -> None:
    library = EfficientNet.from_name(MODEL_NAME)
    library_keys = {f"stem.0.{k}" for k in library._conv_stem.state_dict()} | {
        f"blocks.{i}.{k}"
        for i in range(TAP_BLOCKS[-1] + 1)
        for k in library._blocks[i].state_dict()
    }

    convolutions = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]

    assert convolutions and all(isinstance(m, SamePaddedConv2d) for m in convolutions)
    assert {m.extra_top_left for m in convolutions} == {(0, 0), (1, 1)}
    assert library_keys <= set(backbone.state_dict())
