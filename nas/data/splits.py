"""In-memory uint8 splits: the Split and Pool records, stratified splitting and resizing.

The shared lower layer of nas.data.dataset and its decoders (nas.data.folders, nas.data.torchvision_sets).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from nas.errors import DataError

Progress = Callable[[str, int, int], None]  # (stage, done, total): the one progress-callback type
Skip = tuple[str, str]  # (path relative to the data folder, why it was not used)
TEST_FRACTION = 0.2
TEST_SEED = 0  # fixed: the test split never depends on split_seed


@dataclass(frozen=True)
class Split:
    """Images and their labels; images are uint8 (N, 3, H, W), contiguous."""

    images: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class Pool:
    """A decoded source before the validation split: the unit cached on disk."""

    classes: tuple[str, ...]
    train: Split
    test: Split
    content: str
    skipped: tuple[Skip, ...]  # files that failed to decode (the scan's skips are not cached)


def stratified_split(
    labels: torch.Tensor, fraction: float, seed: int, classes: Sequence[str], *,
    held_per_class: int = 0, kept_per_class: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class hold out `held_per_class` images (0: round(n * fraction), at least 1, never all),
    then keep the next `kept_per_class` of the same shuffle (0: all the rest): sorted (kept, held)
    indices. The held images never depend on `kept_per_class`, and a smaller subset is a prefix of
    a larger one."""
    generator = torch.Generator().manual_seed(seed)
    kept, held = [], []
    for label, name in enumerate(classes):
        index = (labels == label).nonzero().flatten()
        n = index.numel()
        if n < 2:
            raise DataError(f"class '{name}' has {n} image(s) to split; need at least 2 (one on each side)")
        n_held = held_per_class or min(max(1, math.floor(n * fraction + 0.5)), n - 1)
        if n_held >= n:
            raise DataError(f"class '{name}' has {n} image(s): too few to hold {n_held} for validation"
                            f" (val_per_class) and train on the rest")
        n_kept = kept_per_class or n - n_held
        if n_kept > n - n_held:
            raise DataError(f"train_per_class {n_kept} is more than class '{name}' holds: {n} images,"
                            f" {n_held} held for validation, at most {n - n_held} to train on")
        shuffled = index[torch.randperm(n, generator=generator)]
        held.append(shuffled[:n_held])
        kept.append(shuffled[n_held:n_held + n_kept])
    return torch.cat(kept).sort().values, torch.cat(held).sort().values


def split_test(pool: Split, classes: tuple[str, ...], content: str, skipped: tuple[Skip, ...]) -> Pool:
    """Carve the fixed stratified test split (20 %, seed 0) for sources that have none."""
    kept, held = stratified_split(pool.labels, TEST_FRACTION, TEST_SEED, classes)
    return Pool(classes, take(pool, kept), take(pool, held), content, skipped)


def skipped_summary(skipped: Sequence[Skip]) -> str:
    """'skipped 3 files: 2 not a regular file, 1 symlink loop' (reasons by count), or ''."""
    if not skipped:
        return ""
    counts = Counter(reason for _, reason in skipped)
    reasons = ", ".join(f"{n} {reason}" for reason, n in counts.most_common())
    return f"skipped {len(skipped)} file{'s' if len(skipped) != 1 else ''}: {reasons}"


def take(split: Split, index: torch.Tensor) -> Split:
    """The rows `index` of a split, contiguous."""
    return Split(split.images[index].contiguous(), split.labels[index].contiguous())


def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of uint8 (N, C, H, W), in chunks to bound memory."""
    if tuple(images.shape[-2:]) == size:
        return images.contiguous()
    v2 = transforms_v2()
    chunks = [
        v2.functional.resize(chunk, list(size), v2.InterpolationMode.BILINEAR, antialias=True)
        for chunk in images.split(4096)
    ]
    return torch.cat(chunks).contiguous()


def transforms_v2() -> Any:
    """torchvision.transforms.v2, imported on first use: a search worker that reads cached views
    never imports torchvision (1.3 s to import, 0.4 s more at exit, mostly torch._dynamo)."""
    from torchvision.transforms import v2

    return v2
