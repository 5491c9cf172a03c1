"""Terminal output: rich tables, field lists and progress bars. Only the CLI imports this."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def print_fields(fields: dict[str, str]) -> None:
    """Print `name  value` lines with aligned names."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan")
    table.add_column()
    for name, value in fields.items():
        table.add_row(name, value)
    console.print(table)
