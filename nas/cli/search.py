"""`nas search`: the budgeted Pareto search, with a progress line per trial; `--jobs N` starts N
worker processes (nas.study.search.processes) and shows one progress line for all of them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nas.cli.common import (
    budget_flags,
    budget_texts,
    data_flags,
    emit_json,
    open_context,
    parsed,
    resolve_space,
    set_keys,
    teacher_fields,
    teacher_text,
    with_subset,
)
from nas.errors import NasError, SpaceError
from nas.model.objectives import OBJECTIVES, parse_objectives
from nas.model.recipe import MAX_EPOCHS, MAX_TRIALS
from nas.model.samplers import SAMPLERS
from nas.model.space import Space
from nas.units import count_text, duration_text, percent, plural


def cmd_search(args: argparse.Namespace) -> int:
    """Budgeted multi-objective search; continues the study when run again."""
    import time

    started = time.monotonic()          # the summary's wall time: before torch is imported
    from nas.study.search.processes import check_jobs
    from nas.study.search.shared_study import stop_signals

    check_jobs(args.jobs)
    with stop_signals():      # SIGTERM and SIGHUP stop it as cleanly as Ctrl-C does
        if args.worker is not None:
            return _worker(args, started)
        return _search(args, started)


def _settings(args: argparse.Namespace, space: Space) -> tuple[Any, int, int, tuple[int, ...]]:
    """(budget, trials, epochs, rungs) from the flags, else the space's [search]; bad values ->
    exit 2 (the schedule: `SearchConfig.schedule`)."""
    from nas.api import checked
    from nas.study.search.budget import budget_from

    conf = space.search
    budget = budget_from(budget_texts(args), objectives(args, space), conf)
    trials = args.trials if args.trials is not None else conf.trials
    epochs, rungs = conf.schedule(args.epochs, parse_rungs(args.rungs, args.epochs) if args.rungs else ())
    checked("--trials", trials, MAX_TRIALS)
    checked("--epochs", epochs, MAX_EPOCHS)
    return budget, trials, epochs, rungs


def _schedule_text(space: Space, settings: Any) -> str:
    """'12 epochs each on 200 images per class, pruned at rungs 6,12'."""
    per_class = space.train.train_per_class
    return (f"{plural(settings.epochs, 'epoch')} each"
            + (f" on {per_class:,} images per class" if per_class else "")
            + (f", pruned at rungs {','.join(map(str, settings.rungs))}" if settings.rungs else ""))


def objectives(args: argparse.Namespace, space: Space) -> tuple[str, ...]:
    """--objectives, else the space's [search] objectives."""
    if args.objectives is None:
        return tuple(space.search.objectives)
    return parse_objectives(args.objectives, "--objectives")


def _search(args: argparse.Namespace, started: float) -> int:
    import time

    from rich.markup import escape

    from nas.cli.console import ProgressView
    from nas.study.names import check_study_name
    from nas.study.search import warmstart
    from nas.study.search.loop import (
        SearchSettings,
        check_existing,
        default_study_name,
        open_study,
        run_search,
    )
    from nas.units import parse_duration

    space = with_subset(resolve_space(args.space, args.data), args, trials=True)
    budget, trials, epochs, rungs = _settings(args, space)
    starts = warmstart.resolve(args.enqueue, args.no_enqueue, space)
    timeout = parsed(args.timeout, "--timeout", parse_duration, space.search.timeout_seconds())
    if args.study is not None:
        check_study_name(args.study)            # before the database or the teacher
    with ProgressView(args.quiet or args.json) as view:
        if args.jobs > 1:     # the parent (teacher, data) uses what its workers will share
            from nas.study.search.processes import cores, worker_threads

            args.threads = worker_threads(args.jobs, args.threads)
            args.parent_threads = min(cores(), args.threads * args.jobs)
        own = argparse.Namespace(**{**vars(args), "threads": getattr(args, "parent_threads",
                                                                       args.threads)})
        ctx = _open_context(own, view, space, budget, starts)
        chosen = objectives(args, space)
        name = args.study or default_study_name(space, args.data, ctx.data.image_size, budget,
                                                chosen)
        settings = SearchSettings(study=name, trials=trials, epochs=epochs,
                                  sampler=args.sampler or space.search.sampler, objectives=chosen,
                                  seed=args.seed if args.seed is not None else space.search.seed,
                                  deadline=started + timeout if timeout else None, budget=budget,
                                  rungs=rungs, quota=args.quota, sets=set_keys(args))
        _warm_start(view, ctx, settings, args.data, starts)     # refuses a changed study too
        if args.jobs > 1:
            check_existing(ctx, settings, args.data)        # refused once, not by every worker
            return _parent(args, view, ctx, settings, started)
        study = open_study(ctx, settings, args.data)
        view.log(f"study [bold]{escape(name)}[/] in {escape(ctx.store.url)}: {teacher_text(ctx)};"
                 f" training {plural(trials, 'genome')}, {_schedule_text(ctx.space, settings)}")
        clock = TrialClock()
        tally = run_search(ctx, settings, study,
                           on_trial=clock.counting(_trial_line(view, trials, bool(budget.limits))),
                           epoch_callbacks=lambda label: (view.epochs("trial"),))
    return _search_summary(args, ctx, settings, tally,
                           Times(clock.seconds, time.monotonic() - started))


