"""What a search run did, kept as its trials end: how many genomes each outcome had, the size of
the feasible front and its best trial. A search in one process keeps a `Tally`
(nas.study.search.loop); the parent of --jobs workers sums theirs and polls the study for the same
front and best (nas.study.search.processes), both by the study's own objectives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optuna.trial import FrozenTrial

from nas.study.pareto import TrialRow, best_row, feasible_front, row_from_trial

COUNTED = ("trained", "reused", "rejected", "pruned")    # outcomes counted by name
KEYS = (*COUNTED, "failed")                             # failed: every other outcome


@dataclass
class Tally:
    """What this run did, for the progress line and the summary."""

    trained: int = 0
    reused: int = 0
    rejected: int = 0
    failed: int = 0
    pruned: int = 0             # stopped at a rung (nas.study.search.rungs)
    best: TrialRow | None = None
    front: int = 0

    def count(self, outcome: str) -> None:
        """One more trial of `outcome` (nan, failed and interrupted count as failed)."""
        key = outcome if outcome in COUNTED else "failed"
        setattr(self, key, getattr(self, key) + 1)

    def refresh(self, trials: Sequence[FrozenTrial], objectives: Sequence[str]) -> None:
        """The front and best trial of the study's trials now."""
        self.front, self.best = front_and_best(trials, objectives)


def front_and_best(trials: Sequence[FrozenTrial],
                   objectives: Sequence[str]) -> tuple[int, TrialRow | None]:
    """The size of the feasible front of a study of `objectives` and its best trial."""
    front = feasible_front([row_from_trial(t, objectives) for t in trials], objectives)
    return len(front), best_row(front, objectives)
