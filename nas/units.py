"""Quantities, durations, FLOPs and percentages: parsed from text and printed one way everywhere.

The CLI, the report and space files all read budgets (`0.2G`, `50K`) and timeouts (`30m`)
through `parse_quantity` / `parse_duration`, and print FLOPs and accuracies through
`flops_text` / `percent`, so `nas train`, `nas count` and `nas report` agree digit for digit.
Pure Python: no torch, no rich.
"""

from __future__ import annotations

import math

from nas.errors import SpaceError

_SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_SECONDS = {"s": 1, "m": 60, "h": 3600}
_UNITS = (("G", 1e9), ("M", 1e6), ("K", 1e3))
_MILLISECONDS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


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
    """'30m' -> 1800.0, '2h', '90s', '600' (seconds); `what` names the flag or key in errors."""
    return _parse_time(text, what, _SECONDS, "s", "positive duration such as 30m, 2h or 90s")


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


def quantity_text(value: float) -> str:
    """`200 M`, `50 K`, `1.5 G`: the largest unit the value reaches, as a budget is typed."""
    for unit, scale in _UNITS:
        if value >= scale:
            return f"{value / scale:g} {unit}"
    return f"{value:g}"


def flops_text(flops: int, exact: bool = False) -> str:
    """`0.180 G` (the largest unit that keeps the figure >= 0.1); with `exact`, every digit of
    that unit and the count, `nas report`'s form: `0.180348032 G (180,348,032)`."""
    for unit, scale in _UNITS:
        if flops >= 0.1 * scale:
            figure = f"{flops / scale:.12g}" if exact else f"{flops / scale:.3f}"
            return f"{figure} {unit} ({flops:,})" if exact else f"{figure} {unit}"
    return f"{flops:,}"


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
