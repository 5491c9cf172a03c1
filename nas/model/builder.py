"""Genome -> PyTorch student: stem, one stage loop, head.

Like torchvision's and timm's models, a student's `forward` returns logits; `forward_features`
gives the pooled feature, and `forward(x, return_features=True)` both, which is what the
distillation loop asks for."""

from __future__ import annotations

import math

import torch
from torch import nn

from nas.model.blocks import BLOCKS, ConvBNAct
from nas.model.decode import DEFAULT_CLASSES, Arch, ShapeLike, resolve
from nas.model.genome import Genome
from nas.model.space import Space

Output = torch.Tensor | tuple[torch.Tensor, torch.Tensor]   # logits, or (feature, logits)


class Student(nn.Module):
    """An EfficientNetV2-style student; `feature` is the pooled head output distillation matches."""

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        self.arch = arch
        self.stem = ConvBNAct(arch.in_channels, arch.stem, 3, arch.stem_stride)
        self.stages = nn.Sequential(*(
            nn.Sequential(*(BLOCKS[spec.fused](spec) for spec in stage)) for stage in arch.blocks
        ))
        last = arch.blocks[-1][-1].out_ch
        self.head = ConvBNAct(last, arch.head)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(arch.head, arch.classes)
        init_weights(self)

    @property
    def feature_dim(self) -> int:
        return self.arch.head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled head output (the feature distillation matches), (N, feature_dim)."""
        return self.pool(self.head(self.stages(self.stem(x)))).flatten(1)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> Output:
        """Logits; with `return_features`, (feature, logits)."""
        feature = self.forward_features(x)
        logits = self.classifier(feature)
        return (feature, logits) if return_features else logits


def init_weights(model: nn.Module) -> None:
    """The report's init: He-normal convs (std sqrt(2/(k*k*out))), BN (1, 0), Linear N(0, 0.001)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Conv1d):
            fan_out = module.out_channels * math.prod(module.kernel_size)
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.001)
            nn.init.zeros_(module.bias)


def build_model(genome: Genome | str, space: Space | None = None, *, shape: ShapeLike | None = None,
                classes: int = DEFAULT_CLASSES) -> Student:
    """Build the student of `genome`; `space` supplies model settings and per-stage overrides,
    `shape` (an InputShape or (C, H, W); else the space's `[input]`, else the digits' 3x32x32)
    the input channels, `classes` the classifier's outputs (default 10, the digits')."""
    return Student(resolve(genome, space, shape=shape, classes=classes))
