"""Trials as plain rows, by the objectives a study's `nas` attributes name, and the feasible
Pareto front over them.

Shared by the search (its progress line: best trial, front size) and the report,
so both agree on what the front is: one row per genome, non-dominated over the study's
objectives (nas.model.objectives; default max validation accuracy, min FLOPs, min params),
trained trials within budget only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nas.model.objectives import DEFAULT_OBJECTIVES, OBJECTIVES, Objective, dominates, select

if TYPE_CHECKING:
    import optuna

TRAINED = ("trained", "reused")


def objectives_of(info: Mapping[str, Any]) -> tuple[str, ...]:
    """The objectives a study's `nas` attributes name; the default three when they name none
    (or names this nas does not know)."""
    named = info.get("objectives") if isinstance(info, Mapping) else None
    if isinstance(named, list) and named and all(name in OBJECTIVES for name in named):
        return tuple(named)
    return DEFAULT_OBJECTIVES


@dataclass(frozen=True)
class TrialRow:
    """One trial as the report sees it (user attributes of nas.study.search.loop); a field per
    objective, named by its metric."""

    trial: int
    state: str                      # Optuna's state name: COMPLETE, FAIL, RUNNING, ...
    outcome: str | None             # trained, reused, rejected, pruned, nan, failed, interrupted
    genome: str | None
    attention: str | None
    flops: int | None
    params: int | None
    val_accuracy: float | None
    test_accuracy: float | None
    run_id: int | None
    constraint: tuple[float, ...]
    seconds: float | None
    rung: int | None = None         # the last rung (epochs) reached; where a pruned trial stopped
    latency_ms: float | None = None     # measured latency, when the study measures it

    @property
    def trained(self) -> bool:
        """Complete and backed by a trained run (its own or a reused one)."""
        return self.state == "COMPLETE" and self.outcome in TRAINED

    def value(self, objective: Objective) -> float | None:
        """The row's value of an objective (its field named by the objective's metric)."""
        value = getattr(self, objective.metric)
        return None if value is None else float(value)

    def point(self, objectives: Sequence[Objective]) -> tuple[float, ...]:
        """The row's values of `objectives`, in order (0 for none), as `dominates` compares them."""
        return tuple(self.value(o) or 0.0 for o in objectives)

    def fits(self, limits: Mapping[str, float] | None = None) -> bool:
        """Within the study's budget (its constraint) and within the given, tighter limits (by
        objective name)."""
        return (all(c <= 0 for c in self.constraint)
                and all((self.value(OBJECTIVES[name]) or 0) <= limit
                        for name, limit in (limits or {}).items()))

    def to_json(self) -> dict[str, Any]:
        """The row as `nas report --json` lists it (an objective the study did not measure, such
        as latency, is left out)."""
        measured = {o.metric: v for o in OBJECTIVES.values()
                    if o.metric not in _JSON_KEYS and (v := getattr(self, o.metric)) is not None}
        return {"trial": self.trial, "genome": self.genome, "attention": self.attention,
                "flops": self.flops, "params": self.params, **measured,
                "val_accuracy": self.val_accuracy, "test_accuracy": self.test_accuracy,
                "outcome": self.outcome, "run_id": self.run_id}


_JSON_KEYS = ("flops", "params", "val_accuracy")


def row_from_trial(trial: optuna.trial.FrozenTrial,
                   objectives: Sequence[str] = DEFAULT_OBJECTIVES) -> TrialRow:
    """A TrialRow from Optuna's trial of a study of `objectives`; a COMPLETE trial carries
    their values in that order (measured ones are also user attributes)."""
    attrs = trial.user_attrs
    values = trial.values if trial.state.name == "COMPLETE" else None
    by_position = dict(zip(objectives, values, strict=False)) if values else {}
    measures = {}
    for o in OBJECTIVES.values():
        value = attrs.get(o.metric, by_position.get(o.name)) if o.measure else by_position.get(o.name)
        measures[o.metric] = None if value is None else o.cast(value)
    return TrialRow(
        trial=trial.number, state=trial.state.name, outcome=attrs.get("outcome"),
        genome=attrs.get("genome"), attention=attrs.get("attention"),
        test_accuracy=attrs.get("test_accuracy"),
        run_id=attrs.get("run_id"), constraint=tuple(attrs.get("constraint") or ()),
        seconds=attrs.get("seconds", _duration_of(trial)),
        rung=max((int(r) for r in attrs.get("rungs") or {}), default=None), **measures,
    )


def _duration_of(trial: optuna.trial.FrozenTrial) -> float | None:
    """Start to completion, for trials that recorded no `seconds`."""
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def unique_genomes(rows: Sequence[TrialRow]) -> list[TrialRow]:
    """One row per (genome, attention): a trained trial before the trials that reused it."""
    chosen: dict[tuple[str | None, str | None], TrialRow] = {}
    for row in sorted(rows, key=lambda r: (r.outcome != "trained", r.trial)):
        chosen.setdefault((row.genome, row.attention), row)
    return sorted(chosen.values(), key=lambda r: r.trial)


def pareto_front(rows: Sequence[TrialRow],
                 objectives: Sequence[str] = DEFAULT_OBJECTIVES) -> list[TrialRow]:
    """The rows no other row dominates over `objectives`, sorted by the objectives after
    accuracy (FLOPs, then params by default), then trial."""
    chosen = select(objectives)
    points = [r.point(chosen) for r in rows]
    front = [r for r, p in zip(rows, points, strict=True)
             if not any(dominates(other, p, chosen) for other in points)]
    return sorted(front, key=lambda r: (*r.point(chosen[1:]), r.trial))


def feasible_front(rows: Sequence[TrialRow], objectives: Sequence[str] = DEFAULT_OBJECTIVES,
                   limits: Mapping[str, float] | None = None) -> list[TrialRow]:
    """The front of the trained genomes that fit the study's budget (and tighter `limits`)."""
    trained = unique_genomes([r for r in rows if r.trained])
    return pareto_front([r for r in trained if r.fits(limits)], objectives)


def ranked_rows(rows: Sequence[TrialRow],
                objectives: Sequence[str] = DEFAULT_OBJECTIVES) -> list[TrialRow]:
    """The feasible trained trials, best first: the highest validation accuracy; ties go to the
    better value of each later objective in turn (fewer FLOPs, then params), then the earlier trial."""
    chosen = select(objectives)
    candidates = [r for r in rows if r.trained and r.fits()]
    return sorted(candidates, key=lambda r: (*(-o.better(r.value(o) or 0.0) for o in chosen),
                                             r.trial))


def best_row(rows: Sequence[TrialRow],
             objectives: Sequence[str] = DEFAULT_OBJECTIVES) -> TrialRow | None:
    """The one definition of "best": the first of `ranked_rows`."""
    return next(iter(ranked_rows(rows, objectives)), None)
