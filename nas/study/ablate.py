"""Declarative ablations: a TOML file lists arms (genome + attention) and seeds; every arm is
distilled once per seed in one shared context, and the table reports mean and spread.

    name = "se-vs-eca"
    space = "search_spaces/seed.toml"
    data = "digits"
    epochs = 10
    seeds = [0, 1, 2]

    [[arm]]
    name = "ECA"
    genome = "[2,8,6,1,0] [2,16,4,1,0]"
    attention = "eca"

Runs are stored under the study name `ablate/<name>`; running the file again reuses the
(arm, seed) runs already trained with the same recipe and trains only what is missing.
"""

from __future__ import annotations

import json
import statistics
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import GenomeError, SpaceError
from nas.model.genome import Genome
from nas.model.space import check_keys
from nas.store.runs import RunRecord

KEYS = ("name", "description", "space", "data", "image_size", "epochs", "seeds", "arm")
ARM_KEYS = ("name", "genome", "attention")


@dataclass(frozen=True)
class Arm:
    name: str
    genome: Genome


@dataclass(frozen=True)
class Ablation:
    path: str
    name: str
    space: str
    data: str
    image_size: str | None
    epochs: int | None
    seeds: tuple[int, ...]
    arms: tuple[Arm, ...]

    @property
    def study(self) -> str:
        return f"ablate/{self.name}"


@dataclass
class ArmResult:
    """One arm over its seeds."""

    arm: Arm
    runs: list[RunRecord] = field(default_factory=list)

    def metric(self, name: str) -> tuple[float | None, float | None]:
        """(mean, sample standard deviation) of `val_accuracy` or `test_accuracy` over seeds."""
        values = [getattr(r, name) for r in self.runs if getattr(r, name) is not None]
        if not values:
            return None, None
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    def to_json(self) -> dict[str, Any]:
        first = self.runs[0] if self.runs else None
        val, val_sd = self.metric("val_accuracy")
        test, test_sd = self.metric("test_accuracy")
        return {"arm": self.arm.name, "genome": self.arm.genome.notation,
                "attention": self.arm.genome.attention,
                "flops": first.flops if first else None, "params": first.params if first else None,
                "seeds": [r.seed for r in self.runs], "val_accuracy": val, "val_std": val_sd,
                "test_accuracy": test, "test_std": test_sd,
                "runs": [{"seed": r.seed, "run_id": r.id, "status": r.status,
                          "val_accuracy": r.val_accuracy, "test_accuracy": r.test_accuracy}
                         for r in self.runs]}


def load_ablation(path: str | Path) -> Ablation:
    """Read and validate an ablation file; every mistake is one SpaceError naming file and key."""
    where = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpaceError(f"{where}: no such ablation file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise SpaceError(f"{where}: {error}") from None
    check_keys(data, KEYS, where)
    arms = data.get("arm")
    if not isinstance(arms, list) or not arms:
        raise SpaceError(f"{where}: at least one [[arm]] table is required")
    seeds = data.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise SpaceError(f"{where}: seeds must be a non-empty list of distinct integers >= 0, "
                         f"got {seeds!r}")
    epochs = data.get("epochs")
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1):
        raise SpaceError(f"{where}: epochs must be an integer >= 1, got {epochs!r}")
    parsed = tuple(_arm(table, f"{where}: arm[{i}]") for i, table in enumerate(arms, 1))
    names = [arm.name for arm in parsed]
    if len(set(names)) != len(names):
        raise SpaceError(f"{where}: arm names must be distinct, got {names}")
    return Ablation(where, _text(data, "name", Path(path).stem, where),
                    _text(data, "space", "search_spaces/seed.toml", where),
                    _text(data, "data", "digits", where), data.get("image_size"), epochs,
                    tuple(seeds), parsed)


def _text(table: dict[str, Any], key: str, default: str, where: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise SpaceError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value


def _arm(table: Any, where: str) -> Arm:
    if not isinstance(table, dict):
        raise SpaceError(f"{where} must be a table, got {table!r}")
    check_keys(table, ARM_KEYS, where)
    try:
        genome = Genome.parse(_text(table, "genome", "", where), table.get("attention"))
    except GenomeError as error:
        raise SpaceError(f"{where}: {error}") from None
    return Arm(_text(table, "name", str(genome), where), genome)


def run_ablation(ctx: Any, ablation: Ablation,
                 on_run: Callable[[Arm, int], tuple[Any, ...]] = lambda arm, seed: ()
                 ) -> list[ArmResult]:
    """Train every (arm, seed) not stored yet with this recipe; return the results per arm."""
    from nas.train.experiment import recipe, train_genome

    epochs = ablation.epochs or ctx.space.train.epochs
    wanted = json.loads(json.dumps(recipe(ctx, epochs)))     # as stored: lists, not tuples
    done = {(r.genome, r.attention, r.seed): r for r in ctx.store.list_runs(ablation.study)
            if r.status == "ok" and r.recipe == wanted
            and r.data_fingerprint == ctx.data.fingerprint
            and r.teacher_fingerprint == ctx.teacher.fingerprint}
    results = []
    for arm in ablation.arms:
        genome = arm.genome.rounded(ctx.space.model.divisor)
        result = ArmResult(arm)
        for seed in ablation.seeds:
            run = done.get((genome.notation, genome.attention, seed))
            if run is None:
                run = train_genome(ctx, genome, epochs=epochs, seed=seed, study=ablation.study,
                                   callbacks=on_run(arm, seed))
            result.runs.append(run)
        results.append(result)
    return results