def _open_context(args: argparse.Namespace, view: Any, space: Space, budget: Any,
                  starts: tuple[Any, ...] = ()) -> Any:
    """open_context, refusing a budget below every genome or an --enqueue genome over it once
    the data is read (a SQLite file made before the refusal is removed by `nas.cli.main`)."""
    return open_context(args, view, space,
                        check=lambda data: _check_budget(space, data, budget, starts),
                        within=budget.admits)


def _warm_start(view: Any, ctx: Any, settings: Any, source: str, starts: tuple[Any, ...]) -> None:
    """Enqueue the warm starts that fit the budget as the study's next trials (before any
    worker opens it); say which were left out and which the study held already."""
    from rich.markup import escape

    from nas.study.search import warmstart
    from nas.study.search.loop import create_study

    kept, notes = warmstart.within(starts, ctx.space, ctx.shape, len(ctx.data.classes),
                                   settings.budget)
    for note in notes:
        view.log(escape(note))
    if kept:
        added, held = warmstart.enqueue(create_study(ctx, settings, source), kept, ctx.space)
        view.log(f"warm start: {plural(added, 'genome')} enqueued first, {held} held by the study "
                 "already")


def _worker(args: argparse.Namespace, started: float) -> int:
    """One of --jobs workers: the parent's flags (JSON), quiet, one JSON summary on stdout.
    NAS_WORKER_HOOK names a module imported first (tests: a fake training)."""
    import importlib
    import json
    import os
    import signal
    import time

    # The parent stops its workers with SIGINT: honour it even in a worker started with SIGINT
    # ignored (as a shell starts background jobs), which Python would otherwise leave ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if os.environ.get("NAS_WORKER_HOOK"):
        importlib.import_module(os.environ["NAS_WORKER_HOOK"])
    spec = json.loads(args.worker)
    ends_at = spec.pop("ends_at")       # the parent's deadline in wall-clock time
    if ends_at is not None:             # -> a timeout counted from this process's `started`
        spec["timeout"] = f"{max(ends_at - time.time(), 0.0) + time.monotonic() - started:.3f}s"
    return _search(argparse.Namespace(**{**spec, "worker": None, "jobs": 1, "quiet": True,
                                         "json": True, "enqueue": None,
                                         "no_enqueue": True}),   # the parent's
                   started)


def _parent(args: argparse.Namespace, view: Any, ctx: Any, settings: Any, started: float) -> int:
    """Start --jobs workers on the study (the teacher is ready in the store), show one progress
    bar from the study, and sum the workers' tallies."""
    import contextlib
    import sys
    import time
    import uuid

    from rich.markup import escape

    from nas.store.quotas import SharedQuota
    from nas.study.search import processes

    name, trials, deadline = settings.study, settings.trials, settings.deadline
    count = min(args.jobs, trials)
    quota = SharedQuota.create(ctx.store, f"{name}:{uuid.uuid4().hex}", trials)
    ends_at = None if deadline is None else time.time() + max(1.0, deadline - time.monotonic())
    spec = {k: v for k, v in vars(args).items() if k not in ("func", "worker", "parent_threads")}
    argv = ["search", "--worker", json_text({**spec, "study": name, "trials": trials,
                                             "quota": quota.key, "ends_at": ends_at})]
    view.log(f"study [bold]{escape(name)}[/] in {escape(ctx.store.url)}: {teacher_text(ctx)}; "
             f"{plural(count, 'worker')} x {plural(args.threads, 'thread')} training "
             f"{plural(trials, 'genome')}, {_schedule_text(ctx.space, settings)}")
    poller = processes.StudyPoller(ctx.store.url, name)
    workers = processes.start([argv] * count, quota=quota)
    try:
        progress = processes.wait(workers, poller, _jobs_line(view, trials, bool(settings.budget.limits)),
                             quota)
    except BaseException:
        with contextlib.suppress(Exception):   # the first error is the one to show
            quota.remove()
        raise
    unfinished = quota.remaining() or 0
    quota.remove()
    broken = processes.failures(workers)
    if broken and not any(w.result() for w in workers):
        raise NasError(f"every worker failed; {broken[0]}")
    tally = argparse.Namespace(**processes.totals(workers), best=progress.best, front=progress.front)
    done = processes.outcome(workers, progress, unfinished)
    for line in broken + done.lines:
        view.log(escape(line))
    if done.lost and view.quiet:                # a lost worker is said even with --quiet
        print("nas: warning: " + "; ".join(line for line in done.lines if "lost" in line),
              file=sys.stderr)
    in_trials = sum(float((w.result() or {}).get("trial_seconds") or 0.0) for w in workers)
    return (_search_summary(args, ctx, settings, tally, Times(in_trials, time.monotonic() - started))
            or done.exit_code)


