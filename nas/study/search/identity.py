"""A search study's identity beyond its name: the recipe and the gene choices it was made with.

The fingerprint is a flat dict of dotted keys (`distill.loss`, `stage[1].c`, `train.augment.views`,
`model.stem`, `attention`) to JSON values, stored in the study's `nas` attributes when the study
is made (or first continued, for a study made before fingerprints). A rerun whose fingerprint
differs is refused naming the changed keys: its trials would mix recipes, and changed gene
choices break Optuna's distributions. `train.epochs` is left out: `--epochs` and `--rungs` are
the search's schedule, which a continued study may change. A cross-entropy recipe
(`distill.loss = "none"`) holds the loss alone, no other distillation or teacher key: it reads
none of them (a study fingerprinted with them still continues). A stored run is reused only when its
recipe is the search's own (`train.epochs` aside, the same rule). The objectives (`--objectives`)
and how latency is timed (backend and threads) are part of the identity too: Optuna's values of
one study must mean the same thing in every trial.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from nas.errors import SpaceError
from nas.model.objectives import DEFAULT_OBJECTIVES
from nas.model.overrides import SECTIONS, dotted_keys, override_space
from nas.model.recipe import used_recipe
from nas.model.space import SUBSET_KEY, VIEWS_KEY, Space
from nas.units import plural

SCHEDULE = "train.epochs"       # the one recipe key a continued study may change
SHOWN = 4                       # changed keys named with their values; the rest by name


def fingerprint(space: Space) -> dict[str, Any]:
    """The recipe sections (but the schedule), model settings, attention and every stage's
    gene choices of `space`, as dotted keys to JSON values."""
    parts: dict[str, Any] = {"model": space.model.key(), "attention": list(space.attention),
                             "input": str(space.input) if space.input else None,
                             **space.recipe()}
    for index, stage in enumerate(space.stages, 1):
        parts[f"stage[{index}]"] = asdict(stage)
    flat = dotted_keys(json.loads(json.dumps(parts)))
    flat.pop(SCHEDULE, None)
    flat["stages"] = len(space.stages)
    return flat


def check_identity(name: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse to continue a study made for other data, input size, space, recipe or genes."""
    if not isinstance(old, dict):
        raise SpaceError(f"study {name!r}: its `nas` attribute is not a mapping; pick another "
                       "--study name")
    if (old.get("space"), old.get("data"), old.get("image_size")) != (
            new["space"], new["data"], new["image_size"]):
        raise SpaceError(f"study {name!r} was made for space {old.get('space')}, data "
                       f"{old.get('data')} at {old.get('image_size')}; pick another --study name")
    check_objectives(name, old, new)
    if isinstance(old.get("fingerprint"), dict):
        refuse_changes(name, old["fingerprint"], new["fingerprint"])


def check_objectives(name: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse other objectives, or latency timed another way, than the study was made with."""
    made = ",".join(old.get("objectives") or DEFAULT_OBJECTIVES)
    asked = ",".join(new.get("objectives") or DEFAULT_OBJECTIVES)
    if made != asked:
        raise SpaceError(f"study {name[:100]!r} optimises {made}, not {asked}; pick another "
                         f"--study name (e.g. {name[:100]}-2)")
    timed, timing = (_timing(old.get("latency")), _timing(new.get("latency")))
    if timed and timing and timed != timing:
        raise SpaceError(f"study {name[:100]!r} timed latency with {timed}, not {timing}; "
                         f"pick another --study name (e.g. {name[:100]}-2)")


def _timing(setup: Any) -> str:
    """'torch on 1 thread': what must match for latencies to be comparable."""
    if not isinstance(setup, dict):
        return ""
    return f"{setup.get('backend')} on {plural(setup.get('threads'), 'thread')}"


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Keys whose values differ; a key only one side has (made by another nas version) is not
    a change."""
    return [key for key in new if key in old and old[key] != new[key]]


def refuse_changes(study: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    """SpaceError naming what changed since the study was made, with a new name to use."""
    changed = changed_keys(old, new)
    if not changed:
        return
    shown = [f"{key} {_text(old[key])} -> {_text(new[key])}" for key in changed[:SHOWN]]
    more = f" and {len(changed) - SHOWN} more" if len(changed) > SHOWN else ""
    raise SpaceError(f"study {study[:100]!r} was made with another recipe or space: "
                     f"{'; '.join(shown)}{more}; continue it with its own space file, or pick a "
                     f"new --study name (e.g. {study[:100]}-2)")


def _text(value: Any) -> str:
    """A value as the space file writes it, cut to 40 characters."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def same_recipe(stored: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """Whether a run's stored recipe is `wanted` (both JSON), the schedule (train.epochs) aside."""
    if not isinstance(stored, dict):
        return False
    return _without_schedule(used_recipe(stored)) == _without_schedule(used_recipe(wanted))


def _without_schedule(recipe: dict[str, Any]) -> dict[str, Any]:
    train = recipe.get("train")
    if not isinstance(train, dict):
        return recipe
    return {**recipe, "train": {k: v for k, v in train.items() if k != "epochs"}}


def searched_recipe(space: Space, stored: Any, sets: Any = None) -> Space:
    """`space` (the study's space file as it reads now) with the recipe keys the study was
    searched under laid over it, but the training subset and the schedule, which stay the file's:
    the recipe `nas export --retrain` trains a final model with. Those keys are the user's `sets`
    recorded with the study (`--set`, `recipe=`), so `[search] views` or a `--set search.views`
    stay the trials' and a `--set train.augment.views` is the final model's too. A study made
    before they were recorded gets the keys where its `stored` fingerprint differs from the
    file's trials (`Space.for_trials`), but the views when the file sets the trials' own (they
    differ by `[search] views`, not by the user's choice); one made before fingerprints gets the
    file's recipe."""
    if isinstance(sets, dict):
        chosen = {key: value for key, value in sets.items()
                  if key.split(".")[0] in SECTIONS and key != SUBSET_KEY}
    elif isinstance(stored, dict):
        skipped = {SUBSET_KEY} | ({VIEWS_KEY} if space.search.views is not None else set())
        chosen = {key: stored[key] for key in changed_keys(fingerprint(space.for_trials()), stored)
                  if key.split(".")[0] in SECTIONS and key not in skipped}
    else:
        chosen = {}
    return override_space(space, chosen, "the study's recipe") if chosen else space
