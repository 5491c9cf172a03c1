"""ImageFolder sources: scan `root/{train,test}/<class>/*` or `root/<class>/*` and decode with PIL.

Only regular files with an image suffix and a UTF-8 name, under a size cap, inside the folder
are read; FIFOs, devices, dangling or looping symlinks, symlinks that leave the folder and
symlinks into another class (a folder or a file: the same image under two labels) are skipped
with a reason, as are files any decoder fails on or that pass Pillow's decompression-bomb
limit (Pillow's and libtiff's warnings are not printed). 16-bit greys are scaled
to 8 bits. Every file is decoded once, RGB, resized to (H, W).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from nas.data.memory import pool_bytes, require
from nas.data.splits import Pool, Progress, Skip, Split, split_test
from nas.errors import DataError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MAX_FILE_BYTES = 64 * 2**20
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)

Stamp = tuple[int, int]     # a file's size and mtime in ns, as the scan saw them


@dataclass(frozen=True)
class Folder:
    """An ImageFolder scan: class names, (file, label) lists (test None = split ourselves), the
    entries skipped while scanning, each with its reason, and each kept file's stamp (train's,
    then test's: the pool cache's key)."""

    root: Path
    classes: tuple[str, ...]
    train: tuple[tuple[Path, int], ...]
    test: tuple[tuple[Path, int], ...] | None
    skipped: tuple[Skip, ...] = ()
    stamps: tuple[Stamp, ...] = ()

    @property
    def count(self) -> int:
        return len(self.train) + len(self.test or ())

    @cached_property
    def key(self) -> list[Any]:
        """Cheap cache key: the resolved root, then each file's relative path and stamp (computed
        once: the student's data and the teacher's read the same scan)."""
        files = self.train + (self.test or ())
        return [str(self.root.resolve())] + [
            [path.relative_to(self.root).as_posix(), size, mtime]
            for (path, _), (size, mtime) in zip(files, self.stamps, strict=True)]


_scans: ContextVar[dict[Path, Folder] | None] = ContextVar("scans", default=None)


@contextmanager
def scanned_once() -> Iterator[None]:
    """Within the block each folder is scanned once and later scans return that Folder: one
    command's setup reads the same folder for its checks, the student's data and the
    teacher's (60,000 files each time on CIFAR-10). Blocks nest; outside them every scan
    reads the disk."""
    if _scans.get() is not None:
        yield
        return
    token = _scans.set({})
    try:
        yield
    finally:
        _scans.reset(token)


def scan_folder(root: Path) -> Folder:
    """Find the classes and readable-looking files of `root/{train,test}/<class>/*` or
    `root/<class>/*`; refuse fewer than 2 classes or a class too small to split."""
    scans = _scans.get()
    if scans is None:
        return _scan(root)
    if root not in scans:
        scans[root] = _scan(root)
    return scans[root]


def _scan(root: Path) -> Folder:
    if not root.is_dir():
        raise DataError(f"{root}: {'not a folder' if root.exists() else 'data folder not found'}")
    base = root.resolve()
    train_dir, test_dir = root / "train", root / "test"
    if train_dir.is_dir() != test_dir.is_dir():
        found, missing = ("train", "test") if train_dir.is_dir() else ("test", "train")
        raise DataError(f"{root}: has {found}/ but no {missing}/ folder")
    if not train_dir.is_dir():
        classes, refused = _class_dirs(root, base)
        files, skipped, stamps = _class_files(root, classes, base)
        _check_counts(root, classes, files, 3, "train, validation and test")
        return Folder(root, classes, files, None, refused + skipped, stamps)
    (classes, refused), (test_classes, refused_test) = (_class_dirs(train_dir, base),
                                                        _class_dirs(test_dir, base))
    if classes != test_classes:
        only_train = sorted(set(classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(classes))
        raise DataError(
            f"{root}: train and test class folders differ:"
            f" only in train {only_train}, only in test {only_test}"
        )
    train, skipped_train, stamps_train = _class_files(train_dir, classes, base)
    test, skipped_test, stamps_test = _class_files(test_dir, classes, base)
    _check_counts(train_dir, classes, train, 2, "train and validation")
    _check_counts(test_dir, classes, test, 1, "test")
    return Folder(root, classes, train, test, refused + refused_test + skipped_train + skipped_test,
                  stamps_train + stamps_test)


def _class_dirs(folder: Path, base: Path) -> tuple[tuple[str, ...], tuple[Skip, ...]]:
    """Sorted visible sub-folder names of `folder` that stay inside `base`: the classes; and the
    sub-folders refused, with the reason (a symlink to the data folder or to another class
    would read the same images under a second label)."""
    entries = sorted((p for p in folder.iterdir() if not p.name.startswith(".")),
                     key=lambda p: p.name)
    real = {p.resolve() for p in entries if p.is_dir() and not p.is_symlink()}
    names, skipped = [], []
    for path in entries:
        reason = _class_refusal(path, base, real)
        if reason is not None:
            skipped.append((_relative(path, base), reason))
        elif path.is_dir():
            names.append(path.name)
    if not names:
        raise DataError(f"{folder}: no class folders (expected {folder}/<class>/<images>)")
    if len(names) < 2:
        raise DataError(f"{folder}: only one class folder ('{names[0]}'); a classifier needs at least 2")
    return tuple(names), tuple(skipped)


def _class_refusal(path: Path, base: Path, real: set[Path]) -> str | None:
    """Why the sub-folder `path` is not a class (None: it is, or it is no folder at all)."""
    if not _utf8(path.name):
        return "name is not UTF-8"
    if not path.is_symlink():
        return None
    if not _inside(path, base):
        return "symlink leaves the data folder" if path.exists() else None
    target = path.resolve()
    if not target.is_dir():
        return None
    if any(target == r or r.is_relative_to(target) for r in real) or target == base:
        return "symlink to the data folder or to another class folder"
    return None


def _utf8(name: str) -> bool:
    """Whether a file name (as os.fsdecode gives it) is valid UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _inside(path: Path, base: Path) -> bool:
    """True when `path` resolves (without loops) to somewhere under `base`."""
    try:
        return path.resolve(strict=True).is_relative_to(base)
    except (OSError, RuntimeError):
        return False


