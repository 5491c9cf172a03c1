"""The package's layers, written in one place: imports flow downward only.

A module may import modules of its own layer and of the layers below it, never above: by an
import statement (module level or in a function; never relative), by `importlib.import_module`
or `__import__` of a `nas...` name, or by a code string run in another interpreter (one
exception, named below). `nas.model`'s pure-Python part (genome, space, recipe, decode, ...)
stays free of torch, so `nas space` validates a file without it; torch starts at `blocks`, and
the model's modules import each other without a loop.

Inside `nas.study` the same holds one level down: its subpackages (`search`, `report`,
`ablation`) import the study's base modules (`nas.study.pareto`, `formats`, `names`,
`storage_errors`, `width`) and the layers below, never each other, and the base imports no
subpackage. There is no exception: what two of them need lives in the base.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
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


# Code strings that may import a higher layer: (the constant's name, the module it imports).
# The job runner starts each worker as `python -c WORKER_CODE ...`: the worker's lifeline
# (nas.study.search.shared_study, its own layer), then the `nas` command line.
ALLOWED_CODE = {("WORKER_CODE", "nas.cli"), ("WORKER_CODE", "nas.study.search.shared_study")}
CODE_IMPORT = re.compile(r"\bfrom\s+(nas(?:\.\w+)*)\s+import\s+(\w+(?:\s*,\s*\w+)*)"
                         r"|\bimport\s+(nas(?:\.\w+)*)")
IMPORTERS = ("import_module", "__import__")


def is_module(name: str) -> bool:
    """Whether `nas.x.y` names a module or package of this tree (not a function or a class)."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _from(module: str, names: list[str]) -> list[str]:
    """`from module import a, b`: the package, and each name that is one of its modules
    (`from nas.study import report` imports nas.study.report)."""
    inner = [f"{module}.{name}" for name in names if is_module(f"{module}.{name}")]
    return ([] if module == "nas" else [module]) + inner


def _statement(node: ast.AST) -> list[str]:
    """The `nas...` modules an import statement names."""
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        if node.module != "nas" and not node.module.startswith("nas."):
            return []
        if node.module == "nas":        # `from nas import api`; `from nas import Genome` is nas
            return [f"nas.{a.name}" for a in node.names]
        return _from(node.module, [a.name for a in node.names])
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name == "nas" or a.name.startswith("nas.")]
    return []


def _dynamic(node: ast.AST) -> list[str]:
    """The `nas...` module an `importlib.import_module("nas...")` or `__import__` call names."""
    if not isinstance(node, ast.Call) or not node.args:
        return []
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    first = node.args[0]
    if name in IMPORTERS and isinstance(first, ast.Constant) and isinstance(first.value, str):
        return [first.value] if first.value.split(".")[0] == "nas" else []
    return []


def _docstrings(tree: ast.Module) -> set[int]:
    bodies = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef
                                                            | ast.ClassDef))]
    return {id(b.body[0].value) for b in bodies
            if b.body and isinstance(b.body[0], ast.Expr) and isinstance(b.body[0].value, ast.Constant)}


def code_strings(tree: ast.Module) -> Iterator[tuple[int, str, str]]:
    """(line, the constant's name or '', module) for every `nas...` import in a code string."""
    names = {id(n.value): n.targets[0].id for n in ast.walk(tree) if isinstance(n, ast.Assign)
             and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)}
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            for match in CODE_IMPORT.finditer(node.value):
                found = (_from(match.group(1), re.split(r"\s*,\s*", match.group(2)))
                         if match.group(1) else [match.group(3)])
                for module in found:
                    yield node.lineno, names.get(id(node), ""), module


def imports(path: Path) -> list[tuple[int, str]]:
    """Every `nas...` module that `path` imports: at module level or inside a function, through
    importlib, or in a code string (but the allowed ones)."""
    tree = ast.parse(path.read_text())
    found = [(node.lineno, name) for node in ast.walk(tree) for name in _statement(node) + _dynamic(node)]
    return found + [(line, name) for line, constant, name in code_strings(tree)
                    if (constant, name) not in ALLOWED_CODE]


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if module_name(p) != "nas")


@pytest.mark.parametrize("path", SOURCES, ids=module_name)
def test_imports_flow_downward(path: Path) -> None:
    own = layer_of(module_name(path))
    upward = [f"line {line}: {name}" for line, name in imports(path) if layer_of(name) > own]
    assert not upward, f"{module_name(path)} (layer {own}) imports from higher layers: {upward}"


