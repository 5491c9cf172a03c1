"""Database URLs and engines: normalisation, password masking, strict JSON and SQLite pragmas.

One SQLite file (WAL, busy timeout, BEGIN IMMEDIATE) or one PostgreSQL URL serves both
the nas_ tables and the Optuna study, from several worker processes at once.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import random
import re
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)

from nas.errors import StoreError, nearest

DEFAULT_URL = "sqlite:///studies.db"
SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg")
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
BUSY_TIMEOUT_S = 60
RACE_TRIES = 40
RACES = ("already exists", "locked", "duplicate key", "unique constraint")
OPTUNA_TABLES = frozenset({"studies", "trials", "version_info", "alembic_version"})
OPTUNA_SCRIPTS = ("storages", "_rdb", "alembic", "versions")     # its schema revisions, in the package
T = TypeVar("T")


def storage_url(storage: str | None) -> str | None:
    """`storage`, else $NAS_STORAGE, else None (DEFAULT_URL): what `--storage` and the Python
    API's `storage` argument both mean."""
    return storage or os.environ.get("NAS_STORAGE") or None


def normalize_url(url: str | None) -> str:
    """The URL both Store and Optuna get: None -> DEFAULT_URL, a bare .db path -> SQLite,
    postgresql:// and postgres:// -> the psycopg 3 driver; a mistyped scheme is an error."""
    if url is None:
        return DEFAULT_URL
    url = url.strip()
    if "://" not in url:
        if url.endswith(SQLITE_SUFFIXES):
            return f"sqlite:///{Path(url).expanduser()}"
        raise StoreError(
            f"{url!r} is not a database URL; use sqlite:///FILE.db, a path "
            "ending .db, or postgresql://USER:PASSWORD@HOST/DATABASE"
        )
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    if scheme not in SCHEMES:
        hint = nearest(scheme, SCHEMES) or f" (supported: {', '.join(SCHEMES)})"
        raise StoreError(f"{safe_url(url)}: unsupported database scheme `{scheme}`{hint}")
    if scheme.startswith("sqlite") and rest.split("?", 1)[0] in ("", "/", "/:memory:"):
        raise StoreError(f"{url}: names no database file, and a study must outlive the "
                         "process; use sqlite:///FILE.db")
    return f"{scheme}://{rest}"


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages; a SQLite URI (readonly_url) as the plain
    sqlite:///FILE it names."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    if parsed.get_backend_name() == "sqlite" and parsed.query.get("uri") == "true":
        return f"sqlite:///{sqlite_file(url)}"
    return parsed.render_as_string(hide_password=True)


