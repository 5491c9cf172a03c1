"""The budgeted Pareto search: an Optuna multi-objective study over a space's genomes.

Objectives (nas.model.objectives, `--objectives`): validation accuracy, maximised, and one or
more of FLOPs, params and measured latency, minimised (default: accuracy, FLOPs, params). The
budgets are hard constraints: a genome over budget is measured (counted in microseconds, timed
once per genome), recorded as a rejected trial with a positive constraint, and never trained, so
the sampler learns the region is infeasible. A genome already judged in the study (trained, or
pruned at a rung) is not trained again: its stored result is reused, and after TPE proposed such
a genome, the next trial is drawn at random.

What a study holds (read by `nas.study.report.summary` and `nas.study.report.export`):
- study.user_attrs["nas"]: space, data, image_size, budgets, epochs, seed, classes, teacher,
  fingerprint (recipe and gene choices, nas.study.search.identity: a rerun that changes them is refused),
  sets (the user's --set keys when it was made, or first continued: the final model's recipe),
  objectives (when not the default) and the latency setup (when latency is measured).
- trial.user_attrs: genome, attention, flops, params, latency_ms (when measured), outcome (trained
  | reused | rejected | pruned | nan | failed | interrupted), run_id, test_accuracy, constraint,
  seconds.
- COMPLETE trials: trained, reused, rejected (values in the objectives' order, accuracy 0 when
  rejected); PRUNED: pruned at a rung (--rungs; user_attrs["rungs"] holds the accuracy at each
  rung reached), or reused from a genome pruned at a rung (outcome reused, its rungs copied);
  FAIL: the rest.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from nas.errors import SpaceError, StoreError, nearest
from nas.model.candidate import Candidate
from nas.model.genome import GENES, Genome, StageGene
from nas.model.latency import setup as latency_setup
from nas.model.objectives import DEFAULT_OBJECTIVES, OBJECTIVES, select
from nas.model.samplers import DEFAULT_SAMPLER, SAMPLERS
from nas.model.space import Space
from nas.store import claims
from nas.store.quotas import Countdown, SharedQuota
from nas.store.runs import RunRecord
from nas.study.names import check_study_name
from nas.study.search import dashboard, identity, rungs, shared_study
from nas.study.search.budget import Budget, measure
from nas.study.search.tally import Tally
from nas.study.storage_errors import optuna_errors
from nas.train.experiment import Context, recipe, train_genome


@dataclass(frozen=True)
class SearchSettings:
    study: str
    trials: int
    epochs: int
    sampler: str = DEFAULT_SAMPLER
    seed: int = 0
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES   # accuracy first (nas.model.objectives)
    deadline: float | None = None        # time.monotonic() after which no trial starts
    budget: Budget = field(default_factory=Budget)
    heartbeat_s: int = shared_study.HEARTBEAT_S    # a running trial's heartbeat and watchdog period
    grace_s: int = shared_study.GRACE_S            # a trial this long without a heartbeat is dead
    max_failures: int = shared_study.MAX_FAILURES  # failed trials in a row that stop the search
    rungs: tuple[int, ...] = ()                # epochs at which a trial may be pruned (rungs.py)
    worker: str = field(default_factory=claims.worker_name)
    quota: str | None = None    # a SharedQuota's key: `trials` shared with other workers (--jobs)
    sets: Mapping[str, Any] = field(default_factory=dict)   # the user's dotted recipe keys
    # (--set, recipe=), recorded with the study: its final model keeps them (identity.searched_recipe)


TrialCallback = Callable[[FrozenTrial, Tally], None]


def default_study_name(space: Space, data_name: str, size: tuple[int, int], budget: Budget,
                       objectives: tuple[str, ...] = DEFAULT_OBJECTIVES) -> str:
    """Derived from space, data (and its training subset), input size, budgets and objectives
    (named only when not the default), so re-running continues the study and a search on
    another subset starts its own."""
    data = data_name.rstrip("/").rsplit("/", 1)[-1]
    subset = f"-n{space.train.train_per_class}" if space.train.train_per_class else ""
    chosen = "" if objectives == DEFAULT_OBJECTIVES else "-" + "-".join(objectives[1:])
    return f"{space.name}-{data}{subset}-{size[0]}x{size[1]}-{budget.label()}{chosen}"


def make_sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler `kind` of `SAMPLERS`; each reads the budget constraints every trial records
    (`Trial.set_constraint`, set when the genome is measured)."""
    if kind not in SAMPLERS:
        raise SpaceError(f"sampler must be one of {', '.join(SAMPLERS)}, got {kind!r}"
                         f"{nearest(kind, SAMPLERS)}")
    return SAMPLERS[kind].build(seed)


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


