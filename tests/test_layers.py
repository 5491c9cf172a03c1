"""The package's layers, written in one place: imports flow downward only.

A module may import modules of its own layer and of the layers below it, never above.
`nas.model`'s pure-Python part (genome, space, recipe, decode, ...) stays free of torch, so
`nas space` validates a file without it; torch starts at `blocks`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nas"

# Lowest first. The base modules (errors, units, version, atomic writes) may be imported by all.
LAYERS = (
    ("nas.errors", "nas.units", "nas._version", "nas.atomic"),
    ("nas.model",),
    ("nas.data",),
    ("nas.store",),
    ("nas.train",),
    ("nas.study",),
    ("nas.api",),
    ("nas.cli",),
)


def layer_of(module: str) -> int:
    for index, members in enumerate(LAYERS):
        if any(module == m or module.startswith(m + ".") for m in members):
            return index
    raise LookupError(module)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every `nas...` module that `path` imports, at module level or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "nas" else [f"nas.{a.name}" for a in node.names]
            found += [(node.lineno, name) for name in names if name.startswith("nas")]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("nas.")]
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if module_name(p) != "nas")


@pytest.mark.parametrize("path", SOURCES, ids=module_name)
def test_imports_flow_downward(path: Path) -> None:
    own = layer_of(module_name(path))
    upward = [f"line {line}: {name}" for line, name in imports(path) if layer_of(name) > own]
    assert not upward, f"{module_name(path)} (layer {own}) imports from higher layers: {upward}"


def test_every_module_belongs_to_a_layer_and_every_package_says_what_it_owns() -> None:
    for path in SOURCES:
        layer_of(module_name(path))
    for package in PACKAGE.iterdir():
        if (package / "__init__.py").is_file():
            text = (package / "__init__.py").read_text()
            assert ast.get_docstring(ast.parse(text)), f"{package.name}/__init__.py has no docstring"


def test_space_validation_does_not_import_torch() -> None:
    code = ("import sys; from nas.model.space import load_space; "
            "load_space('photos.toml'); from nas.cli import main; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PACKAGE.parent, check=True)
    assert result.stdout.strip() == "False"