def make_engine(url: str, readonly: bool = False) -> Engine:
    """An engine whose JSON is strict; SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE, or,
    `readonly`, opens the file read-only (readonly_url) and changes nothing in it."""
    if not url.startswith("sqlite"):
        return sa.create_engine(
            url, json_serializer=_dumps, pool_pre_ping=True, connect_args={"connect_timeout": 10}
        )
    if readonly:
        return sa.create_engine(readonly_url(url), connect_args={"timeout": BUSY_TIMEOUT_S})
    engine = sa.create_engine(url, json_serializer=_dumps, connect_args={"timeout": BUSY_TIMEOUT_S})
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names, also when written as a URI (`sqlite:///file:x.db?mode=ro&
    uri=true`); None for a server or an in-memory database."""
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or name in (None, "", ":memory:"):
        return None
    if parsed.query.get("uri") == "true" and name.startswith("file:"):
        name = unquote(name.removeprefix("file:").split("?", 1)[0])
    return Path(name).expanduser()


def readonly_url(url: str) -> str:
    """The URL to read a SQLite database without writing a byte: `mode=ro`, and `immutable`
    when it has no -wal file (every page is in the file), so that no -wal or -shm is created
    either (a read-only mount, another program's file). Other URLs are returned as they are."""
    path = sqlite_file(url)
    return url if path is None else f"sqlite:///{_readonly_uri(path)}&uri=true"


def _readonly_uri(path: Path) -> str:
    """SQLite's own URI of `path` opened read-only (see readonly_url)."""
    flags = "mode=ro" if Path(f"{path}-wal").exists() else "mode=ro&immutable=1"
    return f"file:{quote(str(path))}?{flags}"


def existing_tables(url: str) -> set[str]:
    """The tables of the database at `url`, read without writing anything."""
    path = sqlite_file(url)
    if path is not None:
        return {row[0] for row in _read(url, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    engine = sa.create_engine(url, connect_args={"connect_timeout": 10})
    try:
        return set(sa.inspect(engine).get_table_names())
    except SQLAlchemyError as error:
        raise StoreError(f"{safe_url(url)}: {describe(error)}") from error
    finally:
        engine.dispose()


def _read(url: str, query: str) -> list[Any]:
    """The rows of a query, read without writing anything: a SQLite file is opened read-only
    (never created, never switched to WAL), a server through a plain engine."""
    path = sqlite_file(url)
    try:
        if path is not None:
            with closing(sqlite3.connect(_readonly_uri(path), uri=True)) as connection:
                return list(connection.execute(query))
        engine = sa.create_engine(url, connect_args={"connect_timeout": 10})
        try:
            with engine.connect() as connection:
                return list(connection.exec_driver_sql(query))
        finally:
            engine.dispose()
    except (sqlite3.Error, SQLAlchemyError) as error:
        raise StoreError(f"{safe_url(url)}: {describe(error)}") from error


def refuse_foreign(url: str) -> set[str]:
    """The database's tables, once it is known to be empty or made by nas or Optuna; a database
    another program made (other tables, or an `alembic_version` that is not this Optuna's
    schema) is refused before anything is written. A study made by plain Optuna is refused per
    study (nas.study.report.summary.nas_study_names)."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        return set()
    tables = existing_tables(url)
    if tables and not OPTUNA_TABLES <= tables and not any(t.startswith("nas_") for t in tables):
        shown = ", ".join(sorted(tables)[:3]) + (", ..." if len(tables) > 3 else "")
        raise StoreError(f"{safe_url(url)}: another program's database (tables {shown}), not "
                         "one of nas; name a new file or an empty database")
    if "alembic_version" in tables:
        _check_schema(url)
    return tables


def _check_schema(url: str) -> None:
    """The database's `alembic_version` must be the schema this Optuna writes (or still empty:
    another worker's Optuna is creating its tables); an older one of Optuna's is named with the
    upgrade command, any other is another program's."""
    rows = _read(url, "SELECT version_num FROM alembic_version")
    known, head = optuna_revisions()
    found = [str(row[0])[:40] for row in rows]
    if head is None or found in ([], [head]):
        return
    if len(found) == 1 and found[0] in known:
        raise StoreError(f"{safe_url(url)}: its Optuna schema is {found[0]}, this Optuna writes "
                         f"{head}; upgrade it with `optuna storage upgrade --storage URL`")
    raise StoreError(f"{safe_url(url)}: another program's database (its alembic_version "
                     f"{', '.join(found) or 'is empty'}, not an Optuna schema), not one of nas; "
                     "name a new file or an empty database")


@functools.cache
def optuna_revisions() -> tuple[frozenset[str], str | None]:
    """Every schema revision the installed Optuna knows and the newest (its head), read from its
    migration scripts without importing it; (empty, None) when they cannot be found."""
    spec = importlib.util.find_spec("optuna")
    if spec is None or not spec.submodule_search_locations:
        return frozenset(), None
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in Path(spec.submodule_search_locations[0]).joinpath(*OPTUNA_SCRIPTS).glob("*.py"):
        text = script.read_text(encoding="utf-8")
        revisions.update(re.findall(r"^revision\s*=\s*[\"']([^\"']+)", text, re.MULTILINE))
        parents.update(re.findall(r"^down_revision\s*=\s*[\"']([^\"']+)", text, re.MULTILINE))
    heads = revisions - parents
    return frozenset(revisions), next(iter(heads)) if len(heads) == 1 else None


def new_sqlite_file(url: str | None) -> Path | None:
    """The file a SQLite URL names if it does not exist yet: a command that fails before
    storing anything removes it again (remove_unused), so bad input leaves no database."""
    try:
        parsed = make_url(normalize_url(url))
    except (StoreError, ArgumentError):
        return None
    path = sqlite_file(parsed.render_as_string(hide_password=False))
    return None if path is None or path.exists() else path


def remove_unused(path: Path) -> bool:
    """Remove a SQLite file (and its -wal and -shm) whose every table is empty; True if removed."""
    if not path.is_file():
        return False
    try:
        with closing(sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)) as connection:
            tables = [row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
            if any(connection.execute(f'SELECT 1 FROM "{name}" LIMIT 1').fetchone() for name in tables):
                return False
    except sqlite3.Error:
        return False
    for stray in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stray.unlink(missing_ok=True)
    return True


def engine_options(url: str) -> dict[str, Any]:
    """create_engine keywords for another library's engine on `url` (Optuna's): SQLite waits
    as long as ours for a lock, PostgreSQL checks pooled connections before use."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": BUSY_TIMEOUT_S}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}


def retry_races(make: Callable[[], T], url: str) -> T:
    """`make()`, which creates tables (Optuna's storage), retried while other processes create
    the same tables at the same moment ('already exists', a unique violation on a version row,
    'database is locked', a PostgreSQL catalog conflict); any other error is a StoreError."""
    for attempt in range(RACE_TRIES):
        try:
            return make()
        except (IntegrityError, OperationalError, ProgrammingError) as error:
            racing = isinstance(error, IntegrityError) or any(
                race in str(error).lower() for race in RACES)
            if not racing or attempt == RACE_TRIES - 1:
                raise StoreError(f"{safe_url(url)}: {describe(error)}") from error
            time.sleep(random.uniform(0.02, 0.1) * (1 + attempt))
    raise StoreError(f"{safe_url(url)}: could not create the tables")  # not reached


def describe(exc: BaseException) -> str:
    """The driver's own message, first line only, without SQLAlchemy's SQL echo."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__


def tune_engine(engine: Engine) -> None:
    """Give another library's SQLite engine (Optuna's) our pragmas: several processes can then
    share the file without 'database is locked', and a commit costs no fsync."""
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        engine.dispose()


def sqlite_path(url: str, safe: str) -> Path | None:
    """The file a SQLite URL names, once its directory is known to exist and be writable."""
    path = sqlite_file(url)
    if path is None:
        return None
    parent = path.absolute().parent
    if not parent.exists():
        raise StoreError(f"{safe}: directory {parent} does not exist")
    if not parent.is_dir():
        raise StoreError(f"{safe}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"{safe}: directory {parent} is not writable")
    return path


def _sqlite_connect(dbapi_connection: sqlite3.Connection, record: Any) -> None:
    """Pragmas for several worker processes on one file; transactions begin in _sqlite_begin."""
    dbapi_connection.isolation_level = None
    _sqlite_pragmas(dbapi_connection, record)
    dbapi_connection.execute("PRAGMA foreign_keys = ON")


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, record: Any) -> None:
    """WAL, a busy timeout and no fsync per commit (WAL keeps the file consistent)."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        cursor.execute("PRAGMA journal_mode = WAL")     # persistent: only the first opener pays
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    """Take the write lock up front, so that a transaction never fails upgrading a read lock."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _dumps(value: Any) -> str:
    """JSON every backend accepts: NaN and infinities become null, numpy/torch scalars numbers."""
    return json.dumps(_finite(value), allow_nan=False)


def _finite(value: Any) -> Any:
    """Replace non-finite floats by None, recursively (PostgreSQL's JSON has no NaN)."""
    if hasattr(value, "tolist"):  # numpy and torch scalars and arrays
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
