"""The classifiers of the trunk teachers (torchvision's and timm's) and where their trunks end.

A trunk is the convolutional part of a classifier: everything before its global pooling and
classifier. The teacher table (nas.model.teachers) pairs each kind's classifier builder with
one of the cuts here; the seed report's head then goes on top (nas.train.trunk).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from nas.errors import TrainError, nearest
from nas.model.pretrained import WeightsError
from nas.model.weights import UnreadableWeights, load_weights

HF_FILES = ("model.safetensors", "pytorch_model.bin")   # what timm looks for in a hub repo


@dataclass(frozen=True)
class Trunk:
    """A classifier cut where its trunk ends: the module giving feature maps, and their channels."""

    module: nn.Module
    width: int


class TimmTrunk(nn.Module):
    """A timm model's `forward_features`: stem, blocks and any conv before the pooling."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        model.reset_classifier(0)
        self.net = model
        self.width = int(model.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)


def timm_trunk(model: nn.Module) -> Trunk:
    """Where a timm model's trunk ends (EfficientNet-Lite is one): before `forward_head`."""
    trunk = TimmTrunk(model)
    return Trunk(trunk, trunk.width)


def torchvision_trunk(model: nn.Module) -> Trunk:
    """Where a torchvision classifier's trunk ends: its `features`, or the layers before avgpool/fc."""
    if isinstance(getattr(model, "features", None), nn.Module):
        trunk = model.features
    elif {"avgpool", "fc"} <= set(dict(model.named_children())):
        trunk = nn.Sequential(*(m for n, m in model.named_children() if n not in ("avgpool", "fc")))
    else:
        raise TrainError(f"teacher.model: {type(model).__name__} has no convolutional trunk we "
                         f"know how to use (features, or layers before avgpool/fc)")
    with torch.no_grad():
        width = trunk.eval()(torch.zeros(1, 3, 64, 64)).shape[1]
    return Trunk(trunk, int(width))


def torchvision_classifier(name: str, weights: str) -> nn.Module:
    """torchvision's classification model `name`: random, from a state_dict file, or its
    pretrained weights (torch's cache, or the network once)."""
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if name not in names:
        raise TrainError(f"teacher.model: unknown torchvision classification model {name!r}"
                         f"{nearest(name, names)}")
    if weights != "pretrained":
        model = torchvision.models.get_model(name, weights=None)
        return load_file(model, weights, f"torchvision's {name}") if weights != "none" else model
    try:
        return torchvision.models.get_model(name, weights="DEFAULT")
    except Exception as error:  # urllib/SSL/OS errors differ by platform
        raise TrainError(f"teacher.weights = 'pretrained': cannot get torchvision's {name} weights "
                         f"(offline?): {error}; download them once online or pass a weights "
                         f"file") from None


def timm_classifier(name: str, weights: str) -> nn.Module:
    """timm's model `name` without its classifier: random, from a state_dict file (a classifier
    in it, of any class count, is left out), or its pretrained weights when they are on disk."""
    import timm

    if not timm.is_model(name):
        raise TrainError(f"teacher.model: unknown timm model {name!r}{nearest(name, timm.list_models())}")
    if weights == "pretrained":
        overlay = {"file": str(timm_cached_weights(name))}
        return timm.create_model(name, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay)
    model = timm.create_model(name, pretrained=False, num_classes=0)
    if weights == "none":
        return model
    head = model.pretrained_cfg.get("classifier") or ()
    heads = (head,) if isinstance(head, str) else tuple(head)
    return load_file(model, weights, f"timm's {name}",
                     keep=lambda key: not any(key.startswith(f"{h}.") for h in heads))


def timm_cached_weights(name: str) -> Path:
    """The file of timm's pretrained `name` in the Hugging Face or torch hub cache; a one-line
    WeightsError when it is not there (nothing is downloaded)."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is not None and cfg.hf_hub_id:
        for filename in ((cfg.hf_hub_filename,) if cfg.hf_hub_filename else HF_FILES):
            found = try_to_load_from_cache(cfg.hf_hub_id, filename)
            if isinstance(found, str):
                return Path(found)
    if cfg is not None and cfg.url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(cfg.url).path).name
        if path.is_file():
            return path
    where = cfg.hf_hub_id if cfg is not None and cfg.hf_hub_id else "the torch hub cache"
    raise WeightsError(f"teacher.weights = 'pretrained': timm's {name} weights are not on disk "
                       f"({where}); download them once online (timm.create_model({name!r}, "
                       f"pretrained=True)) or pass a state_dict file")


def load_file(model: nn.Module, weights: str, what: str,
              keep: Callable[[str], bool] | None = None) -> nn.Module:
    """Load a state_dict file saved from the same architecture (weights_only); `keep(key)`
    filters the file's keys (a classifier the trunk does not use)."""
    path = Path(weights)
    if not path.is_file():
        raise TrainError(f"teacher.weights: no such file {str(path)!r}")
    try:
        state = load_weights(path)
    except UnreadableWeights as error:
        raise TrainError(f"teacher.weights: {path} is not a state_dict file that torch.load can "
                         f"read with weights_only=True ({str(error).split(':')[0]})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if keep is not None and isinstance(state, dict):
        state = {key: value for key, value in state.items() if keep(key)}
    try:
        model.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError, AttributeError) as error:
        first = str(error).strip().splitlines()
        raise TrainError(f"teacher.weights: {path} does not fit {what}: "
                         f"{' '.join(line.strip() for line in first[:3])[:300]}") from None
    return model
