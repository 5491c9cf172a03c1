"""Train a stored student again from what its run recorded, and compare the metrics.

A run records its genome, seed, recipe (`[train]` with the split, `[distill]`), model settings,
input, data and teacher fingerprints; a checkpoint written by `nas export` carries the same.
`reproduce` rebuilds the space from them (the space file supplies only the teacher's section,
checked against the stored teacher fingerprint), refuses data whose fingerprint differs before
any training, trains once with the stored seed, and returns both sets of metrics. On a CPU with
the same thread count the metrics are identical.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from nas.errors import CheckpointError, DataError, SpaceError, TrainError
from nas.model.genome import Genome
from nas.model.recipe import DistillConfig, TrainConfig
from nas.model.sections import parse_section
from nas.model.space import InputShape, ModelSettings, Space, StageOverride, load_space
from nas.store.runs import RunRecord, Store
from nas.study.report.export import choose_trial, read_checkpoint, trial_run
from nas.study.report.summary import read_study
from nas.train.experiment import prepare, train_genome

METRICS = ("val_accuracy", "test_accuracy", "best_epoch", "flops", "params")


@dataclass(frozen=True)
class Recorded:
    """Everything a stored run says about how it was trained, and what it scored."""

    where: str                       # "student.pt" or "study 's' trial 3", for messages
    genome: Genome
    seed: int
    recipe: dict[str, Any]           # {"train": {...}, "distill": {...}}
    model: dict[str, Any]
    overrides: tuple[dict[str, Any], ...]
    input: InputShape
    data: str                        # the data source it was trained on
    data_fingerprint: str | None
    teacher_fingerprint: str | None
    space: str                       # the space file (its [teacher] section is used)
    metrics: dict[str, Any]


@dataclass(frozen=True)
class Reproduction:
    recorded: Recorded
    run: RunRecord

    def rows(self) -> list[tuple[str, Any, Any]]:
        """(metric, stored, reproduced) for each metric."""
        return [(name, self.recorded.metrics.get(name), getattr(self.run, name)) for name in METRICS]

    @property
    def identical(self) -> bool:
        return all(stored == new for _, stored, new in self.rows())


def from_checkpoint(path: str | Path) -> Recorded:
    """What a checkpoint of `nas export` recorded."""
    ck = read_checkpoint(path)
    if not ck.get("data_fingerprint") or not ck.get("recipe"):
        raise CheckpointError(f"{path}: the checkpoint records no data fingerprint (exported by an "
                              f"older nas); reproduce its run from the study: nas reproduce STUDY TRIAL")
    metrics = {**ck.get("metrics", {}), "flops": ck.get("flops"), "params": ck.get("params")}
    return Recorded(str(path), Genome.parse(ck["genome"], ck["attention"]), int(ck["seed"]),
                    ck["recipe"], ck["model"], tuple(ck["overrides"]), InputShape(*ck["input"]),
                    str(ck.get("data") or "digits"), ck["data_fingerprint"],
                    (ck.get("teacher") or {}).get("fingerprint"), str(ck.get("space")), metrics)


def from_trial(storage: str | None, study: str, trial: str) -> Recorded:
    """What the run behind a trained trial of a study recorded."""
    data = read_study(storage, study)
    row = choose_trial(data, trial)
    run = trial_run(Store(storage), row)
    meta = run.meta
    return Recorded(f"study {data.name!r} trial {row.trial}", Genome.parse(run.genome, run.attention),
                    run.seed, run.recipe, meta["model"], tuple(meta.get("overrides", [])),
                    InputShape.parse(meta["input"]), str(data.info.get("data") or meta["data"]),
                    run.data_fingerprint, run.teacher_fingerprint, str(meta.get("space")),
                    {name: getattr(run, name) for name in METRICS})


def recorded_space(recorded: Recorded) -> Space:
    """The space file's teacher, with the stored model settings, overrides, input and recipe."""
    where = f"{recorded.where}: recipe"
    try:
        base = load_space(recorded.space)
    except SpaceError as error:
        raise SpaceError(f"{recorded.where}: its space file is needed for the teacher: {error}") from None
    try:
        model = ModelSettings(**recorded.model)
        overrides = tuple(StageOverride(**o) for o in recorded.overrides)
    except TypeError as error:
        raise CheckpointError(f"{recorded.where}: model settings unreadable: {error}") from None
    train = parse_section(TrainConfig, recorded.recipe["train"], f"{where}.train")
    distill = parse_section(DistillConfig, recorded.recipe["distill"], f"{where}.distill")
    stages = tuple(replace(stage, kernel=o.kernel, attention=o.attention)
                   for stage, o in zip(base.stages, overrides, strict=False)) + base.stages[len(overrides):]
    return replace(base, model=model, stages=stages, train=train, distill=distill,
                   input=recorded.input)


def reproduce(recorded: Recorded, store: Store, *, data: str | None = None,
              device: torch.device | None = None, progress: Any = None,
              teacher_callbacks: tuple[Any, ...] = (), callbacks: tuple[Any, ...] = ()) -> Reproduction:
    """Train the recorded run again (refused when the data's fingerprint differs, or when it
    trained on a wall clock, whose schedule no other run repeats) and store it."""
    seconds, epochs = recorded.recipe.get("seconds"), recorded.recipe["train"]["epochs"]
    if seconds:
        raise TrainError(f"{recorded.where}: trained on a {seconds:.0f}-second wall clock ({epochs} "
                         f"epochs there); its schedule followed that machine's speed, so no run "
                         f"repeats it: train the genome with --epochs {epochs} to compare")
    space = recorded_space(recorded)
    source = data or recorded.data
    ctx = prepare(space, source, store, size=(recorded.input.height, recorded.input.width),
                  device=device, progress=progress, teacher_callbacks=teacher_callbacks,
                  check=lambda found: _same_data(recorded, source, found.fingerprint))
    if recorded.teacher_fingerprint and ctx.teacher.fingerprint != recorded.teacher_fingerprint:
        raise TrainError(f"{recorded.where}: the teacher of {recorded.space} (fingerprint "
                         f"{ctx.teacher.fingerprint[:12]}) is not the run's "
                         f"({recorded.teacher_fingerprint[:12]}); restore its [teacher] section")
    run = train_genome(ctx, recorded.genome, epochs=int(recorded.recipe["train"]["epochs"]),
                       seed=recorded.seed, callbacks=callbacks)
    return Reproduction(recorded, run)


def _same_data(recorded: Recorded, source: str, fingerprint: str) -> None:
    if recorded.data_fingerprint and fingerprint != recorded.data_fingerprint:
        raise DataError(f"{recorded.where}: data {source} has fingerprint {fingerprint[:12]}, the "
                        f"run was trained on {recorded.data_fingerprint[:12]}; give --data with the "
                        f"data (and subset) it was trained on")
