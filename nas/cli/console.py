"""Terminal output: rich field lists and progress bars. Only the CLI imports this.

Progress goes to stderr so that `--json` output on stdout stays one clean object. Written to a
file or a pipe, lines are whole: rich would otherwise cut them at 80 columns ("te…").
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from nas.units import percent

PIPE_WIDTH = 1000       # the width of a stream that is no terminal: no line is cut or wrapped


def stream_width(stream: Any) -> int | None:
    """None (the terminal's width, or $COLUMNS) on a terminal; PIPE_WIDTH on a file or a pipe."""
    if os.environ.get("COLUMNS", "").isdigit() or getattr(stream, "isatty", lambda: False)():
        return None
    return PIPE_WIDTH


console = Console(width=stream_width(sys.stdout))
err_console = Console(stderr=True, width=stream_width(sys.stderr))


def print_fields(fields: dict[str, str | Text]) -> None:
    """Print `name  value` lines with aligned names; a long value wraps under itself on a
    terminal, and no line ends in padding. A str value is printed as it is (a study named
    `x[/]y` is no markup); style a value by passing a rich Text."""
    width = max((cell_len(name) for name in fields), default=0)
    for name, value in fields.items():
        row = Table.grid(padding=(0, 2))        # one grid a line: pads to no other line's width
        row.add_column(style="bold cyan", min_width=width)
        row.add_column()
        row.add_row(Text(name), value if isinstance(value, Text) else Text(value))
        console.print(row)


class ProgressView:
    """Rich progress bars for data preparation, epochs and trials; silent when `quiet`."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._tasks: dict[str, TaskID] = {}
        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=err_console, disable=quiet, transient=False,
        )

    def __enter__(self) -> ProgressView:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._tasks:                 # a bar that never showed leaves no blank line
            self._bar.stop()

    def update(self, key: str, done: int, total: int, info: str = "",
               description: str | None = None) -> None:
        """Create or advance the bar named `key`."""
        if key not in self._tasks:
            if not self._tasks:
                self._bar.start()
            self._tasks[key] = self._bar.add_task(description or key, total=total, info=info)
        self._bar.update(self._tasks[key], completed=done, total=total, info=info,
                         **({"description": description} if description else {}))

    def data(self, what: str, done: int, total: int) -> None:
        """The `progress(what, done, total)` callback the data layer calls."""
        self.update(what, done, total)

    def epochs(self, label: str) -> Callable[[Any], None]:
        """An epoch callback that shows loss and validation accuracy under `label`."""
        key = f"epochs:{label}"

        def callback(stats: Any) -> None:
            info = f"loss {stats.loss:.4f}  val {percent(stats.val_accuracy)}"
            if stats.perfect and stats.epoch < stats.epochs:
                info += f"  (stopped: every validation image right after epoch {stats.epoch})"
            self.update(key, stats.epoch, stats.epochs, info, description=label)
        return callback

    def log(self, message: str) -> None:
        if not self.quiet:
            err_console.print(message)
