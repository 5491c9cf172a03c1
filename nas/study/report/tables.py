"""Trial tables of a report in the formats `nas report --format` writes: rich, Markdown, CSV, JSON.

One list of columns (`columns`: fixed ones, one per objective of the study) feeds every format,
so the terminal table, the paper's Markdown and the script's CSV show the same trials with the
same numbers: text formats
through `nas.units` (as `nas count` and `nas export` print them), CSV and JSON raw values.
Rendering only: the rows come from `nas.study.report.summary.Summary`; nothing here prints.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from nas.model.objectives import DEFAULT_OBJECTIVES, Objective, before_training, select
from nas.study.pareto import TrialRow
from nas.study.report.summary import Summary, summary_json
from nas.study.width import cell_width, fit_columns
from nas.units import percent


@dataclass(frozen=True)
class Column:
    """A table column: its title, its raw value (CSV, JSON), its text (table, Markdown), and
    `keep`, the rank it keeps on a narrow terminal (higher stays longer)."""

    title: str
    key: str
    value: Callable[[TrialRow, bool], Any]
    text: Callable[[TrialRow, bool], str]
    keep: int
    right: bool = True
    every_trial: bool = False       # shown with --all only


def _raw(row: TrialRow, objective: Objective) -> Any:
    """A row's value of an objective as stored; none for what a trial the budget rejected never
    measured (its accuracy: Optuna records 0 for it)."""
    if objective.measure is None and row.outcome == "rejected":
        return None
    return getattr(row, objective.metric)


def objective_column(objective: Objective) -> Column:
    """The column of one objective: its title, metric, text and narrow-terminal rank."""
    return Column(objective.title, objective.metric, lambda r, f: _raw(r, objective),
                  lambda r, f: objective.text(_raw(r, objective)), keep=objective.keep)


HEAD = (
    Column("trial", "trial", lambda r, f: r.trial, lambda r, f: str(r.trial), keep=9),
    Column("genome", "genome", lambda r, f: r.genome, lambda r, f: r.genome or "?", keep=8, right=False),
    Column("attn", "attention", lambda r, f: r.attention, lambda r, f: r.attention or "?", keep=4,
           right=False),
)
TAIL = (
    Column("test acc", "test_accuracy", lambda r, f: r.test_accuracy,
           lambda r, f: percent(r.test_accuracy), keep=3),
    Column("outcome", "outcome", lambda r, f: r.outcome or r.state.lower(),
           lambda r, f: r.outcome or r.state.lower(), keep=2, right=False, every_trial=True),
    Column("front", "on_front", lambda r, f: f, lambda r, f: "yes" if f else "", keep=1, right=False,
           every_trial=True),
)


def columns(every_trial: bool, objectives: Sequence[str] = DEFAULT_OBJECTIVES) -> tuple[Column, ...]:
    """The columns of the front (`every_trial` False) or of every trial: the study's objectives
    measured before training (FLOPs and params always), then the trained ones (val acc)."""
    shown = (*before_training(objectives), *(o for o in select(objectives) if o.measure is None))
    every = (*HEAD, *(objective_column(o) for o in shown), *TAIL)
    return tuple(c for c in every if every_trial or not c.every_trial)


def trial_rows(summary: Summary, every_trial: bool) -> list[tuple[TrialRow, bool]]:
    """(row, on the front) for the front, by FLOPs; or for every trial, by trial number."""
    if not every_trial:
        return [(row, True) for row in summary.front]
    front = {row.trial for row in summary.front}
    return [(row, row.trial in front) for row in sorted(summary.data.rows, key=lambda r: r.trial)]


def title(summary: Summary, every_trial: bool) -> str:
    if every_trial:
        return f"every trial of study {summary.data.name!r} (front: feasible Pareto front)"
    after = select(summary.data.objectives)[1].title      # the front's sort key (pareto_front)
    return f"Pareto front of study {summary.data.name!r} (feasible, by {after})"


# ----------------------------------------------------------------- text formats


def to_markdown(summary: Summary, every_trial: bool = False) -> str:
    """A GitHub/pandoc pipe table: header, alignment row, one line per trial."""
    cols = columns(every_trial, summary.data.objectives)
    lines = ["| " + " | ".join(c.title for c in cols) + " |",
             "|" + "|".join("---:" if c.right else ":---" for c in cols) + "|"]
    for row, on_front in trial_rows(summary, every_trial):
        cells = (c.text(row, on_front).replace("|", "\\|") for c in cols)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(summary: Summary, every_trial: bool = False) -> str:
    """Raw values (FLOPs and params as integers, accuracies as fractions), one row per trial."""
    cols = columns(every_trial, summary.data.objectives)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.key for c in cols])
    for row, on_front in trial_rows(summary, every_trial):
        writer.writerow(["" if (v := c.value(row, on_front)) is None else v for c in cols])
    return buffer.getvalue()


def to_json(summary: Summary, every_trial: bool = False) -> dict[str, Any]:
    """`summary_json` (what `nas report --json` has always printed), plus `trials` with --all."""
    payload = summary_json(summary)
    if every_trial:
        every = columns(True, summary.data.objectives)
        payload["trials"] = [{**{c.key: c.value(row, on_front) for c in every},
                              "state": row.state, "run_id": row.run_id}
                             for row, on_front in trial_rows(summary, True)]
    return payload


# ----------------------------------------------------------------- the terminal table


def rich_table(summary: Summary, every_trial: bool, console: Console) -> tuple[Table, list[str]]:
    """The table that fits `console`'s width, and the titles of the columns it had to drop
    (in table order) so that no column is squeezed into illegible wrapping."""
    cols = columns(every_trial, summary.data.objectives)
    rows = trial_rows(summary, every_trial)
    widths = [_column_width(c, rows) for c in cols]
    kept = fit_columns([c.keep for c in cols], widths, console.width)
    return (_table(summary, every_trial, [cols[i] for i in kept]),
            [c.title for i, c in enumerate(cols) if i not in kept])


def _column_width(column: Column, rows: Sequence[tuple[TrialRow, bool]]) -> int:
    """A column at its widest line (the genome at its widest stage)."""
    return cell_width(column.title, [_cell(column, row, on_front) for row, on_front in rows],
                      11 if column.key == "genome" else 0)


COUNTED = ("flops", "params")      # cells written `95.6 K (95,552)`: the exact count goes below


def _table(summary: Summary, every_trial: bool, cols: Sequence[Column]) -> Table:
    """A genome wraps between its stages and a count over its exact digits; other cells never
    wrap."""
    table = Table(title=Text(title(summary, every_trial)))    # a study name is no markup
    for c in cols:
        table.add_column(c.title, justify="right" if c.right else "left", no_wrap=c.key != "genome",
                         min_width=11 if c.key == "genome" else None)
    for row, on_front in trial_rows(summary, every_trial):
        table.add_row(*(_cell(c, row, on_front) for c in cols),
                      style="bold" if every_trial and on_front else None)
    return table


def _cell(column: Column, row: TrialRow, on_front: bool) -> str:
    text = column.text(row, on_front)
    if column.key == "genome":
        return text.replace("] [", "]\n[")
    if column.key in COUNTED and " (" in text:
        figure, exact = text.split(" (", 1)
        return f"{figure}\n[dim]({exact}[/dim]"
    return text
