"""Students as torchvision EfficientNets: `MBConvConfig` / `FusedMBConvConfig` stages, and back.

torchvision's blocks are narrower than ours: its MBConv always has SE, floor(in / 4) wide, and
no expansion conv at t = 1; its FusedMBConv has no attention; its stem takes 3 channels with
stride 2. A student that fits (`efficientnetv2_s.toml` is torchvision's EfficientNetV2-S) becomes
a torchvision model with the same weights and logits, and `load_torchvision` reads torchvision's
weights from a state-dict file into the student. Anything else is refused in one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models.efficientnet import EfficientNet, FusedMBConvConfig, MBConvConfig

from nas.errors import CheckpointError, GenomeError
from nas.model.builder import Student
from nas.model.decode import Arch, BlockSpec, resolve
from nas.model.genome import Genome, make_divisible
from nas.model.space import InputShape, Space, load_space
from nas.model.statemap import Pairs, flip, rename
from nas.model.weights import UnreadableWeights, load_weights

Config = MBConvConfig | FusedMBConvConfig


@dataclass(frozen=True)
class TorchvisionSpec:
    """torchvision's `EfficientNet` arguments for a student."""

    stages: tuple[Config, ...]
    last_channel: int
    num_classes: int
    bn_eps: float


def torchvision_spec(arch: Arch) -> TorchvisionSpec:
    """The stage configs of `arch`; GenomeError when torchvision's blocks cannot build it exactly."""
    if arch.in_channels != 3 or arch.stem_stride != 2:
        raise GenomeError(f"input {arch.in_channels} channels, stem stride {arch.stem_stride}: "
                          "torchvision's EfficientNet stem takes 3 channels with stride 2")
    stages = tuple(_config(index, stage) for index, stage in enumerate(arch.blocks, 1))
    return TorchvisionSpec(stages, arch.head, arch.classes, arch.bn_eps)


def _config(index: int, stage: tuple[BlockSpec, ...]) -> Config:
    first = stage[0]
    for width in (first.in_ch, first.out_ch):
        if make_divisible(width, 8) != width:
            raise GenomeError(f"stage {index}: width {width}: torchvision rounds channels to "
                              "multiples of 8")
    t = first.hidden // first.in_ch
    if first.expand != (t != 1):
        raise GenomeError(f"stage {index}: t = 1 with model.expand_at_t1 = true; torchvision's "
                          "blocks have no expansion conv at t = 1")
    for spec in stage:
        _check_attention(index, spec)
    cls = FusedMBConvConfig if first.fused else MBConvConfig
    return cls(t, first.kernel, first.stride, first.in_ch, first.out_ch, len(stage))


def _check_attention(index: int, spec: BlockSpec) -> None:
    if spec.fused and spec.attention != "none":
        raise GenomeError(f"stage {index}: attention {spec.attention}: torchvision's FusedMBConv "
                          "has no attention; use none")
    if not spec.fused and (spec.attention != "se" or spec.se_width != max(1, spec.in_ch // 4)):
        raise GenomeError(f"stage {index}: attention {spec.attention} (width {spec.se_width}): "
                          "torchvision's MBConv has SE floor(in / 4) wide; use se with "
                          "se_base = 'input', se_divisor = 1")


def torchvision_model(arch: Arch, **options: Any) -> EfficientNet:
    """torchvision's EfficientNet of `arch`, untrained; no dropout or stochastic depth unless
    `options` ask (the student has neither)."""
    spec = torchvision_spec(arch)
    settings = {"dropout": 0.0, "stochastic_depth_prob": 0.0, **options}
    return EfficientNet(list(spec.stages), num_classes=spec.num_classes,
                        norm_layer=partial(nn.BatchNorm2d, eps=spec.bn_eps),
                        last_channel=spec.last_channel, **settings)


def to_torchvision_model(student: Student, **options: Any) -> EfficientNet:
    """torchvision's EfficientNet holding `student`'s weights, in the student's train/eval mode."""
    model = torchvision_model(student.arch, **options)
    model.load_state_dict(rename(student.state_dict(), torchvision_pairs(student.arch),
                                 model.state_dict(), "torchvision EfficientNet"))
    return model.train(student.training)


def load_torchvision(source: str | Path | Mapping[str, torch.Tensor],
                     space: str | Space = "efficientnetv2_s.toml", genome: Genome | str | None = None,
                     *, shape: InputShape | None = None) -> Student:
    """The student of `genome` (the space's only genome when None) holding torchvision's weights,
    read from a state-dict file (`torch.save(model.state_dict(), path)`) or given; eval mode."""
    state = _read_state(source)
    space = load_space(space) if isinstance(space, str | Path) else space
    classes = state["classifier.1.weight"].shape[0] if "classifier.1.weight" in state else 1000
    arch = resolve(genome or only_genome(space), space, shape=shape, classes=classes)
    torchvision_spec(arch)      # refuse, naming the stage, what torchvision's blocks cannot be
    student = Student(arch)
    student.load_state_dict(rename(state, flip(torchvision_pairs(arch)), student.state_dict(),
                                   f"{space.name} student"))
    return student.eval()


def only_genome(space: Space) -> Genome:
    """The genome of a space whose every gene is fixed (efficientnetv2_s.toml)."""
    if space.size() != 1:
        raise GenomeError(f"space {space.name} describes {space.size():,} genomes; name one")
    return space.extremes(largest=True)[0]


def _read_state(source: str | Path | Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    if isinstance(source, Mapping):
        return source
    try:
        state = load_weights(Path(source))
    except UnreadableWeights as error:
        raise CheckpointError(f"{source}: not a torchvision state dict ({error})") from None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{source}: holds a {type(state).__name__}, not a state dict; "
                              "save model.state_dict()")
    return state


def torchvision_pairs(arch: Arch) -> Pairs:
    """Our module names -> torchvision's, for every module that holds weights."""
    pairs = [("stem.0", "features.0.0"), ("stem.1", "features.0.1")]
    for i, stage in enumerate(arch.blocks):
        for j, spec in enumerate(stage):
            pairs += [(f"stages.{i}.{j}.{ours}", f"features.{i + 1}.{j}.block.{theirs}")
                      for ours, theirs in _block_pairs(spec)]
    head = len(arch.blocks) + 1
    return pairs + [("head.0", f"features.{head}.0"), ("head.1", f"features.{head}.1"),
                    ("classifier", "classifier.1")]


def _block_pairs(spec: BlockSpec) -> Pairs:
    """One block's modules against torchvision's `block` Sequential, numbered in order."""
    if spec.fused:
        convs = ["conv_exp", "conv_pwl"] if spec.expand else ["conv_exp"]
        layers: list[str] = convs
    else:
        layers = [*(["conv_pw"] if spec.expand else []), "conv_dw", "attn", "conv_pwl"]
    pairs: Pairs = []
    for k, name in enumerate(layers):
        pairs += ([(f"{name}.fc1", f"{k}.fc1"), (f"{name}.fc2", f"{k}.fc2")] if name == "attn"
                  else [(f"{name}.0", f"{k}.0"), (f"{name}.1", f"{k}.1")])
    return pairs
