"""Which files `nas export` may write: a new file, or one it wrote before (a nas checkpoint, an
ONNX model); anything else only with --force, and never a SQLite database or the study's own
database files, which an atomic rename would replace whole (issue 22).
"""

from __future__ import annotations

import os
from pathlib import Path

from nas.errors import CheckpointError

SQLITE_HEADER = b"SQLite format 3\x00"
DATABASE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def check_target(path: Path, kind: str, *, force: bool = False,
                 database: Path | None = None) -> None:
    """Refuse to replace `path` unless it is new or already a `kind` file ('checkpoint' or
    'onnx'); --force allows a foreign file, never a SQLite database or `database`'s files."""
    if not os.path.lexists(path):
        return
    if database is not None and _is_database_file(path, database):
        raise CheckpointError(f"{path}: is the study's database ({database}); export never "
                              "replaces it, give another file name")
    if not path.is_file():
        return                  # a directory or a device: the writer names the problem
    if _is_sqlite(path):
        raise CheckpointError(f"{path}: is a SQLite database; export never replaces one, give "
                              "another file name")
    if force or (_is_checkpoint(path) if kind == "checkpoint" else _is_onnx(path)):
        return
    what = "a nas checkpoint" if kind == "checkpoint" else "an ONNX model"
    raise CheckpointError(f"{path}: exists and is not {what}; pass --force to replace it, "
                          "or give another file name")


def _is_database_file(path: Path, database: Path) -> bool:
    """Whether `path` is the database file or its -wal, -shm or -journal file."""
    target = path.expanduser().resolve()
    for suffix in DATABASE_SUFFIXES:
        other = Path(f"{database}{suffix}").expanduser()
        if target == other.resolve() or (other.exists() and _same(path, other)):
            return True
    return False


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _is_sqlite(path: Path) -> bool:
    """Whether the file opens with SQLite's 16-byte header."""
    try:
        with open(path, "rb") as file:
            return file.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def _is_checkpoint(path: Path) -> bool:
    """Whether the file is a checkpoint `nas export` wrote (any format)."""
    from nas.model.weights import UnreadableWeights, load_weights
    from nas.study.report.export import KIND

    try:
        checkpoint = load_weights(path)
    except UnreadableWeights:
        return False
    return isinstance(checkpoint, dict) and checkpoint.get("kind") == KIND


def _is_onnx(path: Path) -> bool:
    """Whether the file parses as an ONNX model with a graph (protobuf parses much garbage as an
    empty message, so an IR version and at least one node are required)."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001  (protobuf and onnx raise many types on foreign bytes)
        return False
    return model.ir_version > 0 and len(model.graph.node) > 0
