"""Data sets as in-memory uint8 tensors with honest, fixed splits, cached on disk.

Sources: scikit-learn's digits, an ImageFolder directory, or a torchvision data
set. Validation is carved out of the training data before any augmentation and
test is never used for selection (the seed report did both wrong).
Decoders live in nas.data.folders and nas.data.torchvision_sets, the disk cache in nas.data.cache.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nas.data import augment
from nas.data.cache import (
    POOL_KEYS,
    cache_root,
    cached_images,
    digest,
    pool_from_blob,
    pool_to_blob,
    read_cache,
    views_fingerprint,
    write_cache,
)
from nas.data.folders import Folder, decode_folder, folder_key, scan_folder
from nas.data.memory import pool_bytes, require
from nas.data.splits import (
    TEST_FRACTION,
    TEST_SEED,
    Pool,
    Progress,
    Skip,
    Split,
    split_test,
    stratified_split,
    take,
)
from nas.data.splits import resize as _resize
from nas.data.torchvision_sets import TORCHVISION, decode_torchvision
from nas.errors import DataError, nearest
from nas.model.recipe import AugmentConfig
from nas.model.space import InputShape

Triple = tuple[float, float, float]

_MAX_SIDE = 4096
_FOLDER_SIZE = (185, 160)  # the seed report's H x W
_DECODER = 2  # bump when decoding changes (2: 16-bit greys scaled, skips with reasons)
_DIGITS = 1797
_DIGITS_CLASSES = 10
NAMES = ("digits", *TORCHVISION)


@dataclass(frozen=True)
class Dataset:
    """A source decoded at one size, split into train / val / test, with train statistics."""

    name: str
    classes: tuple[str, ...]
    image_size: tuple[int, int]
    train: Split
    val: Split
    test: Split
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    fingerprint: str
    skipped: tuple[Skip, ...]  # (relative path, reason) of each file not used

    @property
    def shape(self) -> InputShape:
        """The input the data gives a model: channels of the decoded images, and the size."""
        return InputShape(int(self.train.images.shape[1]), *self.image_size)


@dataclass(frozen=True)
class Views:
    """Rows [0, N) are the originals, then one block of N rows per augmented view."""

    images: torch.Tensor
    labels: torch.Tensor
    fingerprint: str


# ----------------------------------------------------------------- public API


def default_image_size(source: str) -> tuple[int, int]:
    """(H, W): digits 32x32, folders the seed report's 185x160, torchvision sets their native size."""
    kind = _source_kind(source)
    if kind == "digits":
        return (32, 32)
    if kind == "folder":
        return _FOLDER_SIZE
    return TORCHVISION[kind][1]


