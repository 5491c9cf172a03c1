"""The model interface timm and torchvision users expect of a Student, and `nas.transforms`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

import nas
from nas.data.dataset import normalize
from nas.data.splits import resize
from nas.errors import GenomeError
from nas.model.builder import IMAGENET_MEAN, Student, build_model
from nas.model.space import InputShape, ModelSettings
from nas.study.report.export import PREPROCESS, save_checkpoint

GENOME = "[2,8,1,1,0] [2,16,1,2,1] eca"
MEAN, STD = [0.25, 0.5, 0.75], [0.2, 0.3, 0.4]


def student(classes: int = 3) -> Student:
    torch.manual_seed(0)
    return build_model(GENOME, shape=InputShape(3, 16, 16), classes=classes).eval()


def checkpoint(model: Student) -> dict[str, Any]:
    """What `nas export` writes, for a 3x16x20 student of 3 classes."""
    return {"format": 1, "kind": "nas.student", "genome": GENOME, "attention": "eca",
            "model": asdict(ModelSettings()), "overrides": [], "classes": ["a", "b", "c"],
            "input": [3, 16, 20], "mean": MEAN, "std": STD, **PREPROCESS,
            "state_dict": model.state_dict()}


def test_features_head_and_logits_agree() -> None:
    model = student()
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        maps = model.forward_features(images)
        assert maps.shape == (2, 128, 4, 4) and model.num_features == 128 == model.feature_dim
        feature, logits = model(images, return_features=True)
        assert torch.equal(model.forward_head(maps, pre_logits=True), feature)
        assert torch.equal(model.forward_head(maps), logits)
        assert torch.equal(maps.mean((2, 3)), feature)
    assert model.num_classes == 3 and model.get_classifier() is model.classifier


def test_reset_classifier() -> None:
    model = student()
    model.reset_classifier(5)
    images = torch.randn(2, 3, 16, 16)
    assert model(images).shape == (2, 5) and model.num_classes == 5
    assert model.pretrained_cfg["num_classes"] == 5
    assert model.classifier.weight.std() < 0.01           # the student's init, N(0, 0.001)
    model.reset_classifier(0)                              # timm: 0 classes gives the features
    feature, logits = model(images, return_features=True)
    assert torch.equal(feature, logits) and model.num_classes == 0
    for bad, message in ((-1, "num_classes must be an integer >= 0, got -1"),
                         (True, "num_classes must be an integer >= 0, got True")):
        with pytest.raises(GenomeError, match=message):
            model.reset_classifier(bad)
    with pytest.raises(GenomeError, match="pools by 'avg' only, got 'max'"):
        model.reset_classifier(2, "max")


def test_pretrained_cfg_of_a_built_and_a_loaded_student(tmp_path: Path) -> None:
    cfg = student().pretrained_cfg
    assert cfg == {"input_size": (3, 16, 16), "interpolation": "bilinear", "antialias": True,
                   "mean": IMAGENET_MEAN, "std": (0.229, 0.224, 0.225), "crop_pct": 1.0,
                   "crop_mode": "squash", "num_classes": 3, "first_conv": "stem.0",
                   "classifier": "classifier"}
    loaded = nas.load(save_checkpoint(checkpoint(student()), tmp_path / "s.pt"))
    assert loaded.pretrained_cfg["input_size"] == (3, 16, 20)
    assert loaded.pretrained_cfg["mean"] == tuple(MEAN) and loaded.default_cfg["std"] == tuple(STD)
    # timm reads it as any of its models' config
    config = resolve_data_config({}, model=loaded)
    assert (config["input_size"], config["mean"], config["crop_mode"]) == ((3, 16, 20), tuple(MEAN), "squash")
    assert create_transform(**config)(Image.new("RGB", (40, 30))).shape == (3, 16, 20)


def test_transforms_prepare_pixels_as_nas_data_did(tmp_path: Path) -> None:
    path = save_checkpoint(checkpoint(student()), tmp_path / "s.pt")
    pixels = torch.randint(0, 256, (3, 24, 30), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    expected = normalize(resize(pixels[None], (16, 20)), tuple(MEAN), tuple(STD))[0]
    for source in (path, str(path), checkpoint(student()), nas.load(path)):
        torch.testing.assert_close(nas.transforms(source)(pixels), expected, atol=1e-6, rtol=0)
    image = Image.fromarray(pixels.permute(1, 2, 0).numpy())             # a PIL image, grey too
    torch.testing.assert_close(nas.transforms(path)(image), expected, atol=1e-6, rtol=0)
    assert nas.transforms(path)(image.convert("L")).shape == (3, 16, 20)


def test_transforms_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(nas.NasError, match="no such checkpoint file"):
        nas.transforms(tmp_path / "absent.pt")


def test_exports() -> None:
    for name in ("transforms", "to_timm_model", "to_torchvision_model", "load_torchvision"):
        assert name in nas.__all__ and callable(getattr(nas, name))
