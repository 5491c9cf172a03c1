"""Running an ablation: every (arm, seed) trained once, in the context its recipe needs.

Arms that differ only in how the student is trained (epochs, lr, alpha, loss weights) share
one prepared context (data, views, teacher and its outputs); an arm that changes the input
size, the views, the split, the teacher, or drops the teacher (`distill.loss = "none"`) gets
its own. Runs are stored under the study `ablate/<name>` with the arm's key in
`meta["ablation"]`, and reused only when the key, the seed, the stored recipe and the data and
teacher fingerprints all match. Before training, a worker claims (arm key, seed) through
`nas.store.claims`, so workers sharing a database never train the same cell twice: a second
worker waits for the holder's run and reuses it. A claim left by a killed process on this host
is taken over; one left by a dead worker on another machine must be released by hand.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from nas.model.complexity import Complexity
from nas.model.objectives import dominates, select
from nas.model.recipe import used_recipe
from nas.model.space import Space
from nas.store.claims import MINE, TAKEN, Claim, claim, holder_dead, release, worker_name
from nas.store.runs import RunRecord, Store
from nas.study.ablation.file import Ablation, Arm, Group, train_command
from nas.study.ablation.stats import Paired, Spread, paired, spread

Opener = Callable[[Space, str | None], Any]        # (space, "HxW" or None) -> a prepared Context
OnRun = Callable[[Arm, int], tuple[Any, ...]]       # epoch callbacks for one training
ArmCount = Callable[[Arm, str | None], Complexity | None]   # (arm, "HxW" or None) -> its count
METRICS = ("val_accuracy", "test_accuracy")
FRONT = select(("accuracy", "flops"))   # the objectives of a group's front after retraining


@dataclass
class ArmResult:
    """One arm's stored runs, by seed (missing seeds are absent)."""

    arm: Arm
    key: str
    runs: dict[int, RunRecord] = field(default_factory=dict)
    command: str = ""          # the `nas train` line that retrains one seed of this arm
    size: str | None = None    # the arm's input size and data label, as its key has them
    data: str = ""
    counted: Complexity | None = None   # counted from the genome, for an arm without runs

    def holds(self, run: RunRecord) -> bool:
        """Whether `run` is stored under this arm's key, or, for a cross-entropy arm, under the
        key it had before CE arms were keyed on the loss alone (with the run's own distill
        section)."""
        stored = (run.meta or {}).get("ablation", {}).get("key")
        if stored == self.key:
            return True
        distill = (run.recipe or {}).get("distill")
        return (self.arm.space.distill.loss == "none" and isinstance(distill, dict)
                and distill.get("loss") == "none"
                and stored == self.arm.former_key(self.size, self.data, distill))

    def values(self, metric: str) -> dict[int, float]:
        return {s: getattr(r, metric) for s, r in self.runs.items() if getattr(r, metric) is not None}

    def spread(self, metric: str) -> Spread:
        return spread([v for _, v in sorted(self.values(metric).items())])

    def _first(self) -> RunRecord | None:
        return next(iter(self.runs.values()), None)

    @property
    def flops(self) -> int | None:
        """The arm's FLOPs, as its runs counted them, else as counted from its genome (None
        when neither is known)."""
        known = self._first() or self.counted
        return known.flops if known else None

    @property
    def params(self) -> int | None:
        """The arm's parameters, as `flops` finds them."""
        known = self._first() or self.counted
        return known.params if known else None

    def seconds(self) -> float | None:
        """Mean wall time of one training run."""
        times = [r.duration_s for r in self.runs.values() if r.duration_s is not None]
        return sum(times) / len(times) if times else None


@dataclass
class GroupResult:
    group: Group
    arms: list[ArmResult]

    @property
    def baseline(self) -> ArmResult:
        return next(a for a in self.arms if a.arm.name == self.group.baseline)

    def difference(self, result: ArmResult, metric: str) -> Paired | None:
        """The paired difference to the baseline; None for the baseline itself."""
        if result is self.baseline:
            return None
        return paired(self.baseline.values(metric), result.values(metric))

    def front(self) -> set[str]:
        """The arms no other arm of the group dominates on mean test accuracy and FLOPs (the
        front after retraining; the FLOPs are the arm's own, the same for every seed): a design
        that no other matches or beats at no more FLOPs. Arms without runs are on no front."""
        points = {a.arm.name: (mean, a.flops) for a in self.arms
                  if (mean := a.spread("test_accuracy").mean) is not None and a.flops is not None}
        return {name for name, point in points.items()
                if not any(dominates(other, point, FRONT) for other in points.values())}


def data_label(source: str) -> str:
    """The data source as the key sees it: an existing folder by its absolute path."""
    return str(Path(source).resolve()) if Path(source).exists() else source


def arm_size(ablation: Ablation, arm: Arm, size: str | None) -> str | None:
    """The arm's input size: its own, else --image-size / the file's, else None (the default)."""
    return arm.image_size or size or ablation.image_size


