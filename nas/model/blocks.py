"""The building blocks of a student, one class each, built from `BlockSpec` records.

MBConv: MobileNetV2 (Sandler et al., 2018). FusedMBConv: EfficientNetV2 (Tan & Le,
2021). Their channel attention comes from the ATTENTIONS table (`nas.model.attention`).
Parts a block does not have are `nn.Identity()`, so every forward is the same few lines.
"""

from __future__ import annotations

import torch
from torch import nn

from nas.model.attention import ATTENTIONS
from nas.model.decode import BlockSpec


class ConvBNAct(nn.Sequential):
    """Conv (no bias, 'same' padding) -> BatchNorm -> SiLU (or no activation)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1,
                 groups: int = 1, act: bool = True) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.SiLU() if act else nn.Identity(),
        )


def attention(spec: BlockSpec, channels: int) -> nn.Module:
    """The block's channel attention over `channels`, built from the attention table."""
    return ATTENTIONS[spec.attention].build(channels, spec.se_width)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, kxk depthwise (stride), attention, 1x1 project."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        hidden = spec.hidden  # equals in_ch when there is no expansion (t = 1)
        self.conv_pw = ConvBNAct(spec.in_ch, hidden) if spec.expand else nn.Identity()
        self.conv_dw = ConvBNAct(hidden, hidden, spec.kernel, spec.stride, groups=hidden)
        self.attn = attention(spec, hidden)
        self.conv_pwl = ConvBNAct(hidden, spec.out_ch, act=False)
        self.residual = spec.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_pwl(self.attn(self.conv_dw(self.conv_pw(x))))
        return x + y if self.residual else y


class FusedMBConv(nn.Module):
    """Fused inverted residual: kxk expand (stride), attention, 1x1 project.

    Without expansion (torchvision's rule at t = 1) it is one kxk conv to the output width.
    """

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        width = spec.hidden if spec.expand else spec.out_ch
        self.conv_exp = ConvBNAct(spec.in_ch, width, spec.kernel, spec.stride)
        self.attn = attention(spec, width)
        self.conv_pwl = ConvBNAct(width, spec.out_ch, act=False) if spec.expand else nn.Identity()
        self.residual = spec.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_pwl(self.attn(self.conv_exp(x)))
        return x + y if self.residual else y


BLOCKS: dict[int, type[nn.Module]] = {0: MBConv, 1: FusedMBConv}
