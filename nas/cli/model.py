"""`nas count` and `nas space`: complexity of a genome, summary of a search space."""

from __future__ import annotations

import argparse
from typing import Any

from nas.cli.common import classes_arg, emit_json, input_arg, resolve_space
from nas.errors import NasError, SpaceError
from nas.model.attention import ATTENTIONS
from nas.model.decode import DEFAULT_CLASSES, DEFAULT_INPUT
from nas.model.genome import Genome
from nas.model.space import DEFAULT_SPACE, InputShape, Space
from nas.units import count_text, plural

DEFAULT_DATA = "digits"        # DEFAULT_INPUT and DEFAULT_CLASSES are its: build_model's and count's
FLAG_OF = {"input": "image-size"}      # an assumed JSON field -> the flag that sets it


def cmd_count(args: argparse.Namespace) -> int:
    """FLOPs (report convention) and parameters of one genome."""
    space = resolve_space(args.space)
    genome = Genome.parse(args.genome, args.attention)
    shape, classes, assumed = _shape_and_classes(args, space)
    from nas.model.complexity import count

    result = count(genome, space, shape=shape, classes=classes)
    built = genome.rounded(space.model.divisor)
    row = {
        "genome": genome.notation, "attention": genome.attention, "flops": result.flops,
        "params": result.params, "input": str(shape), "classes": classes, "assumed": assumed,
        "built": built.notation, "space": space.path, "in_space": _in_space(space, genome),
    }
    if args.json:
        emit_json(row)
        return 0
    from nas.cli.console import print_fields

    print_fields({
        "genome": genome.notation + ("" if built == genome else f"  (built as {built.notation})"),
        "attention": genome.attention,
        "input": _input_text(shape, classes, assumed),
        "FLOPs": count_text(result.flops, exact=True),
        "params": count_text(result.params, exact=True),
    })
    return 0


def _shape_and_classes(args: argparse.Namespace, space: Space) -> tuple[InputShape, int, list[str]]:
    """--image-size (or the older --input), else the space's [input], else the default data's
    shape; --classes, else the default data's; and which of the two were assumed."""
    given = _given_shape(args, space)
    shape = given or space.input or DEFAULT_INPUT
    assumed = [name for name, value in (("input", given or space.input), ("classes", args.classes))
               if not value]
    return shape, args.classes or DEFAULT_CLASSES, assumed


def _given_shape(args: argparse.Namespace, space: Space) -> InputShape | None:
    """--image-size HxW (the space's channels, else 3), else --input CxHxW (deprecated)."""
    if args.image_size is None:
        return args.input
    if args.input is not None:
        raise SpaceError("give --image-size or --input (deprecated), not both")
    channels = space.input.channels if space.input else DEFAULT_INPUT.channels
    return InputShape(channels, *args.image_size)


def _input_text(shape: InputShape, classes: int, assumed: list[str]) -> str:
    flags = [FLAG_OF.get(name, name) for name in assumed]
    note = f"  (assumed: {DEFAULT_DATA}, the default data; set --{' and --'.join(flags)})"
    return f"{shape}, {plural(classes, 'class', 'classes')}" + (note if assumed else "")


def _in_space(space: Space, genome: Genome) -> bool:
    try:
        space.check(genome)
    except NasError:
        return False
    return True


def cmd_space(args: argparse.Namespace) -> int:
    """Validate a space and summarise it: size, smallest and largest genome."""
    space = resolve_space(args.file)
    shape, classes, assumed = _shape_and_classes(args, space)
    from nas.model.complexity import count


    def extreme(largest: bool) -> dict[str, Any]:
        rows = [(count(g, space, shape=shape, classes=classes), g)
                for g in space.extremes(largest)]
        result, genome = (max if largest else min)(rows, key=lambda r: (r[0].flops, r[0].params))
        return {"genome": genome.notation, "attention": genome.attention,
                "flops": result.flops, "params": result.params}

    summary = {
        "space": space.path, "name": space.name, "genomes": space.size(),
        "stages": [space.min_stages, len(space.stages)], "attention": list(space.attention),
        "input": str(shape), "classes": classes, "assumed": assumed,
        "smallest": extreme(False), "largest": extreme(True),
    }
    if args.json:
        emit_json(summary)
        return 0
    from nas.cli.console import print_fields

    def describe(row: dict[str, Any]) -> str:
        return (f"{row['genome']} {row['attention']}: {count_text(row['flops'], exact=True)} FLOPs, "
                f"{count_text(row['params'], exact=True)} params")

    print_fields({
        "space": f"{space.path} ({space.name})",
        "genomes": f"{summary['genomes']:,}",
        "stages": f"{space.min_stages} to {len(space.stages)}",
        "attention": ", ".join(space.attention),
        "input": _input_text(shape, classes, assumed),
        "smallest": describe(summary["smallest"]),
        "largest": describe(summary["largest"]),
    })
    return 0


def size_arg(text: str) -> tuple[int, int]:
    """HxW (or one number for a square), as every training command takes it."""
    parts = text.lower().split("x")
    if len(parts) > 2:
        raise argparse.ArgumentTypeError(f"must look like HxW (e.g. 32x32), got {text[:30]!r}")
    shape = input_arg(text if len(parts) == 2 else f"{text}x{text}")
    return shape.height, shape.width


def shape_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image-size", type=size_arg, default=None, metavar="HxW",
                   help=f"input height and width (default: the space's [input], else "
                        f"{DEFAULT_INPUT.height}x{DEFAULT_INPUT.width}, the default data's)")
    p.add_argument("--input", type=input_arg, default=None, metavar="CxHxW",
                   help="deprecated: channels x height x width; use --image-size")
    p.add_argument("--classes", type=classes_arg, default=None, metavar="N",
                   help=f"number of classes (default: {DEFAULT_CLASSES}, the default data's)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the text")


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("count", help="FLOPs and params of a genome",
                            description="FLOPs (the seed report's convention) and parameters of one genome.")
    p.add_argument("genome", help='stages in the report\'s notation, e.g. "[2,8,6,1,0] [2,16,4,1,0]"; '
                                  "an attention name may follow")
    p.add_argument("--attention", choices=tuple(ATTENTIONS), default=None,
                   help="channel attention (default: the one in the genome text, else eca)")
    p.add_argument("--space", default=DEFAULT_SPACE,
                   help="search space: a bundled name (seed.toml, photos.toml, tiny.toml) or a path")
    shape_flags(p)
    p.set_defaults(func=cmd_count)
    p = commands.add_parser("space", help="validate and summarise a search space",
                            description="Validate a search space; print its size and its smallest "
                                        "and largest genome.")
    p.add_argument("file", nargs="?", default=DEFAULT_SPACE,
                   help="a bundled name (seed.toml, photos.toml, tiny.toml) or a path")
    shape_flags(p)
    p.set_defaults(func=cmd_space)
