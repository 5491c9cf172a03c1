"""The usual CLI conventions: --version, help without arguments, --debug anywhere, README commands parse."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from nas import __version__
from nas.cli import build_parser, main
from nas.store.runs import Store
from tests.conftest import make_image_folder

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_version_and_bare_nas(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0 and capsys.readouterr().out == f"nas {__version__}\n"
    assert main([]) == 2                    # no command: the help on stderr, a usage error
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("usage: nas")
    assert "NAS_STORAGE" in captured.err and "NAS_CACHE_DIR" in captured.err


@pytest.mark.skipif(shutil.which("nas") is None, reason="the nas command is not installed")
def test_the_environment_names_the_database_and_the_cache(tmp_path: Path) -> None:
    """The README: NAS_STORAGE is the database when --storage is not given, and without
    NAS_CACHE_DIR the decoded data goes to ~/.cache/nas. A real `nas` process, as a user runs it."""
    folder = make_image_folder(tmp_path / "digits", 2, 12, 2, "d")
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NAS_STORAGE", "NAS_CACHE_DIR")}
    env.update(HOME=str(home), NAS_STORAGE=f"sqlite:///{tmp_path / 'env.db'}")
    done = subprocess.run(["nas", "train", "[1,8,1,1,0]", "--space", str(ROOT / "nas" /
                           "search_spaces" / "tiny.toml"), "--data", str(folder), "--image-size",
                           "8x8", "--epochs", "1", "--distill", "none", "--json"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    store = Store(env["NAS_STORAGE"])
    assert [run.genome for run in store.list_runs()] == ["[1,8,1,1,0]"]
    store.close()
    assert list(work.iterdir()) == []                      # no studies.db where it ran
    assert list((home / ".cache" / "nas").iterdir())       # the decoded folder, cached


def test_debug_before_or_after_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--debug", "count", "[2,8,6,3,0]"], ["count", "[2,8,6,3,0]", "--debug"]):
        assert main(argv) == 2
        assert "Traceback" in capsys.readouterr().err
    assert main(["count", "[2,8,6,3,0]"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_every_readme_command_parses(capsys: pytest.CaptureFixture[str]) -> None:
    commands = re.findall(r"^    nas (\w+)", README.read_text(), flags=re.MULTILINE)
    assert {"count", "space", "search", "report", "export", "delete", "completion"} <= set(commands)
    for command in set(commands):
        with pytest.raises(SystemExit) as stopped:
            main([command, "--help"])
        assert stopped.value.code == 0, command
        assert capsys.readouterr().out.startswith(f"usage: nas {command}"), command


def indented_commands(text: str) -> list[str]:
    """The README's indented `nas ...` lines (after `pip install ... &&`, across `\\` breaks),
    without their comments and shell redirections, each optional `[--flag value]` given and each
    `a|b|c` choice taken in turn."""
    found = []
    for line in re.findall(r"^    (?:.*&& )?(nas .*)$", text.replace("\\\n", " "), flags=re.MULTILINE):
        line = re.sub(r" \[(--[^\]]+)\]", r" \1", re.split(r"\s+#|\s+>", line)[0])
        choices = re.search(r" (\w+(?:\|\w+)+)(?= |$)", line)
        found += ([line[:choices.start(1)] + c + line[choices.end(1):] for c in choices[1].split("|")]
                  if choices else [line])
    return found


def test_every_indented_readme_command_parses() -> None:
    """The README's command blocks, the set-up command's search among them, parse with their
    placeholders filled: every option known, every value of its type and choices."""
    commands = indented_commands(README.read_text())
    assert "nas search --budget-flops 0.2G --image-size 48x48 --jobs 2 --rungs 1,3" in commands
    assert len(commands) >= 20
    for command in commands:
        argv = shlex.split(command.replace("STUDY", "s").replace("FILE", "f.toml"))[1:]
        build_parser().parse_args(argv)      # SystemExit (code 2) names the bad option


def every_option() -> list[tuple[str, argparse.ArgumentParser, argparse.Action]]:
    """(command, its parser, option) for every option of `nas` and of each subcommand."""
    found = []

    def walk(name: str, parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, subparser in action.choices.items():
                    walk(f"{name} {sub}", subparser)
            elif not isinstance(action, argparse._HelpAction) and action.help != argparse.SUPPRESS:
                found.append((name, parser, action))
    walk("nas", build_parser())
    return found


def test_every_inline_readme_command_parses(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's `nas ...` commands in running text (also across a line break), with its
    placeholders filled, parse: no unknown option, no bad choice. Prose that names an option
    of a command (`nas train --lr`) may lack the command's arguments, nothing else."""
    commands = {" ".join(found.split()) for found in re.findall(r"`(nas [^`]+)`", README.read_text())}
    filled = {"DIR": "d", "FILE": "f.toml", "STUDY": "s", "TRIAL": "0", " N": " 3"}
    parsed = 0
    for command in sorted(commands):
        if "|" in command or "COMMAND" in command or len(command.split()) < 3:
            continue                           # alternatives, or a command named in prose
        for placeholder, value in filled.items():
            command = command.replace(placeholder, value)
        try:
            build_parser().parse_args(shlex.split(command)[1:])
            parsed += 1
        except SystemExit:
            err = capsys.readouterr().err
            assert "arguments are required" in err or "expected one argument" in err, (command, err)
    assert parsed >= 20


def test_every_option_has_help_that_states_its_default() -> None:
    options = every_option()
    assert len({name for name, _, _ in options}) >= 10 and len(options) > 60
    missing = [f"{name} {action.option_strings or action.dest}" for name, _, action in options
               if not (action.help or "").strip()]
    assert missing == []
    for name, parser, action in options:
        default = action.default
        if default is None or default is False or default == argparse.SUPPRESS or not action.option_strings:
            continue
        shown = parser._get_formatter()._expand_help(action)      # the option's line in --help
        assert "default" in shown, f"{name} {action.option_strings}: default {default!r} not stated"


def test_every_command_but_completion_takes_json() -> None:
    """The README: every command but `completion` takes --json."""
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    lacking = {name for name, parser in commands.choices.items()
               if "--json" not in {o for a in parser._actions for o in a.option_strings}}
    assert len(commands.choices) >= 10 and lacking == {"completion"}


def complete(script: Path, *words: str) -> list[str]:
    """What bash offers after `words` (the last one being typed), with the script sourced."""
    line = " ".join(words)
    program = (f"source {script}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
               f"COMP_CWORD={len(words) - 1}; COMP_LINE={line!r}; COMP_POINT={len(line)}; "
               f"_shtab_nas nas {words[-1]!r} {words[-2]!r}; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_completion_offers_commands_options_and_choices(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "nas.bash"
    script.write_text(capsys.readouterr().out)
    assert complete(script, "nas", "rep") == ["report", "reproduce"]
    assert complete(script, "nas", "report", "--for") == ["--format"]
    assert complete(script, "nas", "report", "--format", "") == ["table", "markdown", "csv", "json"]
    assert "--plot-axes" in complete(script, "nas", "report", "--")


def test_zsh_completion_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "zsh"]) == 0
    script = capsys.readouterr().out
    assert script.startswith("#compdef nas")
    for command in ("count", "space", "teacher", "train", "search", "report", "export", "ablate", "delete"):
        assert f"\n    {command}:'" in script, command
