"""The `nas` command: subcommands parse flags, call the library, print results.

Every NasError becomes one line on stderr and exit code 2 (`--debug` shows the
traceback). Heavy modules (torch, optuna) are imported inside the subcommands
so that `nas --help` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas.errors import NasError, SpaceError
from nas.genome import ATTENTIONS, Genome
from nas.space import DEFAULT_SPACE, InputShape, Space, load_space

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def resolve_space(path: str) -> Space:
    """Load a space file; a relative path missing here is looked up in the project tree."""
    candidate = Path(path)
    if not candidate.exists() and not candidate.is_absolute() and (PROJECT_ROOT / path).exists():
        candidate = PROJECT_ROOT / path
    return load_space(candidate) if candidate.exists() else load_space(path)


def format_flops(flops: int) -> str:
    """`0.180348032 G (180,348,032)`: the report's unit, then the exact count."""
    return f"{flops / 1e9:.9g} G ({flops:,})"


def emit_json(payload: dict[str, Any]) -> None:
    """One JSON object on stdout and nothing else."""
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def _input_arg(text: str) -> InputShape:
    try:
        return InputShape.parse(text)
    except SpaceError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _classes_arg(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100_000:
        raise argparse.ArgumentTypeError(f"classes must be an integer from 1 to 100000, got {text!r}")
    return int(text)


def cmd_count(args: argparse.Namespace) -> int:
    """FLOPs (report convention) and parameters of one genome."""
    from nas.complexity import count

    space = resolve_space(args.space)
    genome = Genome.parse(args.genome, args.attention)
    shape = args.input or space.input or InputShape()
    result = count(genome, space, shape=shape, classes=args.classes)
    built = genome.rounded(space.model.divisor)
    row = {
        "genome": genome.notation, "attention": genome.attention, "flops": result.flops,
        "params": result.params, "input": str(shape), "classes": args.classes,
        "built": built.notation, "space": space.path, "in_space": _in_space(space, genome),
    }
    if args.json:
        emit_json(row)
        return 0
    from nas.console import print_fields

    print_fields({
        "genome": genome.notation + ("" if built == genome else f"  (built as {built.notation})"),
        "attention": genome.attention,
        "input": f"{shape}, {args.classes} classes",
        "FLOPs": format_flops(result.flops),
        "params": f"{result.params:,}",
    })
    return 0


def _in_space(space: Space, genome: Genome) -> bool:
    try:
        space.check(genome)
    except NasError:
        return False
    return True


def cmd_space(args: argparse.Namespace) -> int:
    """Validate a space and summarise it: size, smallest and largest genome."""
    from nas.complexity import count

    space = resolve_space(args.file)
    shape = args.input or space.input or InputShape()

    def extreme(largest: bool) -> dict[str, Any]:
        rows = [(count(g, space, shape=shape, classes=args.classes), g)
                for g in space.extremes(largest)]
        result, genome = (max if largest else min)(rows, key=lambda r: (r[0].flops, r[0].params))
        return {"genome": genome.notation, "attention": genome.attention,
                "flops": result.flops, "params": result.params}

    summary = {
        "space": space.path, "name": space.name, "genomes": space.size(),
        "stages": [space.min_stages, len(space.stages)], "attention": list(space.attention),
        "input": str(shape), "classes": args.classes,
        "smallest": extreme(False), "largest": extreme(True),
    }
    if args.json:
        emit_json(summary)
        return 0
    from nas.console import print_fields

    def describe(row: dict[str, Any]) -> str:
        return (f"{row['genome']} {row['attention']}: {format_flops(row['flops'])} FLOPs, "
                f"{row['params']:,} params")

    print_fields({
        "space": f"{space.path} ({space.name})",
        "genomes": f"{summary['genomes']:,}",
        "stages": f"{space.min_stages} to {len(space.stages)}",
        "attention": ", ".join(space.attention),
        "input": f"{shape}, {args.classes} classes",
        "smallest": describe(summary["smallest"]),
        "largest": describe(summary["largest"]),
    })
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTRY:
        register(commands)
    return parser


def _register_count(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("count", help="FLOPs and params of a genome")
    p.add_argument("genome", help='stages in the report\'s notation, e.g. "[2,8,6,1,0] [2,16,4,1,0]"')
    p.add_argument("--attention", choices=ATTENTIONS, default=None)
    p.add_argument("--space", default=DEFAULT_SPACE)
    p.add_argument("--input", type=_input_arg, default=None, help="CxHxW (default 3x185x160)")
    p.add_argument("--classes", type=_classes_arg, default=2)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_count)


def _register_space(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("space", help="validate and summarise a search space")
    p.add_argument("file")
    p.add_argument("--input", type=_input_arg, default=None, help="CxHxW (default 3x185x160)")
    p.add_argument("--classes", type=_classes_arg, default=2)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_space)


REGISTRY: list[Callable[[argparse._SubParsersAction], None]] = [_register_count, _register_space]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
