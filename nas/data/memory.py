"""How much memory a command will need, checked against what the machine has before allocating.

One place for the estimates: the decoded pool, the augmented views, the teacher bank and the
biggest genome training at the batch size (weights, optimiser state, saved activations and their
gradients). They are upper-bound sketches, not exact: their job is to refuse a 4096x4096 input or a
stage of 8192 channels with one line, instead of dying in the allocator. Lives in nas.data because
the data layer is the lowest one that allocates (decoding) and may read the model's records.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nas.errors import NasError, TrainError
from nas.model.decode import Arch, decode
from nas.model.genome import Genome
from nas.model.space import InputShape, Space

if TYPE_CHECKING:
    from nas.model.complexity import Complexity

_FLOAT = 4
_PER_PARAM = 4 * _FLOAT   # weight, gradient, two Adam moments


def available_bytes() -> int:
    """Memory this process may still use: MemAvailable, capped by a cgroup limit when one is set."""
    free = _meminfo_available()
    limit = _cgroup_room()
    return min(free, limit) if limit is not None else free


def _meminfo_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**62       # unknown: refuse nothing


def _cgroup_room() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
    except OSError:
        return None
    return int(limit) - int(used) if limit.isdigit() and used.isdigit() else None


def gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


def require(parts: dict[str, int], what: str, error: type[NasError] = TrainError) -> None:
    """Refuse (one line, naming the need and its biggest part) when `parts` cannot fit."""
    need, room = sum(parts.values()), available_bytes()
    if need <= room:
        return
    biggest = max(parts, key=lambda key: parts[key])
    detail = f" ({biggest}: {gib(parts[biggest])})" if len(parts) > 1 else ""
    raise error(f"{what} needs about {gib(need)} of memory{detail}, but only {gib(room)} is available")


def pool_bytes(images: int, size: tuple[int, int], channels: int = 3, copies: int = 1) -> int:
    """Decoded uint8 images: one tensor that a folder's files are decoded into, two where a whole
    array is resized and then copied (digits, torchvision sets)."""
    return copies * images * channels * size[0] * size[1]


def views_bytes(rows: int, views: int, shape: InputShape) -> int:
    """The originals plus one uint8 copy per view, and the concatenation that joins them."""
    return 2 * rows * (views + 1) * shape.channels * shape.height * shape.width


def bank_bytes(rows: int, views: int, width: int) -> int:
    """Teacher features and logits (float32) for every row of every view."""
    return rows * (views + 1) * width * _FLOAT


def activation_elements(arch: Arch) -> int:
    """Elements saved for backward by one image: conv, norm and activation outputs of each layer."""
    height, width = _down(arch.input.height, arch.stem_stride), _down(arch.input.width, arch.stem_stride)
    total = 3 * arch.stem * height * width
    for spec in (spec for stage in arch.blocks for spec in stage):
        before = height * width
        height, width = _down(height, spec.stride), _down(width, spec.stride)
        after = height * width
        if spec.expand and not spec.fused:
            total += 3 * spec.hidden * before
        total += 3 * spec.hidden * after + 2 * spec.out_ch * after
    return total + 3 * arch.head * height * width


def training_bytes(arch: Arch, params: int, batch: int) -> int:
    """Weights with gradients and optimiser state, plus activations and their gradients."""
    return params * _PER_PARAM + 2 * activation_elements(arch) * batch * _FLOAT


def check_training(space: Space, genomes: Sequence[Genome], *, rows: int, shape: InputShape,
                   classes: int, within: Callable[[Complexity], bool] | None = None,
                   teacher: Genome | None = None) -> None:
    """Refuse a training whose views, teacher bank or biggest genome cannot fit in memory.

    `genomes` are the ones to train; a search passes `within` (its budget), and then the space's
    largest genomes that fit it are checked too: a genome over budget is never trained, so it
    must not block a search it cannot join. `teacher` is the genome teacher that trains too, if
    any (the caller knows the teacher kinds; nas.train.preflight)."""
    from nas.model.complexity import count_arch

    views = len(space.train.augment.views)
    parts = {"augmented views": views_bytes(rows, views, shape)}
    if space.distill.loss != "none":
        width = space.teacher.feature_dim or space.model.head
        parts["teacher bank"] = bank_bytes(rows, views, width + classes)
    candidates = [*genomes]
    if within is not None:
        candidates += [g for g in space.extremes(largest=True)
                       if within(count_arch(decode(g, space.model, space.overrides, shape=shape,
                                                   classes=classes)))]
    if teacher is not None:
        candidates.append(teacher)
    worst = 0
    for genome in candidates:
        arch = decode(genome, space.model, space.overrides, shape=shape, classes=classes)
        batch = max(space.train.batch_size, space.teacher.batch_size)
        worst = max(worst, training_bytes(arch, count_arch(arch).params, batch))
    parts["the biggest model at the batch size"] = worst
    require(parts, f"training on {rows} images of {shape}")


def _down(size: int, stride: int) -> int:
    return math.ceil(size / stride)
