"""Quantities, durations, FLOPs and percentages: parsed from text and printed one way everywhere.

The CLI, the report and space files all read budgets (`0.2G`, `50K`) and timeouts (`30m`)
through `parse_quantity` / `parse_duration`, and print FLOPs, params and budgets through
`count_text` and accuracies through `percent`, so every command, table, plot and study name
writes a number one way (`0.200 G`, `95.6 K (95,552)`).
Pure Python: no torch, no rich.
"""

from __future__ import annotations

import math
import re

from nas.errors import SpaceError

_SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_SECONDS = {"s": 1, "m": 60, "h": 3600}
_UNITS = (("G", 1e9), ("M", 1e6), ("K", 1e3))
_MILLISECONDS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([hms])\s*")
_DURATION_EXAMPLE = "positive duration such as 30m, 2h, 90s or 4m30s"


def parse_quantity(text: str, what: str) -> float:
    """'0.2G' -> 2e8, '50K' -> 5e4, '1.5e6' -> 1.5e6; `what` names the flag or key in errors."""
    cleaned = str(text).strip().lower()
    suffix = cleaned[-1:] if cleaned[-1:] in _SUFFIXES else ""
    number = cleaned[: len(cleaned) - len(suffix)]
    try:
        value = float(number) * _SUFFIXES[suffix]
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise SpaceError(f"{what} must be a positive number with an optional K/M/G suffix "
                         f"(e.g. 0.2G or 50K), got {text!r}")
    return value


def parse_duration(text: str, what: str) -> float:
    """'30m' -> 1800.0, '2h', '90s', '600' (seconds), and parts from hours down, each unit once:
    '4m30s' -> 270.0, '1h 30m' (as durations print: '9m 31s'); `what` names the flag or key in
    errors."""
    cleaned = str(text).strip().lower()
    parts = _DURATION_PART.findall(cleaned)
    if (len(parts) > 1 and "".join(u for _, u in parts) in ("hm", "hs", "ms", "hms")
            and _DURATION_PART.sub("", cleaned) == ""):
        value = sum(float(number) * _SECONDS[unit] for number, unit in parts)
        if 0 < value < float("inf"):
            return value
    return _parse_time(text, what, _SECONDS, "s", _DURATION_EXAMPLE)


def parse_milliseconds(text: str, what: str) -> float:
    """'2ms' -> 2.0, '500us' -> 0.5, '0.01s' -> 10.0, '3' (milliseconds); `what` names the flag
    or key in errors."""
    return _parse_time(text, what, _MILLISECONDS, "ms", "positive time such as 2ms, 500us or 0.01s")


def _parse_time(text: str, what: str, units: dict[str, float], default: str, example: str) -> float:
    """A number with one of `units`' suffixes (the longest that matches; none = `default`)."""
    cleaned = str(text).strip().lower()
    unit = next((u for u in sorted(units, key=len, reverse=True) if cleaned.endswith(u)), default)
    number = cleaned.removesuffix(unit) if cleaned.endswith(unit) else cleaned
    try:
        value = float(number) * units[unit]
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise SpaceError(f"{what} must be a {example}, got {text!r}")
    return value


def ms_text(value: float | None) -> str:
    """`1.23 ms` (three significant figures), or `-` when there is no value."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.3g} ms"


def count_text(value: float, exact: bool = False) -> str:
    """The one form of a count (FLOPs, params, bytes, budgets): three significant figures in the
    largest unit that keeps the figure >= 0.1, as budgets are written (`95.6 K`, `0.135 M`,
    `1.30 M`, `0.200 G`), a count under 1,000 whole; with `exact`, every digit too:
    `95.6 K (95,552)`."""
    unit, scale = _unit(value)
    if not unit:
        return f"{value:,.0f}"
    figure = f"{value / scale:#.3g}".rstrip(".")
    return f"{figure} {unit} ({value:,.0f})" if exact else f"{figure} {unit}"




def label_text(value: float) -> str:
    """A budget in a study name: `count_text`'s unit, every digit, no space (`0.2G`, `40K`), so
    `--budget-flops 0.2G` and `200M` name the same study."""
    unit, scale = _unit(value)
    return f"{value / scale:g}{unit}"


def _unit(value: float) -> tuple[str, float]:
    """('G', 1e9) for 2e8: the largest unit that keeps the figure >= 0.1; ('', 1) under 1,000."""
    if value < 1000:
        return "", 1.0
    return next((u, s) for u, s in _UNITS if value >= 0.1 * s)


def plural(count: object, word: str, many: str | None = None) -> str:
    """`1 epoch`, `2 epochs`, `1,000 genomes`; `many` for an irregular plural; a count that is
    not an int (missing from an old study) is written `? epochs`."""
    if not isinstance(count, int):
        return f"? {many or word + 's'}"
    return f"{count:,} {word if count == 1 else many or word + 's'}"


def percent(value: float | None) -> str:
    """`79.2 %`, or `-` when there is no value."""
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.1f} %"


def duration_text(seconds: float) -> str:
    """`1h 02m`, `3m 05s` or `12.3 s`."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"
    if seconds >= 60:
        return f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    return f"{seconds:.1f} s"
