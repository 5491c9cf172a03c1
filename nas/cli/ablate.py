"""`nas ablate FILE`: groups of arms over several seeds, paired differences to each baseline."""

from __future__ import annotations

import argparse
import sys

from nas.cli.common import data_flags, subset_flags
from nas.model.recipe import MAX_EPOCHS, MAX_SEED
from nas.study.formats import FORMATS


def cmd_ablate(args: argparse.Namespace) -> int:
    """Train what is missing (unless --no-train) and print every group's table."""
    from nas import api
    from nas.cli.console import ProgressView, console
    from nas.study.ablation import tables
    from nas.study.width import hidden_note

    fmt = "json" if args.json else args.format
    with ProgressView(args.quiet or fmt != "table" or args.no_train) as view:
        result = api.ablate(args.file, data=args.data, space=args.space, storage=args.storage,
                            recipe={s.key: s.value for s in args.set or ()}, epochs=args.epochs,
                            seeds=args.seeds, groups=args.group or (), image_size=args.image_size,
                            train=not args.no_train, device=args.device, threads=args.threads,
                            subset=subset_flags(args), progress=view.data,
                            teacher_callbacks=(view.epochs("teacher"),),
                            on_run=lambda arm, seed: (view.epochs(f"{arm.name} seed {seed}"),))
    ablation, groups, store = result.ablation, list(result.groups), result.store
    source = args.data or ablation.data
    if fmt == "table":
        shown, hidden = tables.tables(ablation.name, groups, console.width)
        for table in shown:
            console.print(table)
        if hidden:
            console.print(hidden_note(hidden), style="dim", highlight=False)
        console.print(f"runs stored as study {ablation.study!r} in {store.url}; data {source}")
    else:
        text = {"markdown": tables.markdown, "csv": lambda _, g: tables.to_csv(g),
                "json": lambda n, g: tables.dumps(n, ablation.study, g) + "\n"}[fmt]
        sys.stdout.write(text(ablation.name, groups))
    return 0


def seeds_arg(text: str) -> tuple[int, ...]:
    """`0,1,2` -> (0, 1, 2): distinct integers >= 0, at least one."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if (not parts or not all(p.isdigit() and len(p) <= 10 and int(p) <= MAX_SEED for p in parts)
            or len({int(p) for p in parts}) != len(parts)):
        raise argparse.ArgumentTypeError(f"must be distinct integers from 0 to {MAX_SEED} such "
                                         f"as 0,1,2, got {text[:60]!r}")
    return tuple(int(p) for p in parts)


def epochs_arg(text: str) -> int:
    if not text.isdigit() or len(text) > 6 or not 1 <= int(text) <= MAX_EPOCHS:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {MAX_EPOCHS}, got "
                                         f"{text[:30]!r}")
    return int(text)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("ablate", help="run a declarative ablation over several seeds")
    p.add_argument("file", help="an ablation TOML file, e.g. ablations/seed_report.toml")
    data_flags(p)
    p.add_argument("--format", choices=tuple(FORMATS), default="table",
                   help="table (default), markdown, csv or json: one table per group")
    p.add_argument("--no-train", action="store_true",
                   help="train nothing: report the stored runs of each (arm, seed)")
    p.add_argument("--group", action="append", help="run only this group (repeatable)")
    p.add_argument("--epochs", type=epochs_arg, default=None,
                   help="epochs of every arm that sets no train.epochs (default: the file's, "
                        "else the space's)")
    p.add_argument("--seeds", type=seeds_arg, default=None, help="e.g. 0,1,2 (default: the file's)")
    p.set_defaults(func=cmd_ablate, space=None, data=None)

