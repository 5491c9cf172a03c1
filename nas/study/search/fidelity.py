"""How well a cheap fidelity (a short schedule, a smaller subset, a zero-cost proxy) ranks
genomes as the full schedule does: Spearman's rho and Kendall's tau over the genomes that both
scored. A rung that ranks worse than FLOPs alone wastes its epochs (issue 21; FLOPs reach a
Spearman of 0.71-0.73 on NAS-Bench-201, the best zero-cost vote 0.82, Abdelfattah et al.,
ICLR 2021). Ties get average ranks (Spearman) and tau-b (Kendall), as scipy.stats computes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scipy import stats

from nas.errors import ReportError


@dataclass(frozen=True)
class RankCorrelation:
    """Agreement of two rankings of the same genomes: 1 = the same order, -1 = reversed."""

    spearman: float         # Spearman's rho
    kendall: float          # Kendall's tau-b
    spearman_p: float       # two-sided p-values against no correlation
    kendall_p: float
    genomes: int            # how many genomes both fidelities scored


def rank_correlation(low: Mapping[str, float], full: Mapping[str, float]) -> RankCorrelation:
    """Rho and tau between per-genome scores at a low fidelity and at the full schedule, over
    the genomes in both (in `low`'s order); a genome scored by one only is left out."""
    shared = [genome for genome in low if genome in full]
    if len(shared) < 2:
        raise ReportError(f"rank correlation needs at least 2 genomes scored at both "
                          f"fidelities, got {len(shared)}")
    x = [float(low[genome]) for genome in shared]
    y = [float(full[genome]) for genome in shared]
    for name, scores in (("low-fidelity", x), ("full", y)):
        if len(set(scores)) == 1:
            raise ReportError(f"rank correlation needs {name} scores that differ, got "
                              f"{scores[0]} for all {len(scores)} genomes")
    rho, kendall = stats.spearmanr(x, y), stats.kendalltau(x, y)
    return RankCorrelation(spearman=float(rho.statistic), kendall=float(kendall.statistic),
                           spearman_p=float(rho.pvalue), kendall_p=float(kendall.pvalue),
                           genomes=len(shared))
