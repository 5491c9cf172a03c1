"""`nas search`: the budgeted Pareto search, with a progress line per trial."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from nas.cli.common import (
    data_flags,
    emit_json,
    open_context,
    parsed,
    resolve_space,
    teacher_fields,
)
from nas.errors import SpaceError
from nas.model.space import InputShape, Space
from nas.units import flops_text, percent


def cmd_search(args: argparse.Namespace) -> int:
    """Budgeted multi-objective search; continues the study when run again."""
    import time

    from nas.cli.console import ProgressView
    from nas.study.search import Budget, SearchSettings, default_study_name, open_study, run_search
    from nas.units import parse_duration, parse_quantity

    started = time.monotonic()
    space = resolve_space(args.space)
    conf = space.search
    budget = Budget(
        flops=parsed(args.budget_flops, "--budget-flops", parse_quantity, conf.flops_budget()),
        params=parsed(args.budget_params, "--budget-params", parse_quantity, conf.params_budget()))
    timeout = parsed(args.timeout, "--timeout", parse_duration, conf.timeout_seconds())
    trials = args.trials if args.trials is not None else conf.trials
    epochs = args.epochs if args.epochs is not None else conf.epochs
    if trials < 1 or epochs < 1:
        raise SpaceError(f"--trials and --epochs must be at least 1, got {trials} and {epochs}")
    with ProgressView(args.quiet or args.json) as view:
        ctx = open_context(args, view, space, check=lambda data: _check_budget(space, data, budget))
        name = args.study or default_study_name(space, args.data, ctx.data.image_size, budget)
        settings = SearchSettings(study=name, trials=trials, epochs=epochs,
                                  sampler=args.sampler or conf.sampler,
                                  seed=args.seed if args.seed is not None else conf.seed,
                                  deadline=started + timeout if timeout else None, budget=budget)
        study = open_study(ctx, settings, args.data)
        view.log(f"study [bold]{name}[/] in {ctx.store.url}: teacher val "
                 f"{percent(ctx.teacher.val_accuracy)}; training {trials} genomes, {epochs} epochs each")
        tally = run_search(ctx, settings, study, on_trial=_trial_line(view, trials),
                           epoch_callbacks=lambda label: (view.epochs("trial"),))
    return _search_summary(args, ctx, name, tally, time.monotonic() - started)


def _check_budget(space: Space, data: Any, budget: Any) -> None:
    """Refuse a budget that not even the space's smallest genome fits, before any training."""
    from nas.model.complexity import count

    shape = InputShape(3, *data.image_size)
    classes = len(data.classes)
    rows = [(count(g, space, shape=shape, classes=classes), g) for g in space.extremes(False)]
    for limit, key, name in ((budget.flops, "flops", "FLOPs"), (budget.params, "params", "params")):
        size, genome = min(rows, key=lambda row: getattr(row[0], key))
        if limit is not None and getattr(size, key) > limit:
            raise SpaceError(f"budget of {limit:,.0f} {name} is below the smallest genome of "
                             f"{space.path} at {shape}: {genome} has {getattr(size, key):,} {name}")


def _trial_line(view: Any, trials: int) -> Callable[[Any, Any], None]:
    def show(trial: Any, tally: Any) -> None:
        best = tally.best
        info = f"best {percent(best.val_accuracy)} {best.genome}" if best else "no feasible yet"
        view.update("trials", tally.trained, trials,
                    f"{info} | front {tally.front} | rejected {tally.rejected} | "
                    f"reused {tally.reused} | failed {tally.failed}", description="search")
    return show


def _search_summary(args: argparse.Namespace, ctx: Any, name: str, tally: Any,
                    seconds: float) -> int:
    best = tally.best
    row = {"study": name, "storage": ctx.store.url, "trained": tally.trained,
           "reused": tally.reused, "rejected": tally.rejected, "failed": tally.failed,
           "front_size": tally.front, "seconds": seconds, "teacher": teacher_fields(ctx),
           "best": None if best is None else best.to_json()}
    if args.json:
        emit_json(row)
        return 0
    from nas.cli.console import print_fields

    print_fields({
        "study": f"{name}  ({ctx.store.url})",
        "this run": f"{tally.trained} trained, {tally.reused} reused, {tally.rejected} rejected "
                    f"over budget, {tally.failed} failed, {seconds:.0f} s",
        "front": f"{tally.front} genomes",
        "best": "-" if best is None else
                f"{best.genome} {best.attention}: val {percent(best.val_accuracy)}, "
                f"{flops_text(best.flops or 0, exact=True)} FLOPs (trial {best.trial})",
        "next": f"nas report --study {name}",
    })
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("search", help="budgeted Pareto search, stored in the database")
    p.add_argument("--budget-flops", default=None, help="e.g. 0.2G (report convention)")
    p.add_argument("--budget-params", default=None, help="e.g. 50K")
    p.add_argument("--trials", type=int, default=None, help="genomes to train (default: space)")
    p.add_argument("--timeout", default=None, help="start no trial after e.g. 30m")
    p.add_argument("--study", default=None, help="default: derived from space, data and budgets")
    p.add_argument("--sampler", choices=("tpe", "nsga2", "random"), default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: space)")
    data_flags(p)
    p.set_defaults(func=cmd_search)
