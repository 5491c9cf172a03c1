"""Space files and prepared contexts for the training tests (tiny digits, real SQLite files).

`space_text` rewrites sections of nas/search_spaces/tiny.toml, so a test states only what it
changes, e.g. `space_text(teacher={"epochs": 1, "feature_dim": 64})`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from nas.model.space import parse_space
from nas.store.runs import Store
from nas.train.experiment import Context, prepare

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "nas" / "search_spaces" / "tiny.toml"
STUDENT = "[1,8,1,1,0] [2,16,1,2,0]"
FAST_TEACHER = {"genome": "[1,16,1,1,1] [2,32,1,2,0]", "attention": "eca", "epochs": 2,
                "batch_size": 64}


def space_text(**sections: dict[str, Any]) -> str:
    """tiny.toml with the named top-level sections replaced by `key = value` tables."""
    text = TINY.read_text(encoding="utf-8")
    for name, table in sections.items():
        text = re.sub(rf"^\[{name}\]\n(?:(?!\[).*\n)*", "", text, flags=re.MULTILINE)
        body = "".join(f"{key} = {json.dumps(value)}\n" for key, value in table.items())
        text += f"\n[{name}]\n{body}"
    return text


def write_space(folder: Path, name: str = "space.toml", **sections: dict[str, Any]) -> Path:
    """Write `space_text(**sections)` to folder/name and return the path."""
    path = folder / name
    path.write_text(space_text(**sections), encoding="utf-8")
    return path


def tiny_context(folder: Path, size: tuple[int, int] = (8, 8), db: str = "x.db",
                 **sections: dict[str, Any]) -> Context:
    """Digits at `size`, the tiny space (sections overridden), a SQLite store in `folder`."""
    sections.setdefault("teacher", FAST_TEACHER)
    space = parse_space(space_text(**sections), str(folder / "space.toml"))
    store = Store(f"sqlite:///{folder / db}")
    return prepare(space, "digits", store, size=size, device=torch.device("cpu"),
                   cache_dir=folder / "cache")


def states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Same keys and bit-identical tensors."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