def json_text(payload: dict[str, Any]) -> str:
    import json

    return json.dumps(payload)


def _check_budget(space: Space, data: Any, budget: Any, starts: tuple[Any, ...] = ()) -> None:
    """Refuse a budget that no genome of the space meets (nas.study.search.budget, as `nas.search`
    does), or an --enqueue genome over it, before any training."""
    from nas.study.search import warmstart
    from nas.study.search.budget import check_reachable

    check_reachable(budget, space, data)
    warmstart.check_budget(starts, space, data.shape, len(data.classes), budget)


def _trial_line(view: Any, trials: int, budgeted: bool) -> Callable[[Any, Any], None]:
    def show(trial: Any, tally: Any) -> None:
        best = tally.best
        info = f"best {percent(best.val_accuracy)} {best.genome}" if best else "no feasible yet"
        view.update("trials", tally.trained + tally.pruned, trials,
                    f"{info} | front {tally.front}{_rejected(tally.rejected, budgeted)} | "
                    f"reused {tally.reused} | failed {tally.failed}", description="search")
    return show


def _jobs_line(view: Any, trials: int, budgeted: bool) -> Callable[[Any], None]:
    def show(progress: Any) -> None:
        best, seen = progress.best, progress.outcomes
        info = f"best {percent(best.val_accuracy)} {best.genome}" if best else "no feasible yet"
        view.update("trials", min(progress.judged, trials), trials,
                    f"{info} | front {progress.front} | running {progress.running}"
                    f"{_rejected(seen['rejected'], budgeted)} | reused {seen['reused']}",
                    description="search")
    return show


def _rejected(count: int, budgeted: bool) -> str:
    """' | rejected 2' in a progress line; nothing when the study has no budget."""
    return f" | rejected {count}" if budgeted else ""


class TrialClock:
    """Sums the `seconds` of the trials this run judged (an `on_trial` callback in between)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def counting(self, then: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
        def on_trial(trial: Any, tally: Any) -> None:
            self.seconds += float(trial.user_attrs.get("seconds") or 0.0)
            then(trial, tally)
        return on_trial


@dataclass(frozen=True)
class Times:
    """A search run's two durations, as the summary names them."""

    in_trials: float        # the trials' own seconds, summed (`nas report`'s "in trials")
    wall: float             # the command, from its start: data, teacher and trials

    def text(self) -> str:
        return (f"{duration_text(self.in_trials)} in trials (summed), {duration_text(self.wall)} "
                "wall for the whole run (data, teacher and trials)")


def _search_summary(args: argparse.Namespace, ctx: Any, settings: Any, tally: Any,
                    times: Times) -> int:
    best, name = tally.best, settings.study
    sampled = tally.trained + tally.pruned + tally.reused + tally.rejected + tally.failed
    row = {"study": name, "storage": ctx.store.url, "trained": tally.trained,
           "pruned": tally.pruned, "reused": tally.reused, "rejected": tally.rejected,
           "failed": tally.failed, "sampled": sampled, "front_size": tally.front,
           "seconds": times.wall, "trial_seconds": times.in_trials, "teacher": teacher_fields(ctx),
           "best": None if best is None else best.to_json()}
    if args.json:
        emit_json(row)
        return 0
    from nas.cli.console import print_fields

    print_fields({
        "study": f"{name}  ({ctx.store.url})",
        "this run": _run_text(tally, sampled, settings),
        "time": times.text(),
        "front": plural(tally.front, "genome"),
        "best": "-" if best is None else
                f"{best.genome} {best.attention}: val {percent(best.val_accuracy)}, "
                f"{count_text(best.flops or 0, exact=True)} FLOPs{_timed(best)} (trial {best.trial})",
        "next": f"nas report --study {name}",
    })
    return 0


