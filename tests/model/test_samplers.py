"""SAMPLERS: every sampler builds, samples genomes of a space under budget constraints in a
multi-objective study, and is what the recipe check and `nas search --sampler` accept."""

from __future__ import annotations

import optuna
import pytest

from nas.cli import build_parser
from nas.errors import SpaceError
from nas.model.objectives import DEFAULT_OBJECTIVES, constraint_names, select
from nas.model.recipe import CHOICES, SearchConfig
from nas.model.samplers import DEFAULT_SAMPLER, SAMPLERS
from nas.model.space import load_space


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_proposes_genomes_under_constraints(name: str) -> None:
    """11 trials: past GPSampler's 10 random ones, so its constrained-EHVI step runs too (with
    a smaller search of the acquisition function: its default takes 10-25 s on 2 busy cores)."""
    from nas.study.search.loop import genome_params, sample_genome

    space = load_space("tiny.toml")
    sampler = SAMPLERS[name].build(0)
    if isinstance(sampler, optuna.samplers.GPSampler):
        sampler._n_local_search, sampler._n_preliminary_samples = 1, 32
    study = optuna.create_study(directions=[o.direction for o in select(DEFAULT_OBJECTIVES)],
                                sampler=sampler)
    names = constraint_names(DEFAULT_OBJECTIVES)
    for number in range(11):
        trial = study.ask()
        genome = sample_genome(trial, space)
        assert set(genome_params(genome, space)) <= set(trial.params)
        for key in names:
            trial.set_constraint(key, float(number % 3 - 1))
        study.tell(trial, [0.1 * (number % 5), 1000.0 + number, 100.0 + number])
    assert len(study.trials) == 11


def test_the_recipe_and_the_cli_accept_exactly_the_samplers() -> None:
    assert CHOICES["SearchConfig.sampler"] == tuple(SAMPLERS)
    assert SearchConfig().sampler == DEFAULT_SAMPLER == "tpe"
    with pytest.raises(SpaceError, match="sampler must be one of"):
        SearchConfig(sampler="cmaes").check("[search]")
    parser = build_parser()
    for name in SAMPLERS:
        assert parser.parse_args(["search", "--sampler", name]).sampler == name
