"""The output formats of `nas report` and `nas ablate`: `FORMATS`, one record per format.

Both commands' `--format` choices and help read this table. A format's rows are written by the
renderer's function named by `Format.writer` (`to_markdown`, `to_csv`, `to_json` of
nas.study.report.tables for a study's trials), so a new format is one row plus that function. Pure
Python, so that `nas --help` imports no renderer.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_FORMAT = "table"


@dataclass(frozen=True)
class Format:
    """One format: its name, a few words for --help, and what it produces: `terminal` (a rich
    table the CLI's console draws), `text` (a string written to stdout) or `json` (one document)."""

    name: str
    help: str
    kind: str

    @property
    def writer(self) -> str:
        """The renderer function that writes it (text and json formats)."""
        return f"to_{self.name}"


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("table", "overview and a terminal table", "terminal"),
    Format("markdown", "a GitHub/pandoc pipe table", "text"),
    Format("csv", "raw values, one row per trial", "text"),
    Format("json", "one JSON document", "json"),
)}


def format_help(what: str) -> str:
    """--help of --format: 'table (default: ...), markdown, csv or json' and what each writes."""
    names = [f"{f.name} ({'default: ' if f.name == DEFAULT_FORMAT else ''}{f.help})"
             for f in FORMATS.values()]
    return f"{', '.join(names[:-1])} or {names[-1]}: {what}"
