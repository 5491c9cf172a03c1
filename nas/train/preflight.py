"""Run setup in one place: the data and memory checks of every command that trains.

`check_source` runs before anything is written (no database file, no cache): the genomes fit the
space, the data source is there and readable, and decoding it and training on it fit in memory.
It reads no pixels, so a command may run it before it opens its store. `check_data` runs once the
data is read, on its real counts. `prepare` (nas.train.experiment) calls both, so `nas train`,
`teacher`, `search`, `ablate` and `export --retrain-epochs` refuse the same things in one line.
The data layer only estimates bytes; which teacher trains (a genome, or a trunk) is decided here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nas.data.dataset import Dataset, default_image_size, preflight
from nas.data.memory import check_training
from nas.model.genome import Genome
from nas.model.space import InputShape, Space
from nas.model.teachers import TEACHERS
from nas.train.teacher_data import resolve

if TYPE_CHECKING:
    from nas.model.complexity import Complexity


@dataclass(frozen=True)
class Plan:
    """What a command will train, for the checks: its genomes and, for a search, the budget
    that admits a genome (then the space's largest genomes within it are checked too)."""

    genomes: tuple[Genome, ...] = ()
    within: Callable[[Complexity], bool] | None = None


NOTHING = Plan()      # the data, the views and the teacher only


def check_source(space: Space, source: str, size: tuple[int, int] | None,
                 plan: Plan = NOTHING) -> None:
    """Refuse a genome outside the space, a bad data source, or a training that cannot fit in
    memory, before anything is written."""
    for genome in plan.genomes:
        space.check(genome, strict=False)
    height, width = image_size(space, source, size)
    found = preflight(source, (height, width), space.train.split_kwargs())
    if found is not None:       # torchvision sets: their counts are known once loaded
        rows, classes = found
        channels = space.input.channels if space.input else 3
        _check_memory(space, source, plan, rows, InputShape(channels, height, width), classes)


def check_data(space: Space, source: str, data: Dataset, plan: Plan = NOTHING) -> None:
    """Refuse a training that cannot fit in memory, on the data as read."""
    _check_memory(space, source, plan, len(data.train.labels), data.shape, len(data.classes))


def image_size(space: Space, source: str, override: tuple[int, int] | None) -> tuple[int, int]:
    """--image-size, else the space's [input], else the data set's default."""
    if override is not None:
        return override
    if space.input is not None:
        return (space.input.height, space.input.width)
    return default_image_size(source)


def teacher_genome(space: Space, source: str) -> Genome | None:
    """The genome teacher this space trains on `source` (None: a trunk teacher, or no teacher)."""
    if space.distill.loss == "none":
        return None
    config = resolve(space.teacher, source)
    if TEACHERS[config.kind].has_trunk:
        return None
    return Genome.parse(config.genome, config.attention)


def _check_memory(space: Space, source: str, plan: Plan, rows: int, shape: InputShape,
                  classes: int) -> None:
    check_training(space, plan.genomes, rows=rows, shape=shape, classes=classes,
                   within=plan.within, teacher=teacher_genome(space, source))
