"""Recipe overrides: dotted keys (`distill.loss = "none"`) laid over a space's sections.

Each section is read again by the space file's own reader (`nas.model.sections.parse_section`),
so an unknown key or a wrong value is refused with the same rule and nearest name as in a space
file. Used by `nas --set`, a study's stored recipe (`nas export --retrain`) and every arm of an
ablation file. Pure Python.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

from nas.errors import SpaceError, nearest
from nas.model.recipe import DistillConfig, TeacherConfig, TrainConfig
from nas.model.sections import parse_section
from nas.model.space import Space

SECTIONS: dict[str, type] = {"train": TrainConfig, "distill": DistillConfig, "teacher": TeacherConfig}


def override_space(base: Space, table: dict[str, Any], where: str,
                   sections: dict[str, type] = SECTIONS, own_keys: Sequence[str] = ()) -> Space:
    """`base` with dotted recipe keys laid over it (`{"distill.loss": "none"}`); `own_keys` are
    the caller's own keys of the table (an ablation arm's name, genome, ...), skipped here."""
    return laid_over(base, nested_overrides(table, where, sections, own_keys), sections, where)


def laid_over(base: Space, nested: dict[str, Any], sections: dict[str, type], where: str) -> Space:
    """`base` with nested overrides ({"distill": {"loss": "none"}}) read into its sections."""
    return replace(base, **{section: parse_section(cls, _merged(getattr(base, section),
                                                                nested.get(section)),
                                                   f"{where}: {section}")
                            for section, cls in sections.items() if section in nested})


def nested_overrides(table: dict[str, Any], where: str, sections: dict[str, type] = SECTIONS,
                     own_keys: Sequence[str] = ()) -> dict[str, Any]:
    """The recipe keys of a table as nested dicts: `distill.loss = "none"` written bare (TOML
    nests it) or quoted (one dotted key) gives {"distill": {"loss": "none"}}."""
    nested: dict[str, Any] = {}
    for key, value in table.items():
        if key in own_keys:
            continue
        path = key.split(".")
        if path[0] not in sections:
            raise SpaceError(f"{where}: {key} is not a known key"
                             f"{nearest(path[0], (*own_keys, *sections))}; recipe keys are "
                             f"written like distill.loss or train.epochs")
        if len(path) == 1 and not isinstance(value, dict):
            raise SpaceError(f"{where}: {key} must be a table of keys, got {value!r}")
        _put(nested, path, value)
    return nested


def dotted_keys(nested: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}, the inverse of `nested_overrides`; lists, scalars and
    empty tables are leaves."""
    if not isinstance(nested, dict) or (not nested and prefix):
        return {prefix: nested}
    flat: dict[str, Any] = {}
    for key, item in nested.items():
        flat.update(dotted_keys(item, f"{prefix}.{key}" if prefix else key))
    return flat


def _put(nested: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        nested = nested.setdefault(part, {})
    last = path[-1]
    if isinstance(value, dict) and isinstance(nested.get(last), dict):
        for key, inner in value.items():
            _put(nested[last], [key], inner)
    else:
        nested[last] = value


def _merged(section: Any, override: dict[str, Any] | None) -> dict[str, Any]:
    """The section's values as TOML would hold them (lists; an unset optional key, None, left
    out), with the override laid over."""
    merged = {key: value for key, value in json.loads(json.dumps(asdict(section))).items()
              if value is not None}
    _put({"": merged}, [""], override or {})
    return merged
