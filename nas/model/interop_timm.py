"""Students as timm models: `timm.models.efficientnet.EfficientNet` built from the block strings.

`to_timm_model(student)` gives timm's EfficientNet with the student's weights (same parameter
count, same logits); `from_timm_model` reads one back. Importing this module registers
`nas_student` with timm, so `timm.create_model("nas_student", genome="[2,8,6,1,0] eca",
space="seed.toml", num_classes=10)` and timm's training scripts (`--model nas_student
--model-kwargs genome=...`) build a student. SE is timm's own SqueezeExcite (its width written
exactly as the strings' `se` ratio); ECA is ours passed as timm's `se_layer`, because timm's
EcaModule has no conv bias and sizes its kernel from the channels, where ours is kernel 3 with a bias.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

from timm.models import register_model
from timm.models._efficientnet_blocks import SqueezeExcite
from timm.models._efficientnet_builder import decode_arch_def
from timm.models.efficientnet import EfficientNet
from torch import nn

from nas.errors import GenomeError
from nas.model.attention_modules import ECA
from nas.model.builder import Student, pretrained_cfg
from nas.model.decode import Arch, BlockSpec, resolve
from nas.model.space import InputShape, load_space
from nas.model.statemap import Pairs, flip, rename
from nas.model.timm_arch import timm_spec

__all__ = ["from_timm_model", "timm_model", "timm_pairs", "to_timm_model"]


def timm_eca(channels: int, **_: Any) -> nn.Module:
    """Our ECA as timm's `se_layer` (timm passes the width, rd_ratio and act_layer; ECA needs none)."""
    return ECA()


SE_LAYERS: dict[str, Any] = {"se": SqueezeExcite, "eca": timm_eca, "none": None}


def timm_model(arch: Arch, **options: Any) -> EfficientNet:
    """timm's EfficientNet of `arch`, untrained; `options` go to EfficientNet (drop_rate, ...)."""
    spec = timm_spec(arch)
    return EfficientNet(
        decode_arch_def(spec.block_strings), num_classes=spec.num_classes,
        num_features=spec.num_features, in_chans=spec.in_chans, stem_size=spec.stem_size,
        fix_stem=True, act_layer=nn.SiLU, norm_layer=partial(nn.BatchNorm2d, eps=spec.bn_eps),
        se_layer=SE_LAYERS[spec.attention], **options)


def to_timm_model(student: Student, **options: Any) -> EfficientNet:
    """timm's EfficientNet holding `student`'s weights, in the student's train/eval mode, with its
    `pretrained_cfg`."""
    model = timm_model(student.arch, **options)
    model.load_state_dict(rename(student.state_dict(), timm_pairs(student.arch),
                                 model.state_dict(), "timm EfficientNet"))
    model.pretrained_cfg = model.default_cfg = timm_cfg(student.pretrained_cfg)
    return model.train(student.training)


def from_timm_model(model: nn.Module, arch: Arch) -> Student:
    """The student of `arch` holding a timm EfficientNet's weights (one `to_timm_model` made, or
    one trained by timm's scripts)."""
    student = Student(arch)
    student.load_state_dict(rename(model.state_dict(), flip(timm_pairs(arch)),
                                   student.state_dict(), "student"))
    return student.train(model.training)


def timm_pairs(arch: Arch) -> Pairs:
    """Our module names -> timm's, for every module that holds weights."""
    pairs = [("stem.0", "conv_stem"), ("stem.1", "bn1")]
    for i, stage in enumerate(arch.blocks):
        for j, spec in enumerate(stage):
            pairs += [(f"stages.{i}.{j}.{ours}", f"blocks.{i}.{j}.{theirs}")
                      for ours, theirs in _block_pairs(spec)]
    return pairs + [("head.0", "conv_head"), ("head.1", "bn2"), ("classifier", "classifier")]


def _block_pairs(spec: BlockSpec) -> Pairs:
    """One block's modules against timm's InvertedResidual (ir), DepthwiseSeparableConv (ds),
    EdgeResidual (er) or ConvBnAct (cn)."""
    attn = {"se": [("attn.fc1", "se.conv_reduce"), ("attn.fc2", "se.conv_expand")],
            "eca": [("attn.conv", "se.conv")], "none": []}[spec.attention]
    if spec.fused and not spec.expand:
        return [("conv_exp.0", "conv"), ("conv_exp.1", "bn1")]
    if spec.fused:
        return [("conv_exp.0", "conv_exp"), ("conv_exp.1", "bn1"), *attn,
                ("conv_pwl.0", "conv_pwl"), ("conv_pwl.1", "bn2")]
    if not spec.expand:
        return [("conv_dw.0", "conv_dw"), ("conv_dw.1", "bn1"), *attn,
                ("conv_pwl.0", "conv_pw"), ("conv_pwl.1", "bn2")]
    return [("conv_pw.0", "conv_pw"), ("conv_pw.1", "bn1"), ("conv_dw.0", "conv_dw"),
            ("conv_dw.1", "bn2"), *attn, ("conv_pwl.0", "conv_pwl"), ("conv_pwl.1", "bn3")]


def nas_student(pretrained: bool = False, *, genome: str, space: str | None = None,
                num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """timm's entry point: the untrained timm EfficientNet of `genome` in `space` (a bundled name or
    a path; the seed family when None); other keywords (drop_rate, drop_path_rate) go to timm."""
    if pretrained:
        raise GenomeError("nas_student has no pretrained weights: load a checkpoint with "
                          "nas.load(path) and convert it with nas.to_timm_model")
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(key, None)      # timm's factory passes these to every entry point
    settings = load_space(space) if space else None
    shape = replace((settings.input if settings and settings.input else InputShape()), channels=in_chans)
    arch = resolve(genome, settings, shape=shape, classes=num_classes)
    model = timm_model(arch, **kwargs)      # timm's own init, as for any model it creates
    model.pretrained_cfg = model.default_cfg = timm_cfg(pretrained_cfg(arch.input, arch.classes))
    return model


def timm_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    """A student's pretrained_cfg with the layer names of timm's EfficientNet."""
    return {**cfg, "first_conv": "conv_stem", "classifier": "classifier"}


register_model(nas_student)
