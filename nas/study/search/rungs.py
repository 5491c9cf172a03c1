"""Multi-fidelity search: successive-halving rungs inside a trial (Optuna cannot prune a
multi-objective study).

A trial trains on one learning-rate schedule spanning the study's epochs and stops at each rung
(e.g. 1, 3 epochs of 9) to ask the gate: it goes on only if it is in the top third of the trials
that reached that rung, ordered as NSGA-II selects: by non-dominated rank over the study's
objectives (best validation accuracy so far, then its measured ones: FLOPs, params by default),
then within a rank by crowding distance, then by accuracy. (With three objectives most early
trials share rank 0, so the rank alone would let nearly all of them through.) An enqueued trial,
a known design the user asked to judge, records its rung accuracies (the other trials are ranked
against them) and always goes on: it is judged over the whole schedule, never on its first
epochs, where a deep design trails (on CIFAR-10 the rung at epoch 3 pruned the seed report's
student on two seeds of three). Otherwise a trial ends PRUNED with its rung accuracies in
user_attrs["rungs"], and, not being COMPLETE, never appears on the feasible front
(nas.study.pareto). The rung's weights are resumed, not retrained (nas.train.distill.train's
stop_epoch and resume). A later trial that samples a pruned genome reuses its run (outcome
'reused', PRUNED, the first trial's rungs) and is not ranked at the rungs again: the genome
counts once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import optuna
from optuna.trial import Trial

from nas.model.objectives import DEFAULT_OBJECTIVES, Objective, dominates, select
from nas.train.experiment import RungGate

KEEP = 1 / 3        # the share of a rung's trials that goes on (by non-dominated rank)
Point = tuple[float, ...]       # a trial's values of the study's objectives, accuracy first


def ranks(points: Sequence[Point], objectives: Sequence[Objective] = select(DEFAULT_OBJECTIVES)
          ) -> list[int]:
    """Non-dominated sorting (NSGA-II): 0 for the front, 1 for the front without it, ..."""
    left, rank, out = set(range(len(points))), 0, [0] * len(points)
    while left:
        front = {i for i in left
                 if not any(dominates(points[j], points[i], objectives) for j in left)}
        for i in front:
            out[i] = rank
        left -= front
        rank += 1
    return out


def crowding(points: Sequence[Point], ranked: Sequence[int]) -> list[float]:
    """NSGA-II's crowding distance of each point within its rank: the normalised side lengths
    of the box its neighbours span, summed over the objectives; the ends of a rank are infinite."""
    out = [0.0] * len(points)
    for rank in set(ranked):
        members = [i for i, r in enumerate(ranked) if r == rank]
        for k in range(len(points[0])):
            members.sort(key=lambda i, k=k: points[i][k])
            low, high = points[members[0]][k], points[members[-1]][k]
            out[members[0]] = out[members[-1]] = math.inf
            for before, i, after in zip(members, members[1:], members[2:], strict=False):
                if high > low:
                    out[i] += (points[after][k] - points[before][k]) / (high - low)
    return out


def order(points: Sequence[Point], objectives: Sequence[Objective] = select(DEFAULT_OBJECTIVES)
          ) -> list[int]:
    """Indices of `points`, best first: rank, then larger crowding distance, then accuracy."""
    ranked = ranks(points, objectives)
    crowd = crowding(points, ranked)
    return sorted(range(len(points)), key=lambda i: (ranked[i], -crowd[i], -points[i][0]))


def passes(own: int, points: Sequence[Point],
           objectives: Sequence[Objective] = select(DEFAULT_OBJECTIVES), keep: float = KEEP) -> bool:
    """Whether points[own] is among the first ceil(n * keep) of `order(points)` (the gate's: a
    third)."""
    return order(points, objectives).index(own) < math.ceil(len(points) * keep)


def rung_points(study: optuna.Study, rung: int, own: int,
                objectives: Sequence[str] = DEFAULT_OBJECTIVES) -> tuple[int, list[Point]]:
    """(index of trial `own`, the points of every trial of the study that reached `rung`: its
    accuracy there, then its measured objectives); a reused genome is ranked by the trial that
    trained it only."""
    points, index = [], -1
    measured = [o.metric for o in select(objectives)[1:]]
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        value = (attrs.get("rungs") or {}).get(str(rung))
        if (value is None or any(attrs.get(m) is None for m in measured)
                or attrs.get("outcome") == "reused"):
            continue
        if trial.number == own:
            index = len(points)
        points.append((float(value), *(float(attrs[m]) for m in measured)))
    return index, points


def gate(trial: Trial, objectives: Sequence[str] = DEFAULT_OBJECTIVES) -> RungGate:
    """The gate of one trial: record its accuracy at the rung, then rank it at that rung. An
    enqueued trial (a warm start, nas.study.search.warmstart) records and always goes on."""
    reached: dict[str, float] = {}
    enqueued = "enqueued" in trial.user_attrs

    def ask(rung: int, accuracy: float) -> bool:
        reached[str(rung)] = accuracy
        trial.set_user_attr("rungs", dict(reached))
        if enqueued:
            return True
        index, points = rung_points(trial.study, rung, trial.number, objectives)
        return index < 0 or passes(index, points, select(objectives))
    return ask


def recorded(study: optuna.Study, number: int | None) -> dict[str, float] | None:
    """The rung accuracies trial `number` of the study recorded; None when it has none."""
    for trial in study.get_trials(deepcopy=False):
        if trial.number == number:
            return trial.user_attrs.get("rungs")
    return None


def stopped_at(rungs: dict[str, float] | None) -> int | None:
    """The last rung a trial reached (where a pruned trial stopped)."""
    return max((int(r) for r in rungs), default=None) if rungs else None
