"""Rung gates replayed on recorded searches: would a stricter gate at the first rung, or a rung
zero that predicts it, have saved epochs without pruning the genomes that ended on the front?

    python bench/gate_replay.py DB [DB ...] [--studies a- d-]

For every study of the SQLite databases (or storage URLs) whose trials stopped at rungs (`nas
search --rungs`; studies of the default objectives: accuracy, FLOPs, params), the trials that
reached the first rung are replayed in the order they started, each ranked against those before
it as nas.study.search.rungs.gate ranks it (an enqueued trial always goes on), under each rule
of RULES: how many go on, and how many members of the study's final feasible front
(nas.study.pareto.feasible_front of its COMPLETE trials) the rule would have pruned. The front
is the one the recorded gate let through, so a replayed rule can only lose its members, never
find others: what it costs is a lower bound.

A rung zero (issue 21 allows "a predictor trained on the study's own trials", measured against
the same correlations): each PREDICTORS model is fitted, before each trial that reached the first
rung (once FIRST have), on the trials before it, from the genome alone (no epoch) to the rung's
accuracy; its prediction meets the gate in place of the rung's accuracy. Reported: its rank
correlation with the rung's accuracy and with the 3-epoch accuracy of the trials that completed,
beside FLOPs alone's and the rung's own, and the trials and front members the rung zero would
have pruned. Run by hand (not a test): the numbers go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import optuna
from scipy import stats

from nas.model.genome import Genome
from nas.model.objectives import DEFAULT_OBJECTIVES, Objective, select
from nas.study.pareto import feasible_front, row_from_trial
from nas.study.search.rungs import KEEP, passes


@dataclass(frozen=True)
class Rule:
    name: str
    objectives: int     # how many of the study's objectives rank (accuracy first)
    keep: float         # the share of the rung's trials that goes on


OBJECTIVES: list[Objective] = select(DEFAULT_OBJECTIVES)
RULES = (Rule("the gate: top third over accuracy, FLOPs, params", 3, KEEP),
         Rule("top quarter over the three", 3, 1 / 4),
         Rule("top third over accuracy and FLOPs", 2, 1 / 3),
         Rule("top quarter over accuracy and FLOPs", 2, 1 / 4))


@dataclass
class Tally:
    reached: int = 0    # trials that reached the first rung
    passed: int = 0     # of them, those the rule lets go on
    front: int = 0      # of them, members of the study's final front
    lost: int = 0       # front members the rule prunes

    def count(self, goes_on: bool, in_front: bool) -> None:
        """One trial that reached the rung: whether the rule lets it go on, whether it is a
        member of the study's final front."""
        self.reached += 1
        self.passed += goes_on
        self.front += in_front
        self.lost += in_front and not goes_on

    def add(self, other: Tally) -> None:
        for name in ("reached", "passed", "front", "lost"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def __str__(self) -> str:
        return (f"{self.passed}/{self.reached} go on ({self.passed / max(1, self.reached):.0%}), "
                f"{self.lost} of {self.front} front members pruned")


def first_rung(trials: list[optuna.trial.FrozenTrial]) -> str | None:
    """The study's first rung (as its trials record it), None for a study without rungs."""
    rungs = {int(r) for t in trials for r in t.user_attrs.get("rungs") or {}}
    return str(min(rungs)) if rungs else None


def arrivals(trials: list[optuna.trial.FrozenTrial], rung: str) -> list[optuna.trial.FrozenTrial]:
    """The trials that reached `rung`, in the order they started (a reused genome counts once,
    as the gate ranks it: nas.study.search.rungs.rung_points)."""
    return sorted((t for t in trials if rung in (t.user_attrs.get("rungs") or {})
                   and t.user_attrs.get("outcome") != "reused"), key=lambda t: t.datetime_start)


def replay(arrived: list[optuna.trial.FrozenTrial], front: set[int], rung: str, rule: Rule) -> Tally:
    """The trials that reached `rung` (`arrivals`) through `rule`; `front`: the trial numbers
    of the study's final feasible front."""
    objectives = OBJECTIVES[:rule.objectives]
    points: list[tuple[float, ...]] = []
    tally = Tally()
    for trial in arrived:
        attrs = trial.user_attrs
        points.append((attrs["rungs"][rung], *(float(attrs[o.metric]) for o in objectives[1:])))
        goes_on = "enqueued" in attrs or passes(len(points) - 1, points, objectives, rule.keep)
        tally.count(goes_on, trial.number in front)
    return tally


FIRST = 5      # trials that reached the rung before a predictor judges one
ZERO_KEEPS = (KEEP, 2 / 3)      # the rung zero's gate: the rungs' third, and a lenient one


def cost(trial: optuna.trial.FrozenTrial) -> list[float]:
    """ln FLOPs and ln params."""
    return [math.log(trial.user_attrs["flops"]), math.log(trial.user_attrs["params"])]


def shape(trial: optuna.trial.FrozenTrial) -> list[float]:
    """`cost`, then the genome's blocks, mean expansion over its blocks, widest stage, stride-2
    stages and attention (SE, ECA; none is both 0)."""
    genome = Genome.parse(trial.user_attrs["genome"], trial.user_attrs["attention"])
    stages = genome.stages
    blocks = sum(g.n for g in stages)
    return [*cost(trial), blocks, sum(g.t * g.n for g in stages) / blocks,
            max(g.c for g in stages), sum(g.s == 2 for g in stages),
            genome.attention == "se", genome.attention == "eca"]


def _ridge() -> object:
    from sklearn.linear_model import Ridge
    return Ridge(alpha=1.0)


def _forest() -> object:
    from sklearn.ensemble import RandomForestRegressor
    return RandomForestRegressor(200, min_samples_leaf=2, random_state=0)


def _gp() -> object:
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
    return GaussianProcessRegressor(ConstantKernel() * RBF() + WhiteKernel(), normalize_y=True)


@dataclass(frozen=True)
class Predictor:
    name: str
    features: Callable[[optuna.trial.FrozenTrial], list[float]]
    model: Callable[[], object]     # an unfitted scikit-learn regressor


PREDICTORS = (Predictor("ridge on ln FLOPs, ln params", cost, _ridge),
              Predictor("ridge on the genome's shape", shape, _ridge),
              Predictor("random forest on the genome's shape", shape, _forest),
              Predictor("Gaussian process on the genome's shape", shape, _gp))


@dataclass
class Scores:
    """Per judged trial: the prediction, the rung's accuracy, FLOPs, the completed accuracy."""
    predicted: list[float] = field(default_factory=list)
    rung: list[float] = field(default_factory=list)
    flops: list[float] = field(default_factory=list)
    final: list[float | None] = field(default_factory=list)

    def report(self) -> str:
        done = [i for i, v in enumerate(self.final) if v is not None]
        final = [self.final[i] for i in done]

        def rho(x: list[float], y: list[float]) -> str:
            return f"{stats.spearmanr(x, y).statistic:.2f}/{stats.kendalltau(x, y).statistic:.2f}"
        return (f"Spearman/Kendall with the rung: {rho(self.predicted, self.rung)} "
                f"(FLOPs alone {rho(self.flops, self.rung)}); with the {len(done)} completed "
                f"trials' accuracy: {rho([self.predicted[i] for i in done], final)} "
                f"(FLOPs {rho([self.flops[i] for i in done], final)}, "
                f"the rung {rho([self.rung[i] for i in done], final)})")


def rung_zero(arrived: list[optuna.trial.FrozenTrial], front: set[int], rung: str,
              predictor: Predictor, scores: Scores) -> dict[float, Tally]:
    """The trials that reached `rung`, each from the FIRST on (an enqueued one excepted) first
    judged by `predictor` fitted on the trials before it: pruned if its prediction does not pass
    a gate that keeps each of ZERO_KEEPS among their recorded points; a Tally per share kept."""
    from sklearn.preprocessing import StandardScaler

    tallies, points = {keep: Tally() for keep in ZERO_KEEPS}, []
    features = np.array([predictor.features(t) for t in arrived])
    accuracies = [t.user_attrs["rungs"][rung] for t in arrived]
    for i, trial in enumerate(arrived):
        attrs = trial.user_attrs
        measured = (float(attrs["flops"]), float(attrs["params"]))
        if i >= FIRST and "enqueued" not in attrs:
            scaler = StandardScaler().fit(features[:i])
            model = predictor.model().fit(scaler.transform(features[:i]), accuracies[:i])
            guess = float(model.predict(scaler.transform(features[i:i + 1]))[0])
            for keep, tally in tallies.items():
                goes_on = passes(len(points), [*points, (guess, *measured)], OBJECTIVES, keep)
                tally.count(goes_on, trial.number in front)
            scores.predicted.append(guess)
            scores.rung.append(accuracies[i])
            scores.flops.append(measured[0])
            scores.final.append(trial.values[0] if trial.state.name == "COMPLETE" else None)
        points.append((accuracies[i], *measured))
    return tallies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("databases", nargs="+", metavar="DB", help="SQLite file or storage URL")
    parser.add_argument("--studies", nargs="*", default=[], metavar="PREFIX",
                        help="only studies whose names start with one of these")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    totals = {rule.name: Tally() for rule in RULES}
    zero = {(p.name, keep): Tally() for p in PREDICTORS for keep in ZERO_KEEPS}
    scores = {p.name: Scores() for p in PREDICTORS}
    for database in args.databases:
        url = database if "://" in database else f"sqlite:///{database}"
        for name in optuna.get_all_study_names(url):
            if args.studies and not name.startswith(tuple(args.studies)):
                continue
            trials = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
            rung = first_rung(trials)
            if rung is None:
                continue
            arrived = arrivals(trials, rung)
            front = {row.trial for row in feasible_front([row_from_trial(t) for t in trials])}
            print(f"{database} {name}, rung {rung}:")
            for rule in RULES:
                tally = replay(arrived, front, rung, rule)
                totals[rule.name].add(tally)
                print(f"  {rule.name}: {tally}")
            for predictor in PREDICTORS:
                tallies = rung_zero(arrived, front, rung, predictor, scores[predictor.name])
                for keep, tally in tallies.items():
                    zero[predictor.name, keep].add(tally)
                    print(f"  rung zero keeping {keep:.0%}, {predictor.name}: {tally}")
    print("all studies:")
    for rule in RULES:
        print(f"  {rule.name}: {totals[rule.name]}")
    for predictor in PREDICTORS:
        print(f"  rung zero, {predictor.name}: {scores[predictor.name].report()}")
        for keep in ZERO_KEEPS:
            print(f"    keeping {keep:.0%}: {zero[predictor.name, keep]}")


if __name__ == "__main__":
    main()