def genome_params(genome: Genome, space: Space) -> dict[str, int | str]:
    """The inverse of `sample_genome`: the params under which it returns `genome` (a genome
    of the space, channels as the space lists them), for `optuna.Study.enqueue_trial`."""
    params: dict[str, int | str] = {}
    if len(space.stages) > space.min_stages:
        params["stages"] = len(genome.stages)
    for index, (gene, stage) in enumerate(zip(genome.stages, space.stages, strict=False), 1):
        params |= {f"stage{index}.{name}": getattr(gene, name) for name in GENES
                   if len(stage.choices(name)) > 1}
    if len(space.attention) > 1:
        params["attention"] = genome.attention
    return params


def open_study(ctx: Context, settings: SearchSettings, source: str) -> optuna.Study:
    """Create the study or continue it; a study made for other data or space is refused.

    Any number of workers may call this at once (see nas.study.search.shared_study); each is numbered in
    the study and samples with a seed derived from the study's seed and its number."""
    study = create_study(ctx, settings, source)
    with optuna_errors(ctx.store.url):
        number = claims.join(ctx.store, settings.study, settings.worker)
        study.sampler = make_sampler(settings.sampler, shared_study.worker_seed(settings.seed, number))
        optuna.storages.fail_stale_trials(study)
        _close_stale_runs(ctx, study)
    return study


def create_study(ctx: Context, settings: SearchSettings, source: str) -> optuna.Study:
    """Create or load the study, without joining it as a worker (the --jobs parent enqueues
    warm starts into it before its workers open it)."""
    check_study_name(settings.study)
    storage = shared_study.open_storage(ctx.store, settings.heartbeat_s, settings.grace_s)
    with optuna_errors(ctx.store.url):
        return _create_study(ctx, settings, source, storage)


def _create_study(ctx: Context, settings: SearchSettings, source: str,
                  storage: optuna.storages.RDBStorage) -> optuna.Study:
    """Check the stored study's `nas` attributes against this search's (before anything is
    written to it: its objectives, directions and metric names), then create or load it."""
    attrs = study_attrs(ctx, settings, source)
    old = _stored_attrs(storage, settings.study)
    if old is not None:
        identity.check_identity(settings.study, old, attrs)
    objectives = select(settings.objectives)
    study = optuna.create_study(study_name=settings.study, storage=storage,
                                directions=[o.direction for o in objectives], load_if_exists=True)
    dashboard.name_metrics(study, objectives)
    if old is None:
        study.set_user_attr("nas", attrs)
        return study
    missing = {"sets": attrs["sets"]} if "sets" not in old else {}     # made before they were kept
    if set(attrs["fingerprint"]) - set(old.get("fingerprint") or {}):    # first use, or new keys
        missing["fingerprint"] = {**attrs["fingerprint"], **(old.get("fingerprint") or {})}
    if missing:
        study.set_user_attr("nas", {**old, **missing})
    return study


