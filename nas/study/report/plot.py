"""`nas report`'s plot: two objectives on the axes, a third as colour, the front marked.

The axes are any two objectives the study measured (nas.model.objectives); the colour is the
first other objective of the study. The file's extension names the format (PDF, SVG, PNG at 200
dpi). A trial on the 3-D front can look dominated in 2-D; its marker and the colour of the third
objective show why it is not. Front labels are placed greedily where they overlap neither each
other nor a marker.
Rendering only: the numbers come from `nas.study.report.summary.Summary`; nothing here prints.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from nas.atomic import write_atomic
from nas.errors import ReportError
from nas.model.objectives import OBJECTIVES, before_training, plot_axes
from nas.study.pareto import TrialRow, unique_genomes
from nas.study.report.summary import Summary
from nas.units import count_text

EXTENSIONS = {".pdf": "pdf", ".svg": "svg", ".png": "png"}
PNG_DPI = 200
NEAR = 2.0      # a budget line is drawn when within this factor of the farthest point; else the
                # legend names it (a 0.2 G budget would squeeze 20 K points against the axis)


AXES = {name: tuple(name.split("-")) for name in plot_axes()}    # "flops-accuracy": (x, y)


def plot_format(path: Path) -> str:
    """The format the extension names; anything else is a one-line ReportError."""
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        raise ReportError(f"{path}: unknown plot extension {suffix or '(none)'!r}; "
                          f"use {', '.join(EXTENSIONS)}")
    return EXTENSIONS[suffix]


def check_plot_path(path: Path) -> str:
    """Refuse a plot file that cannot be written, before the study is read; returns its format."""
    fmt = plot_format(path)
    if not Path(path).expanduser().absolute().parent.is_dir():
        raise ReportError(f"{path}: directory {Path(path).absolute().parent} does not exist")
    if Path(path).is_dir():
        raise ReportError(f"{path}: is a directory; give the plot a file name")
    return fmt


def value(row: TrialRow, objective: str) -> float:
    """A row's value of an objective, as plotted (accuracy in percent)."""
    chosen = OBJECTIVES[objective]
    return chosen.plot_scale * (row.value(chosen) or 0.0)


def axes_of(summary: Summary, axes_name: str) -> tuple[str, str, str]:
    """(x, y, colour) for `axes_name`: both axes measured in the study, the colour the first
    other objective of the study (else another measured one)."""
    x, y = AXES[axes_name]
    objectives = summary.data.objectives
    known = (*objectives, *(o.name for o in before_training(objectives)))
    for name in (x, y):
        if name not in known:
            raise ReportError(f"--plot-axes {axes_name}: study {summary.data.name!r} did not "
                              f"measure {name} (its objectives: {','.join(objectives)})")
    colour = next(name for name in (*objectives, *known) if name not in (x, y))
    return x, y, colour


def plot_front(summary: Summary, path: Path, axes_name: str = "flops-accuracy") -> Path:
    """Every trained genome (coloured by the third objective), the rejected ones, the front
    (labelled by trial) and the budgets, written atomically in the format of the extension."""
    fmt = check_plot_path(path)
    figure = draw_front(summary, axes_name)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=PNG_DPI)
    try:
        write_atomic(path, buffer.getvalue())
    except OSError as error:
        raise ReportError(f"{path}: cannot write the plot ({error.strerror or error})") from None
    return Path(path)


