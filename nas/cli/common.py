"""What every subcommand shares: space lookup, number formats, JSON output, flags."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

from nas.errors import SpaceError
from nas.model.objectives import OBJECTIVES
from nas.model.recipe import check_seed
from nas.model.space import InputShape, Space, default_space, load_space

STORAGE_HELP = "database URL (default: $NAS_STORAGE, else sqlite:///studies.db)"
JSON_HELP = "print one JSON object on stdout instead of the text"
SPACE_HELP = "search space: a bundled name (seed.toml, photos.toml, cifar10.toml, tiny.toml) or a path"


def resolve_space(path: str | None, source: str = "digits") -> Space:
    """Load a space file: a path, or the name of a bundled space (`seed.toml`, `tiny.toml`, ...);
    None: the default for the data (seed.toml on digits, photos.toml on photos)."""
    return load_space(path or default_space(source))


def emit_json(payload: dict[str, Any]) -> None:
    """One JSON object on stdout and nothing else."""
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def parsed(text: str | None, flag: str, parse: Callable[[str, str], float],
           fallback: float | None = None) -> float | None:
    """`parse(text, flag)` for a flag that may be unset; then `fallback` (the space file's value,
    already parsed and checked when the file was read). A flag given empty is parsed, so
    refused, never taken for unset."""
    return parse(text, flag) if text is not None else fallback


def input_arg(text: str) -> InputShape:
    try:
        return InputShape.parse(text)
    except SpaceError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def classes_arg(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100_000:
        raise argparse.ArgumentTypeError(f"classes must be an integer from 1 to 100000, got {text!r}")
    return int(text)


def threads_arg(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1024:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to 1024, got {text!r}")
    return int(text)


def data_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by every command that trains: space, data, size, storage, device."""
    p.add_argument("--space", default=None,
                   help=SPACE_HELP + " (default: seed.toml on digits, photos.toml on photos)")
    p.add_argument("--data", default="digits",
                   help="digits (default), an ImageFolder path, or a torchvision set name")
    p.add_argument("--image-size", default=None, help="HxW (default: the space's, else the data's)")
    p.add_argument("--storage", default=None, help=STORAGE_HELP)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where to train; auto: cuda when available, else cpu")
    p.add_argument("--threads", type=threads_arg, default=None, help="CPU threads for torch (default 1)")
    p.add_argument("--train-per-class", type=int, default=None, metavar="N",
                   help="train on a stratified subset of N images per class (default: the space's"
                        " [train] train_per_class, 0 = all)")
    p.add_argument("--val-per-class", type=int, default=None, metavar="N",
                   help="validation images per class (default: the space's [train] val_per_class,"
                        " 0 = val_fraction of each class)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    set_flag(p)


def budget_flags(p: argparse.ArgumentParser, tighter: bool = False) -> None:
    """--budget-NAME for every objective that can be a budget (`nas search`; `nas report`'s
    tighter ones)."""
    for o in OBJECTIVES.values():
        if o.can_budget:
            p.add_argument(o.flag, default=None, dest=o.budget_key,
                           help=f"a tighter {o.title} budget, e.g. {o.example.split(' ')[0]}"
                           if tighter else f"e.g. {o.example}")


def budget_texts(args: argparse.Namespace) -> dict[str, str | None]:
    """The --budget-NAME flags as given, by objective name (None: not given)."""
    return {o.name: getattr(args, o.budget_key) for o in OBJECTIVES.values() if o.can_budget}


# ----------------------------------------------------------------- --set KEY=VALUE

SET_HELP = ("override a recipe key of the space file, dotted as in ablation files, e.g. "
            "train.lr=1e-3, distill.loss=none, train.augment.views='[\"hflip\"]' (repeatable; "
            "the value is read as TOML, else as text)")
SET_SECTIONS = ("train", "distill", "teacher", "search")


class Setting(NamedTuple):
    """One command-line override: a dotted recipe key, its value, and the flag that gave it."""

    key: str
    value: Any
    flag: str = "--set"


def set_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", type=set_arg, default=None, metavar="KEY=VALUE",
                   help=SET_HELP)


def set_arg(text: str) -> Setting:
    """`train.lr=1e-3` -> Setting("train.lr", 0.001): numbers, true/false and lists as TOML reads
    them; anything else (`none`, a genome) as text. Which keys exist is checked by `with_sets`."""
    key, equals, raw = text.partition("=")
    key = key.strip()
    if not equals or "." not in key or not all(key.split(".")):
        raise argparse.ArgumentTypeError(f"must be a dotted recipe key and a value such as "
                                         f"train.lr=1e-3, got {text[:60]!r}")
    return Setting(key, toml_value(raw.strip()))


