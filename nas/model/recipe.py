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


# The report's augmented copies of the training set (SEED.md), as `[train.augment] views`.
REPORT_VIEWS = ("blur+hflip", "color_jitter", "autoaugment_imagenet", "autoaugment_cifar10",
                "autoaugment_svhn", "randaugment")


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
    genome: str = "[2,16,2,1,1] [4,32,2,2,0] [4,64,2,2,0]"
    attention: str = "se"
    model: str = "resnet18"
    weights: str = "none"           # none | pretrained (torchvision's, needs network once) | a file
    feature_dim: int = 0            # 0: the student's feature width (its head); else a projector is used
    epochs: int = 12
    lr: float = 5e-3
    batch_size: int = 32


@dataclass(frozen=True)
class SearchConfig:
    """Defaults of `nas search`; command-line flags override them."""

    sampler: str = "tpe"
    trials: int = 20                # genomes to train; over-budget and repeated samples don't count
    epochs: int = 3
    timeout: str = ""               # e.g. "8m": start no trial after this long ("" = no limit)
    seed: int = 0
    budget_flops: str = ""          # e.g. "0.2G" ("" = no budget)
    budget_params: str = ""         # e.g. "50K"


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


def view_ops(config: AugmentConfig, where: str,
             error: type[Exception] = SpaceError) -> tuple[tuple[str, ...], ...]:
    """Each view split into its ops; an unknown op raises `error` naming the view."""
    parsed = []
    for view in config.views:
        ops = tuple(op.strip() for op in view.split("+"))
        for op in ops:
            if op not in AUGMENT_OPS:
                raise error(f"{where} view '{view}': unknown op '{op}'{nearest(op, AUGMENT_OPS)}; "
                            f"valid ops: {', '.join(AUGMENT_OPS)}")
        parsed.append(ops)
    return tuple(parsed)


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
    section = cls(**values)
    if isinstance(section, AugmentConfig):
        view_ops(section, f"{where}.views:")
    return section


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
        if not 0 <= raw < float("inf"):
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


_SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


_SECONDS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str, what: str) -> float:
    """'30m' -> 1800.0, '2h', '90s', '600' (seconds)."""
    cleaned = str(text).strip().lower()
    unit = cleaned[-1:] if cleaned[-1:] in _SECONDS else "s"
    number = cleaned[:-1] if cleaned[-1:] in _SECONDS else cleaned
    try:
        value = float(number) * _SECONDS[unit]
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise SpaceError(f"{what} must be a positive duration such as 30m, 2h or 90s, got {text!r}")
    return value


def parse_quantity(text: str, what: str) -> float:
    """'0.2G' -> 2e8, '50K' -> 5e4, '1.5e6' -> 1.5e6; `what` names the flag in errors."""
    cleaned = str(text).strip().lower()
    suffix = cleaned[-1:] if cleaned[-1:] in _SUFFIXES else ""
    number = cleaned[: len(cleaned) - len(suffix)]
    try:
        value = float(number) * _SUFFIXES[suffix]
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise SpaceError(f"{what} must be a positive number with an optional K/M/G suffix "
                         f"(e.g. 0.2G or 50K), got {text!r}")
    return value
