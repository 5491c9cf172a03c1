"""Ablation files: named groups of arms, each arm a genome and recipe overrides of the space.

    name = "seed-report"
    space = "seed.toml"
    data = "digits"
    seeds = [0, 1, 2]

    [[group]]
    name = "distillation"
    baseline = "feature"               # default: the group's first arm

    [[group.arm]]
    name = "feature"
    genome = "[2,8,6,1,0] [2,16,4,1,0]"
    attention = "eca"

    [[group.arm]]
    name = "CE only"
    genome = "[2,8,6,1,0] [2,16,4,1,0]"
    attention = "eca"
    distill.loss = "none"              # any key of [train], [distill] or [teacher], dotted
    image_size = "64x64"

A file with top-level `[[arm]]` tables is one group named after the file. Recipe keys at the top
level (`train.augment.views = []`, or a `[distill]` table) are every arm's, laid over the space
before the arms' own. Overrides are read by the space files' own section reader
(`nas.model.overrides`), so an unknown key or a wrong value is refused with the same file, key,
rule and nearest name.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from nas.errors import GenomeError, SpaceError, nearest
from nas.model.genome import Genome
from nas.model.overrides import SECTIONS, dotted_keys, laid_over, nested_overrides, override_space
from nas.model.recipe import MAX_EPOCHS, MAX_SEED, teacher_section
from nas.model.sections import read_toml
from nas.model.space import Space, check_keys, load_space, locate
from nas.study.names import ABLATION_PREFIX

KEYS = ("name", "description", "space", "data", "image_size", "epochs", "seeds", "arm", "group")
GROUP_KEYS = ("name", "description", "baseline", "genome", "attention", "arm")
ARM_KEYS = ("name", "genome", "attention", "image_size")


@dataclass(frozen=True)
class Arm:
    """One arm: a genome (rounded to the space's divisor) trained with its own recipe."""

    name: str
    genome: Genome
    space: Space                          # the ablation's space with this arm's overrides
    image_size: str | None = None         # None: the ablation's (file or --image-size)
    overrides: tuple[tuple[str, Any], ...] = ()    # (dotted key, value) as written

    def identity(self, size: str | None) -> dict[str, Any]:
        """Everything that decides what this arm trains, at input size `size`: a cross-entropy
        arm's recipe holds the loss alone (`Space.recipe`)."""
        space = self.space
        return {"genome": self.genome.notation, "attention": self.genome.attention,
                "image_size": self.image_size or size, "model": space.model.key(),
                "stages": [asdict(o) for o in space.overrides],
                "input": str(space.input) if space.input else None, **space.recipe()}

    def key(self, size: str | None, data: str) -> str:
        """A short hash of the arm's identity and the data: the runs' and the claims' key."""
        return _hash({"arm": self.identity(size), "data": data})

    def former_key(self, size: str | None, data: str, distill: dict[str, Any]) -> str:
        """The key a cross-entropy arm had before CE arms were keyed on the loss alone (every
        section whole), with `distill` (a stored run's) as its distill section: runs stored
        then are found under it."""
        identity = {**self.identity(size), "distill": distill, "teacher": teacher_section(self.space.teacher)}
        return _hash({"arm": identity, "data": data})

    @property
    def changes(self) -> str:
        """The overrides as `key=value` text, or '' for none."""
        return ", ".join(f"{key}={_value_text(value)}" for key, value in self.overrides)


@dataclass(frozen=True)
class Group:
    name: str
    baseline: str
    arms: tuple[Arm, ...]

    @property
    def base(self) -> Arm:
        return next(arm for arm in self.arms if arm.name == self.baseline)


@dataclass(frozen=True)
class Ablation:
    path: str
    name: str
    space: str
    data: str
    image_size: str | None
    seeds: tuple[int, ...]
    groups: tuple[Group, ...]

    @property
    def study(self) -> str:
        return f"{ABLATION_PREFIX}{self.name}"

    @property
    def arms(self) -> tuple[Arm, ...]:
        return tuple(arm for group in self.groups for arm in group.arms)

    def only(self, names: list[str]) -> Ablation:
        """The ablation with only the named groups; an unknown name is a SpaceError."""
        known = [g.name for g in self.groups]
        for name in names:
            if name not in known:
                raise SpaceError(f"{self.path}: no group {name!r}{nearest(name, known)}; "
                                 f"groups: {known}")
        return replace(self, groups=tuple(g for g in self.groups if g.name in names))


def load_ablation(path: str | Path, *, space: str | None = None, epochs: int | None = None,
                  seeds: tuple[int, ...] | None = None, train: dict[str, int] | None = None,
                  overrides: dict[str, Any] | None = None) -> Ablation:
    """Read and validate an ablation file (a path or a bundled name such as
    `ablations/seed_report.toml`); `space`, `epochs` and `seeds` replace the file's, `train`
    the base space's [train] keys (the data subset flags), and `overrides` (dotted keys, `nas
    --set`) any recipe key of the base space, after the file's own top-level recipe keys; an
    arm's own keys are laid over them all."""
    where, found = locate(path, "ablation")
    try:
        text = found.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpaceError(f"{where}: cannot read: {error}") from None
    data = read_toml(text, where)
    recipe = nested_overrides(data, where, own_keys=KEYS)
    seeds = seeds if seeds is not None else _seeds(data.get("seeds", [0]), where)
    if not seeds:
        raise SpaceError(f"{where}: seeds must not be empty")
    space_path = space or _text(data, "space", "seed.toml", where)
    base = laid_over(load_space(space_path), recipe, SECTIONS, where)
    epochs = epochs if epochs is not None else _epochs(data.get("epochs"), where)
    if epochs is not None:
        train = {**(train or {}), "epochs": epochs}
    if train:
        base = replace(base, train=replace(base.train, **train))
        base.train.check(f"{where}: [train]")
    if overrides:
        base = override_space(base, overrides, "--set")
    size = data.get("image_size")
    if size is not None:
        _text(data, "image_size", "", where)
    groups = _groups(data, base, size, where)
    return Ablation(where, _text(data, "name", Path(str(path)).stem, where), space_path,
                    _text(data, "data", "digits", where), size, tuple(seeds), groups)


def _hash(value: dict[str, Any]) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _seeds(seeds: Any, where: str) -> tuple[int, ...]:
    if (not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED
                       for s in seeds)):
        raise SpaceError(f"{where}: seeds must be a non-empty list of distinct integers >= 0, "
                         f"got {seeds!r}")
    return tuple(seeds)


