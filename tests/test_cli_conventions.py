"""The usual CLI conventions: --version, help without arguments, --debug anywhere, README commands parse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nas import __version__
from nas.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def test_version_and_bare_nas(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0 and capsys.readouterr().out == f"nas {__version__}\n"
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: nas") and "NAS_STORAGE" in out and "NAS_CACHE_DIR" in out


def test_debug_before_or_after_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--debug", "count", "[2,8,6,3,0]"], ["count", "[2,8,6,3,0]", "--debug"]):
        assert main(argv) == 2
        assert "Traceback" in capsys.readouterr().err
    assert main(["count", "[2,8,6,3,0]"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_every_readme_command_parses(capsys: pytest.CaptureFixture[str]) -> None:
    commands = re.findall(r"^    nas (\w+)", README.read_text(), flags=re.MULTILINE)
    assert {"count", "space", "search", "report", "export", "delete"} <= set(commands)
    for command in set(commands):
        with pytest.raises(SystemExit) as stopped:
            main([command, "--help"])
        assert stopped.value.code == 0, command
        assert "default" in capsys.readouterr().out, command     # options state their defaults
