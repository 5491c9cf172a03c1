"""Tables that fit the terminal: a column's width, which columns a width keeps, and the note that
names the ones dropped. Shared by a study's trial tables and an ablation's tables, so both drop
columns by the same rule rather than wrap them illegibly.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.text import Text


def fit_columns(keeps: Sequence[int], widths: Sequence[int], width: int) -> list[int]:
    """The indices of the columns kept in `width` (borders and padding counted): the lowest
    `keep` is dropped first, and at least two columns stay."""
    kept = list(range(len(widths)))
    while len(kept) > 2 and sum(widths[i] for i in kept) + 3 * len(kept) + 1 > width:
        kept.remove(min(kept, key=lambda i: keeps[i]))
    return kept


def hidden_note(hidden: Sequence[str]) -> str:
    """The line printed under a table that dropped columns."""
    return f"(columns {', '.join(hidden)} hidden: widen the terminal or use --format csv)"


def cell_width(title: str, cells: Sequence[str], least: int = 0) -> int:
    """A column's width: its title and its widest line of any cell (markup removed)."""
    return max(cell_len(title), least, *(cell_len(line) for text in cells
                                         for line in Text.from_markup(text).plain.splitlines()))
