"""`nas reproduce CHECKPOINT` and `nas reproduce STUDY TRIAL`: train a stored student again from
its recorded recipe, seed and data, and print the metrics beside the stored ones."""

from __future__ import annotations

import argparse
from typing import Any

from nas.cli.common import STORAGE_HELP, emit_json, threads_arg
from nas.units import count_text, percent

DESCRIPTION = """\
Train a stored student again from the recipe, seed, model settings and data its run recorded,
and print the metrics side by side with the stored ones (exit 1 when they differ).

  nas reproduce student.pt               a checkpoint written by `nas export`
  nas reproduce STUDY TRIAL              a trained trial of a study in --storage

The data must be the run's (same fingerprint: source, size, split and subset), else it is
refused before any training; the space file the run names supplies its teacher."""


def cmd_reproduce(args: argparse.Namespace) -> int:
    from nas.cli.console import ProgressView
    from nas.store.runs import Store
    from nas.study.report.reproduce import from_checkpoint, from_trial, reproduce
    from nas.train.experiment import resolve_device

    recorded = (from_trial(args.storage, args.source, args.trial) if args.trial is not None
                else from_checkpoint(args.source))
    with ProgressView(args.quiet or args.json) as view:
        done = reproduce(recorded, Store(args.storage), data=args.data,
                         device=resolve_device(args.device, args.threads), progress=view.data,
                         teacher_callbacks=(view.epochs("teacher"),),
                         callbacks=(view.epochs(str(recorded.genome)),))
    code = 0 if done.identical else 1
    if args.json:
        emit_json({"source": recorded.where, "genome": str(recorded.genome), "seed": recorded.seed,
                   "data": args.data or recorded.data, "identical": done.identical,
                   "run_id": done.run.id, "metrics": {name: {"stored": old, "reproduced": new}
                                                     for name, old, new in done.rows()}})
        return code
    _print_table(done)
    return code


def _print_table(done: Any) -> None:
    from rich.table import Table

    from nas.cli.console import console

    table = Table(title=f"{done.recorded.where}: {done.recorded.genome}, seed {done.recorded.seed}")
    for column in ("metric", "stored", "reproduced", ""):
        table.add_column(column)
    for name, old, new in done.rows():
        table.add_row(name.replace("_", " "), _text(name, old), _text(name, new),
                      "same" if old == new else "[red]differs")
    console.print(table)
    console.print(f"reproduced as run {done.run.id}: "
                  + ("identical" if done.identical else "[red]metrics differ[/]"))


def _text(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name.endswith("accuracy"):
        return f"{percent(value)} ({value:.6f})"
    if name in ("flops", "params"):
        return count_text(value, exact=True)
    return f"{value:,}"


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("reproduce", help="train a stored student again and compare its metrics",
                            description=DESCRIPTION)
    p.add_argument("source", help="a checkpoint file (nas export), or a study name followed by TRIAL")
    p.add_argument("trial", nargs="?", default=None, help="the trial number, with a study name")
    p.add_argument("--data", default=None,
                   help="where the run's data is now (default: the recorded source)")
    p.add_argument("--storage", default=None, help=STORAGE_HELP + "; also caches the teacher")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"),
                   help="cpu (the default) gives identical metrics with the same threads")
    p.add_argument("--threads", type=threads_arg, default=None, help="CPU threads for torch (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_reproduce)
