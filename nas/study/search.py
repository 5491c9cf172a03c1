"""The budgeted Pareto search: an Optuna multi-objective study over a space's genomes.

Objectives: maximise validation accuracy, minimise FLOPs, minimise params. The
budgets are hard constraints: a genome over budget is counted (microseconds),
recorded as a rejected trial with a positive constraint, and never trained, so
the sampler learns the region is infeasible. A genome already trained in the
study is not trained again: its stored result is reused.

What a study holds (read by `nas.study.report` and `nas.study.export`):
- study.user_attrs["nas"]: space, data, image_size, budgets, epochs, seed, classes, teacher.
- trial.user_attrs: genome, attention, flops, params, outcome (trained | reused |
  rejected | nan | failed | interrupted), run_id, test_accuracy, constraint, seconds.
- COMPLETE trials: trained, reused, rejected (values [0, flops, params]); FAIL: the rest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from nas.errors import NasError, SpaceError
from nas.model.complexity import count
from nas.model.genome import GENES, Genome, StageGene
from nas.model.space import Space
from nas.store.database import tune_engine
from nas.store.runs import RunRecord
from nas.study.pareto import TrialRow, feasible_front, row_from_trial
from nas.train.experiment import Context, train_genome

DIRECTIONS = ["maximize", "minimize", "minimize"]
HEARTBEAT_S = 30


@dataclass(frozen=True)
class Budget:
    """Hard limits on FLOPs (report convention) and parameters; None = unlimited."""

    flops: float | None = None
    params: float | None = None

    def violation(self, flops: int, params: int) -> list[float]:
        """Optuna constraint values: feasible iff every value is <= 0."""
        return [flops - self.flops if self.flops else 0.0,
                params - self.params if self.params else 0.0]

    def label(self) -> str:
        parts = [f"f{_short(self.flops)}" if self.flops else "", f"p{_short(self.params)}"
                 if self.params else ""]
        return "-".join(p for p in parts if p) or "nobudget"


@dataclass(frozen=True)
class SearchSettings:
    study: str
    trials: int
    epochs: int
    sampler: str = "tpe"
    seed: int = 0
    deadline: float | None = None        # time.monotonic() after which no trial starts
    budget: Budget = field(default_factory=Budget)


@dataclass
class Tally:
    """What this run did, for the progress line and the summary."""

    trained: int = 0
    reused: int = 0
    rejected: int = 0
    failed: int = 0
    best: TrialRow | None = None
    front: int = 0


TrialCallback = Callable[[FrozenTrial, Tally], None]


def _short(value: float) -> str:
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def default_study_name(space: Space, data_name: str, size: tuple[int, int], budget: Budget) -> str:
    """Derived from space, data, input size and budgets, so re-running continues the study."""
    data = data_name.rstrip("/").rsplit("/", 1)[-1]
    return f"{space.name}-{data}-{size[0]}x{size[1]}-{budget.label()}"


def make_sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    """TPE, NSGA-II or random sampling, each aware of the budget constraints."""
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constraints_func=constraints)
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=constraints,
                                             population_size=20)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise SpaceError(f"--sampler must be tpe, nsga2 or random, got {kind!r}")


def constraints(trial: FrozenTrial) -> list[float]:
    return trial.user_attrs.get("constraint", [0.0, 0.0])


def sample_genome(trial: Trial, space: Space) -> Genome:
    """Define-by-run: the number of stages, then each gene that has a choice, then attention."""
    depths = list(range(space.min_stages, len(space.stages) + 1))
    depth = trial.suggest_categorical("stages", depths) if len(depths) > 1 else depths[0]
    stages = []
    for index, stage in enumerate(space.stages[:depth], 1):
        genes = {}
        for name in GENES:
            choices = list(stage.choices(name))
            genes[name] = (trial.suggest_categorical(f"stage{index}.{name}", choices)
                           if len(choices) > 1 else choices[0])
        stages.append(StageGene(**genes))
    attention = (trial.suggest_categorical("attention", list(space.attention))
                 if len(space.attention) > 1 else space.attention[0])
    return Genome(tuple(stages), attention)


def open_study(ctx: Context, settings: SearchSettings, source: str) -> optuna.Study:
    """Create the study or continue it; a study made for other data or space is refused."""
    storage = optuna.storages.RDBStorage(ctx.store.url, heartbeat_interval=HEARTBEAT_S,
                                         grace_period=4 * HEARTBEAT_S)
    tune_engine(storage.engine)
    study = optuna.create_study(study_name=settings.study, storage=storage,
                                directions=DIRECTIONS, load_if_exists=True,
                                sampler=make_sampler(settings.sampler, settings.seed))
    attrs = study_attrs(ctx, settings, source)
    old = study.user_attrs.get("nas")
    if old is None:
        study.set_user_attr("nas", attrs)
    elif (old["space"], old["data"], old["image_size"]) != (attrs["space"], attrs["data"],
                                                            attrs["image_size"]):
        raise NasError(f"study {settings.study!r} was made for space {old['space']}, data "
                       f"{old['data']} at {old['image_size']}; pick another --study name")
    optuna.storages.fail_stale_trials(study)
    _close_stale_runs(ctx, study)
    return study


def _close_stale_runs(ctx: Context, study: optuna.Study) -> None:
    """Runs left 'running' by a worker that was killed: their trial has failed since."""
    failed = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    for run in ctx.store.list_runs(study.study_name):
        if run.status == "running" and run.trial in failed:
            ctx.store.update_run(run.id, status="interrupted")


def study_attrs(ctx: Context, settings: SearchSettings, source: str) -> dict[str, Any]:
    return {
        "space": ctx.space.path, "data": source, "image_size": list(ctx.data.image_size),
        "budget_flops": settings.budget.flops, "budget_params": settings.budget.params,
        "epochs": settings.epochs, "seed": settings.seed, "classes": list(ctx.data.classes),
        "teacher": {"fingerprint": ctx.teacher.fingerprint,
                    "val_accuracy": ctx.teacher.val_accuracy,
                    "test_accuracy": ctx.teacher.test_accuracy},
    }


def run_search(ctx: Context, settings: SearchSettings, study: optuna.Study,
               on_trial: TrialCallback | None = None,
               epoch_callbacks: Callable[[str], tuple[Any, ...]] = lambda label: ()) -> Tally:
    """Ask and tell until `trials` genomes were trained, the deadline passes, or the space runs dry.

    A trial that raises is told FAIL with its error (the search goes on); Ctrl-C marks the
    running trial FAIL ('interrupted') and re-raises, so nothing is left RUNNING."""
    tally = Tally()
    misses, max_misses = 0, 200 + 20 * settings.trials
    while tally.trained < settings.trials and misses < max_misses:
        if settings.deadline is not None and time.monotonic() > settings.deadline:
            break
        trial, started = study.ask(), time.perf_counter()
        try:
            with heartbeat(study, trial):
                outcome, values, run = _evaluate(ctx, settings, trial, epoch_callbacks)
        except KeyboardInterrupt:
            _tell(study, trial, "interrupted", None, None, started)
            raise
        except Exception as error:  # a failed trial is a state, not a crash
            trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:500])
            outcome, values, run = "failed", None, None
        _tell(study, trial, outcome, values, run, started)
        misses = 0 if outcome == "trained" else misses + 1
        _count(tally, outcome)
        trials = study.get_trials(deepcopy=False)
        _refresh_best(trials, tally)
        if on_trial is not None:
            on_trial(next(t for t in reversed(trials) if t.number == trial.number), tally)
    return tally


@contextmanager
def heartbeat(study: optuna.Study, trial: Trial) -> Iterator[None]:
    """Record the trial's heartbeat while it runs, so a killed worker's trial can be failed
    by the next run (`fail_stale_trials`) instead of staying RUNNING forever."""
    storage = study._storage
    if not isinstance(storage, optuna.storages.RDBStorage):
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            storage.record_heartbeat(trial._trial_id)
            stop.wait(HEARTBEAT_S)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _evaluate(ctx: Context, settings: SearchSettings, trial: Trial,
              epoch_callbacks: Callable[[str], tuple[Any, ...]]
              ) -> tuple[str, list[float] | None, RunRecord | None]:
    """Sample, gate on the budget, reuse or train: (outcome, objective values, run)."""
    genome = sample_genome(trial, ctx.space).rounded(ctx.space.model.divisor)
    size = count(genome, ctx.space, shape=ctx.shape, classes=len(ctx.data.classes))
    violation = settings.budget.violation(size.flops, size.params)
    for key, value in {"genome": genome.notation, "attention": genome.attention,
                       "flops": size.flops, "params": size.params,
                       "constraint": violation}.items():
        trial.set_user_attr(key, value)
    if any(v > 0 for v in violation):
        return "rejected", [0.0, size.flops, size.params], None
    run = ctx.store.find_run(settings.study, genome.notation, genome.attention)
    if run is not None:
        return "reused", [run.val_accuracy, size.flops, size.params], run
    run = train_genome(ctx, genome, epochs=settings.epochs, seed=settings.seed,
                       study=settings.study, trial=trial.number,
                       callbacks=epoch_callbacks(str(genome)))
    if run.status != "ok":
        return run.status, None, run
    return "trained", [run.val_accuracy, size.flops, size.params], run


def _tell(study: optuna.Study, trial: Trial, outcome: str, values: list[float] | None,
          run: RunRecord | None, started: float) -> None:
    trial.set_user_attr("outcome", outcome)
    trial.set_user_attr("run_id", run.id if run is not None else None)
    trial.set_user_attr("test_accuracy", run.test_accuracy if run is not None else None)
    trial.set_user_attr("seconds", time.perf_counter() - started)
    if values is None:
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, values)


def _count(tally: Tally, outcome: str) -> None:
    if outcome in ("trained", "reused", "rejected"):
        setattr(tally, outcome, getattr(tally, outcome) + 1)
    else:
        tally.failed += 1


def _refresh_best(trials: list[FrozenTrial], tally: Tally) -> None:
    front = feasible_front([row_from_trial(t) for t in trials])
    tally.front = len(front)
    tally.best = max(front, key=lambda r: (r.val_accuracy, -(r.flops or 0)), default=None)
