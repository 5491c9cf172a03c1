"""The one table of teacher kinds: how each builds its model, where its trunk ends, its input
statistics and its default size.

The recipe check (`[teacher] kind`), the teacher builder, the input normalisation, the teacher's
input size and the caches all read `TEACHERS`; adding a kind is one row plus its builder. The
builders live in torch modules (nas.model.trunks, nas.model.pretrained) and are imported on
call, so this table stays free of torch and `nas space` checks a kind without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from nas.model.trunks import Trunk

Triple = tuple[float, float, float]
Stats = tuple[Triple, Triple]          # (mean, std) per channel, on [0, 1] pixels
IMAGENET: Stats = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
TF_LITE: Stats = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))      # [-1, 1], as TF trained it
PRETRAINED_SIDE = 224


@dataclass(frozen=True)
class TeacherKind:
    """One kind of teacher. A trunk kind builds the classifier `model` names with its initial
    weights ("none", "pretrained" or a state_dict file) and cuts it where its trunk ends; a kind
    without a classifier is a genome of our family, built from the space and trained whole."""

    classifier: Callable[[str, str], nn.Module] | None    # (model, weights) -> the classifier
    trunk: Callable[[nn.Module], Trunk] | None            # where its trunk ends, and its width
    stats: Callable[[str], Stats] | None     # input mean/std its weights expect (None: the data's)
    side: int | None                         # default input side (None: the student's)
    pretrained_file: Callable[[str], Path] | None = None  # 'pretrained' weights on disk (cache keys)

    @property
    def has_trunk(self) -> bool:
        return self.classifier is not None

    def build_trunk(self, model: str, weights: str) -> Trunk:
        """The named classifier with its initial weights, cut where its trunk ends."""
        if self.classifier is None or self.trunk is None:
            raise TypeError("a genome teacher has no trunk")
        return self.trunk(self.classifier(model, weights))


def _lite(model: str, weights: str) -> nn.Module:
    from nas.model.pretrained import lite_classifier

    return lite_classifier(model, weights)


def _lite_file(model: str) -> Path:
    from nas.model.pretrained import weights_path

    return weights_path(model)


def _torchvision(model: str, weights: str) -> nn.Module:
    from nas.model.trunks import torchvision_classifier

    return torchvision_classifier(model, weights)


def _torchvision_trunk(model: nn.Module) -> Trunk:
    from nas.model.trunks import torchvision_trunk

    return torchvision_trunk(model)


def _timm(model: str, weights: str) -> nn.Module:
    from nas.model.trunks import timm_classifier

    return timm_classifier(model, weights)


def _timm_trunk(model: nn.Module) -> Trunk:
    from nas.model.trunks import timm_trunk

    return timm_trunk(model)


def _timm_stats(model: str) -> Stats:
    """The mean and std timm's pretrained config of `model` gives (ImageNet's when it has none)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(model)
    return IMAGENET if cfg is None else (_triple(cfg.mean), _triple(cfg.std))


def _timm_file(model: str) -> Path:
    from nas.model.trunks import timm_cached_weights

    return timm_cached_weights(model)


def _triple(values: tuple[float, ...]) -> Triple:
    first, second, third = (float(v) for v in values)
    return (first, second, third)


TEACHERS: dict[str, TeacherKind] = {
    "genome": TeacherKind(classifier=None, trunk=None, stats=None, side=None),
    "lite": TeacherKind(classifier=_lite, trunk=_timm_trunk, stats=lambda model: TF_LITE,
                        side=PRETRAINED_SIDE, pretrained_file=_lite_file),
    "torchvision": TeacherKind(classifier=_torchvision, trunk=_torchvision_trunk,
                               stats=lambda model: IMAGENET, side=PRETRAINED_SIDE),
    "timm": TeacherKind(classifier=_timm, trunk=_timm_trunk, stats=_timm_stats,
                        side=PRETRAINED_SIDE, pretrained_file=_timm_file),
}


def trunk_kinds() -> str:
    """The kinds with a trunk, for messages: '"lite", "torchvision" or "timm"'."""
    names = [f'"{name}"' for name, kind in TEACHERS.items() if kind.has_trunk]
    return f"{', '.join(names[:-1])} or {names[-1]}"
