"""ImageFolder sources: scan `root/{train,test}/<class>/*` or `root/<class>/*` and decode with PIL.

Every file is decoded once, RGB, resized to (H, W); unreadable files are counted, not fatal.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from nas.data.splits import Pool, Progress, Split, split_test
from nas.errors import DataError

_UNREADABLE = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    Image.DecompressionBombError,
)


@dataclass(frozen=True)
class Folder:
    """An ImageFolder scan: class names and (file, label) lists; test None = split ourselves."""

    root: Path
    classes: tuple[str, ...]
    train: tuple[tuple[Path, int], ...]
    test: tuple[tuple[Path, int], ...] | None


def scan_folder(root: Path) -> Folder:
    """Find the classes and files of `root/{train,test}/<class>/*` or `root/<class>/*`."""
    if not root.is_dir():
        raise DataError(f"{root}: {'not a folder' if root.exists() else 'data folder not found'}")
    train_dir, test_dir = root / "train", root / "test"
    if train_dir.is_dir() != test_dir.is_dir():
        found, missing = ("train", "test") if train_dir.is_dir() else ("test", "train")
        raise DataError(f"{root}: has {found}/ but no {missing}/ folder")
    if not train_dir.is_dir():
        classes = _class_dirs(root)
        return Folder(root, classes, _class_files(root, classes), None)
    classes, test_classes = _class_dirs(train_dir), _class_dirs(test_dir)
    if classes != test_classes:
        only_train = sorted(set(classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(classes))
        raise DataError(
            f"{root}: train and test class folders differ:"
            f" only in train {only_train}, only in test {only_test}"
        )
    return Folder(root, classes, _class_files(train_dir, classes), _class_files(test_dir, classes))


def _class_dirs(folder: Path) -> tuple[str, ...]:
    """Sorted visible sub-folder names of `folder`: the classes, ImageFolder style."""
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(f"{folder}: no class folders (expected {folder}/<class>/<images>)")
    return tuple(names)


def _class_files(folder: Path, classes: tuple[str, ...]) -> tuple[tuple[Path, int], ...]:
    """Every visible file below each class folder, sorted, with its label."""
    files = []
    for label, name in enumerate(classes):
        found = []
        for dirpath, dirnames, filenames in os.walk(folder / name, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
        if not found:
            raise DataError(f"{folder / name}: empty class folder '{name}'")
        files += [(path, label) for path in found]
    return tuple(files)


def folder_key(folder: Folder | None) -> list[Any]:
    """Cheap cache key of a folder: its resolved root, relative paths, sizes and mtimes."""
    if folder is None:
        return []
    entries: list[Any] = [str(folder.root.resolve())]
    for path, _ in folder.train + (folder.test or ()):
        stat = path.stat()
        entries.append([path.relative_to(folder.root).as_posix(), stat.st_size, stat.st_mtime_ns])
    return entries


def decode_folder(folder: Folder, size: tuple[int, int], progress: Progress | None) -> Pool:
    """Decode every file once, hashing relative paths + bytes; unreadable files are counted."""
    hasher = hashlib.sha256(b"folder")
    total = len(folder.train) + len(folder.test or ())
    train, bad_train = _decode_files(folder, folder.train, size, hasher, progress, 0, total)
    if folder.test is None:
        return split_test(train, folder.classes, hasher.hexdigest(), bad_train)
    start = len(folder.train)
    test, bad_test = _decode_files(folder, folder.test, size, hasher, progress, start, total)
    return Pool(folder.classes, train, test, hasher.hexdigest(), bad_train + bad_test)


def _decode_files(
    folder: Folder,
    files: tuple[tuple[Path, int], ...],
    size: tuple[int, int],
    hasher: Any,
    progress: Progress | None,
    start: int,
    total: int,
) -> tuple[Split, int]:
    """Decode `files` into a Split; a class left with no readable image is a DataError."""
    arrays, labels, skipped = [], [], 0
    for done, (path, label) in enumerate(files, start + 1):
        data = _read_bytes(path)
        hasher.update(path.relative_to(folder.root).as_posix().encode() + b"\0")
        hasher.update(len(data).to_bytes(8, "little") + data)
        pixels = _decode_image(data, size) if data else None
        if pixels is None:
            skipped += 1
        else:
            arrays.append(pixels)
            labels.append(label)
        if progress is not None:
            progress("decode", done, total)
    _check_readable(files, labels, folder.classes)
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return Split(images, torch.tensor(labels, dtype=torch.int64)), skipped


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, or b'' when it vanished or cannot be read (counted as skipped)."""
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _decode_image(data: bytes, size: tuple[int, int]) -> np.ndarray | None:
    """PIL decode -> RGB -> bilinear resize to (H, W); None when the file is not a whole image."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = img.convert("RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR)
    except _UNREADABLE:
        return None
    return np.asarray(rgb)


def _check_readable(files: tuple[tuple[Path, int], ...], labels: list[int], classes: tuple[str, ...]) -> None:
    """A class whose files all failed to decode is a DataError naming its folder."""
    missing = sorted(set(range(len(classes))) - set(labels))
    if missing:
        folder = next(path.parent for path, label in files if label == missing[0])
        raise DataError(f"{folder}: none of the files of class '{classes[missing[0]]}' is readable")