def _class_files(
    folder: Path, classes: tuple[str, ...], base: Path
) -> tuple[tuple[tuple[Path, int], ...], tuple[Skip, ...], tuple[Stamp, ...]]:
    """Every acceptable visible file below each class folder, sorted, with its label; the rest
    as (path, reason); the stamp of each file kept. Symlinked sub-folders are not followed (no
    loops, no escapes)."""
    files: list[tuple[Path, int]] = []
    skipped: list[Skip] = []
    stamps: list[Stamp] = []
    homes = [(folder / name).resolve() for name in classes]
    for label, name in enumerate(classes):
        others = [home for i, home in enumerate(homes) if i != label]
        for dirpath, dirnames, filenames in os.walk(folder / name):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for d in [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                dirnames.remove(d)
                skipped.append((_relative(Path(dirpath) / d, base), "symlinked folder (not followed)"))
            for d in [d for d in dirnames if not _utf8(d)]:
                dirnames.remove(d)
                skipped.append((_relative(Path(dirpath) / d, base), "name is not UTF-8"))
            for entry in sorted(f for f in filenames if not f.startswith(".")):
                path = Path(dirpath) / entry
                found = _examine(path, base, others)
                if isinstance(found, str):
                    skipped.append((_relative(path, base), found))
                else:
                    files.append((path, label))
                    stamps.append((found.st_size, found.st_mtime_ns))
    return tuple(files), tuple(skipped), tuple(stamps)


def refusal(path: Path, base: Path, others: list[Path] | None = None) -> str | None:
    """Why `path` is not read (None: it is): name, suffix, symlink target (outside the data
    folder, or inside one of the `others`: another class's folder), file type, size."""
    found = _examine(path, base, others)
    return found if isinstance(found, str) else None


def _examine(path: Path, base: Path, others: list[Path] | None) -> str | os.stat_result:
    """`refusal`'s reason, or the stat of the file that will be read (a symlink's target)."""
    if not _utf8(path.name):
        return "name is not UTF-8"
    if path.suffix.lower() not in SUFFIXES:
        return f"suffix '{path.suffix}' is not an image suffix"
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            target = path.resolve(strict=True)
            if not target.is_relative_to(base):
                return "symlink leaves the data folder"
            if any(target.is_relative_to(home) for home in others or ()):
                return "symlink into another class folder"
            info = target.stat()
    except RuntimeError:                 # Python 3.11 reports a loop in resolve() this way
        return "symlink loop"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symlink loop"
        return "dangling symlink" if error.errno == errno.ENOENT else f"unreadable ({error.strerror})"
    return _file_refusal(info) or info


def _file_refusal(info: os.stat_result) -> str | None:
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size == 0:
        return "empty file"
    if info.st_size > MAX_FILE_BYTES:
        return f"larger than {MAX_FILE_BYTES // 2**20} MiB"
    return None


def _relative(path: Path, base: Path) -> str:
    try:
        return path.absolute().relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _check_counts(folder: Path, classes: tuple[str, ...], files: tuple[tuple[Path, int], ...],
                  need: int, parts: str) -> None:
    """Refuse a class with fewer than `need` image files, before anything is decoded."""
    counts = [0] * len(classes)
    for _, label in files:
        counts[label] += 1
    for name, n in zip(classes, counts, strict=True):
        if n < need:
            raise DataError(f"{folder / name}: class '{name}' has {n} image file(s); need at least"
                            f" {need} to split into {parts}")


def folder_key(folder: Folder | None) -> list[Any]:
    """The pool cache's key of a folder (`Folder.key`; no folder: empty)."""
    return [] if folder is None else folder.key


def decode_folder(folder: Folder, size: tuple[int, int], progress: Progress | None) -> Pool:
    """Decode every file once, hashing relative paths + bytes; unreadable files are skipped with
    their reason (the scan's skips are the Folder's, not the pool's: they are never cached)."""
    require({"decoded images": pool_bytes(folder.count, size)}, f"decoding {folder.root}", DataError)
    hasher = hashlib.sha256(b"folder")
    total = folder.count
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
) -> tuple[Split, tuple[Skip, ...]]:
    """Decode `files` into a Split, each image written into one tensor allocated up front; a class
    left with no readable image is a DataError."""
    images = torch.empty((len(files), 3, *size), dtype=torch.uint8)
    rows = images.numpy()       # the same memory, written as numpy arrays come out of Pillow
    labels, skipped = [], []
    for done, (path, label) in enumerate(files, start + 1):
        relative = path.relative_to(folder.root).as_posix()
        data, reason = read_file(path)
        hasher.update(relative.encode() + b"\0")
        hasher.update(len(data).to_bytes(8, "little") + data)
        pixels, reason = decode_image(data, size) if reason is None else (None, reason)
        if pixels is None:
            skipped.append((relative, reason or "unreadable"))
        else:
            rows[len(labels)] = pixels.transpose(2, 0, 1)
            labels.append(label)
        if progress is not None:
            progress("decode", done, total)
    _check_readable(files, labels, folder.classes)
    if skipped:     # a copy of the rows kept: a saved view would write the whole storage
        images = images[:len(labels)].clone()
    return Split(images, torch.tensor(labels, dtype=torch.int64)), tuple(skipped)


