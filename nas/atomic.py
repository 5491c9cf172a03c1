"""Atomic file writes: a temporary file beside the target, fsync, rename, fsync the directory.

A reader, or a process killed at any moment of the write, sees the old file whole or the new
one whole, never a mix. A kill leaves the temporary file `.NAME.PID.RANDOM.tmp` behind; the
next write of the same target (`sweep`) removes those whose writing process is gone. Errors
are OSErrors, raised after the temporary file is removed; callers name what they were writing.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUFFIX = ".tmp"


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Replace `path` by `data` atomically; returns the path."""
    with atomic_path(path) as temp, open(temp, "wb") as file:
        file.write(data)
    return Path(path)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write the new file to (by name, for writers that open it themselves);
    on success it is fsynced and renamed over `path`, on error removed."""
    path = Path(path)
    sweep(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{SUFFIX}")
    try:
        yield temp
        _fsync(temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def sweep(path: str | Path) -> list[Path]:
    """Remove the temporary files a killed writer of `path` left behind (their process is
    gone); returns them."""
    path = Path(path)
    removed = []
    for leftover in leftovers(path):
        pid = leftover.name[len(path.name) + 2:].split(".")[0]
        if pid.isdecimal() and not _alive(int(pid)):
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


def leftovers(path: str | Path) -> list[Path]:
    """Temporary files of `path` that exist now, alive writers' included."""
    path = Path(path)
    prefix = f".{path.name}."
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    return [path.parent / name for name in names if name.startswith(prefix) and name.endswith(SUFFIX)]


def _alive(pid: int) -> bool:
    """Whether a process with this id exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync(path: Path) -> None:
    """Flush a file's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Flush a directory entry (the rename) to the disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
