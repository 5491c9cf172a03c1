"""The `nas` command: subcommands parse flags, call the library, print results.

The top layer. One module per family of subcommands (model, train, search, report, ablate),
each with a `register(commands)`; what they share is in `nas.cli.common`, and the console
(`nas.cli.console`, rich) is used by the CLI only.

Every NasError becomes one line on stderr and exit code 2 (`--debug` shows the
traceback). Heavy modules (torch, optuna) are imported inside the subcommands
so that `nas --help` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from nas._version import __version__
from nas.cli import ablate, model, report, reproduce, search, train
from nas.errors import NasError
from nas.model.sections import MAX_TEXT

MAX_MESSAGE = 300       # characters of an error line ("nas: error: " not counted)

DESCRIPTION = """\
Search small image classifiers under a FLOPs and parameter budget.

A search space is a TOML file (bundled: seed.toml, the default; photos.toml; tiny.toml).
Each genome is a tiny EfficientNetV2-style student, distilled from a fixed teacher; an
Optuna study keeps the Pareto front of validation accuracy, FLOPs and parameters."""

EPILOG = """\
environment:
  NAS_STORAGE    database URL used when --storage is not given (default sqlite:///studies.db)
  NAS_CACHE_DIR  folder of the machine's caches: decoded data, trunk outputs, trained teachers
                 (default ~/.cache/nas)

Run `nas COMMAND --help` for a command's options; `nas --debug COMMAND` (or --debug after
the command) shows the traceback of an error."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps our paragraphs; appends an option's default unless it is unset, a switch, or already said."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if unset or "default" in text:                  # identity: a default of 0 is still stated
            return text
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    """A parser whose errors are one line, `nas: error: --threads must be ...`, and exit 2, as
    every other error of `nas` (`--help` shows the usage). No argument may be longer than
    MAX_TEXT characters (names, genomes, --set values, paths)."""

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        argv = list(sys.argv[1:] if args is None else args)
        for index, text in enumerate(argv):
            if len(text) > MAX_TEXT:
                self.error(f"{_flag_of(argv, index)} must be at most {MAX_TEXT} characters, "
                           f"got {len(text)}")
        return super().parse_known_args(argv, namespace)

    def error(self, message: str) -> NoReturn:
        name, colon, rest = message.partition(": ")
        if colon and name.startswith("argument "):
            name = name.removeprefix("argument ").split("/")[-1]
            message = f"{name} {rest}" if rest.startswith("must") else f"{name}: {rest}"
        self.exit(2, f"nas: error: {one_line(message)}\n")


def _flag_of(argv: list[str], index: int) -> str:
    """What argument `argv[index]` is, for a message: `--set` (also as `--set=...`), else its
    position."""
    text = argv[index]
    if text.startswith("--"):
        return text.partition("=")[0][:40]
    if index and argv[index - 1].startswith("--") and "=" not in argv[index - 1]:
        return argv[index - 1][:40]
    return f"argument {index + 1}"


class CommandParser(OneLineParser):
    """A subcommand's parser: our help format, and `--debug` accepted after the command too."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="show the traceback of an error")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="nas", description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"nas {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for register in REGISTRY:
        register(commands)
    _register_completion(commands, parser)
    return parser


SHELLS = ("bash", "zsh")
COMPLETION_HELP = """\
Print a shell completion script of every command and option.
  bash: nas completion bash > ~/.local/share/bash-completion/completions/nas
  zsh:  nas completion zsh > ~/.zfunc/_nas   (with ~/.zfunc in $fpath, before compinit)"""


def _register_completion(commands: argparse._SubParsersAction, parser: argparse.ArgumentParser) -> None:
    """`nas completion bash|zsh`: the shell's completion script for every command and option (shtab)."""
    p = commands.add_parser("completion", help="print a bash or zsh completion script",
                            description=COMPLETION_HELP)
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    p.set_defaults(func=lambda args: _print_completion(parser, args.shell))


def _print_completion(parser: argparse.ArgumentParser, shell: str) -> int:
    """shtab writes the script from the parser itself, so it never lags behind an option."""
    import shtab

    sys.stdout.write(shtab.complete(parser, shell=shell))
    return 0


REGISTRY: list[Callable[[argparse._SubParsersAction], None]] = [
    model.register, train.register, search.register, report.register, ablate.register,
    reproduce.register,
]


def quiet_libraries() -> None:
    """Optuna's INFO lines and experimental warnings would drown our own output."""
    import warnings

    warnings.filterwarnings("ignore", module="optuna")
    warnings.filterwarnings("ignore", message=".*Heartbeat.*")
    try:
        import optuna
    except ImportError:
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:                  # no command is a usage error, as with git
        parser.print_help(sys.stderr)
        return 2
    if getattr(args, "storage", "unset") is None:
        from nas.store.database import storage_url

        args.storage = storage_url(args.storage)
    if args.command in ("search", "report", "export", "ablate", "delete", "reproduce"):
        quiet_libraries()
    fresh = _new_database(args)
    try:
        return args.func(args)
    except NasError as error:
        _remove_unused(fresh)
        return _failed(args, str(error))
    except BrokenPipeError:                   # `nas report | head`: the reader left early
        _silence_stdout()
        return _failed(args, "the output's reader closed it early (broken pipe)")
    except KeyboardInterrupt as stop:         # Ctrl-C, or SIGTERM and SIGHUP (nas.errors.Stopped)
        return _stopped(getattr(stop, "signum", signal.SIGINT))


def _new_database(args: argparse.Namespace) -> Path | None:
    """The SQLite file the command's --storage names, if it does not exist yet."""
    if not hasattr(args, "storage"):
        return None
    from nas.store.database import new_sqlite_file

    return new_sqlite_file(args.storage)


def _remove_unused(fresh: Path | None) -> None:
    """A refused command leaves no new database behind (one it created with empty tables)."""
    if fresh is not None:
        from nas.store.database import remove_unused

        remove_unused(fresh)


def _failed(args: argparse.Namespace, message: str) -> int:
    """The error on one line (the traceback with --debug); exit code 2."""
    if args.debug:
        traceback.print_exc()
    with contextlib.suppress(OSError, ValueError):
        print(f"nas: error: {one_line(message)}", file=sys.stderr)
    return 2


def one_line(message: str) -> str:
    """`message` on one line of at most MAX_MESSAGE characters."""
    line = " ".join(message[:100 * MAX_MESSAGE].split()) or "unknown error"
    return line if len(line) <= MAX_MESSAGE else line[:MAX_MESSAGE - 3] + "..."


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises no second BrokenPipeError."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _stopped(signum: int) -> int:
    """Say why the command stopped, if stderr still takes it (a closed terminal does not);
    exit code 128 + the signal, as the shell reports a process the signal killed."""
    name = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    with contextlib.suppress(OSError, ValueError):
        print(f"nas: {name}", file=sys.stderr)
    return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
