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
import sys
import traceback
from collections.abc import Callable, Sequence

from nas.cli import ablate, model, report, search, train
from nas.errors import NasError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTRY:
        register(commands)
    return parser


REGISTRY: list[Callable[[argparse._SubParsersAction], None]] = [
    model.register, train.register, search.register, report.register, ablate.register,
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
    if args.command in ("search", "report", "export", "ablate"):
        quiet_libraries()
    try:
        return args.func(args)
    except NasError as error:
        if args.debug:
            traceback.print_exc()
        print(f"nas: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
