"""The generic TOML section reader: a table becomes a frozen dataclass, checked field by field.

Types come from the dataclass's hints (ints are not bools, floats accept ints, lists become
tuples, nested dataclasses are nested tables); unknown keys suggest the nearest known one.
After construction, a section's own `check(where)` states its ranges and choices, so each
rule lives beside the field it guards (see `nas.model.recipe`). A record that checks itself when
made (a `LABEL` class attribute, e.g. `nas.model.space.ModelSettings`) is refused naming `where`.
Whole documents are bounded first (`check_document`): strings of at most MAX_TEXT characters,
tables and arrays nested at most MAX_DEPTH deep.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tomllib
import types
import typing
from typing import Any, TypeVar

from nas.errors import SpaceError, nearest

T = TypeVar("T")
MAX_TEXT = 1000         # characters of any name or string, in files and on the command line
MAX_DEPTH = 16          # tables and arrays nested in a file (an ablation arm's deepest value: 7)


def parse_section(cls: type[T], table: Any, where: str) -> T:
    """Build dataclass `cls` from a TOML table; `where` is 'file: section' for errors."""
    if not isinstance(table, dict):
        raise SpaceError(f"{where} must be a table, got {type(table).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key not in known:
            raise SpaceError(f"{where}.{key} is not a known key{nearest(key, known)}")
        values[key] = _coerce(hints[key], raw, f"{where}.{key}")
    section = _made(cls, values, where)
    check = getattr(section, "check", None)
    if callable(check):
        check(where)
    return section


def _made(cls: type[T], values: dict[str, Any], where: str) -> T:
    """`cls(**values)`; a record that checks itself when made opens its errors with its LABEL,
    which is replaced by `where` (the file and section)."""
    try:
        return cls(**values)
    except SpaceError as error:
        label = getattr(cls, "LABEL", None)
        if label is None or not str(error).startswith(label):
            raise
        raise SpaceError(where + str(error).removeprefix(label)) from None


def check_fields(record: Any, where: str) -> None:
    """Every field of a dataclass record has its hinted type, by the rules a TOML value is read
    with: for records made in code or from a checkpoint, whose values no reader has checked."""
    hints = _hints(type(record))
    for item in dataclasses.fields(record):
        _coerce(hints[item.name], getattr(record, item.name), f"{where}.{item.name}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_text(value: str, where: str) -> str:
    """A name or string of at most MAX_TEXT characters."""
    if len(value) > MAX_TEXT:
        raise SpaceError(f"{where} must be at most {MAX_TEXT} characters, got {len(value)}")
    return value


def read_toml(text: str, where: str) -> dict[str, Any]:
    """A TOML document within bounds (check_document); every mistake is one SpaceError."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpaceError(f"{where}: TOML syntax error: {error}") from None
    except RecursionError:
        raise SpaceError(f"{where}: TOML syntax error: arrays or tables nested too deep") from None
    check_document(document, where)
    return document


def check_document(document: dict[str, Any], where: str) -> None:
    """A parsed TOML file within bounds: no string longer than MAX_TEXT characters, no table or
    array nested deeper than MAX_DEPTH (our readers, and json, recurse on nesting)."""
    pending: list[tuple[str, Any, int]] = [(where, document, 0)]
    while pending:
        path, value, depth = pending.pop()
        if isinstance(value, str):
            check_text(value, path)
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise SpaceError(f"{where}: tables or arrays nested more than {MAX_DEPTH} deep")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            pending += [(_child(path, key), item, depth + 1) for key, item in items]


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
        if not math.isfinite(raw):
            raise SpaceError(f"{where} must be a finite number, got {raw!r}")
        if raw < 0:
            raise SpaceError(f"{where} must be >= 0, got {raw!r}")
        return float(raw)
    if hint is int and isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 0:
            raise SpaceError(f"{where} must be >= 0, got {raw!r}")
        return raw
    if hint is str and isinstance(raw, str):
        return check_text(raw, where)
    if hint is bool and isinstance(raw, bool):
        return raw
    raise SpaceError(f"{where} must be {hint.__name__}, got {raw!r}")


def _child(path: str, key: str | int) -> str:
    """`file: train.lr`, `file: stage[2]` (TOML's arrays count from 1 in our messages)."""
    if isinstance(key, int):
        return f"{path}[{key + 1}]"
    check_text(key, f"{path}: a key")
    return f"{path}.{key}" if ": " in path else f"{path}: {key}"
