"""The Python API: `search`, `train`, `objective` and `ablate`, the functions the CLI runs.

    import nas
    found = nas.search("tiny.toml", trials=2, epochs=1, storage="sqlite:///studies.db")
    student = nas.train("[1,8,1,1,0]", space="tiny.toml", epochs=1)

`space` is a bundled name, a path or a `Space`; `recipe` holds dotted recipe keys laid over the
space file, read by its own section reader (`{"train.lr": 1e-3, "distill.loss": "none"}`, what
`--set` takes on the command line). Nothing here prints: progress goes to callbacks.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from nas.errors import NasError, SpaceError
from nas.model.builder import build_model
from nas.model.complexity import Complexity, count
from nas.model.genome import Genome
from nas.model.overrides import SECTIONS, override_space
from nas.model.recipe import MAX_EPOCHS, MAX_TRIALS, SearchConfig
from nas.model.space import InputShape, Space, default_space, load_space
from nas.store.database import storage_url
from nas.store.runs import RunRecord, Store, bytes_to_state
from nas.study.ablation.file import Ablation, Arm, load_ablation
from nas.study.ablation.run import ArmCount, GroupResult, run_ablation
from nas.study.pareto import TrialRow, feasible_front, row_from_trial
from nas.study.search.budget import Budget, check_reachable
from nas.study.search.loop import SearchSettings, default_study_name, open_study, run_search
from nas.study.search.objective import Objective, budget_of
from nas.study.search.tally import Tally
from nas.train.experiment import Context, prepare, resolve_device, train_genome
from nas.train.loaders import Trained, train_on_loaders
from nas.train.preflight import NOTHING, Plan
from nas.units import parse_duration

RECIPE_SECTIONS: dict[str, type] = {**SECTIONS, "search": SearchConfig}
SpaceLike = str | Path | Space | None
Size = tuple[int, int] | str | None


@dataclass(frozen=True)
class SearchResult:
    """What `search` found: the Optuna study, its feasible Pareto front, this run's tally."""

    study: optuna.Study
    front: tuple[TrialRow, ...]
    tally: Tally
    context: Context


@dataclass(frozen=True)
class AblationResult:
    """Every group of an ablation with its arms' runs by seed (`nas.study.ablation.run`)."""

    ablation: Ablation
    groups: tuple[GroupResult, ...]
    store: Store


def with_recipe(space: Space, recipe: Mapping[str, Any] | None, where: str = "recipe") -> Space:
    """`space` with dotted recipe keys (train., distill., teacher., search.) laid over it."""
    if not recipe:
        return space
    return override_space(space, dict(recipe), where, RECIPE_SECTIONS)


def resolve_space(space: SpaceLike, data: str = "digits", recipe: Mapping[str, Any] | None = None) -> Space:
    """A Space from a bundled name, a path or a Space; None: the data's default space."""
    found = space if isinstance(space, Space) else load_space(space or default_space(data))
    return with_recipe(found, recipe)


def context(space: SpaceLike = None, *, data: str = "digits", recipe: Mapping[str, Any] | None = None,
            storage: str | None = None, image_size: Size = None, device: str = "auto",
            threads: int | None = None, progress: Any = None,
            teacher_callbacks: tuple[Any, ...] = ()) -> Context:
    """Data, views and the (cached or trained) teacher: what `train` and `search` share."""
    return _prepare(resolve_space(space, data, recipe), data, Store(storage_url(storage)),
                    image_size, device=device, threads=threads, progress=progress,
                    teacher_callbacks=teacher_callbacks)


def _prepare(space: Space, data: str, store: Store, size: Size, *, device: str = "auto",
             threads: int | None = None, progress: Any = None,
             teacher_callbacks: tuple[Any, ...] = (), budget: Budget | None = None) -> Context:
    """`prepare` from the API's arguments; with a search's `budget`, its preflight too: the
    memory of the largest genomes within it, and a budget that no genome meets, refused before
    the teacher trains."""
    plan = NOTHING if budget is None else Plan(within=budget.admits)
    check = None if budget is None else (lambda found: check_reachable(budget, space, found))
    return prepare(space, data, store, size=image_size_of(size),
                   device=resolve_device(device, threads), progress=progress,
                   teacher_callbacks=teacher_callbacks, check=check, plan=plan)