def _epochs(epochs: Any, where: str) -> int | None:
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool)
                               or not 1 <= epochs <= MAX_EPOCHS):
        raise SpaceError(f"{where}: epochs must be an integer from 1 to {MAX_EPOCHS}, got "
                         f"{str(epochs)[:30]}")
    return epochs


def _groups(data: dict[str, Any], base: Space, size: str | None, where: str) -> tuple[Group, ...]:
    """`[[group]]` tables, or the top-level `[[arm]]` tables as one group."""
    if "group" in data and "arm" in data:
        raise SpaceError(f"{where}: use either top-level [[arm]] tables or [[group]] tables, "
                         f"not both")
    if "group" not in data:
        table = {"name": data.get("name", Path(where).stem), "arm": data.get("arm")}
        return (_group(table, base, size, where, where),)
    tables = data["group"]
    if not isinstance(tables, list) or not tables:
        raise SpaceError(f"{where}: group must be a list of [[group]] tables")
    groups = tuple(_group(t, base, size, where, f"{where}: group[{i}]")
                   for i, t in enumerate(tables, 1))
    _distinct([g.name for g in groups], f"{where}: group names")
    return groups


def _group(table: Any, base: Space, size: str | None, file: str, where: str) -> Group:
    if not isinstance(table, dict):
        raise SpaceError(f"{where} must be a table, got {table!r}")
    check_keys(table, GROUP_KEYS, where)
    arms = table.get("arm")
    if not isinstance(arms, list) or not arms:
        raise SpaceError(f"{where}: at least one [[arm]] table is required")
    name = _text(table, "name", "", where)
    defaults = {k: table[k] for k in ("genome", "attention") if k in table}
    parsed = tuple(_arm({**defaults, **arm} if isinstance(arm, dict) else arm, base,
                        f"{where}: arm[{i}]") for i, arm in enumerate(arms, 1))
    names = [arm.name for arm in parsed]
    _distinct(names, f"{where}: arm names")
    baseline = _text(table, "baseline", parsed[0].name, where)
    if baseline not in names:
        raise SpaceError(f"{where}: baseline {baseline!r} is not an arm of group {name!r}"
                         f"{nearest(baseline, names)}; arms: {names}")
    group = Group(name, baseline, parsed)
    _no_copies(group, size, where)
    return group


