"""`nas ablate FILE`: the arms of a declarative ablation, each over several seeds."""

from __future__ import annotations

import argparse

from nas.cli.common import data_flags, emit_json, open_context, teacher_fields
from nas.units import percent


def cmd_ablate(args: argparse.Namespace) -> int:
    """Train what is missing of an ablation and print its table (mean and spread over seeds)."""
    from nas.cli.console import ProgressView, console
    from nas.study import render
    from nas.study.ablate import load_ablation, run_ablation

    ablation = load_ablation(args.file)
    args.space = args.space or ablation.space
    args.data = args.data or ablation.data
    args.image_size = args.image_size or ablation.image_size
    with ProgressView(args.quiet or args.json) as view:
        ctx = open_context(args, view)
        results = run_ablation(ctx, ablation, on_run=lambda arm, seed: (
            view.epochs(f"{arm.name} seed {seed}"),))
    if args.json:
        emit_json({"ablation": ablation.name, "study": ablation.study, "space": ctx.space.path,
                   "data": ctx.data.name, "input": str(ctx.shape), "teacher": teacher_fields(ctx),
                   "arms": [r.to_json() for r in results]})
        return 0
    console.print(render.ablation_table(ablation.name, results))
    console.print(f"teacher: val {percent(ctx.teacher.val_accuracy)}, test "
                  f"{percent(ctx.teacher.test_accuracy)}; data {ctx.data.name} at {ctx.shape}; "
                  f"runs stored as study {ablation.study!r} in {ctx.store.url}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("ablate", help="run a declarative ablation over several seeds")
    p.add_argument("file", help="an ablation TOML file, e.g. search_spaces/ablations/se_vs_eca.toml")
    data_flags(p)
    p.set_defaults(func=cmd_ablate, space=None, data=None)
