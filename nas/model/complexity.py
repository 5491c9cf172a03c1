"""FLOPs and parameters in the seed report's convention.

FLOPs are 2 x the multiply-accumulates that the `thop` profiler (0.1.x) reports at
batch 1: convolutions and linears count weights x outputs (bias not counted),
BatchNorm counts 4 per element (2 for normalisation, x2 for the affine part),
adaptive average pooling counts (pooled elements + 1) per output, everything
else (activations, sigmoid, the attention rescale, residual adds) counts 0.

Two counters apply these rules. `count_model` runs forward hooks on any built
model (the teacher, torchvision models, tests). `count` walks the decoded
`Arch` records analytically: no model, no tensors, tens of microseconds a
genome, which the search needs to gate thousands of samples against a budget
(a forward on the `meta` device costs ~200 ms, mostly BatchNorm's Python
meta kernel). Tests check that both agree on many genomes, and cross-check them
against ptflops (same rules as custom hooks) and `FlopCounterMode` (convs, linears).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from nas.model.attention import ATTENTIONS
from nas.model.decode import DEFAULT_CLASSES, Arch, BlockSpec, ShapeLike, resolve
from nas.model.genome import Genome
from nas.model.space import InputShape, Space

Rule = Callable[[nn.Module, torch.Tensor, torch.Tensor], int]


def conv_macs(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    return y.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)


def linear_macs(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    return y.numel() * module.in_features


def norm_macs(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    return x.numel() * (4 if module.affine else 2)


def pool_macs(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    window = math.prod(i // o for i, o in zip(x.shape[2:], y.shape[2:], strict=True))
    return y.numel() * (window + 1)


# Module type -> MACs, as thop 0.1.x counts them; modules not listed count 0.
THOP_RULES: dict[type[nn.Module], Rule] = {
    nn.Conv1d: conv_macs,
    nn.Conv2d: conv_macs,
    nn.Linear: linear_macs,
    nn.BatchNorm1d: norm_macs,
    nn.BatchNorm2d: norm_macs,
    nn.AdaptiveAvgPool2d: pool_macs,
}
MATMUL_RULES = (nn.Conv1d, nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class Complexity:
    """FLOPs (report convention), parameters, and the conv+linear share of the MACs."""

    flops: int
    params: int
    matmul_macs: int   # convolutions and linears only: what FlopCounterMode sees (x2)


def count_model(model: nn.Module, shape: InputShape) -> Complexity:
    """Count any model at batch 1 with the thop rules (works on meta or real tensors)."""
    totals = {"all": 0, "matmul": 0}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        macs = THOP_RULES[type(module)](module, inputs[0], output)
        totals["all"] += macs
        if isinstance(module, MATMUL_RULES):
            totals["matmul"] += macs

    handles = [m.register_forward_hook(hook) for m in model.modules() if type(m) in THOP_RULES]
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, shape.channels, shape.height, shape.width, device=device))
    finally:
        for handle in handles:
            handle.remove()
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Complexity(flops=2 * totals["all"], params=params, matmul_macs=totals["matmul"])


class _Tally:
    """Running MAC and parameter totals of an analytic walk."""

    def __init__(self) -> None:
        self.macs = 0
        self.matmul = 0
        self.params = 0

    def conv(self, in_ch: int, out_ch: int, kernel: int, positions: int, groups: int = 1) -> None:
        weights = in_ch // groups * out_ch * kernel * kernel
        self.macs += weights * positions
        self.matmul += weights * positions
        self.params += weights

    def norm(self, channels: int, positions: int) -> None:
        self.macs += 4 * channels * positions
        self.params += 2 * channels

    def conv_bn(self, in_ch: int, out_ch: int, kernel: int, positions: int, groups: int = 1) -> None:
        self.conv(in_ch, out_ch, kernel, positions, groups)
        self.norm(out_ch, positions)

    def linear(self, in_features: int, out_features: int) -> None:
        self.macs += in_features * out_features
        self.matmul += in_features * out_features
        self.params += in_features * out_features + out_features

    def attention(self, spec: BlockSpec, channels: int, positions: int) -> None:
        cost = ATTENTIONS[spec.attention].cost(channels, positions, spec.se_width)
        self.macs += cost.macs
        self.matmul += cost.matmul_macs
        self.params += cost.params


def _out(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def _block(tally: _Tally, spec: BlockSpec, height: int, width: int) -> tuple[int, int]:
    """Add one block's counts; return its output size."""
    out_h, out_w = _out(height, spec.kernel, spec.stride), _out(width, spec.kernel, spec.stride)
    before, after = height * width, out_h * out_w
    if spec.fused:
        mid = spec.hidden if spec.expand else spec.out_ch
        tally.conv_bn(spec.in_ch, mid, spec.kernel, after)
    else:
        mid = spec.hidden
        if spec.expand:
            tally.conv_bn(spec.in_ch, mid, 1, before)
        tally.conv_bn(mid, mid, spec.kernel, after, groups=mid)
    tally.attention(spec, mid, after)
    if spec.expand or not spec.fused:
        tally.conv_bn(mid, spec.out_ch, 1, after)
    return out_h, out_w


def count_arch(arch: Arch) -> Complexity:
    """Analytic counts of a decoded architecture at its input; equal to `count_model` on its Student."""
    tally = _Tally()
    shape = arch.input
    height, width = _out(shape.height, 3, arch.stem_stride), _out(shape.width, 3, arch.stem_stride)
    tally.conv_bn(arch.in_channels, arch.stem, 3, height * width)
    for spec in (spec for stage in arch.blocks for spec in stage):
        height, width = _block(tally, spec, height, width)
    tally.conv_bn(arch.blocks[-1][-1].out_ch, arch.head, 1, height * width)
    tally.macs += arch.head * (height * width + 1)       # global average pool
    tally.linear(arch.head, arch.classes)
    return Complexity(flops=2 * tally.macs, params=tally.params, matmul_macs=tally.matmul)


def count(genome: Genome | str, space: Space | None = None, *,
          shape: ShapeLike | None = None, classes: int = DEFAULT_CLASSES) -> Complexity:
    """FLOPs and parameters of `genome` at `shape` (an InputShape or (C, H, W); default: the
    space's [input], else the digits' 3x32x32) with `classes` outputs (default 10)."""
    return count_arch(resolve(genome, space, shape=shape, classes=classes))
