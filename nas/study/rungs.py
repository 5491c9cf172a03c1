"""Multi-fidelity search: successive-halving rungs inside a trial (Optuna cannot prune a
multi-objective study).

A trial trains on one learning-rate schedule spanning the study's epochs and stops at each rung
(e.g. 1, 3 epochs of 9) to ask the gate: it goes on only if it is in the top third of the
trials that reached that rung, ordered as NSGA-II selects: by non-dominated rank over (best
validation accuracy so far, FLOPs, params), then within a rank by crowding distance, then by
accuracy. (With three objectives most early trials share rank 0, so the rank alone would let
nearly all of them through.) Otherwise it ends PRUNED with its rung accuracies in user_attrs["rungs"], and,
not being COMPLETE, never appears on the feasible front (nas.study.pareto). The rung's weights
are resumed, not retrained (nas.train.distill.train's stop_epoch and resume). A later trial that
samples a pruned genome reuses its run (outcome 'reused', PRUNED, the first trial's rungs) and
is not ranked at the rungs again: the genome counts once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import optuna
from optuna.trial import Trial

from nas.train.experiment import RungGate

KEEP = 1 / 3        # the share of a rung's trials that goes on (by non-dominated rank)
Point = tuple[float, float, float]          # (accuracy to maximise, FLOPs, params to minimise)


def dominates(a: Point, b: Point) -> bool:
    """`a` is no worse than `b` on every objective and not equal to it."""
    return a[0] >= b[0] and a[1] <= b[1] and a[2] <= b[2] and a != b


def ranks(points: Sequence[Point]) -> list[int]:
    """Non-dominated sorting (NSGA-II): 0 for the front, 1 for the front without it, ..."""
    left, rank, out = set(range(len(points))), 0, [0] * len(points)
    while left:
        front = {i for i in left if not any(dominates(points[j], points[i]) for j in left)}
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


def order(points: Sequence[Point]) -> list[int]:
    """Indices of `points`, best first: rank, then larger crowding distance, then accuracy."""
    ranked = ranks(points)
    crowd = crowding(points, ranked)
    return sorted(range(len(points)), key=lambda i: (ranked[i], -crowd[i], -points[i][0]))


def passes(own: int, points: Sequence[Point]) -> bool:
    """Whether points[own] is among the first ceil(n/3) of `order(points)`."""
    return order(points).index(own) < math.ceil(len(points) * KEEP)


def rung_points(study: optuna.Study, rung: int, own: int) -> tuple[int, list[Point]]:
    """(index of trial `own`, the points of every trial of the study that reached `rung`);
    a reused genome is ranked by the trial that trained it only."""
    points, index = [], -1
    for trial in study.get_trials(deepcopy=False):
        value = (trial.user_attrs.get("rungs") or {}).get(str(rung))
        if (value is None or trial.user_attrs.get("flops") is None
                or trial.user_attrs.get("outcome") == "reused"):
            continue
        if trial.number == own:
            index = len(points)
        points.append((float(value), float(trial.user_attrs["flops"]),
                       float(trial.user_attrs["params"])))
    return index, points


def gate(trial: Trial) -> RungGate:
    """The gate of one trial: record its accuracy at the rung, then rank it at that rung."""
    reached: dict[str, float] = {}

    def ask(rung: int, accuracy: float) -> bool:
        reached[str(rung)] = accuracy
        trial.set_user_attr("rungs", dict(reached))
        index, points = rung_points(trial.study, rung, trial.number)
        return index < 0 or passes(index, points)
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
