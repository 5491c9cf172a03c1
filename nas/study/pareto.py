"""Trials as plain rows, and the feasible Pareto front over them.

Shared by the search (its progress line: best trial, front size) and the report,
so both agree on what the front is: one row per genome, (max validation accuracy,
min FLOPs, min params), trained trials within budget only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

TRAINED = ("trained", "reused")


@dataclass(frozen=True)
class TrialRow:
    """One trial as the report sees it (user attributes of nas/search.py)."""

    trial: int
    state: str                      # Optuna's state name: COMPLETE, FAIL, RUNNING, ...
    outcome: str | None             # trained, reused, rejected, nan, failed, interrupted
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

    @property
    def trained(self) -> bool:
        """Complete and backed by a trained run (its own or a reused one)."""
        return self.state == "COMPLETE" and self.outcome in TRAINED

    def fits(self, budget_flops: float | None = None, budget_params: float | None = None) -> bool:
        """Within the study's budget (its constraint) and within the given, tighter one."""
        return (all(c <= 0 for c in self.constraint)
                and (budget_flops is None or (self.flops or 0) <= budget_flops)
                and (budget_params is None or (self.params or 0) <= budget_params))

    def to_json(self) -> dict[str, Any]:
        """The row as `nas report --json` lists it."""
        return {"trial": self.trial, "genome": self.genome, "attention": self.attention,
                "flops": self.flops, "params": self.params, "val_accuracy": self.val_accuracy,
                "test_accuracy": self.test_accuracy, "outcome": self.outcome, "run_id": self.run_id}


def row_from_trial(trial: optuna.trial.FrozenTrial) -> TrialRow:
    """A TrialRow from Optuna's trial; COMPLETE trials carry values (val, flops, params)."""
    attrs = trial.user_attrs
    values = trial.values if trial.state.name == "COMPLETE" else None
    flops = attrs.get("flops", values[1] if values else None)
    params = attrs.get("params", values[2] if values else None)
    return TrialRow(
        trial=trial.number, state=trial.state.name, outcome=attrs.get("outcome"),
        genome=attrs.get("genome"), attention=attrs.get("attention"),
        flops=None if flops is None else int(flops), params=None if params is None else int(params),
        val_accuracy=float(values[0]) if values else None, test_accuracy=attrs.get("test_accuracy"),
        run_id=attrs.get("run_id"), constraint=tuple(attrs.get("constraint") or ()),
        seconds=attrs.get("seconds", _duration_of(trial)),
        rung=max((int(r) for r in attrs.get("rungs") or {}), default=None),
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


def dominates(a: TrialRow, b: TrialRow) -> bool:
    """`a` is no worse than `b` on (max val accuracy, min FLOPs, min params) and better on one."""
    no_worse = ((a.val_accuracy or 0.0) >= (b.val_accuracy or 0.0) and (a.flops or 0) <= (b.flops or 0)
                and (a.params or 0) <= (b.params or 0))
    return no_worse and (a.val_accuracy, a.flops, a.params) != (b.val_accuracy, b.flops, b.params)


def pareto_front(rows: Sequence[TrialRow]) -> list[TrialRow]:
    """The rows no other row dominates, sorted by FLOPs (then params, trial)."""
    front = [r for r in rows if not any(dominates(other, r) for other in rows)]
    return sorted(front, key=lambda r: (r.flops or 0, r.params or 0, r.trial))


def feasible_front(rows: Sequence[TrialRow], budget_flops: float | None = None,
                   budget_params: float | None = None) -> list[TrialRow]:
    """The front of the trained genomes that fit the study's (and an optional tighter) budget."""
    trained = unique_genomes([r for r in rows if r.trained])
    return pareto_front([r for r in trained if r.fits(budget_flops, budget_params)])


def ranked_rows(rows: Sequence[TrialRow]) -> list[TrialRow]:
    """The feasible trained trials, best first: the highest validation accuracy; ties go to
    fewer FLOPs, then fewer params, then the earlier trial."""
    candidates = [r for r in rows if r.trained and r.fits()]
    return sorted(candidates, key=lambda r: (-(r.val_accuracy or 0.0), r.flops or 0, r.params or 0,
                                             r.trial))


def best_row(rows: Sequence[TrialRow]) -> TrialRow | None:
    """The one definition of "best": the first of `ranked_rows`."""
    return next(iter(ranked_rows(rows)), None)
