"""How a search proposes genomes: `SAMPLERS`, one record per Optuna sampler.

The `[search] sampler` check, `nas search --sampler`'s choices and the search that builds the
sampler read this table, so a new sampler is one row plus its builder. Every sampler here
handles several objectives and reads the budget constraints each trial records
(`Trial.set_constraint`); none is loaded from the network. Pure Python: optuna is imported by
the builders only, so the recipe check and `nas --help` stay light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

DEFAULT_SAMPLER = "tpe"


@dataclass(frozen=True)
class Sampler:
    """One sampler: its name, a line of help, its builder (seed -> sampler) and whether a
    proposal of a genome already judged is followed by one random draw (see nas.study.search.loop)."""

    name: str
    help: str
    build: Callable[[int], optuna.samplers.BaseSampler]
    random_after_repeat: bool = False


def _tpe(seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


def _tpe_joint(seed: int) -> optuna.samplers.BaseSampler:
    """TPE that models the genes jointly (multivariate, one estimator per group of parameters
    that occur together, so the optional stages' genes are modelled too); Optuna's default for
    one objective, not for several."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)


def _nsga2(seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)


def _random(seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _gp(seed: int) -> optuna.samplers.BaseSampler:
    """Optuna's GPSampler (logCEHVI with several objectives and constraints; scipy and torch);
    categorical genes are one-hot dimensions of its kernel. Random for its first 10 trials."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)


SAMPLERS: dict[str, Sampler] = {s.name: s for s in (
    Sampler("tpe", "tree-structured Parzen estimator (the default)", _tpe, random_after_repeat=True),
    Sampler("tpe-joint", "TPE over the genes jointly (multivariate, grouped)", _tpe_joint,
            random_after_repeat=True),
    Sampler("nsga2", "NSGA-II, a genetic algorithm (population 20)", _nsga2),
    Sampler("random", "uniform random genomes", _random),
    Sampler("gp", "Gaussian-process Bayesian optimisation (Optuna's GPSampler)", _gp),
)}