STUDY = PACKAGE / "study"
ROOMS = tuple(sorted(p.name for p in STUDY.iterdir() if (p / "__init__.py").is_file()))


def room_of(module: str) -> str | None:
    """The `nas.study` subpackage a module lives in, '' for the study's base modules (and the
    package itself), None outside `nas.study`."""
    parts = module.split(".")
    if parts[:2] != ["nas", "study"]:
        return None
    return parts[2] if len(parts) > 2 and parts[2] in ROOMS else ""


@pytest.mark.parametrize("path", [p for p in SOURCES if room_of(module_name(p)) is not None],
                         ids=module_name)
def test_study_subpackages_do_not_import_each_other(path: Path) -> None:
    own = room_of(module_name(path))
    crossing = [f"line {line}: {name}" for line, name in imports(path)
                if (room := room_of(name)) and room != own]
    where = f"nas.study.{own}" if own else "the study's base"
    assert not crossing, (f"{module_name(path)} ({where}) imports another part of nas.study: "
                          f"{crossing}; move what both need to the base (nas.study.<module>)")


@pytest.mark.parametrize("path", SOURCES, ids=module_name)
def test_no_relative_imports(path: Path) -> None:
    relative = [f"line {node.lineno}" for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.ImportFrom) and node.level > 0]
    assert not relative, f"{module_name(path)} has relative imports (write nas.x.y): {relative}"


def test_the_checks_see_every_way_to_import(tmp_path: Path) -> None:
    """Relative imports, importlib with a `nas...` name, code strings and the modules that
    `from package import module` names are all caught."""
    source = tmp_path / "probe.py"
    source.write_text('''"""Docs may say `from nas.cli import main`."""
import importlib
from nas.data import dataset
from nas.study import report, width
CODE = "import sys; from nas.cli import main"
WORKER_CODE = "from nas.cli import main"
SIBLING = "from nas.study.search import loop, Tally"
def f() -> None:
    """Or `import nas.study`."""
    importlib.import_module("nas.study.pareto")
    __import__("nas.store")
    importlib.import_module("numpy")
''')
    assert sorted(name for _, name in imports(source)) == [
        "nas.cli", "nas.data", "nas.data.dataset", "nas.store", "nas.study", "nas.study.pareto",
        "nas.study.report", "nas.study.search", "nas.study.search.loop", "nas.study.width"]
    assert [room_of(name) for name in ("nas.study.report.tables", "nas.study.width", "nas.study",
                                       "nas.store.runs")] == ["report", "", "", None]
    tree = ast.parse("from ..study import report\nfrom . import x\n")
    assert [node.level for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)] == [2, 1]


def test_the_allowed_code_string_still_exists() -> None:
    """The one exception is real: a study module starts workers with the CLI's code string."""
    found = {(constant, name) for path in SOURCES if module_name(path).startswith("nas.study.")
             for _, constant, name in code_strings(ast.parse(path.read_text()))}
    assert found == ALLOWED_CODE


def test_model_imports_have_no_cycle() -> None:
    """nas.model's modules import each other one way: the graph (lazy imports too) is acyclic."""
    model = {module_name(p): p for p in SOURCES if module_name(p).startswith("nas.model.")}
    graph = {name: {n for _, n in imports(path) if n in model and n != name}
             for name, path in model.items()}
    order: list[str] = []
    while graph:
        ready = sorted(name for name, deps in graph.items() if deps <= set(order))
        assert ready, f"import cycle among {sorted(graph)}: {graph}"
        order += ready
        graph = {name: deps for name, deps in graph.items() if name not in ready}
    assert order.index("nas.model.genome") < order.index("nas.model.blocks")


def test_every_module_belongs_to_a_layer_and_every_package_says_what_it_owns() -> None:
    for path in SOURCES:
        layer_of(module_name(path))
    for init in PACKAGE.rglob("__init__.py"):
        where = init.relative_to(PACKAGE).as_posix()
        assert ast.get_docstring(ast.parse(init.read_text())), f"{where} has no docstring"


def test_space_validation_does_not_import_torch() -> None:
    code = ("import sys; from nas.model.space import load_space; "
            "load_space('photos.toml'); from nas.cli import main; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PACKAGE.parent, check=True)
    assert result.stdout.strip() == "False"
