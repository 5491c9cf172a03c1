"""README.md's Python runs verbatim: every ```python block and every indented block that opens
with an import, in a temporary directory that holds what the README's commands before
it would have written (`student.pt` from `nas export`, on tiny settings). A `print(...)  # TEXT`
line must print TEXT. The API blocks (search, train, objective, ablate) train on the bundled
tiny.toml and share the directory's `studies.db` (and so its teacher), as a reader's would.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import torch

from nas.cli import main
from nas.model.space import load_space
from nas.store.runs import Store
from nas.train.experiment import prepare
from tests.studies import add_trained, new_study
from tests.study.test_export import fast_space

README = Path(__file__).resolve().parents[1] / "README.md"
FENCED = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
INDENTED = re.compile(r"(?:^\n)((?:^(?: {4}.*)?\n)+)", re.MULTILINE)
EXPECTED = re.compile(r"^print\(.*\)\s+# (\S.*?)\s*$")


def python_blocks(text: str) -> list[str]:
    """The README's Python: fenced ```python blocks, and indented blocks that open with an import
    (the others are shell command lines)."""
    blocks = [block for block in FENCED.findall(text)]
    for match in INDENTED.findall(text):
        block = "\n".join(line[4:] for line in match.splitlines()).strip("\n") + "\n"
        if block.startswith(("import ", "from ")):
            blocks.append(block)
    return blocks


def expected_prints(block: str) -> list[str]:
    """What each `print(...)  # TEXT` line of a block says it prints."""
    return [m.group(1) for line in block.splitlines() if (m := EXPECTED.match(line))]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding `student.pt`, written by `nas export` from a one-genome tiny study."""
    root = tmp_path_factory.mktemp("readme")
    (root / "setup").mkdir()             # not beside the blocks: their "tiny.toml" is the bundled one
    store = Store(f"sqlite:///{root / 'setup' / 'studies.db'}")
    ctx = prepare(load_space(fast_space(root / "setup" / "tiny.toml")), "digits", store, size=(8, 8),
                  device=torch.device("cpu"), cache_dir=root / "cache")
    add_trained(new_study(store.url, "readme"), ctx, "[1,8,1,2,0]")
    assert main(["export", "best", "--storage", store.url, "--out", str(root / "student.pt"), "--quiet"]) == 0
    return root


def test_the_readme_has_python_to_run() -> None:
    blocks = python_blocks(README.read_text())
    assert blocks and any("load(" in block for block in blocks)
    assert all(expected_prints(block) for block in blocks)


@pytest.mark.parametrize("index", range(len(python_blocks(README.read_text()))))
def test_readme_python_runs_verbatim(index: int, exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    block = python_blocks(README.read_text())[index]
    monkeypatch.chdir(exported)
    monkeypatch.setenv("NAS_CACHE_DIR", str(exported / "cache"))
    monkeypatch.delenv("NAS_STORAGE", raising=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})
    printed = out.getvalue().splitlines()
    assert printed == expected_prints(block), block