def parse_image_size(text: str) -> tuple[int, int]:
    """'185x160' -> (185, 160); a single number means a square."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", text)
    if match is None:
        raise DataError(f"image size must look like HxW (e.g. 185x160), got '{text}'")
    height = int(match.group(1))
    return _check_size((height, int(match.group(2) or height)))


def class_count(source: str) -> int | None:
    """The classes of a source, found without decoding it; None for torchvision sets (known
    once loaded)."""
    kind = _source_kind(source)
    if kind == "folder":
        return len(scan_folder(Path(source).expanduser()).classes)
    return _DIGITS_CLASSES if kind == "digits" else None


def preflight(source: str, image_size: tuple[int, int],
              split: dict[str, float | int] | None = None) -> tuple[int, int] | None:
    """(images, classes) of a source, found without decoding it, after refusing a bad source, a
    decode that cannot fit in memory, or a `split` (load_data's keywords) its classes cannot give;
    None for torchvision sets (their size is known once loaded)."""
    kind = _source_kind(source)
    size = _check_size(image_size)
    if kind == "folder":
        folder = scan_folder(Path(source).expanduser())
        require({"decoded images": pool_bytes(folder.count, size)}, f"decoding {folder.root}", DataError)
        if split:
            _check_split(folder, **split)
        return folder.count, len(folder.classes)
    if kind == "digits":
        require({"decoded images": pool_bytes(_DIGITS, size, copies=2)}, "decoding digits", DataError)
        return _DIGITS, _DIGITS_CLASSES
    return None


def load_data(
    source: str,
    image_size: tuple[int, int] | None = None,
    *,
    val_fraction: float = 0.2,
    split_seed: int = 0,
    train_per_class: int = 0,
    val_per_class: int = 0,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> Dataset:
    """Decode `source` once (cached by fingerprint), then carve a stratified validation split
    (`val_per_class` images per class, 0: `val_fraction` of each) and keep `train_per_class` of
    the rest for training (0: all). The test split is always whole."""
    kind = _source_kind(source)
    size = default_image_size(source) if image_size is None else _check_size(image_size)
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if train_per_class < 0 or train_per_class == 1 or val_per_class < 0:
        raise DataError(f"train_per_class must be 0 (all) or at least 2 and val_per_class at least 0,"
                        f" got {train_per_class} and {val_per_class}")
    folder = scan_folder(Path(source).expanduser()) if kind == "folder" else None
    pool = _load_pool(kind, folder, size, cache_root(cache_dir), progress)
    kept, held = stratified_split(pool.train.labels, val_fraction, split_seed, pool.classes,
                                  held_per_class=val_per_class, kept_per_class=train_per_class)
    train = take(pool.train, kept)
    mean, std = channel_stats(train.images)
    return Dataset(
        name=source if kind == "folder" else kind,
        classes=pool.classes,
        image_size=size,
        train=train,
        val=take(pool.train, held),
        test=pool.test,
        mean=mean,
        std=std,
        fingerprint=digest({"content": pool.content, "size": size, "val": val_fraction, "seed": split_seed,
                            **_subset_record(train_per_class, val_per_class)}),
        skipped=(folder.skipped if folder else ()) + tuple(tuple(skip) for skip in pool.skipped),
    )


def build_views(
    split: Split,
    config: AugmentConfig,
    *,
    seed: int = 0,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> Views:
    """The originals plus one fixed augmented copy per view, built once and cached on disk."""
    views = augment.parse_views(config)
    fingerprint = views_fingerprint(split, config, seed)
    labels = split.labels.repeat(len(views) + 1)
    if not views:
        return Views(split.images, labels, fingerprint)
    blocks = cached_images(cache_root(cache_dir) / "views" / f"{fingerprint}.pt",
                           (len(views) * split.images.shape[0], *split.images.shape[1:]),
                           lambda: augment.augment_views(split.images, views, config, seed, progress))
    return Views(torch.cat([split.images, blocks]), labels, fingerprint)


def normalize(
    images: torch.Tensor, mean: tuple[float, float, float], std: tuple[float, float, float]
) -> torch.Tensor:
    """uint8 images (..., 3, H, W) -> float32 (x / 255 - mean) / std, per channel."""
    if images.dtype != torch.uint8:
        raise DataError(f"normalize expects uint8 images, got {images.dtype}")
    if min(std) <= 0:
        raise DataError(f"normalize needs std > 0, got {std}")
    m = torch.tensor(mean, dtype=torch.float32, device=images.device).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=images.device).view(3, 1, 1)
    return (images.to(torch.float32) / 255 - m) / s


def channel_stats(images: torch.Tensor) -> tuple[Triple, Triple]:
    """Exact per-channel mean and std in [0, 1] units; std is floored at one grey level."""
    count = images.shape[0] * images.shape[2] * images.shape[3]
    rows = max(1, 2**22 // max(1, images[0].numel()))
    total = torch.zeros(3, dtype=torch.int64)
    squares = torch.zeros(3, dtype=torch.int64)
    for chunk in images.split(rows):
        wide = chunk.to(torch.int64)
        total += wide.sum(dim=(0, 2, 3))
        squares += (wide * wide).sum(dim=(0, 2, 3))
    mean = [int(s) / count / 255 for s in total]
    var = [(int(q) * count - int(s) ** 2) / count**2 for s, q in zip(total, squares, strict=True)]
    std = [max(math.sqrt(v), 1.0) / 255 for v in var]
    return (mean[0], mean[1], mean[2]), (std[0], std[1], std[2])


def _check_split(folder: Folder, val_fraction: float, split_seed: int, train_per_class: int,
                 val_per_class: int) -> None:
    """Carve validation and the subset from the scanned labels, as `load_data` will from the
    decoded ones, so a subset the classes cannot give is refused before anything is written."""
    labels = torch.tensor([label for _, label in folder.train], dtype=torch.int64)
    if folder.test is None:
        labels = labels[stratified_split(labels, TEST_FRACTION, TEST_SEED, folder.classes)[0]]
    stratified_split(labels, val_fraction, split_seed, folder.classes,
                     held_per_class=val_per_class, kept_per_class=train_per_class)


def _subset_record(train_per_class: int, val_per_class: int) -> dict[str, int]:
    """The subset's part of the data fingerprint; empty for the whole set, so fingerprints (and
    every cache and stored run keyed by them) made before subsets existed stay valid."""
    record = {"train_per_class": train_per_class, "val_per_class": val_per_class}
    return {key: value for key, value in record.items() if value}


# ----------------------------------------------------------------- sources


def _source_kind(source: str) -> str:
    """'digits', a torchvision name, or 'folder' for anything path-like."""
    if source.lower() in NAMES:
        return source.lower()
    if Path(source).expanduser().exists() or any(c in source for c in "/\\.~"):
        return "folder"
    raise DataError(
        f"unknown data source '{source}'{nearest(source.lower(), NAMES)}:"
        f" expected one of {', '.join(NAMES)}, or an image folder path"
    )


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    """A valid (H, W) tuple, or a DataError naming the rule."""
    if len(size) != 2 or not all(isinstance(s, int) and 0 < s <= _MAX_SIDE for s in size):
        raise DataError(f"image size must be two integers in 1..{_MAX_SIDE}, got {tuple(size)}")
    return (size[0], size[1])


def _load_pool(kind: str, folder: Folder | None, size: tuple[int, int], root: Path,
               progress: Progress | None) -> Pool:
    """The decoded source from the cache, or decoded now and then cached."""
    key = digest({"kind": kind, "size": size, "files": folder_key(folder), "decoder": _DECODER})
    path = root / "data" / f"{kind}-{key}.pt"
    blob = read_cache(path, POOL_KEYS)
    if blob is not None:
        return pool_from_blob(blob)
    if folder is not None:
        pool = decode_folder(folder, size, progress)
    elif kind == "digits":
        require({"decoded images": pool_bytes(_DIGITS, size, copies=2)}, "decoding digits", DataError)
        pool = _decode_digits(size)
    else:
        pool = decode_torchvision(kind, size, root / "torchvision", progress)
    return pool_from_blob(write_cache(path, pool_to_blob(pool)))    # mapped from the file


def _decode_digits(size: tuple[int, int]) -> Pool:
    """scikit-learn's 8x8 digits: 0..16 greys scaled to 0..255, resized, three channels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    grey = np.rint(bunch.images * (255 / 16)).astype(np.uint8)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    content = hashlib.sha256(b"digits" + grey.tobytes() + labels.numpy().tobytes()).hexdigest()
    images = _resize(torch.from_numpy(grey)[:, None], size).expand(-1, 3, -1, -1).contiguous()
    classes = tuple(str(c) for c in range(10))
    return split_test(Split(images, labels), classes, content, skipped=())