def train(genome: Genome | str, *, space: SpaceLike = None, data: str = "digits",
          recipe: Mapping[str, Any] | None = None, epochs: int | None = None,
          time: str | float | None = None, seed: int = 0,
          storage: str | None = None, image_size: Size = None, device: str = "auto",
          threads: int | None = None, train_loader: Iterable[Any] | None = None,
          val_loader: Iterable[Any] | None = None, test_loader: Iterable[Any] | None = None,
          callbacks: tuple[Any, ...] = (), ctx: Context | None = None) -> Trained:
    """Distil one student from the space's teacher on `data` and store the run (`nas train`);
    with `train_loader` and `val_loader` (your own DataLoaders of (images, labels), normalised
    as you like), train on those instead, cross-entropy only, nothing stored.
    `time` ("18m", "90s", or seconds) trains for that wall clock, the cosine schedule spread
    over it, `epochs` (if given) only a cap: equal time for every design, not equal epochs."""
    genome = Genome.parse(genome) if isinstance(genome, str) else genome
    checked("epochs", epochs, MAX_EPOCHS)
    seconds = None if time is None else parse_duration(str(time), "time")
    if train_loader is not None or val_loader is not None:
        return train_on_loaders(genome, resolve_space(space, data, recipe), train_loader, val_loader,
                                test_loader, epochs=epochs, seed=seed,
                                device=resolve_device(device, threads), callbacks=callbacks,
                                seconds=seconds)
    ctx = ctx or context(space, data=data, recipe=recipe, storage=storage, image_size=image_size,
                         device=device, threads=threads)
    ctx.space.check(genome, strict=False)
    run = train_genome(ctx, genome, epochs=epochs, seed=seed, callbacks=callbacks, seconds=seconds)
    return Trained.from_run(run, _restored(ctx, genome, run))


def search(space: SpaceLike = None, *, data: str = "digits", budget: str | float | None = None,
           budget_params: str | float | None = None, trials: int | None = None,
           epochs: int | None = None, storage: str | None = None, study: str | None = None,
           recipe: Mapping[str, Any] | None = None, image_size: Size = None,
           sampler: str | None = None, seed: int | None = None, rungs: Sequence[int] = (),
           device: str = "auto", threads: int | None = None,
           on_trial: Callable[[Any, Tally], None] | None = None,
           ctx: Context | None = None) -> SearchResult:
    """The budgeted Pareto search of `nas search` (one process, no warm starts): `budget` in
    FLOPs ("0.2G" or a number), `trials` genomes judged; continues `study` when it exists. The
    trials train on the space's `[search] train_per_class` subset when it sets one, and the
    schedule is `epochs` and `rungs`, else the space's (a `ctx` given keeps its own data); a
    recipe's `train.train_per_class`, as `nas search --set`, beats `[search] train_per_class`."""
    checked("trials", trials, MAX_TRIALS)
    checked("epochs", epochs, MAX_EPOCHS)
    chosen = ctx.space if ctx is not None else resolve_space(space, data, recipe).for_trials(recipe or ())
    conf = chosen.search
    schedule = conf.schedule(epochs, rungs)
    objectives = tuple(conf.objectives)
    limits = budget_of(budget, budget_params, objectives, conf)
    if ctx is None:
        ctx = _prepare(chosen, data, Store(storage_url(storage)), image_size, device=device,
                       threads=threads, budget=limits)
    else:
        check_reachable(limits, ctx.space, ctx.data)
    settings = SearchSettings(
        study=study or default_study_name(ctx.space, data, ctx.data.image_size, limits, objectives),
        trials=trials or conf.trials, epochs=schedule[0], sampler=sampler or conf.sampler,
        seed=conf.seed if seed is None else seed, budget=limits, objectives=objectives,
        rungs=schedule[1], sets=dict(recipe or {}))
    with _quiet_optuna():
        found = open_study(ctx, settings, data)
        tally = run_search(ctx, settings, found, on_trial=on_trial)
    rows = [row_from_trial(t, objectives) for t in found.get_trials(deepcopy=False)]
    return SearchResult(found, tuple(feasible_front(rows, objectives)), tally, ctx)


def objective(space: SpaceLike = None, *, data: str = "digits", budget: str | float | None = None,
              budget_params: str | float | None = None, epochs: int | None = None,
              seed: int = 0, storage: str | None = None, recipe: Mapping[str, Any] | None = None,
              image_size: Size = None, device: str = "auto", threads: int | None = None,
              ctx: Context | None = None) -> Objective:
    """`objective(trial) -> (val accuracy, FLOPs, params)` for your own `optuna.Study`:
    `optuna.create_study(directions=obj.directions)`, then `study.optimize(obj, n_trials=...)`."""
    checked("epochs", epochs, MAX_EPOCHS)
    ctx = ctx or context(space, data=data, recipe=recipe, storage=storage, image_size=image_size,
                         device=device, threads=threads)
    return Objective(ctx, budget_of(budget, budget_params), epochs or ctx.space.search.epochs, seed)


