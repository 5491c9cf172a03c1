"""Warm starts: known genomes judged first, as Optuna users do with `Study.enqueue_trial`.

The genomes come from `nas search --enqueue` (which replaces the list) or the space file's
`[search] enqueue`. Each must fit the space; one given on the command line must also fit the
budget, else the search is refused before any work; one from the file that is over the budget
(the file cannot know the input size) is left out with a note. Each becomes a WAITING trial
whose fixed params are exactly those `sample_genome` reads (`genome_params`), so the next
`study.ask()` of any worker, `--jobs` included, pops it and evaluates it as a sampled trial
(budget, claims), except that the rungs record it but never prune it (nas.study.search.rungs). A
genome the study already holds (waiting, running, or judged; not failed) or listed twice is
enqueued once, so running the same command again adds nothing.
(Two searches that enqueue the same genome into one study at the same moment may both enqueue
it; the claims of nas.store.claims still train it once, the other trial reuses the result.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.errors import GenomeError
from nas.model.candidate import Candidate
from nas.model.genome import Genome
from nas.model.objectives import OBJECTIVES
from nas.model.space import InputShape, Space
from nas.study.search.budget import Budget
from nas.study.search.loop import genome_params

KEPT = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class WarmStart:
    """One genome to enqueue, with where it was given (for errors and notes)."""

    genome: Genome          # as given (channels as the space lists them)
    where: str              # "--enqueue '...'" or "seed.toml: search.enqueue[0] '...'"
    strict: bool            # given on the command line: over the budget is an error

    def key(self, space: Space) -> str:
        """The genome as trials store it (`user_attrs` genome and attention, channels rounded)."""
        return str(self.genome.rounded(space.model.divisor))


def resolve(flags: Sequence[str] | None, off: bool, space: Space) -> tuple[WarmStart, ...]:
    """The genomes to enqueue: none when `off`, else the --enqueue texts, else the space's
    `[search] enqueue` (parsed and checked when the file was read); each checked to fit the space."""
    if off and flags:
        raise GenomeError("--enqueue and --no-enqueue exclude each other; give one")
    if off:
        return ()
    if flags:
        return tuple(_from_flag(text, space) for text in flags)
    return tuple(WarmStart(genome, f"{space.path}: search.enqueue[{index}] {text!r}", False)
                 for index, (text, genome) in enumerate(zip(space.search.enqueue,
                                                            space.search.enqueued(), strict=True)))


def _from_flag(text: str, space: Space) -> WarmStart:
    where = f"--enqueue {text.strip()!r}"
    try:
        genome = Genome.parse(text)
    except GenomeError as error:
        raise GenomeError(f"--enqueue: {error}") from None
    space.check(genome, where=f"{where} in {space.path}")
    return WarmStart(genome, where, True)


def measured(starts: Sequence[WarmStart], space: Space, shape: InputShape, classes: int,
             budget: Budget) -> list[dict[str, float]]:
    """Each start's values of the objectives `budget` limits (counted, or timed), by name."""
    candidates = [Candidate(s.genome, space, shape, classes) for s in starts]
    return [{name: OBJECTIVES[name].measure(c) for name in budget.limits} for c in candidates]


def check_budget(starts: Sequence[WarmStart], space: Space, shape: InputShape, classes: int,
                 budget: Budget) -> None:
    """Refuse a command-line genome over the budget (before the teacher trains)."""
    strict = [s for s in starts if s.strict]
    for start, values in zip(strict, measured(strict, space, shape, classes, budget), strict=True):
        if not budget.admits(values):
            raise GenomeError(f"{start.where} is over the budget at {shape}: "
                              f"{_over(values, budget)}")


def within(starts: Sequence[WarmStart], space: Space, shape: InputShape, classes: int,
           budget: Budget) -> tuple[list[WarmStart], list[str]]:
    """(the starts that fit the budget, a note for each one left out)."""
    kept, notes = [], []
    for start, values in zip(starts, measured(starts, space, shape, classes, budget), strict=True):
        if budget.admits(values):
            kept.append(start)
        else:
            notes.append(f"{start.where} is over the budget at {shape} ({_over(values, budget)}): "
                         f"not enqueued")
    return kept, notes


def _over(values: dict[str, float], budget: Budget) -> str:
    """'1,500 FLOPs > 1,000': each limit the values exceed."""
    return ", ".join(f"{(o := OBJECTIVES[name]).limit_text(values[name])} {o.title} > "
                     f"{o.limit_text(limit)}" for name, limit in budget.limits.items()
                     if values[name] > limit)


def enqueue(study: optuna.Study, starts: Sequence[WarmStart], space: Space) -> tuple[int, int]:
    """Enqueue each start the study does not hold yet, in order: (enqueued, already held)."""
    held = {key for trial in study.get_trials(deepcopy=False, states=KEPT)
            if (key := _trial_key(trial)) is not None}
    added = 0
    for start in starts:
        key = start.key(space)
        if key in held:
            continue
        study.enqueue_trial(genome_params(start.genome, space), user_attrs={"enqueued": key})
        held.add(key)
        added += 1
    return added, len(starts) - added


def _trial_key(trial: FrozenTrial) -> str | None:
    """A trial's genome key: what it evaluated, else what was enqueued for it."""
    attrs = trial.user_attrs
    if attrs.get("genome") is not None:
        return f"{attrs['genome']} {attrs.get('attention')}"
    return attrs.get("enqueued")
