"""What a search optimises: `OBJECTIVES`, one record per objective.

The search (its values and budget constraints), the rung gate, the Pareto front, `nas report`'s
tables, plot axes and budget lines, and Optuna's metric names all read this table, so a new
objective is one row plus the code that measures it. Accuracy is measured by training
(nas.train); FLOPs and params by counting the decoded architecture (nas.model.complexity,
microseconds); latency by timing one forward pass at batch 1 (nas.model.latency). What is known
before training can be a budget: a genome over one is rejected untrained. Pure Python (torch is
imported only when a genome is measured), so the recipe check and the CLI read it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nas.errors import SpaceError, nearest
from nas.units import count_text, label_text, ms_text, parse_milliseconds, parse_quantity, percent

DEFAULT_OBJECTIVES = ("accuracy", "flops", "params")
LATENCY_BACKENDS = ("torch", "onnxruntime")     # what times a genome (nas.model.latency)


@dataclass(frozen=True)
class Objective:
    """One objective: how it is named, ordered, measured, budgeted and printed."""

    name: str               # --objectives, --plot-axes, --budget-NAME, [search] budget_NAME
    metric: str             # Optuna's metric name, the trial's user attribute, TrialRow's field
    direction: str          # "maximize" or "minimize", as Optuna writes it
    title: str              # its table column and budget line: "FLOPs", "latency"
    label: str              # its plot axis and colour bar
    measure: Callable[[Any], float] | None   # of a nas.model.candidate.Candidate, before training;
                                             # None: measured by training
    text: Callable[[float | None], str]             # a value in tables and progress lines
    parse: Callable[[str, str], float] | None = None    # a budget from text; None: not a budget
    limit_text: Callable[[float], str] = str        # a budget in `nas report`'s overview: 0.200 M (200,000)
    quantity: Callable[[float], str] = str          # a budget in the plot's legend: 0.200 M FLOPs
    compact: Callable[[float], str] = str           # a budget in a default study name: 0.2G
    example: str = ""       # a budget as --budget-NAME takes it, for --help
    cast: type = float      # int for counts
    plot_scale: float = 1.0     # accuracy is plotted in percent
    keep: int = 5           # the rank its column keeps on a narrow terminal (higher stays longer)
    always: bool = False    # measured for every genome, an objective of the study or not

    @property
    def can_budget(self) -> bool:
        return self.parse is not None and self.measure is not None

    @property
    def budget_key(self) -> str:
        """The study attribute, Summary limit and [search] key of its budget."""
        return f"budget_{self.name}"

    @property
    def flag(self) -> str:
        return f"--budget-{self.name}"

    def better(self, value: float) -> float:
        """The value oriented so that larger is better (minimised objectives negated)."""
        return value if self.direction == "maximize" else -value


def _counted(key: str) -> Callable[[Any], float]:
    return lambda candidate: float(getattr(candidate.size, key))


def _latency(candidate: Any) -> float:
    return float(candidate.latency_ms)


def _count_text(value: float | None) -> str:
    """`95.6 K (95,552)` (nas.units.count_text, every digit too), or `-` when there is none."""
    return "-" if value is None else count_text(value, exact=True)


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("accuracy", "val_accuracy", "maximize", "val acc", "validation accuracy (%)",
              None, percent, plot_scale=100.0, keep=7),
    Objective("flops", "flops", "minimize", "FLOPs", "FLOPs (report convention)",
              _counted("flops"), _count_text, parse_quantity, _count_text,
              lambda v: f"{count_text(v)} FLOPs", label_text, "0.2G (report convention)", cast=int,
              keep=6, always=True),
    Objective("params", "params", "minimize", "params", "parameters", _counted("params"),
              _count_text, parse_quantity, _count_text, lambda v: f"{count_text(v)} params",
              label_text, "50K", cast=int, keep=5, always=True),
    Objective("latency", "latency_ms", "minimize", "latency", "latency (ms per image, batch 1)",
              _latency, ms_text, parse_milliseconds, ms_text, ms_text, lambda v: f"{v:g}ms",
              "2ms (median per image at batch 1 on this CPU; latency among --objectives)", keep=4),
)}


def select(names: Sequence[str]) -> tuple[Objective, ...]:
    """The records of `names`, in that order."""
    return tuple(OBJECTIVES[name] for name in names)


def parse_objectives(text: str | Sequence[str], what: str) -> tuple[str, ...]:
    """'accuracy,flops,latency' -> ('accuracy', 'flops', 'latency'): known names, accuracy first
    (the trained objective every study ranks by), at least one more, none twice."""
    names = tuple(p.strip() for p in (text.split(",") if isinstance(text, str) else text))
    for name in names:
        if name not in OBJECTIVES:
            raise SpaceError(f"{what}: unknown objective {name[:40]!r}{nearest(name, OBJECTIVES)}; "
                             f"objectives: {', '.join(OBJECTIVES)}")
    if len(set(names)) != len(names) or len(names) < 2 or names[0] != "accuracy":
        raise SpaceError(f"{what} must be accuracy followed by one or more of "
                         f"{', '.join(n for n in OBJECTIVES if n != 'accuracy')}, each once, got "
                         f"{','.join(names)[:80]!r}")
    return names


def before_training(names: Sequence[str]) -> tuple[Objective, ...]:
    """The objectives measured before training in a study of `names`: its own and the counted
    ones every study records (FLOPs, params), in table order."""
    return tuple(o for o in OBJECTIVES.values()
                 if o.measure is not None and (o.always or o.name in names))


def constraint_names(names: Sequence[str]) -> tuple[str, ...]:
    """The budget constraints every trial of a study of `names` records, in order (Optuna's
    samplers need the same names on every trial)."""
    return tuple(o.name for o in before_training(names) if o.can_budget)


def counted(size: Any) -> dict[str, float]:
    """The counted objectives (FLOPs, params) of a `Complexity`, by objective name."""
    return {o.name: float(getattr(size, o.metric)) for o in OBJECTIVES.values() if o.always}


def dominates(a: Sequence[float], b: Sequence[float], objectives: Sequence[Objective]) -> bool:
    """`a` is no worse than `b` on every objective (each in its direction) and better on one."""
    pairs = [(o.better(x), o.better(y)) for o, x, y in zip(objectives, a, b, strict=True)]
    return all(x >= y for x, y in pairs) and any(x != y for x, y in pairs)


def plot_axes() -> tuple[str, ...]:
    """The x-y pairs `nas report --plot-axes` offers: each measured objective against each
    trained one (flops-accuracy), then each pair of measured ones (flops-params)."""
    costs = [o.name for o in OBJECTIVES.values() if o.measure is not None]
    trained = [o.name for o in OBJECTIVES.values() if o.measure is None]
    return (*(f"{x}-{y}" for x in costs for y in trained),
            *(f"{x}-{y}" for i, x in enumerate(costs) for y in costs[i + 1:]))