def ablate(file: str | Path, *, data: str | None = None, space: str | None = None,
           storage: str | None = None, recipe: Mapping[str, Any] | None = None,
           epochs: int | None = None, seeds: Sequence[int] | None = None,
           groups: Sequence[str] = (), image_size: str | None = None, train: bool = True,
           device: str = "auto", threads: int | None = None, subset: Mapping[str, int] | None = None,
           progress: Any = None, on_run: Callable[[Any, int], tuple[Any, ...]] | None = None,
           teacher_callbacks: tuple[Any, ...] = ()) -> AblationResult:
    """Train every (arm, seed) of an ablation file that is not stored yet (`nas ablate`);
    `recipe` (dotted keys) changes the base space, an arm's own keys win over it."""
    ablation = load_ablation(file, space=space, epochs=epochs,
                             seeds=tuple(seeds) if seeds is not None else None,
                             train=dict(subset or {}), overrides=dict(recipe or {}))
    if groups:
        ablation = ablation.only(list(groups))
    source = data or ablation.data
    if train:
        _preflight(ablation, source, image_size)        # before the database file is created
    store = Store(storage_url(storage))
    found = run_ablation(ablation, store, source,
                         opener(source, store, device=device, threads=threads, progress=progress,
                                teacher_callbacks=teacher_callbacks),
                         size=image_size, train=train, on_run=on_run or (lambda arm, seed: ()),
                         count=_arm_counter(source))
    return AblationResult(ablation, tuple(found), store)


def _arm_counter(source: str) -> ArmCount:
    """(an arm, "HxW" or None) -> its genome's FLOPs and params on `source` at that size,
    counted without training; None where the source's classes are unknown until it is loaded
    (torchvision sets) or it cannot be read. The source's classes are found at the first call,
    once: an ablation whose arms all have runs never scans its folder for them."""
    from nas.data.dataset import class_count
    from nas.train.preflight import image_size

    @functools.cache
    def source_classes() -> int | None:
        try:
            return class_count(source)
        except NasError:
            return None

    def count_arm(arm: Arm, size: str | None) -> Complexity | None:
        if (classes := source_classes()) is None:
            return None
        channels = arm.space.input.channels if arm.space.input else 3
        shape = InputShape(channels, *image_size(arm.space, source, image_size_of(size)))
        return count(arm.genome, arm.space, shape=shape, classes=classes)
    return count_arm


def _preflight(ablation: Any, source: str, size: str | None) -> None:
    """Every arm's preflight (nas.train.preflight): its genome in its space, the data, memory."""
    from nas.study.ablation.run import arm_size
    from nas.train.preflight import Plan, check_source

    for arm in ablation.arms:
        check_source(arm.space, source, image_size_of(arm_size(ablation, arm, size)),
                     Plan((arm.genome,)))


def opener(source: str, store: Store, *, device: str = "auto", threads: int | None = None,
           progress: Any = None, teacher_callbacks: tuple[Any, ...] = ()
           ) -> Callable[[Space, str | None], Context]:
    """(an arm's space, "HxW" or None) -> its prepared context, as an ablation opens them."""
    def open_one(arm_space: Space, size: str | None) -> Context:
        return _prepare(arm_space, source, store, size, device=device, threads=threads,
                        progress=progress, teacher_callbacks=teacher_callbacks)
    return open_one


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """The heartbeat storage that `nas search` uses is experimental in Optuna: no warnings about it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message=".*Heartbeat.*")
        yield


def checked(name: str, value: int | None, most: int) -> None:
    """A count argument or flag, when given, is an integer from 1 to `most` (bounds that fit
    the machine and SQLite's INTEGER)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpaceError(f"{name} must be an integer, got {value!r:.30}")
    if not 1 <= value <= most:
        raise SpaceError(f"{name} must be between 1 and {most}, got {value}")


def image_size_of(size: Size) -> tuple[int, int] | None:
    """(H, W) from a pair or `"HxW"` text; None stays None (the space's, else the data's)."""
    from nas.data.dataset import parse_image_size

    if size is None or isinstance(size, str):
        return parse_image_size(size) if size else None
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in size):
        raise SpaceError(f"image_size must be (height, width) or 'HxW', got {size!r}")
    return parse_image_size(f"{size[0]}x{size[1]}")


def _restored(ctx: Context, genome: Genome, run: RunRecord) -> torch.nn.Module | None:
    """The run's student with its best-validation weights, in eval mode (None: no weights)."""
    if run.weights is None:
        return None
    model = build_model(genome, ctx.space, classes=len(ctx.data.classes))
    model.load_state_dict(bytes_to_state(run.weights))
    return model.eval()
