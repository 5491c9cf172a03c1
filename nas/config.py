"""Recipe sections of a space file (`[train]`, `[distill]`, `[teacher]`, `[search]`).

Each section is a frozen dataclass with defaults. They live here, torch-free,
rather than beside the torch code that uses them, so that `nas space FILE`
validates a whole file without importing torch. `parse_section` turns a TOML
table into one of them with file/key/value errors and nearest-key suggestions.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nas.errors import SpaceError

T = TypeVar("T")

AUGMENT_OPS = (
    "hflip",
    "blur",
    "color_jitter",
    "autoaugment_imagenet",
    "autoaugment_cifar10",
    "autoaugment_svhn",
    "randaugment",
)


@dataclass(frozen=True)
class AugmentConfig:
    """Fixed augmented views of the training set, as the report built them.

    Each entry of `views` is one extra copy of the training images, made by
    the '+'-joined ops (e.g. "blur+hflip"); the original images are always kept.
    """

    views: tuple[str, ...] = ()
    color_jitter: float = 0.5
    blur_kernel: int = 5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    randaugment_ops: int = 2
    randaugment_magnitude: int = 9


@dataclass(frozen=True)
class TrainConfig:
    """The student recipe; defaults are the report's (Adam, lr 5e-3, cosine to 0.1 lr)."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 5e-3
    lr_min_ratio: float = 0.1
    weight_decay: float = 0.0
    optimizer: str = "adam"
    val_fraction: float = 0.2
    split_seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class DistillConfig:
    """Distillation loss: 'feature' = (1-a) MSE(features) + a CE (the report's),
    'logit' = (1-a) KL(T) T^2 + a CE (Hinton), 'both' = (1-a)(MSE + KL T^2) + a CE."""

    loss: str = "feature"
    alpha: float = 0.5
    temperature: float = 2.0


@dataclass(frozen=True)
class TeacherConfig:
    """A fixed teacher: a (bigger) genome of our family or a torchvision model."""

    kind: str = "genome"
    genome: str = "[4,32,2,1,1] [4,64,3,2,0] [4,128,3,2,0]"
    attention: str = "se"
    model: str = "resnet18"
    weights: str = "none"
    epochs: int = 30
    lr: float = 2e-3
    batch_size: int = 32


@dataclass(frozen=True)
class SearchConfig:
    """Defaults of `nas search`; command-line flags override them."""

    sampler: str = "tpe"
    trials: int = 30
    epochs: int = 3
    timeout: float | None = None
    seed: int = 0
    budget_flops: float | None = None
    budget_params: float | None = None


CHOICES: dict[str, tuple[str, ...]] = {
    "TrainConfig.optimizer": ("adam", "adamw", "sgd"),
    "DistillConfig.loss": ("feature", "logit", "both"),
    "TeacherConfig.kind": ("genome", "torchvision"),
    "SearchConfig.sampler": ("tpe", "nsga2", "random"),
}


def nearest(name: str, options: typing.Iterable[str]) -> str:
    """' (did you mean `x`?)' for the closest option, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" (did you mean `{match[0]}`?)" if match else ""


def parse_section(cls: type[T], table: Any, where: str) -> T:
    """Build dataclass `cls` from a TOML table; `where` is 'file: section' for errors."""
    if not isinstance(table, dict):
        raise SpaceError(f"{where} must be a table, got {type(table).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key not in known:
            raise SpaceError(f"{where}.{key} is not a known key{nearest(key, known)}")
        values[key] = _coerce(hints[key], raw, f"{where}.{key}")
        choices = CHOICES.get(f"{cls.__name__}.{key}")
        if choices is not None and values[key] not in choices:
            raise SpaceError(f"{where}.{key} must be one of {list(choices)}, got {raw!r}")
    return cls(**values)


def _coerce(hint: Any, raw: Any, where: str) -> Any:
    """Check `raw` against a field's type hint and convert lists to tuples."""
    if dataclasses.is_dataclass(hint):
        return parse_section(hint, raw, where)
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(options[0], raw, where)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(raw, list):
            raise SpaceError(f"{where} must be a list, got {raw!r}")
        item = args[0]
        if args[-1] is not Ellipsis and len(raw) != len(args):
            raise SpaceError(f"{where} must have {len(args)} items, got {len(raw)}")
        return tuple(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(raw))
    return _scalar(hint, raw, where)


def _scalar(hint: Any, raw: Any, where: str) -> Any:
    """Check one scalar: ints are not bools, floats accept ints, strings stay strings."""
    if hint is float and isinstance(raw, int | float) and not isinstance(raw, bool):
        if raw < 0:
            raise SpaceError(f"{where} must be >= 0, got {raw!r}")
        return float(raw)
    if hint is int and isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 0:
            raise SpaceError(f"{where} must be >= 0, got {raw!r}")
        return raw
    if hint is str and isinstance(raw, str):
        return raw
    if hint is bool and isinstance(raw, bool):
        return raw
    raise SpaceError(f"{where} must be {hint.__name__}, got {raw!r}")