def draw_front(summary: Summary, axes_name: str = "flops-accuracy") -> Any:
    """The plot as a matplotlib Figure (Agg canvas), not yet written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x, y, colour = axes_of(summary, axes_name)
    figure = Figure(figsize=(7, 4.5), dpi=PNG_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    points = _scatter(axes, figure, summary, (x, y, colour))
    _budget_lines(axes, summary, (x, y), points)
    axes.set_xlabel(OBJECTIVES[x].label)
    axes.set_ylabel(OBJECTIVES[y].label)
    axes.set_title(f"study {summary.data.name}")
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    label_front(axes, summary.front, x, y, points)
    return figure


def _scatter(axes: Any, figure: Any, summary: Summary,
             names: tuple[str, str, str]) -> list[tuple[float, float]]:
    """Trained genomes coloured by the third objective, rejected ones as crosses, the front ringed;
    returns every plotted point (data coordinates) for label placement."""
    from matplotlib.colors import LogNorm, Normalize

    x, y, colour = names
    trained = unique_genomes([r for r in summary.data.rows if r.trained])
    rejected = [r for r in summary.data.rows if r.outcome == "rejected" and r.flops]
    shades = [value(r, colour) for r in trained] or [0.0]
    spread = min(shades) > 0 and max(shades) > 10 * min(shades)
    norm = LogNorm(min(shades), max(shades)) if spread else Normalize(min(shades), max(shades))
    dots = axes.scatter([value(r, x) for r in trained], [value(r, y) for r in trained], s=20,
                        c=shades[:len(trained)], cmap="viridis", norm=norm,
                        label=f"trained genomes ({len(trained)})")
    bar = figure.colorbar(dots, ax=axes, label=OBJECTIVES[colour].label)
    count_ticks(bar.ax.yaxis, colour, log=spread)
    if rejected:
        axes.scatter([value(r, x) for r in rejected], [value(r, y) for r in rejected], marker="x", s=18,
                     color="0.7", label=f"rejected, not trained ({len(rejected)})")
    front = summary.front
    axes.scatter([value(r, x) for r in front], [value(r, y) for r in front], s=70, facecolors="none",
                 edgecolors="tab:red", linewidths=1.5, zorder=3, label=f"Pareto front ({len(front)})")
    for name, used, axis in ((x, axes.set_xscale, axes.xaxis), (y, axes.set_yscale, axes.yaxis)):
        sizes = [value(r, name) for r in (*trained, *rejected) if value(r, name) > 0]
        log = OBJECTIVES[name].measure is not None and bool(sizes) and max(sizes) > 10 * min(sizes)
        if log:
            used("log")
        count_ticks(axis, name, log)
    return [(value(r, x), value(r, y)) for r in (*trained, *rejected)]


def count_ticks(axis: Any, name: str, log: bool) -> None:
    """Ticks of a counted objective (FLOPs, params) written as every table writes them
    (`nas.units.count_text`: `6.20 M`, not `1e8` under the axis); on a log axis at 1, 2 and 5
    of each decade. Other objectives keep matplotlib's ticks."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if OBJECTIVES[name].cast is not int:
        return
    if log:
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(lambda tick, _: count_text(tick) if tick >= 0 else ""))


def _budget_lines(axes: Any, summary: Summary, names: tuple[str, str],
                  points: list[tuple[float, float]]) -> None:
    """Lines at the study's budget and at the tighter one asked for, on each axis that has one;
    a budget beyond NEAR times the farthest point is named in the legend, not drawn."""
    for index, (name, line) in enumerate(zip(names, (axes.axvline, axes.axhline), strict=True)):
        objective = OBJECTIVES[name]
        if not objective.can_budget:
            continue
        farthest = max((p[index] for p in points), default=0.0)
        study, asked = summary.data.info.get(objective.budget_key), summary.limits.get(name)
        for limit, style, word in ((study, ("tab:blue", "--"), "budget"),
                                   (asked, ("tab:orange", ":"), "asked")):
            if limit is None:
                continue
            label = f"{word} {objective.quantity(limit)}"
            if farthest > 0 and limit * objective.plot_scale > NEAR * farthest:
                axes.plot([], [], color=style[0], linestyle=style[1], linewidth=1,
                          label=f"{label} (beyond the axis)")
            else:
                line(limit * objective.plot_scale, color=style[0], linestyle=style[1],
                     linewidth=1, label=label)


# ----------------------------------------------------------------- labels

# Offsets (points) tried in turn for a label: beside the marker first, then further out.
OFFSETS = tuple((dx * r, dy * r) for r in (1, 2, 3, 4)
                for dx, dy in ((6, 4), (6, -12), (-14, 4), (-14, -12), (-4, 10), (-4, -18)))


def label_front(axes: Any, front: tuple[TrialRow, ...], x: str, y: str,
                points: list[tuple[float, float]]) -> list[Any]:
    """Annotate each front point with its trial number at the first offset whose box overlaps
    no placed label and no marker; a label moved away gets a thin leader line."""
    from matplotlib.text import Text

    renderer = axes.figure.canvas.get_renderer()
    to_pixels = axes.transData.transform
    half = 3.5 * axes.figure.dpi / 72          # a trained genome's dot, in pixels
    markers = [_box(*to_pixels(p), half, half) for p in points]
    placed: list[tuple[float, float, float, float]] = []
    labels = []
    for row in front:
        point = (value(row, x), value(row, y))
        label = None
        for dx, dy in OFFSETS:
            if label is not None:
                label.remove()
            label = axes.annotate(str(row.trial), point, xytext=(dx, dy), textcoords="offset points",
                                  fontsize=7, arrowprops=_leader(dx, dy))
            label.update_positions(renderer)
            box = Text.get_window_extent(label, renderer)     # the text alone, not its leader
            extent = (box.x0, box.y0, box.x1, box.y1)
            if not any(_overlap(extent, other) for other in (*placed, *markers)):
                break
        placed.append(extent)
        labels.append(label)
    return labels


def _leader(dx: float, dy: float) -> dict[str, Any] | None:
    """A thin line back to the point for labels placed beyond the first ring of offsets."""
    return None if abs(dx) <= 14 and abs(dy) <= 18 else {"arrowstyle": "-", "lw": 0.5, "color": "0.4"}


def _box(cx: float, cy: float, half_w: float, half_h: float) -> tuple[float, float, float, float]:
    return (cx - half_w, cy - half_h, cx + half_w, cy + half_h)


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
