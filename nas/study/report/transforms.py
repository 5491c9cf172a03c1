"""`nas.transforms`: the inference transform of a saved student, from its checkpoint.

A checkpoint stores how `nas.data` made the pixels the student was trained on: RGB, resized to
the input size (bilinear, antialiased, the whole image, no crop), scaled to [0, 1] and normalised
with the training images' mean and std. The transform does the same to a PIL image or a uint8
tensor, as timm's `resolve_data_config` + `create_transform` do from a `pretrained_cfg`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torchvision.transforms import v2

from nas.model.builder import Student, pretrained_cfg
from nas.model.space import InputShape
from nas.study.report.export import read_checkpoint


def transforms(source: str | Path | dict[str, Any] | Student) -> v2.Compose:
    """The inference transform of a checkpoint file, a checkpoint dict or a student (its
    `pretrained_cfg`: the checkpoint's when it came from `nas.load`)."""
    return transform_from_cfg(data_config(source))


def data_config(source: str | Path | dict[str, Any] | Student) -> dict[str, Any]:
    """The timm-style data config (input_size, mean, std, interpolation, ...) of `source`."""
    if isinstance(source, Student):
        return source.pretrained_cfg
    checkpoint = source if isinstance(source, dict) else read_checkpoint(source)
    return pretrained_cfg(InputShape(*checkpoint["input"]), len(checkpoint["classes"]), checkpoint)


def transform_from_cfg(cfg: dict[str, Any]) -> v2.Compose:
    """Image -> normalised float tensor (C, H, W), the way `nas.data` prepared training images."""
    channels, height, width = cfg["input_size"]
    return v2.Compose([
        v2.ToImage(),
        v2.RGB() if channels == 3 else v2.Grayscale(channels),
        v2.Resize((height, width), interpolation=v2.InterpolationMode(cfg["interpolation"]),
                  antialias=cfg.get("antialias", True)),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(cfg["mean"]), list(cfg["std"])),
    ])
