"""The budget gate: what a study knows of a genome before training it, and its hard limits.

`measure` gives a genome's values of the objectives measured before training (counted FLOPs and
params, timed latency; nas.model.objectives), reusing what an earlier trial of the same genome
recorded, so latency is timed once per genome. `Budget` turns them into Optuna's constraint
values: a genome over a limit is rejected untrained (nas.study.search.loop). `budget_from` reads the
limits of `nas search`'s flags and of `nas.search`'s arguments alike, and `check_reachable` is
the preflight both run before any training: a budget that no genome of the space meets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from nas.errors import SpaceError
from nas.model.genome import Genome
from nas.model.objectives import (
    DEFAULT_OBJECTIVES,
    OBJECTIVES,
    Objective,
    before_training,
    constraint_names,
    counted,
)
from nas.model.recipe import SearchConfig
from nas.model.space import Space

if TYPE_CHECKING:
    from nas.data.dataset import Dataset
    from nas.model.candidate import Candidate
    from nas.model.complexity import Complexity

Limit = str | float | None      # "0.2G", "2ms", a number; None or "" = not given


@dataclass(frozen=True)
class Budget:
    """Hard limits on objectives known before training, by objective name (FLOPs in the report
    convention, params, latency in ms; absent = unlimited). `names`: the constraints every trial
    of the study records, in order (`objectives.constraint_names`)."""

    limits: Mapping[str, float] = field(default_factory=dict)
    names: tuple[str, ...] = constraint_names(DEFAULT_OBJECTIVES)

    def violation(self, measured: Mapping[str, float]) -> list[float]:
        """Optuna constraint values: feasible iff every value is <= 0."""
        return [measured[name] - self.limits[name] if name in self.limits else 0.0
                for name in self.names]

    def admits(self, size: Complexity | Mapping[str, float]) -> bool:
        """Whether a genome fits every limit it has a value for (a `Complexity`: FLOPs, params)."""
        values = size if isinstance(size, Mapping) else counted(size)
        return all(values[name] <= limit for name, limit in self.limits.items() if name in values)

    def label(self) -> str:
        parts = [f"{o.name[0]}{o.compact(self.limits[o.name])}" for o in OBJECTIVES.values()
                 if o.name in self.limits]
        return "-".join(parts) or "nobudget"

    def check(self) -> None:
        """Refuse a limit on an objective the study does not measure before training."""
        for name in self.limits:
            if name not in self.names:
                raise SpaceError(f"{OBJECTIVES[name].flag} needs {name} among the objectives "
                                 f"(e.g. --objectives accuracy,flops,{name})")


def budget_from(given: Mapping[str, Limit], objectives: Sequence[str],
                conf: SearchConfig | None = None,
                where: Callable[[Objective], str] = lambda o: o.flag) -> Budget:
    """The budget of a study of `objectives`: the `given` limits (`parse_limits`), else the
    `[search]` budget_NAME keys of `conf`; a limit on an objective the study does not measure is
    refused."""
    limits = {**(conf.budgets() if conf is not None else {}), **parse_limits(given, where)}
    budget = Budget({o.name: limits[o.name] for o in OBJECTIVES.values() if o.name in limits},
                    constraint_names(objectives))
    budget.check()
    return budget


def parse_limits(given: Mapping[str, Limit],
                 where: Callable[[Objective], str] = lambda o: o.flag) -> dict[str, float]:
    """The limits given by objective name, text parsed by the objective's own rule (`where`
    names the argument in errors); None or "" is no limit."""
    return {o.name: o.parse(str(value), where(o)) for o in OBJECTIVES.values()
            if o.parse is not None and (value := given.get(o.name)) not in (None, "")}


def check_reachable(budget: Budget, space: Space, data: Dataset) -> None:
    """Refuse a budget that not even the space's smallest genome fits on `data` (its input shape
    and classes), before any training: `nas search` and `nas.search` run it once data is read."""
    from nas.model.candidate import Candidate  # torch: not for `nas report`'s limits

    smallest = [Candidate(g, space, data.shape, len(data.classes)) for g in space.extremes(False)]
    for name, limit in budget.limits.items():
        objective = OBJECTIVES[name]
        least, genome = min(((objective.measure(c), c.genome) for c in smallest),
                            key=lambda pair: pair[0])
        if least > limit:
            raise SpaceError(f"budget of {objective.limit_text(limit)} {objective.title} is below "
                             f"the smallest genome of {space.path} at {data.shape}: {genome} has "
                             f"{objective.limit_text(least)} {objective.title}")


def measure(study: optuna.Study, candidate: Candidate, names: Sequence[str]) -> dict[str, float]:
    """The values known before training of a study of objectives `names`, by objective name: the
    ones an earlier trial of the same genome recorded (latency is timed once per genome), the
    rest measured now."""
    known = _recorded(study, candidate.genome)
    return {o.name: known[o.metric] if o.metric in known else o.cast(o.measure(candidate))
            for o in before_training(names) if o.measure is not None}


def _recorded(study: optuna.Study, genome: Genome) -> dict[str, Any]:
    """The user attributes of the first finished trial of `genome` (genome and attention)."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        attrs = trial.user_attrs
        if attrs.get("genome") == genome.notation and attrs.get("attention") == genome.attention:
            return attrs
    return {}
