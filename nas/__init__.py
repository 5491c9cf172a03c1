"""nas: declarative architecture search and ablation runner for small image classifiers.

    import torch
    from nas import Genome, build_model, count
    model = build_model(Genome.parse("[2,8,6,1,0] [2,16,4,1,0]", "eca"))
    logits = model(torch.rand(1, 3, 32, 32))            # (1, 10): digits' input and classes by default

Search, train and ablate from Python (`nas.api`; the CLI runs the same functions):

    found = nas.search("tiny.toml", trials=2, epochs=1)      # .study, .front, .tally
    student = nas.train("[1,8,1,1,0]", space="tiny.toml", epochs=1).model
    obj = nas.objective("tiny.toml", epochs=1)                # for your own optuna.Study

The package's layers, lowest first (imports flow downward only; tests/test_layers.py checks):
`errors`, `units`, `atomic` -> `model` -> `data` -> `store` -> `train` -> `study` -> `api` -> `cli`.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

from nas._version import __version__
from nas.errors import DataError, GenomeError, NasError, SpaceError, StoreError, TrainError
from nas.model.genome import Genome, StageGene
from nas.model.space import InputShape, Space, load_space

if TYPE_CHECKING:
    from nas.api import ablate, objective, search
    from nas.model.builder import build_model
    from nas.model.complexity import count
    from nas.model.interop_timm import to_timm_model
    from nas.model.interop_torchvision import load_torchvision, to_torchvision_model
    from nas.model.timm_arch import to_timm
    from nas.study.report.export import load
    from nas.study.report.transforms import transforms

__all__ = [
    "DataError", "Genome", "GenomeError", "InputShape", "NasError", "Space", "SpaceError",
    "StageGene", "StoreError", "TrainError", "__version__", "build_model", "count", "load",
    "load_space", "load_torchvision", "to_timm", "to_timm_model", "to_torchvision_model", "transforms",
    "ablate", "objective", "search", "train",
]

_LAZY = {"build_model": "nas.model.builder", "count": "nas.model.complexity",
         "load": "nas.study.report.export", "transforms": "nas.study.report.transforms",
         "to_timm": "nas.model.timm_arch", "to_timm_model": "nas.model.interop_timm",
         "load_torchvision": "nas.model.interop_torchvision",
         "to_torchvision_model": "nas.model.interop_torchvision",
         "search": "nas.api", "objective": "nas.api", "ablate": "nas.api"}


def __getattr__(name: str) -> Any:
    """Import torch-backed names on first use, so `import nas` stays light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nas' has no attribute {name!r}")


class _CallableTrain(types.ModuleType):
    """`nas.train` is both the training subpackage (`nas.train.experiment`, ...) and the API call
    `nas.train(genome, ...)`: importing a submodule makes the package an attribute of `nas`, so
    the package itself is made callable, forwarding to `nas.api.train`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from nas.api import train

        return train(*args, **kwargs)


def _callable_train() -> None:
    import importlib

    importlib.import_module("nas.train").__class__ = _CallableTrain   # its __init__ is light


_callable_train()
