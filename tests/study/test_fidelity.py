"""Rank correlations between a low fidelity and the full schedule, on fixed numbers."""

from __future__ import annotations

import dataclasses
import math

import pytest

from nas.errors import ReportError
from nas.study.search.fidelity import RankCorrelation, rank_correlation

GENOMES = ["a", "b", "c", "d", "e"]


def scores(values: list[float]) -> dict[str, float]:
    return dict(zip(GENOMES, values, strict=False))


def test_the_same_order_is_1_and_the_reverse_is_minus_1() -> None:
    full = scores([0.5, 0.6, 0.7, 0.8, 0.9])
    same = rank_correlation(scores([0.1, 0.2, 0.25, 0.3, 0.9]), full)    # other values, same order
    assert (same.spearman, same.kendall) == pytest.approx((1.0, 1.0)) and same.genomes == 5
    reverse = rank_correlation(scores([5, 4, 3, 2, 1]), full)
    assert (reverse.spearman, reverse.kendall) == pytest.approx((-1.0, -1.0))


def test_two_swapped_pairs_by_hand() -> None:
    """Ranks 1..5 against 2,1,4,3,5: sum d^2 = 4, rho = 1 - 6*4/(5*24) = 0.8; of 10 pairs
    2 are discordant, tau = (8 - 2)/10 = 0.6."""
    got = rank_correlation(scores([1, 2, 3, 4, 5]), scores([2, 1, 4, 3, 5]))
    assert got.spearman == pytest.approx(0.8) and got.kendall == pytest.approx(0.6)
    assert 0 < got.spearman_p < 1 and 0 < got.kendall_p < 1


def test_ties_get_average_ranks_and_tau_b() -> None:
    """Low 1,1,2 against full 1,2,3: ranks 1.5,1.5,3 give rho = 1.5/sqrt(1.5*2) = 0.866;
    2 concordant pairs and one tied in low give tau-b = 2/sqrt(2*3) = 0.816."""
    got = rank_correlation({"a": 1, "b": 1, "c": 2}, {"a": 1, "b": 2, "c": 3})
    assert got.spearman == pytest.approx(math.sqrt(3) / 2)
    assert got.kendall == pytest.approx(2 / math.sqrt(6))


def test_only_the_genomes_both_scored_count() -> None:
    got = rank_correlation({"a": 1, "b": 2, "x": 0}, {"b": 0.9, "a": 0.1, "y": 0.5})
    assert (got.spearman, got.kendall) == pytest.approx((1.0, 1.0)) and got.genomes == 2


def test_the_result_is_a_frozen_record() -> None:
    got = rank_correlation(scores([1, 2, 3]), scores([1, 3, 2]))
    assert isinstance(got, RankCorrelation)
    assert [f.name for f in dataclasses.fields(got)] == ["spearman", "kendall", "spearman_p",
                                                         "kendall_p", "genomes"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.spearman = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(("low", "full", "message"), [
    ({"a": 1}, {"a": 2}, "at least 2 genomes scored at both fidelities, got 1"),
    ({"a": 1, "b": 2}, {"c": 1, "d": 2}, "got 0"),
    ({"a": 1, "b": 1}, {"a": 1, "b": 2}, "low-fidelity scores that differ, got 1.0 for all 2"),
    ({"a": 1, "b": 2}, {"a": 3, "b": 3}, "full scores that differ"),
])
def test_too_few_or_constant_scores_are_one_line_errors(low: dict[str, float],
                                                        full: dict[str, float],
                                                        message: str) -> None:
    with pytest.raises(ReportError, match=message) as error:
        rank_correlation(low, full)
    assert "\n" not in str(error.value)