def read_file(path: Path) -> tuple[bytes, str | None]:
    """The file's bytes, or (b'', reason). Opened non-blocking and checked with fstat, so a FIFO
    or device swapped in after the scan neither hangs nor streams forever."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        return b"", f"cannot open ({error.strerror})"
    with os.fdopen(fd, "rb") as handle:
        reason = _file_refusal(os.fstat(fd))
        if reason is not None:
            return b"", reason
        try:
            data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as error:
            return b"", f"cannot read ({error.strerror})"
    return (b"", f"larger than {MAX_FILE_BYTES // 2**20} MiB") if len(data) > MAX_FILE_BYTES else (data, None)


def decode_image(data: bytes, size: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
    """PIL decode -> RGB (16-bit greys scaled) -> bilinear resize to (H, W); (None, reason) when
    the bytes are not a whole image or pass Pillow's decompression-bomb limit."""
    try:
        with warnings.catch_warnings(), _quiet_stderr(data.startswith(TIFF_MAGIC)):
            warnings.simplefilter("ignore")         # Pillow's warnings about odd files
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                rgb = to_rgb(img).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        return None, f"more pixels than Pillow's limit of {Image.MAX_IMAGE_PIXELS:,}"
    except _UNREADABLE:
        return None, "not a readable image"
    except Exception as error:  # noqa: BLE001  (any decoder's bug on one file skips that file)
        return None, f"not a readable image ({type(error).__name__})"
    return np.asarray(rgb), None


@contextmanager
def _quiet_stderr(quiet: bool) -> Iterator[None]:
    """Send file descriptor 2 to /dev/null while the block runs, when `quiet`: libtiff writes
    its warnings there itself, past Python."""
    if not quiet:
        yield
        return
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB; 16- and 32-bit integer greys are scaled from 0..65535 to 0..255 (PIL would clip)."""
    if img.mode not in _SIXTEEN_BIT:
        return img.convert("RGB")
    wide = np.clip(np.asarray(img, dtype=np.int64), 0, 65535)
    grey = ((wide * 255 + 32767) // 65535).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def _check_readable(files: tuple[tuple[Path, int], ...], labels: list[int], classes: tuple[str, ...]) -> None:
    """A class whose files all failed to decode is a DataError naming its folder."""
    missing = sorted(set(range(len(classes))) - set(labels))
    if missing:
        folder = next(path.parent for path, label in files if label == missing[0])
        raise DataError(f"{folder}: none of the files of class '{classes[missing[0]]}' is readable")