def run_ablation(ablation: Ablation, store: Store, source: str, opener: Opener, *,
                 size: str | None = None, on_run: OnRun = lambda arm, seed: (),
                 poll_s: float = 2.0, train: bool = True,
                 count: ArmCount = lambda arm, size: None) -> list[GroupResult]:
    """Train (when `train`) every missing (arm, seed), seed by seed so that an interrupted
    ablation has whole seeds, passing over cells another live worker holds (so that workers side
    by side train different cells) and then waiting for those; return every group's results
    from the stored runs, an arm without runs with its genome's `count`."""
    cells: dict[str, ArmResult] = {}
    for group in ablation.groups:
        for arm in group.arms:
            shape, data = arm_size(ablation, arm, size), data_label(source)
            key = arm.key(shape, data)
            cells.setdefault(key, ArmResult(arm, key, size=shape, data=data))
    if train:
        contexts = Contexts(opener)
        pending = [(seed, cell) for seed in ablation.seeds for cell in cells.values()]
        for wait in (False, True):      # first every cell no other worker holds, then the rest
            held = []
            for seed, cell in pending:
                ctx = contexts.get(cell.arm, arm_size(ablation, cell.arm, size))
                run = _cell(ctx, ablation.study, cell, seed, on_run, poll_s, wait=wait)
                if run is None:
                    held.append((seed, cell))
                else:
                    cell.runs[seed] = run
            pending = held
    else:
        stored = store.list_runs(ablation.study)
        for cell in cells.values():
            cell.runs = _newest(stored, cell, ablation.seeds)
    return [GroupResult(g, [_result(cells, ablation, a, size, source, count) for a in g.arms])
            for g in ablation.groups]


def _result(cells: dict[str, ArmResult], ablation: Ablation, arm: Arm, size: str | None,
            source: str, count: ArmCount) -> ArmResult:
    """The arm's own result (its name), with the runs of the cell that shares its key."""
    shape = arm_size(ablation, arm, size)
    key = arm.key(shape, data_label(source))
    runs = cells[key].runs
    return ArmResult(arm, key, runs, train_command(arm, source, shape, ablation.seeds[0]),
                     counted=None if runs else count(arm, shape))


class Contexts:
    """Prepared contexts by what preparing reads; arms get theirs with their recipe laid in."""

    def __init__(self, opener: Opener) -> None:
        self.opener = opener
        self.prepared: dict[str, Any] = {}

    def get(self, arm: Arm, size: str | None) -> Any:
        space = arm.space
        key = json.dumps({"size": size, "teacher": space.recipe().get("teacher"),
                          "augment": asdict(space.train.augment),
                          "split": space.train.split_kwargs()}, sort_keys=True)
        if key not in self.prepared:
            self.prepared[key] = self.opener(space, size)
        ctx = self.prepared[key]
        return replace(ctx, space=replace(ctx.space, train=space.train, distill=space.distill))


def _matches(run: RunRecord, cell: ArmResult, seed: int) -> bool:
    return run.status == "ok" and run.seed == seed and cell.holds(run)


def _newest(runs: list[RunRecord], cell: ArmResult, seeds: tuple[int, ...]) -> dict[int, RunRecord]:
    """The newest stored 'ok' run of each seed of this arm (without checking the context)."""
    found: dict[int, RunRecord] = {}
    for run in runs:
        for seed in seeds:
            if _matches(run, cell, seed):
                found[seed] = run
    return found


def _stored(ctx: Any, study: str, cell: ArmResult, seed: int) -> RunRecord | None:
    """A stored run of this cell made with exactly this recipe (as training reads it), data
    and teacher."""
    from nas.train.experiment import recipe

    wanted = used_recipe(json.loads(json.dumps(recipe(ctx, ctx.space.train.epochs))))
    for run in reversed(ctx.store.list_runs(study)):
        if (_matches(run, cell, seed) and used_recipe(run.recipe or {}) == wanted
                and run.data_fingerprint == ctx.data.fingerprint
                and run.teacher_fingerprint == ctx.teacher.fingerprint):
            return run
    return None


def _cell(ctx: Any, study: str, cell: ArmResult, seed: int, on_run: OnRun,
          poll_s: float, *, wait: bool = True) -> RunRecord | None:
    """The stored run of (arm, seed), or train it under a claim that no other worker holds;
    None, without `wait`, when another live worker holds it."""
    store: Store = ctx.store
    while True:
        found = _stored(ctx, study, cell, seed)
        if found is not None:
            return found
        held = _claim(store, study, cell, seed, poll_s, wait=wait)
        if held is None:
            return None
        try:
            found = _stored(ctx, study, cell, seed)
            return found if found is not None else _train(ctx, study, cell, seed, on_run)
        finally:
            release(store, held)


def _claim(store: Store, study: str, cell: ArmResult, seed: int, poll_s: float, *,
           wait: bool = True) -> Claim | None:
    """Claim (arm key, seed), waiting while another live worker holds it (None, without
    `wait`)."""
    genome = f"{cell.arm.genome.notation} #{cell.key} seed {seed}"
    me = worker_name()
    while True:
        got = claim(store, study, genome, cell.arm.genome.attention, worker=me)
        if got.outcome == MINE:
            return got
        if got.outcome == TAKEN and holder_dead(got.holder):
            release(store, replace(got, worker=got.holder or "", outcome=MINE))
            continue
        if not wait:
            return None
        time.sleep(poll_s)


def _train(ctx: Any, study: str, cell: ArmResult, seed: int, on_run: OnRun) -> RunRecord:
    """Train one cell and tag its run with the arm's key, so reruns and reports find it."""
    from nas.train import experiment

    run = experiment.train_genome(ctx, cell.arm.genome, epochs=ctx.space.train.epochs, seed=seed,
                                  study=study, callbacks=on_run(cell.arm, seed))
    meta = {**run.meta, "ablation": {"key": cell.key, "arm": cell.arm.name,
                                     "changes": cell.arm.changes}}
    ctx.store.update_run(run.id, meta=meta)
    return replace(run, meta=meta, weights=None)