def _stored_attrs(storage: optuna.storages.BaseStorage, name: str) -> dict[str, Any] | None:
    """The `nas` attributes of the stored study `name`; None when there is none yet."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return None
    return storage.get_study_user_attrs(study_id).get("nas")


def check_existing(ctx: Context, settings: SearchSettings, source: str) -> None:
    """check_identity against the stored study, if there is one, without creating it (the
    parent of --jobs workers, before it starts them)."""
    try:
        study = optuna.load_study(study_name=settings.study, storage=ctx.store.url)
    except KeyError:
        return
    old = study.user_attrs.get("nas")
    if old is not None:
        identity.check_identity(settings.study, old, study_attrs(ctx, settings, source))


def _close_stale_runs(ctx: Context, study: optuna.Study) -> None:
    """Claims and 'running' runs left by workers that died: their trial has failed since."""
    failed = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))]
    claims.abandon_trial(ctx.store, study.study_name, failed)


def study_attrs(ctx: Context, settings: SearchSettings, source: str) -> dict[str, Any]:
    """The study's `nas` attributes: what `identity.check_identity` compares and the report reads.
    Objectives other than the default, and the latency setup when latency is measured, are
    recorded; a study without them optimises the default three."""
    return {
        "space": ctx.space.path, "data": source, "image_size": list(ctx.data.image_size),
        **{o.budget_key: settings.budget.limits.get(o.name) for o in OBJECTIVES.values()
           if o.can_budget and (o.always or o.name in settings.budget.limits)},
        **({} if settings.objectives == DEFAULT_OBJECTIVES
           else {"objectives": list(settings.objectives)}),
        **({"latency": latency_setup(ctx.space.search.latency_backend)}
           if "latency" in settings.budget.names else {}),
        "epochs": settings.epochs, "seed": settings.seed, "classes": list(ctx.data.classes),
        "fingerprint": identity.fingerprint(ctx.space),
        "sets": json.loads(json.dumps(settings.sets, default=str)),     # JSON, as Optuna stores it
        "teacher": {"fingerprint": ctx.teacher.fingerprint,
                    "val_accuracy": ctx.teacher.val_accuracy,
                    "test_accuracy": ctx.teacher.test_accuracy},
    }


def run_search(ctx: Context, settings: SearchSettings, study: optuna.Study,
               on_trial: TrialCallback | None = None,
               epoch_callbacks: Callable[[str], tuple[Any, ...]] = lambda label: ()) -> Tally:
    """Ask and tell until `trials` genomes were judged (with `quota`: until the workers sharing
    it judged that many), the deadline passes, or the space runs dry.

    A trial that raises is told FAIL with its error (the search goes on) unless the database
    or the disk failed (StoreError after telling FAIL) or the last `max_failures` trials all
    failed (TrainError); Ctrl-C marks the running trial FAIL ('interrupted') and re-raises, so
    nothing is left RUNNING. A watchdog fails other workers' trials whose heartbeat stopped."""
    tally, streak = Tally(), shared_study.FailureStreak(settings.max_failures)
    misses, max_misses = 0, 200 + 20 * settings.trials
    quota = (SharedQuota(ctx.store, settings.quota) if settings.quota
             else Countdown(settings.trials))
    holding = False         # a unit of the quota, kept until a genome is judged
    sampler = study.sampler
    with shared_study.watchdog(study, settings.heartbeat_s):
        try:
            while misses < max_misses and not _past(settings.deadline):
                holding = holding or quota.take()
                if not holding or _past(settings.deadline):     # taking may wait on the database
                    break
                trial, outcome = _one_trial(ctx, settings, study, epoch_callbacks)
                study.sampler = _next_sampler(settings, sampler, trial.number, outcome)
                streak.add(trial.number, outcome, trial.user_attrs.get("error"))
                holding = outcome not in ("trained", "pruned")
                misses = misses + 1 if holding else 0
                tally.count(outcome)
                trials = study.get_trials(deepcopy=False)
                tally.refresh(trials, settings.objectives)
                if on_trial is not None:
                    on_trial(next(t for t in reversed(trials) if t.number == trial.number), tally)
        finally:
            study.sampler = sampler
            if holding:
                _give_back(quota)
    return tally