def _no_copies(group: Group, size: str | None, where: str) -> None:
    """An arm that trains exactly what the baseline trains compares nothing."""
    base = group.base
    for arm in group.arms:
        if arm is not base and arm.identity(size) == base.identity(size):
            raise SpaceError(f"{where}: arm {arm.name!r} is identical to the baseline "
                             f"{base.name!r} (same genome, attention, image size and recipe)")


def _arm(table: Any, base: Space, where: str) -> Arm:
    if not isinstance(table, dict):
        raise SpaceError(f"{where} must be a table, got {table!r}")
    nested = nested_overrides(table, where, own_keys=ARM_KEYS)
    try:
        genome = Genome.parse(_text(table, "genome", "", where), table.get("attention"))
    except GenomeError as error:
        raise SpaceError(f"{where}: {error}") from None
    name = _text(table, "name", str(genome), where)
    size = _text(table, "image_size", "", where) if "image_size" in table else None
    space = laid_over(base, nested, SECTIONS, where)
    return Arm(name, genome.rounded(space.model.divisor), space, size,
               tuple(sorted(_flatten(nested))))


def _flatten(nested: dict[str, Any]) -> list[tuple[str, Any]]:
    """(dotted key, value) pairs, lists as tuples: hashable, for an arm's keys."""
    return [(key, tuple(value) if isinstance(value, list) else value)
            for key, value in dotted_keys(nested).items()]


def train_command(arm: Arm, data: str, size: str | None, seed: int) -> str:
    """The `nas train` line that retrains this arm for `seed`: its genome, the space file, the
    data and input size, and a --set for every recipe key where the arm differs from the file
    (its own keys, the ablation's epochs and the command line's --set alike)."""
    base = load_space(arm.space.path)
    sets = []
    for section in SECTIONS:
        was = dict(_flatten(asdict(getattr(base, section))))
        for key, value in _flatten(asdict(getattr(arm.space, section))):
            if key not in was or was[key] != value:
                sets += ["--set", f"{section}.{key}={_set_text(value)}"]
    return shlex.join(["nas", "train", arm.genome.notation, "--attention", arm.genome.attention,
                       "--space", arm.space.path, "--data", data,
                       *(["--image-size", size] if size else []), *sets, "--seed", str(seed)])


def _set_text(value: Any) -> str:
    """A value as `--set` reads it back: TOML for numbers, booleans and lists; plain text for a
    string that TOML would not read as something else."""
    if isinstance(value, str):
        try:
            tomllib.loads(f"value = {value}")
        except tomllib.TOMLDecodeError:
            return value
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def _value_text(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def _distinct(names: list[str], where: str) -> None:
    if len(set(names)) != len(names):
        raise SpaceError(f"{where} must be distinct, got {names}")


def _text(table: dict[str, Any], key: str, default: str, where: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise SpaceError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value