def toml_value(raw: str) -> Any:
    """The value as TOML reads it, else (not TOML, or nested too deep for its reader) the text."""
    import tomllib

    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except (tomllib.TOMLDecodeError, RecursionError):
        return raw


def with_sets(space: Space, settings: list[Any] | None) -> Space:
    """The space with each override laid over it in order (the last of a key wins), read by the
    space file's own section reader: an unknown key or a bad value is one line naming the flag."""
    from nas.model.overrides import override_space
    from nas.model.recipe import DistillConfig, SearchConfig, TeacherConfig, TrainConfig

    sections = dict(zip(SET_SECTIONS, (TrainConfig, DistillConfig, TeacherConfig, SearchConfig),
                        strict=True))
    for item in settings or ():
        setting = Setting(*item)         # --jobs workers get them back from JSON as lists
        space = override_space(space, {setting.key: setting.value}, setting.flag, sections)
    return space


def subset_flags(args: argparse.Namespace) -> dict[str, int]:
    """--train-per-class and --val-per-class as [train] keys, the ones given."""
    return {key: value for key in ("train_per_class", "val_per_class")
            if (value := getattr(args, key, None)) is not None}


def set_keys(args: argparse.Namespace) -> dict[str, Any]:
    """The --set overrides as dotted keys to their values (the last of a key wins)."""
    return {setting.key: setting.value
            for setting in (Setting(*item) for item in getattr(args, "set", None) or ())}


def with_subset(space: Space, args: argparse.Namespace, trials: bool = False) -> Space:
    """The space with --set overrides; for a search's `trials`, then their subset
    (`Space.for_trials`: `[search] train_per_class` unless a --set names train.train_per_class);
    then --train-per-class and --val-per-class written into its [train], checked by the
    section's own rules (so the flag and the file key take the same values)."""
    settings = [Setting(*item) for item in getattr(args, "set", None) or ()]
    space = with_sets(space, settings)
    if trials:
        space = space.for_trials({setting.key for setting in settings})
    subset = subset_flags(args)
    if not subset:
        return space
    train = replace(space.train, **subset)
    train.check("--train-per-class/--val-per-class: [train]")
    return replace(space, train=train)


def open_context(args: argparse.Namespace, view: Any, space: Space | None = None,
                 check: Callable[[Any], None] | None = None, genomes: tuple[Any, ...] = (),
                 within: Callable[[Any], bool] | None = None) -> Any:
    """Space (`space` as given, else --space with the flags), store and shared training context
    (data, views, teacher) from the flags. Seeds are
    checked first, then the preflight (nas.train.preflight) of `genomes` (and for a search the
    space's largest genomes `within` its budget) before the database file is created; skipped
    files are reported once data is read."""
    from nas.data.dataset import parse_image_size
    from nas.data.folders import scanned_once
    from nas.store.runs import Store
    from nas.train.experiment import prepare, resolve_device
    from nas.train.preflight import Plan, check_source

    if getattr(args, "seed", None) is not None:
        check_seed(args.seed, "--seed")
    space = space or with_subset(resolve_space(args.space, args.data), args)
    size = parse_image_size(args.image_size) if args.image_size else None
    plan = Plan(tuple(genomes), within)
    with scanned_once():            # the folder read once for the checks here and in prepare
        check_source(space, args.data, size, plan)      # before the database file is created
        device = resolve_device(args.device, args.threads)
        store = Store(args.storage)
        return prepare(space, args.data, store, size=size, device=device, progress=view.data,
                       teacher_callbacks=(view.epochs("teacher"),), plan=plan,
                       check=lambda data: _check_data(args, view, data, check))


def _check_data(args: argparse.Namespace, view: Any, data: Any,
                check: Callable[[Any], None] | None) -> None:
    """Say what was skipped (one line; --debug lists each file), then the command's own check."""
    from rich.markup import escape

    from nas.data.splits import skipped_summary

    if data.skipped:
        view.log(escape(skipped_summary(data.skipped)))
        for path, reason in data.skipped if args.debug else ():
            view.log(escape(f"  {path}: {reason}"))
    if check is not None:
        check(data)


def teacher_fields(ctx: Any) -> dict[str, Any]:
    teacher = ctx.teacher
    return {"fingerprint": teacher.fingerprint, "kind": ctx.space.teacher.kind,
            "val_accuracy": teacher.val_accuracy, "test_accuracy": teacher.test_accuracy,
            "cached": teacher.cached}


def teacher_text(ctx: Any) -> str:
    """The teacher in one line: its accuracy, or that none was used and why."""
    from nas.units import percent

    if not ctx.teacher.used:
        return 'teacher not used: distill loss "none", cross-entropy only'
    return f"teacher val {percent(ctx.teacher.val_accuracy)}, test {percent(ctx.teacher.test_accuracy)}"