def _next_sampler(settings: SearchSettings, sampler: optuna.samplers.BaseSampler, number: int,
                  outcome: str) -> optuna.samplers.BaseSampler:
    """The sampler of the next trial: after TPE proposed a genome already judged, one trial is
    drawn at random (seeded by the study's seed and this trial's number). On a discrete space
    TPE keeps proposing its best genomes again; each repeat costs an ask and teaches it nothing."""
    if not SAMPLERS[settings.sampler].random_after_repeat or outcome != "reused":
        return sampler
    return make_sampler("random", shared_study.worker_seed(settings.seed, number + 1))


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


def _give_back(quota: Countdown | SharedQuota) -> None:
    """Return an unused unit to the other workers; if the database refuses, they judge one
    genome fewer."""
    try:
        quota.give_back()
    except StoreError:
        pass


def _one_trial(ctx: Context, settings: SearchSettings, study: optuna.Study,
               epoch_callbacks: Callable[[str], tuple[Any, ...]]) -> tuple[Trial, str]:
    """Ask, evaluate under a heartbeat, tell: (the trial, its outcome)."""
    trial, started = None, time.perf_counter()
    try:
        with shared_study.deferred():       # a stop while asking: the new trial is failed below
            trial = study.ask()
        with shared_study.heartbeat(study, trial):
            outcome, values, run = _evaluate(ctx, settings, trial, epoch_callbacks)
    except KeyboardInterrupt:
        if trial is not None:
            with shared_study.uninterrupted():  # a second Ctrl-C 10 ms later must not leave it RUNNING
                _tell(study, trial, "interrupted", None, None, started)
        raise
    except Exception as error:  # a failed trial is a state, not a crash
        reason = shared_study.fatal_error(error)
        if reason is not None:       # the database or the disk: no later trial can do better
            raise StoreError(_stop_line(ctx, study, trial, reason, started)) from error
        trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:500])
        outcome, values, run = "failed", None, None
    _tell(study, trial, outcome, values, run, started)
    return trial, outcome


def _stop_line(ctx: Context, study: optuna.Study, trial: Trial, reason: str,
               started: float) -> str:
    """Tell the trial FAIL (and its run 'interrupted') if the database still takes a write;
    the one line the search stops with."""
    try:
        trial.set_user_attr("error", reason[:500])
        _tell(study, trial, "failed", None, None, started)
        state = "marked FAIL"
        claims.abandon_trial(ctx.store, study.study_name, [trial.number])
    except Exception:  # noqa: BLE001  (the same outage again; the watchdog fails it later)
        state = "left RUNNING until a worker's watchdog fails it"
    return f"{reason} (trial {trial.number} {state}; the search stopped)"


def _evaluate(ctx: Context, settings: SearchSettings, trial: Trial,
              epoch_callbacks: Callable[[str], tuple[Any, ...]]
              ) -> tuple[str, list[float] | None, RunRecord | None]:
    """Sample, measure, gate on the budget, reuse or train: (outcome, objective values, run)."""
    sampled = sample_measured(ctx, trial, settings.objectives, settings.budget)
    genome, measured = sampled.genome, sampled.measured
    if sampled.rejected:
        return "rejected", _values(settings, measured, 0.0), None
    reusable = _reusable(ctx, settings)
    held = claims.claim(ctx.store, settings.study, genome.notation, genome.attention,
                        worker=settings.worker, trial=trial.number, reusable=reusable)
    if held.outcome == claims.TAKEN:     # another worker trains it: wait for its result
        held = claims.wait_for(ctx.store, held, poll_s=min(1.0, settings.heartbeat_s),
                               reusable=reusable)
    if held.outcome == claims.DONE and held.run is not None:   # one pruned at a rung: no values
        values = None if held.run.status == "pruned" else _values(settings, measured, held.run)
        return "reused", values, held.run
    try:
        run = train_genome(ctx, genome, epochs=settings.epochs, seed=settings.seed,
                           study=settings.study, trial=trial.number,
                           callbacks=epoch_callbacks(str(genome)), rungs=settings.rungs,
                           gate=rungs.gate(trial, settings.objectives) if settings.rungs else None)
    finally:
        _release(ctx, held)
    if run.status != "ok":
        return run.status, None, run
    return "trained", _values(settings, measured, run), run


