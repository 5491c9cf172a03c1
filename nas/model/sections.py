"""The generic TOML section reader: a table becomes a frozen dataclass, checked field by field.

Types come from the dataclass's hints (ints are not bools, floats accept ints, lists become
tuples, nested dataclasses are nested tables); unknown keys suggest the nearest known one.
After construction, a section's own `check(where)` states its ranges and choices, so each
rule lives beside the field it guards (see `nas.model.recipe`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from nas.errors import SpaceError, nearest

T = TypeVar("T")


def parse_section(cls: type[T], table: Any, where: str) -> T:
    """Build dataclass `cls` from a TOML table; `where` is 'file: section' for errors."""
    if not isinstance(table, dict):
        raise SpaceError(f"{where} must be a table, got {type(table).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key not in known:
            raise SpaceError(f"{where}.{key} is not a known key{nearest(key, known)}")
        values[key] = _coerce(hints[key], raw, f"{where}.{key}")
    section = cls(**values)
    check = getattr(section, "check", None)
    if callable(check):
        check(where)
    return section


def _coerce(hint: Any, raw: Any, where: str) -> Any:
    """Check `raw` against a field's type hint and convert lists to tuples."""
    if dataclasses.is_dataclass(hint):
        return parse_section(hint, raw, where)
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(options[0], raw, where)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(raw, list):
            raise SpaceError(f"{where} must be a list, got {raw!r}")
        item = args[0]
        if args[-1] is not Ellipsis and len(raw) != len(args):
            raise SpaceError(f"{where} must have {len(args)} items, got {len(raw)}")
        return tuple(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(raw))
    return _scalar(hint, raw, where)


def _scalar(hint: Any, raw: Any, where: str) -> Any:
    """Check one scalar: ints are not bools, floats accept ints, strings stay strings."""
    if hint is float and isinstance(raw, int | float) and not isinstance(raw, bool):
        if not 0 <= raw < float("inf"):
            raise SpaceError(f"{where} must be >= 0, got {raw!r}")
        return float(raw)
    if hint is int and isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 0:
            raise SpaceError(f"{where} must be >= 0, got {raw!r}")
        return raw
    if hint is str and isinstance(raw, str):
        return raw
    if hint is bool and isinstance(raw, bool):
        return raw
    raise SpaceError(f"{where} must be {hint.__name__}, got {raw!r}")
