"""Tables and plots of study reports and ablations: rich Tables the CLI prints, matplotlib PNGs.

Rendering only: the numbers come from `nas.study.report.Summary` and `nas.study.ablate`; nothing here prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from nas.study.report import ReportError, StudyInfo, Summary, unique_genomes
from nas.units import duration_text, flops_text, percent, quantity_text


def front_table(summary: Summary) -> Table:
    """The front as the report's tables show designs, smallest first; a genome wraps between
    stages, FLOPs show the report's unit over the exact count."""
    table = Table(title=f"Pareto front of study {summary.data.name!r} (feasible, by FLOPs)")
    table.add_column("trial", justify="right")
    table.add_column("genome", min_width=11, ratio=1)
    for name in ("attn", "FLOPs", "params", "val acc", "test acc"):
        table.add_column(name, justify="left" if name == "attn" else "right", no_wrap=True)
    for row in summary.front:
        flops = row.flops or 0
        table.add_row(str(row.trial), row.genome or "?", row.attention or "?",
                      f"{flops_text(flops)}\n[dim]{flops:,}[/dim]", f"{row.params or 0:,}",
                      percent(row.val_accuracy), percent(row.test_accuracy))
    return table


def overview(summary: Summary) -> dict[str, str]:
    """`name: value` lines above the table: study, teacher, budget, trials, time."""
    info, t = summary.data.info, summary.totals
    teacher = summary.teacher or {}
    fields = {
        "study": f"{summary.data.name} ({summary.data.storage})",
        "search": f"{info.get('space', '?')} on {info.get('data', '?')} at "
                  f"{'x'.join(map(str, info.get('image_size') or ['?']))}, "
                  f"{info.get('epochs', '?')} epoch(s) a trial, seed {info.get('seed', '?')}",
        "teacher": f"val {percent(teacher.get('val_accuracy'))}, test "
                   f"{percent(teacher.get('test_accuracy'))} ({teacher.get('fingerprint', '?')})",
        "budget": _budget_text(summary),
        "trials": f"{t.done} done of {t.trials}: {t.trained} trained, {t.reused} reused, "
                  f"{t.rejected} rejected (over budget), {t.failed} failed"
                  + (f", {t.running} running" if t.running else "")
                  + "".join(f", {n} pruned at rung {r}" for r, n in t.pruned_at.items()),
        "time": f"{duration_text(t.seconds)} in trials, {duration_text(t.wall_seconds)} wall",
    }
    return fields


def _budget_text(summary: Summary) -> str:
    """The study's budgets and the tighter ones asked for now."""
    info = summary.data.info
    parts = []
    for what, study, asked in (("FLOPs", info.get("budget_flops"), summary.budget_flops),
                               ("params", info.get("budget_params"), summary.budget_params)):
        if study is not None:
            parts.append(f"{what} <= {study:,.0f}")
        if asked is not None:
            parts.append(f"{what} <= {asked:,.0f} (asked now)")
    return ", ".join(parts) or "none"


def studies_table(studies: Sequence[StudyInfo], storage: str) -> Table:
    """The studies of a storage; `nas report --study NAME` shows one."""
    table = Table(title=f"studies in {storage} (pick one with --study)")
    for name in ("study", "trials", "trained", "best val acc"):
        table.add_column(name, justify="left" if name == "study" else "right")
    for info in studies:
        table.add_row(info.name, str(info.trials), str(info.trained), percent(info.best_val_accuracy))
    return table


def plot_front(summary: Summary, path: Path) -> Path:
    """PNG scatter of every trial (FLOPs vs validation accuracy), the front and the budget."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not Path(path).expanduser().absolute().parent.is_dir():
        raise ReportError(f"{path}: directory {Path(path).absolute().parent} does not exist")
    if Path(path).is_dir():
        raise ReportError(f"{path}: is a directory; give the plot a file name")
    figure = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    rows = summary.data.rows
    trained = unique_genomes([r for r in rows if r.trained])
    rejected = [r for r in rows if r.outcome == "rejected" and r.flops]
    axes.scatter([r.flops for r in trained], [100 * (r.val_accuracy or 0) for r in trained],
                 s=18, color="0.6", label=f"trained genomes ({len(trained)})")
    if rejected:
        axes.scatter([r.flops for r in rejected], [0] * len(rejected), marker="x", s=18,
                     color="0.8", label=f"rejected, not trained ({len(rejected)})")
    front = summary.front
    axes.scatter([r.flops for r in front], [100 * (r.val_accuracy or 0) for r in front], s=36,
                 color="tab:red", edgecolors="black", linewidths=0.5, zorder=3,
                 label=f"Pareto front ({len(front)})")
    for row in front:
        axes.annotate(str(row.trial), (row.flops, 100 * (row.val_accuracy or 0)), fontsize=7,
                      xytext=(3, 3), textcoords="offset points")
    _budget_lines(axes, summary)
    flops = [r.flops for r in (*trained, *rejected) if r.flops]
    if flops and max(flops) > 10 * min(flops):
        axes.set_xscale("log")
    axes.set_xlabel("FLOPs (report convention)")
    axes.set_ylabel("validation accuracy (%)")
    axes.set_title(f"study {summary.data.name}")
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    try:
        figure.savefig(path, format="png")
    except OSError as error:
        raise ReportError(f"{path}: cannot write the plot ({error.strerror or error})") from None
    return path


def _budget_lines(axes: Any, summary: Summary) -> None:
    """Vertical lines at the study's FLOPs budget and at the tighter one asked for."""
    study_budget = summary.data.info.get("budget_flops")
    if study_budget is not None:
        axes.axvline(study_budget, color="tab:blue", linestyle="--", linewidth=1,
                     label=f"budget {quantity_text(study_budget)}")
    if summary.budget_flops is not None:
        axes.axvline(summary.budget_flops, color="tab:orange", linestyle=":", linewidth=1,
                     label=f"asked {quantity_text(summary.budget_flops)}")


def ablation_table(name: str, results: Sequence[Any]) -> Table:
    """One row per arm: size, and validation / test accuracy as mean ± sd over the seeds."""
    table = Table(title=f"ablation '{name}' (mean ± sd over seeds)")
    for column, justify in (("arm", "left"), ("genome", "left"), ("attn", "left"),
                            ("FLOPs", "right"), ("params", "right"), ("seeds", "right"),
                            ("val acc", "right"), ("test acc", "right")):
        table.add_column(column, justify=justify)
    for result in results:
        row = result.to_json()
        table.add_row(row["arm"], row["genome"].replace("] [", "]\n["), row["attention"],
                      f"{flops_text(row['flops'])} ({row['flops']:,})" if row["flops"] is not None else "-",
                      f"{row['params']:,}" if row["params"] is not None else "-",
                      str(len(row["seeds"])), _spread(*result.metric("val_accuracy")),
                      _spread(*result.metric("test_accuracy")))
    return table


def _spread(mean: float | None, sd: float | None) -> str:
    return "-" if mean is None else f"{mean:.1%} ± {(sd or 0.0):.1%}"