@dataclass(frozen=True)
class Sampled:
    """A trial's genome and its values known before training (by objective name)."""

    genome: Genome
    measured: dict[str, float]
    rejected: bool              # over a budget: not trained


def sample_measured(ctx: Context, trial: Trial, objectives: tuple[str, ...],
                    budget: Budget) -> Sampled:
    """Sample the trial's genome, measure what is known before training, and record both on
    the trial with the budget's constraints (read by TPE and NSGA-II)."""
    genome = sample_genome(trial, ctx.space).rounded(ctx.space.model.divisor)
    measured = measure(trial.study, Candidate(genome, ctx.space, ctx.shape, len(ctx.data.classes)),
                       objectives)
    violation = budget.violation(measured)
    for key, value in {"genome": genome.notation, "attention": genome.attention,
                       **{OBJECTIVES[name].metric: value for name, value in measured.items()},
                       "constraint": violation}.items():
        trial.set_user_attr(key, value)
    for name, value in zip(budget.names, violation, strict=True):
        trial.set_constraint(name, value)
    return Sampled(genome, measured, any(v > 0 for v in violation))


def _values(settings: SearchSettings, measured: Mapping[str, float],
            trained: RunRecord | float) -> list[float]:
    """Optuna's values in the study's objective order: the measured ones, and what training
    gives (the run's validation accuracy; 0.0 for a genome rejected untrained)."""
    accuracy = trained if isinstance(trained, float) else trained.val_accuracy
    return [accuracy if o.measure is None else measured[o.name] for o in select(settings.objectives)]


def _reusable(ctx: Context, settings: SearchSettings) -> Callable[[Any], bool]:
    """Whether a stored run's recipe is this search's (a study made before fingerprints may
    hold runs of another recipe: they are not reused)."""
    wanted = json.loads(json.dumps(recipe(ctx, settings.epochs)))
    return lambda stored: identity.same_recipe(stored, wanted)


def _release(ctx: Context, held: claims.Claim) -> None:
    """Release a claim after training; if the database refuses, the trial's FAIL releases it."""
    try:
        claims.release(ctx.store, held)
    except StoreError:
        pass


def _tell(study: optuna.Study, trial: Trial, outcome: str, values: list[float] | None,
          run: RunRecord | None, started: float) -> None:
    """Record the outcome and tell Optuna; a trial another worker's watchdog already failed
    (this worker paused longer than the grace period) stays failed."""
    try:
        _tell_now(study, trial, outcome, values, run, started)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass


def _tell_now(study: optuna.Study, trial: Trial, outcome: str, values: list[float] | None,
              run: RunRecord | None, started: float) -> None:
    pruned = run is not None and run.status == "pruned"     # at a rung, here or by its first trial
    trial.set_user_attr("outcome", outcome)     # first: the rung gate skips 'reused' trials
    if outcome == "reused" and pruned:
        trial.set_user_attr("rungs", rungs.recorded(study, run.trial))
    trial.set_user_attr("run_id", run.id if run is not None else None)
    trial.set_user_attr("test_accuracy", run.test_accuracy if run is not None else None)
    trial.set_user_attr("seconds", time.perf_counter() - started)
    if not pruned:   # TPE scores a PRUNED trial's curve with study.direction: refused
        dashboard.report_curve(study, trial, run)   # in a multi-objective study
    if values is None:
        study.tell(trial, state=TrialState.PRUNED if pruned else TrialState.FAIL)
    else:
        study.tell(trial, values)
