"""Trunk teachers: a pretrained (or random) convolutional trunk, then the seed report's head.

Which trunk, cut where, normalised how: the kind's row of TEACHERS (nas.model.teachers).
The head is the seed report's: a 3x3 conv from the trunk's width to the feature width, global
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
from nas.data.memory import require
from nas.errors import TrainError
from nas.model import pretrained
from nas.model.blocks import ConvBNAct
from nas.model.builder import Output
from nas.model.recipe import TeacherConfig
from nas.model.teachers import TEACHERS, Stats, Triple

MAP_KEYS = ("views", "val", "test")
MAP_DTYPE = torch.float16     # the cached trunk outputs


class ReportHead(nn.Module):
    """3x3 conv to `feature_dim` -> pool (the feature) -> MLP classifier (the seed report's teacher)."""

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


def input_stats(config: TeacherConfig, data: Dataset) -> Stats:
    """How a teacher's input is normalised: as its initial weights were trained (its row of
    TEACHERS), else (random weights, a genome) by the data."""
    stats = TEACHERS[config.kind].stats
    if config.weights == "none" or stats is None:
        return data.mean, data.std
    return stats(config.model)


def weights_digest(config: TeacherConfig) -> str | None:
    """Content hash of the file a teacher's initial weights come from (None: no file, or
    'pretrained' weights its kind names by model alone)."""
    find = TEACHERS[config.kind].pretrained_file
    if config.weights == "pretrained":
        return pretrained.digest(find(config.model)) if find is not None else None
    path = Path(config.weights)
    return pretrained.digest(path) if config.weights != "none" and path.is_file() else None


@dataclass(frozen=True)
class TrunkMaps:
    """Frozen-trunk outputs (float16) on every training view and on val and test."""

    views: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor


def maps_key(config: TeacherConfig, data: Dataset, views: Views) -> str:
    """Cache key of the trunk outputs: trunk, its weights file, the input size, the views."""
    return digest({"trunk": [config.kind, config.model, config.weights],
                   "weights_file": weights_digest(config),
                   "size": data.image_size, "data": data.fingerprint, "views": views.fingerprint})


def trunk_maps(teacher: TrunkTeacher, config: TeacherConfig, data: Dataset, views: Views,
               device: torch.device, cache_dir: Path | None) -> TrunkMaps:
    """The cached trunk outputs for these views, or computed once now and cached; either way
    mapped from the cache file, so the kernel may drop their pages while the head trains."""
    path = cache_root(cache_dir) / "trunk" / f"{maps_key(config, data, views)}.pt"
    blob = read_cache(path, MAP_KEYS)
    if blob is not None and len(blob["views"]) == len(views.labels):
        return TrunkMaps(blob["views"], blob["val"], blob["test"])
    rows = len(views.labels) + len(data.val.labels) + len(data.test.labels)
    shape = map_shape(teacher.trunk, config.model, data.image_size, device)
    require({"trunk outputs": rows * MAP_DTYPE.itemsize * shape.numel()},
            f"the teacher's trunk pass over {rows:,} images of {data.image_size[0]}x{data.image_size[1]}")
    mean, std = input_stats(config, data)
    maps = TrunkMaps(*(run_trunk(teacher.trunk, images, mean, std, device)
                       for images in (views.images, data.val.images, data.test.images)))
    blob = write_cache(path, {"format": FORMAT, "views": maps.views, "val": maps.val, "test": maps.test})
    return TrunkMaps(blob["views"], blob["val"], blob["test"])


@torch.no_grad()
def run_trunk(trunk: nn.Module, images: torch.Tensor, mean: Triple, std: Triple,
              device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """The trunk's float16 outputs over uint8 images, in eval mode and in batches, written into
    one tensor allocated up front (a list of batches joined at the end would hold them twice)."""
    trunk.eval()
    out: torch.Tensor | None = None
    for start in range(0, len(images), batch_size):
        maps = trunk(normalize(images[start:start + batch_size].to(device), mean, std))
        if out is None:
            out = torch.empty((len(images), *maps.shape[1:]), dtype=MAP_DTYPE)
        out[start:start + len(maps)] = maps
    return out if out is not None else torch.zeros(0)


def map_shape(trunk: nn.Module, name: str, size: tuple[int, int], device: torch.device) -> torch.Size:
    """One image's trunk output shape at `size`; refuses a size the trunk cannot take (its pools
    shrink it to nothing), or a trunk that gives no feature maps (a vision transformer's tokens)."""
    try:
        with torch.no_grad():
            maps = trunk.eval()(torch.zeros(1, 3, *size, device=device))
    except RuntimeError as error:
        raise TrainError(f"teacher.model: {name} cannot take {size[0]}x{size[1]} inputs "
                         f"({str(error).strip().splitlines()[0][:200]}); use a larger "
                         f"[teacher] image_size or another model") from None
    if maps.dim() != 4:
        raise TrainError(f"teacher.model: {name}'s trunk gives outputs of shape {tuple(maps.shape)}, "
                         f"not feature maps; choose a convolutional model")
    return maps.shape[1:]
