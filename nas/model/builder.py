"""Genome -> PyTorch student: stem, one stage loop, head.

A student speaks timm's model interface: `forward` returns logits, `forward_features` the head's
feature map, `forward_head(x, pre_logits=True)` the pooled feature, `num_classes`,
`reset_classifier` and `pretrained_cfg`. `forward(x, return_features=True)` gives (pooled feature,
logits), which is what the distillation loop asks for."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from nas.errors import GenomeError
from nas.model.blocks import BLOCKS, ConvBNAct
from nas.model.decode import DEFAULT_CLASSES, Arch, ShapeLike, resolve
from nas.model.genome import Genome
from nas.model.space import InputShape, Space

IMAGENET_MEAN = (0.485, 0.456, 0.406)     # timm's and torchvision's defaults
IMAGENET_STD = (0.229, 0.224, 0.225)
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
        self.classifier = classifier(arch.head, arch.classes)
        init_weights(self)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eps = arch.bn_eps

    @property
    def feature_dim(self) -> int:
        return self.arch.head

    @property
    def num_features(self) -> int:
        """timm's name for the pooled feature's width."""
        return self.arch.head

    @property
    def num_classes(self) -> int:
        return self.arch.classes

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """timm's data config: input size, mean, std, interpolation, crop, classes; mean and std
        are the checkpoint's when the student was loaded from one (`nas.load`)."""
        return pretrained_cfg(self.arch.input, self.arch.classes, getattr(self, "checkpoint", None))

    @property
    def default_cfg(self) -> dict[str, Any]:
        """timm's older name of `pretrained_cfg`."""
        return self.pretrained_cfg

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str = "avg") -> None:
        """A new, freshly initialised classifier for `num_classes` (0: none, features out)."""
        if global_pool != "avg":
            raise GenomeError(f"reset_classifier: a student pools by 'avg' only, got {global_pool!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise GenomeError(f"reset_classifier: num_classes must be an integer >= 0, got {num_classes!r}")
        self.arch = replace(self.arch, classes=num_classes)
        self.classifier = classifier(self.arch.head, num_classes)
        init_weights(self.classifier)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The head's feature map, (N, num_features, H', W'), as timm's `forward_features`."""
        return self.head(self.stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool the feature map; the pooled feature (the one distillation matches) with
        `pre_logits`, else the logits."""
        feature = self.pool(x).flatten(1)
        return feature if pre_logits else self.classifier(feature)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> Output:
        """Logits; with `return_features`, (pooled feature, logits)."""
        feature = self.forward_head(self.forward_features(x), pre_logits=True)
        logits = self.classifier(feature)
        return (feature, logits) if return_features else logits


def classifier(width: int, classes: int) -> nn.Module:
    """The last layer: Linear(width -> classes), or Identity for 0 classes (timm's convention)."""
    return nn.Linear(width, classes) if classes > 0 else nn.Identity()


def pretrained_cfg(shape: InputShape, classes: int,
                   checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
    """timm's `pretrained_cfg` of a student: `nas.data` squashes the whole image to the input size
    (bilinear, antialiased), so crop_pct is 1 and crop_mode 'squash'; mean and std come from the
    checkpoint (the training images'), else timm's ImageNet defaults."""
    stored = checkpoint or {}
    return {
        "input_size": (shape.channels, shape.height, shape.width),
        "interpolation": stored.get("interpolation", "bilinear"),
        "antialias": stored.get("antialias", True),
        "mean": tuple(stored.get("mean", IMAGENET_MEAN)),
        "std": tuple(stored.get("std", IMAGENET_STD)),
        "crop_pct": 1.0, "crop_mode": "squash", "num_classes": classes,
        "first_conv": "stem.0", "classifier": "classifier",
    }


def init_weights(model: nn.Module) -> None:
    """The seed report's init: He-normal convs (std sqrt(2/(k*k*out))), BN (1, 0), Linear N(0, 0.001)."""
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