def _run_text(tally: Any, sampled: int, settings: Any) -> str:
    """'7 trials: 6 trained, 1 reused (...)': every trial this run added to the study, and why
    there are more than --trials (which counts the genomes judged: trained or pruned)."""
    parts = [f"{tally.trained} trained"]
    if tally.pruned:
        parts.append(f"{tally.pruned} pruned at a rung")
    if tally.reused:
        parts.append(f"{tally.reused} reused (sampled again: the study's result, not trained "
                     "again)")
    if settings.budget.limits:
        share = percent(tally.rejected / sampled) if sampled else "-"
        parts.append(f"{tally.rejected} rejected over budget ({share}, not trained)")
    if tally.failed:
        parts.append(f"{tally.failed} failed")
    judged = tally.trained + tally.pruned
    why = (f"; --trials {settings.trials} counts the genomes judged (trained or pruned)"
           if sampled > judged else "")
    return f"{plural(sampled, 'trial')}: {', '.join(parts)}{why}"


def _timed(best: Any) -> str:
    """', 0.41 ms latency' for each measured objective beyond the counted ones that `best` has."""
    return "".join(f", {o.text(value)} {o.title}" for o in OBJECTIVES.values()
                   if o.measure is not None and not o.always
                   and (value := best.value(o)) is not None)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("search", help="budgeted Pareto search, stored in the database")
    p.add_argument("--objectives", default=None, metavar="LIST",
                   help=f"accuracy and one or more of {', '.join(list(OBJECTIVES)[1:])}, e.g. "
                        "accuracy,flops,latency (default: the space's [search] objectives, "
                        "accuracy,flops,params)")
    budget_flags(p)
    p.add_argument("--trials", type=int, default=None, help="genomes to train (default: space)")
    p.add_argument("--timeout", default=None,
                   help="start no trial after this wall clock from the command's start (30m, "
                        "4m30s); the running trials finish")
    p.add_argument("--study", default=None, help="default: derived from space, data and budgets")
    p.add_argument("--sampler", choices=tuple(SAMPLERS), default=None,
                   help="Optuna sampler: " + "; ".join(f"{s.name}: {s.help}" for s in
                                                      SAMPLERS.values())
                        + " (default: the space's [search] sampler)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the sampler and of each trial's training "
                        "(default: the space's [search] seed)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: space)")
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes on this machine sharing the study (default 1)")
    p.add_argument("--rungs", default=None,
                   help="e.g. 1,3,9: epochs at which a trial outside the top third stops")
    p.add_argument("--enqueue", action="append", default=None, metavar="GENOME",
                   help='judged first and over the whole schedule (never pruned at a rung), '
                        'e.g. "[2,8,6,1,0] [2,16,4,1,0] eca" (repeatable; replaces the '
                        "space's [search] enqueue)")
    p.add_argument("--no-enqueue", action="store_true",
                   help="enqueue nothing, not even the space's [search] enqueue")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)   # set by --jobs
    p.add_argument("--quota", default=None, help=argparse.SUPPRESS)    # in --worker's JSON
    data_flags(p)
    p.set_defaults(func=cmd_search)


def parse_rungs(text: str, epochs: int | None) -> tuple[int, ...]:
    """'1,3,9' -> (1, 3, 9): positive, strictly increasing, none past `epochs` (the schedule)."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() and len(p) <= 6 and 1 <= int(p) <= MAX_EPOCHS for p in parts):
        raise SpaceError(f"--rungs must be epochs from 1 to {MAX_EPOCHS} such as 1,3,9, got "
                         f"{text[:60]!r}")
    rungs = tuple(int(p) for p in parts)
    if any(b <= a for a, b in zip(rungs, rungs[1:], strict=False)):
        raise SpaceError(f"--rungs must increase, got {text!r}")
    if epochs is not None and rungs[-1] > epochs:
        raise SpaceError(f"--rungs {text}: rung {rungs[-1]} is past the schedule of {epochs} "
                         f"epochs (--epochs)")
    return rungs
