"""Terminal output: rich field lists and progress bars. Only the CLI imports this.

Progress goes to stderr so that `--json` output on stdout stays one clean object.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

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

console = Console()
err_console = Console(stderr=True)


def print_fields(fields: dict[str, str | Text]) -> None:
    """Print `name  value` lines with aligned names. A str value is printed as it is (a study
    named `x[/]y` is no markup); style a value by passing a rich Text."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan")
    table.add_column()
    for name, value in fields.items():
        table.add_row(Text(name), value if isinstance(value, Text) else Text(value))
    console.print(table)


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
            self.update(key, stats.epoch, stats.epochs, info, description=label)
        return callback

    def log(self, message: str) -> None:
        if not self.quiet:
            err_console.print(message)
