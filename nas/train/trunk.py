"""Trunk teachers: a pretrained (or random) convolutional trunk, then the report's head.

The head is the report's: a 3x3 conv from the trunk's width to the feature width, global
pooling (the feature), and an MLP classifier. With a frozen trunk (`[teacher] train = "head"`)
the trunk's outputs on every view, and on val and test, are computed once and cached on disk,
so only the head is trained and a second run needs no trunk pass at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nas.data.cache import FORMAT, cache_root, digest, read_cache, write_cache
from nas.data.dataset import Dataset, Views, normalize
from nas.errors import TrainError, nearest
from nas.model.blocks import ConvBNAct
from nas.model.builder import Output
from nas.model.recipe import TeacherConfig
from nas.model.weights import UnreadableWeights, load_weights
from nas.train.pretrained import LITE, lite_trunk, weights_digest

Triple = tuple[float, float, float]
IMAGENET: tuple[Triple, Triple] = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
TF_LITE: tuple[Triple, Triple] = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))   # [-1, 1], as TF trained it
MAP_KEYS = ("views", "val", "test")


class ReportHead(nn.Module):
    """3x3 conv to `feature_dim` -> pool (the feature) -> MLP classifier (the report's teacher)."""

    def __init__(self, width: int, feature_dim: int, classes: int) -> None:
        super().__init__()
        self.project = ConvBNAct(width, feature_dim, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.SiLU(),
                                        nn.Dropout(0.2), nn.Linear(feature_dim, classes))

    def forward(self, maps: torch.Tensor, return_features: bool = False) -> Output:
        """Logits; with `return_features`, (feature, logits), as a student answers."""
        feature = self.pool(self.project(maps)).flatten(1)
        logits = self.classifier(feature)
        return (feature, logits) if return_features else logits


class TrunkTeacher(nn.Module):
    """trunk -> ReportHead; a frozen trunk never trains and stays in eval mode (fixed BN stats)."""

    def __init__(self, trunk: nn.Module, width: int, feature_dim: int, classes: int,
                 frozen: bool) -> None:
        super().__init__()
        self.trunk = trunk
        self.width = width          # the trunk's output channels
        self.head = ReportHead(width, feature_dim, classes)
        self.frozen = frozen
        self.trunk.requires_grad_(not frozen)

    def train(self, mode: bool = True) -> TrunkTeacher:
        super().train(mode)
        if self.frozen:
            self.trunk.eval()
        return self

    def forward(self, x: torch.Tensor, return_features: bool = False) -> Output:
        return self.head(self.trunk(x), return_features)


def build_trunk(config: TeacherConfig, weights: str) -> tuple[nn.Module, int]:
    """The trunk a `lite` or `torchvision` teacher names, and its output width."""
    if config.kind == "lite":
        if config.model not in LITE:
            raise TrainError(f"teacher.model: unknown EfficientNet-Lite {config.model!r}"
                             f"{nearest(config.model, LITE)}; choose one of {', '.join(LITE)}")
        trunk = lite_trunk(config.model, weights)
        return trunk, trunk.width
    trunk = _trunk(_torchvision_model(config.model, weights))
    with torch.no_grad():
        width = trunk.eval()(torch.zeros(1, 3, 64, 64)).shape[1]
    return trunk, int(width)


def _torchvision_model(name: str, weights: str) -> nn.Module:
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if name not in names:
        raise TrainError(f"teacher.model: unknown torchvision classification model {name!r}"
                         f"{nearest(name, names)}")
    if weights != "pretrained":
        model = torchvision.models.get_model(name, weights=None)
        return _load_weights(model, Path(weights), name) if weights != "none" else model
    try:
        return torchvision.models.get_model(name, weights="DEFAULT")
    except Exception as error:  # urllib/SSL/OS errors differ by platform
        raise TrainError(f"teacher.weights = 'pretrained': cannot get torchvision's {name} weights "
                         f"(offline?): {error}; download them once online or pass a weights "
                         f"file") from None


def _load_weights(model: nn.Module, path: Path, name: str) -> nn.Module:
    """Load a state dict saved from the same torchvision model (weights_only)."""
    if not path.is_file():
        raise TrainError(f"teacher.weights: no such file {str(path)!r}")
    try:
        state = load_weights(path)
    except UnreadableWeights as error:
        raise TrainError(f"teacher.weights: {path} is not a state_dict file that torch.load can "
                         f"read with weights_only=True ({str(error).split(':')[0]})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError, AttributeError) as error:
        first = str(error).strip().splitlines()
        raise TrainError(f"teacher.weights: {path} does not fit torchvision's {name}: "
                         f"{' '.join(line.strip() for line in first[:3])[:300]}") from None
    return model


def _trunk(model: nn.Module) -> nn.Module:
    """The convolutional feature extractor of a torchvision classifier."""
    if isinstance(getattr(model, "features", None), nn.Module):
        return model.features
    children = dict(model.named_children())
    if "avgpool" in children and "fc" in children:
        return nn.Sequential(*(m for n, m in children.items() if n not in ("avgpool", "fc")))
    raise TrainError(f"teacher.model: {type(model).__name__} has no convolutional trunk we "
                     f"know how to use (features, or layers before avgpool/fc)")


def input_stats(config: TeacherConfig, data: Dataset) -> tuple[Triple, Triple]:
    """How a teacher's input is normalised: as its pretrained weights were trained, else by the data."""
    if config.weights == "none" or config.kind == "genome":
        return data.mean, data.std
    return TF_LITE if config.kind == "lite" else IMAGENET


@dataclass(frozen=True)
class TrunkMaps:
    """Frozen-trunk outputs (float16) on every training view and on val and test."""

    views: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor


def maps_key(config: TeacherConfig, data: Dataset, views: Views) -> str:
    """Cache key of the trunk outputs: trunk, its weights file, the input size, the views."""
    return digest({"trunk": [config.kind, config.model, config.weights],
                   "weights_file": weights_digest(config.kind, config.model, config.weights),
                   "size": data.image_size, "data": data.fingerprint, "views": views.fingerprint})


def trunk_maps(teacher: TrunkTeacher, config: TeacherConfig, data: Dataset, views: Views,
               device: torch.device, cache_dir: Path | None) -> TrunkMaps:
    """The cached trunk outputs for these views, or computed once now and cached."""
    path = cache_root(cache_dir) / "trunk" / f"{maps_key(config, data, views)}.pt"
    blob = read_cache(path, MAP_KEYS)
    if blob is not None and len(blob["views"]) == len(views.labels):
        return TrunkMaps(blob["views"], blob["val"], blob["test"])
    mean, std = input_stats(config, data)
    maps = TrunkMaps(*(run_trunk(teacher.trunk, images, mean, std, device)
                       for images in (views.images, data.val.images, data.test.images)))
    write_cache(path, {"format": FORMAT, "views": maps.views, "val": maps.val, "test": maps.test})
    return maps


@torch.no_grad()
def run_trunk(trunk: nn.Module, images: torch.Tensor, mean: Triple, std: Triple,
              device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """The trunk's float16 outputs over uint8 images, in eval mode and in batches."""
    trunk.eval()
    out = [trunk(normalize(images[start:start + batch_size].to(device), mean, std)).half().cpu()
           for start in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0)
