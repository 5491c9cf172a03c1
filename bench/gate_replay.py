"""Rung gates replayed on recorded searches: would a stricter gate at the first rung have saved
epochs without pruning the genomes that ended on the front?

    python bench/gate_replay.py DB [DB ...] [--studies a- d-]

For every study of the SQLite databases (or storage URLs) whose trials stopped at rungs (`nas
search --rungs`; studies of the default objectives: accuracy, FLOPs, params), the trials that
reached the first rung are replayed in the order they started, each ranked against those before
it as nas.study.search.rungs.gate ranks it (an enqueued trial always goes on), under each rule
of RULES: how many go on, and how many members of the study's final feasible front
(nas.study.pareto.feasible_front of its COMPLETE trials) the rule would have pruned. The front
is the one the recorded gate let through, so a replayed rule can only lose its members, never
find others: what it costs is a lower bound. Run by hand (not a test): the numbers go to
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import optuna

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
        tally.reached += 1
        tally.passed += goes_on
        tally.front += trial.number in front
        tally.lost += trial.number in front and not goes_on
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("databases", nargs="+", metavar="DB", help="SQLite file or storage URL")
    parser.add_argument("--studies", nargs="*", default=[], metavar="PREFIX",
                        help="only studies whose names start with one of these")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    totals = {rule.name: Tally() for rule in RULES}
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
    print("all studies:")
    for rule in RULES:
        print(f"  {rule.name}: {totals[rule.name]}")


if __name__ == "__main__":
    main()
