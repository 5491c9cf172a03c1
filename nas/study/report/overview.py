"""A report's overview lines and the study list: what the CLI prints above and instead of a table.

Rendering only: the numbers come from `nas.study.report.summary.Summary`; nothing here prints. Trial
tables in every format are `nas.study.report.tables`; the plot is `nas.study.report.plot`; ablations are
rendered by `nas.study.ablation.tables`.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from nas.model.objectives import DEFAULT_OBJECTIVES, select
from nas.study.pareto import best_row
from nas.study.report.summary import StudyInfo, Summary
from nas.train.teacher import weak_teacher
from nas.units import duration_text, percent, plural


def overview(summary: Summary) -> dict[str, str]:
    """`name: value` lines above the table: study, teacher, budget, trials, time."""
    info, t, objectives = summary.data.info, summary.totals, summary.data.objectives
    teacher = summary.teacher or {}
    fields = {
        "study": f"{summary.data.name} ({summary.data.storage})",
        "search": f"{info.get('space', '?')} on {info.get('data', '?')} at "
                  f"{'x'.join(map(str, info.get('image_size') or ['?']))}, "
                  f"{plural(info.get('epochs'), 'epoch')} a trial, seed {info.get('seed', '?')}",
        "teacher": f"val {percent(teacher.get('val_accuracy'))}, test "
                   f"{percent(teacher.get('test_accuracy'))} ({teacher.get('fingerprint', '?')})",
        **({"objectives": ", ".join(f"{o.direction[:3]} {o.title}" for o in select(objectives))}
           if objectives != DEFAULT_OBJECTIVES else {}),
        "budget": _budget_text(summary),
        **({"latency": _latency_text(info["latency"])} if isinstance(info.get("latency"), dict)
           else {}),
        "trials": f"{t.done} done of {t.trials}: {t.trained} trained, {t.reused} reused, "
                  + (f"{t.rejected} rejected (over budget), " if _budgeted(summary) or t.rejected
                     else "")
                  + f"{t.failed} failed"
                  + (f", {t.running} running" if t.running else "")
                  + "".join(f", {n} pruned at rung {r}" for r, n in t.pruned_at.items()),
        "time": f"{duration_text(t.seconds)} in trials (summed), {duration_text(t.wall_seconds)} "
                "wall from the first trial's start to the last one's end",
    }
    best = best_row(summary.front, summary.data.objectives)
    warning = weak_teacher(teacher.get("val_accuracy"), best.val_accuracy if best else None)
    if warning is not None:
        fields["warning"] = warning.removeprefix("warning: ")
    return fields


def _budgeted(summary: Summary) -> bool:
    """Whether the study was made with a budget (a study without one rejects nothing)."""
    return any(summary.data.info.get(o.budget_key) is not None for o in summary.data.budgeted)


def _budget_text(summary: Summary) -> str:
    """The study's budgets and the tighter ones asked for now."""
    info = summary.data.info
    parts = []
    for objective in summary.data.budgeted:
        study, asked = info.get(objective.budget_key), summary.limits.get(objective.name)
        if study is not None:
            parts.append(f"{objective.title} <= {objective.limit_text(study)}")
        if asked is not None:
            parts.append(f"{objective.title} <= {objective.limit_text(asked)} (asked now)")
    return ", ".join(parts) or "none"


def _latency_text(setup: dict[str, object]) -> str:
    """Where the study's latencies were measured: median ms per image at batch 1."""
    return (f"median ms per image at batch 1, {setup.get('backend', '?')} "
            f"{setup.get('version', '')} on {plural(setup.get('threads'), 'thread')} of "
            f"{setup.get('cpu', '?')} ({setup.get('machine', '?')})")


def studies_table(studies: Sequence[StudyInfo], storage: str) -> Table:
    """The studies of a storage; `nas report --study NAME` shows one."""
    table = Table(title=Text(f"studies in {storage} (pick one with --study)"))
    for name in ("study", "trials", "trained", "best val acc"):
        table.add_column(name, justify="left" if name == "study" else "right")
    for info in studies:
        table.add_row(Text(info.name), str(info.trials), str(info.trained), percent(info.best_val_accuracy))
    return table
