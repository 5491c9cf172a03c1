"""An ablation's results as rows, and those rows as a rich table, markdown, CSV or JSON.

One row per (group, arm): size, accuracy mean ± sd over seeds, and for every arm but the
baseline the paired difference to it with its 95 % interval, marked "not resolved" when the
interval contains 0, and whether the arm is on the group's front after retraining (mean test
accuracy against FLOPs: `GroupResult.front`). Rendering only: the numbers come from
`nas.study.ablation.run`.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich.table import Table

from nas.study.ablation.run import METRICS, ArmResult, GroupResult
from nas.study.ablation.stats import Paired, Spread
from nas.study.width import cell_width, fit_columns
from nas.units import count_text, duration_text

SHORT = {"val_accuracy": "val", "test_accuracy": "test"}


def rows(groups: list[GroupResult]) -> list[dict[str, Any]]:
    """Plain values (fractions, counts, seconds) for CSV and JSON."""
    return [_row(result, arm) for result in groups for arm in result.arms]


def _row(result: GroupResult, arm: ArmResult) -> dict[str, Any]:
    row: dict[str, Any] = {
        "group": result.group.name, "arm": arm.arm.name,
        "baseline": arm.arm.name == result.group.baseline,
        "genome": arm.arm.genome.notation, "attention": arm.arm.genome.attention,
        "changes": arm.arm.changes, "flops": arm.flops,
        "params": arm.params, "seeds": sorted(arm.runs),
        "front": arm.arm.name in result.front(), "seconds_per_run": arm.seconds(), "command": arm.command}
    for metric in METRICS:
        s, d = arm.spread(metric), result.difference(arm, metric)
        name = SHORT[metric]
        row.update({f"{name}_mean": s.mean, f"{name}_sd": s.sd,
                    f"{name}_diff": d.mean if d else None, f"{name}_low": d.low if d else None,
                    f"{name}_high": d.high if d else None, f"{name}_pairs": d.n if d else None,
                    f"{name}_resolved": d.resolved if d else None})
    return row


def to_json(name: str, study: str, groups: list[GroupResult]) -> dict[str, Any]:
    """Rows by group, each arm with its per-seed runs."""
    payload: dict[str, Any] = {"ablation": name, "study": study, "level": 0.95, "groups": []}
    for result in groups:
        arms = []
        for arm in result.arms:
            runs = [{"seed": s, "run_id": r.id, "status": r.status, "val_accuracy": r.val_accuracy,
                     "test_accuracy": r.test_accuracy, "seconds": r.duration_s}
                    for s, r in sorted(arm.runs.items())]
            arms.append({**_row(result, arm), "key": arm.key, "runs": runs})
        payload["groups"].append({"name": result.group.name, "baseline": result.group.baseline,
                                  "arms": arms})
    return payload


def to_csv(groups: list[GroupResult]) -> str:
    buffer = io.StringIO()
    table = rows(groups)
    writer = csv.DictWriter(buffer, fieldnames=list(table[0]) if table else ["group"])
    writer.writeheader()
    for row in table:
        writer.writerow({k: " ".join(map(str, v)) if isinstance(v, list) else v
                         for k, v in row.items()})
    return buffer.getvalue()


HEADERS = ("arm", "genome", "attn", "changes", "FLOPs", "params", "seeds", "val acc", "test acc",
           "Δ val [95% CI]", "Δ test [95% CI]", "front", "s/run")
KEEP = (13, 10, 7, 9, 8, 6, 2, 11, 4, 12, 5, 3, 1)   # the rank each header keeps on a narrow terminal


def cells(result: GroupResult, arm: ArmResult) -> list[str]:
    """One row of text cells, in the order of HEADERS."""
    seconds = arm.seconds()
    diffs = [_diff(result.difference(arm, metric)) for metric in METRICS]
    return [arm.arm.name, arm.arm.genome.notation, arm.arm.genome.attention,
            arm.arm.changes or "-", count_text(arm.flops) if arm.flops is not None else "-",
            count_text(arm.params) if arm.params is not None else "-", str(len(arm.runs)),
            _spread(arm.spread("val_accuracy")), _spread(arm.spread("test_accuracy")), *diffs,
            "yes" if arm.arm.name in result.front() else "",
            duration_text(seconds) if seconds is not None else "-"]


def _spread(s: Spread) -> str:
    return "-" if s.mean is None else f"{100 * s.mean:.1f} ± {100 * (s.sd or 0):.1f}"


def _diff(d: Paired | None) -> str:
    """'+2.1 [+0.4, +3.8] (n=3)', with 'not resolved' when the interval holds 0."""
    if d is None:
        return "baseline"
    if d.mean is None:
        return "-"
    text = f"{100 * d.mean:+.1f}"
    if d.low is not None and d.high is not None:
        text += f" [{100 * d.low:+.1f}, {100 * d.high:+.1f}]"
    text += f" (n={d.n})"
    return text if d.resolved else f"{text} not resolved"


def tables(name: str, groups: list[GroupResult], width: int) -> tuple[list[Table], list[str]]:
    """One rich table per group, each with the columns that fit `width` (the same in every
    group), and the headers dropped, for `nas.study.width.hidden_note`."""
    grids = [[[_rich_cell(h, c) for h, c in zip(HEADERS, cells(result, arm), strict=True)]
              for arm in result.arms] for result in groups]
    widths = [cell_width(h, [row[i] for grid in grids for row in grid],
                              11 if h == "genome" else 0) for i, h in enumerate(HEADERS)]
    kept = fit_columns(KEEP, widths, width)
    out = []
    for result, grid in zip(groups, grids, strict=True):
        table = Table(title=f"ablation '{name}', group '{result.group.name}' (accuracy in %, "
                            f"mean ± sd over seeds; Δ = arm - baseline, paired by seed)")
        for i in kept:
            table.add_column(HEADERS[i], justify="left" if i < 4 else "right",
                             no_wrap=HEADERS[i] != "genome", min_width=widths[i])
        for row in grid:
            table.add_row(*(row[i] for i in kept))
        out.append(table)
    return out, [h for i, h in enumerate(HEADERS) if i not in kept]


def _rich_cell(header: str, text: str) -> str:
    """A terminal cell: a genome wraps between its stages, a difference before its count."""
    if header == "genome":
        return text.replace("] [", "]\n[")
    return text.replace(" (n=", "\n(n=")


def markdown(name: str, groups: list[GroupResult]) -> str:
    """One pipe table per group under a `####` heading, ready to paste; its last column is the
    command that retrains the row (for its first seed: change `--seed` for the others)."""
    parts = []
    headers = (*HEADERS, "command")
    for result in groups:
        lines = [f"#### {name}: {result.group.name} (baseline: {result.group.baseline})", "",
                 "| " + " | ".join(headers) + " |",
                 "|" + "|".join("---" if i < 4 or i == len(HEADERS) else "---:"
                                for i in range(len(headers))) + "|"]
        for arm in result.arms:
            row = [*cells(result, arm), f"`{arm.command}`" if arm.command else "-"]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def dumps(name: str, study: str, groups: list[GroupResult]) -> str:
    return json.dumps(to_json(name, study, groups), indent=2)
