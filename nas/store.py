"""Persistence: runs, teachers and blobs in SQLAlchemy tables prefixed `nas_`.

The tables live in the same database as the Optuna study (one SQLite file, or one
PostgreSQL URL when many machines share a study), and student weights are stored
in them, so that one URL holds everything. `Store.session` is the one place that
commits, rolls back and turns driver errors into `StoreError`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker, undefer

from nas.config import nearest
from nas.errors import StoreError

if TYPE_CHECKING:
    import torch

DEFAULT_URL = "sqlite:///studies.db"
SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg")
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
STATUSES = ("running", "ok", "nan", "failed", "interrupted")
BUSY_TIMEOUT_S = 60
R = TypeVar("R")


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
        raise StoreError(f"{_safe(url)}: unsupported database scheme `{scheme}`{hint}")
    return f"{scheme}://{rest}"


@dataclass
class TeacherRecord:
    """A trained teacher, cached by the fingerprint of its spec and data."""

    fingerprint: str
    spec: dict
    val_accuracy: float
    test_accuracy: float
    weights: bytes
    history: list[dict]
    created: datetime | None = None


@dataclass
class RunRecord:
    """One student training run: what was trained, how, and what came out."""

    id: int | None
    study: str | None
    trial: int | None
    genome: str
    attention: str
    seed: int
    recipe: dict
    data_fingerprint: str
    teacher_fingerprint: str | None
    flops: int
    params: int
    status: str  # one of STATUSES
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    best_epoch: int | None = None
    history: list[dict] = field(default_factory=list)  # per-epoch metrics
    meta: dict = field(default_factory=dict)  # classes, input shape, mean/std, versions...
    weights: bytes | None = None
    duration_s: float | None = None
    created: datetime | None = None


RUN_FIELDS = tuple(f.name for f in dataclasses.fields(RunRecord))


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite keeps no zone; naive means UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store the UTC instant, and read it back as an aware UTC datetime."""
        if value is None or value.tzinfo is None:
            return value and value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    process_result_value = process_bind_param


class FiniteFloat(sa.TypeDecorator[float]):
    """Floats whose NaN and infinities are stored as NULL on every backend (SQLite drops NaN)."""

    impl = sa.Float
    cache_ok = True

    def process_bind_param(self, value: float | None, dialect: Dialect) -> float | None:
        """NULL for NaN and infinities; numpy and torch scalars become plain floats."""
        return None if value is None or not math.isfinite(value) else float(value)


class Base(DeclarativeBase):
    """Declarative base of the nas_ tables; Optuna's own tables live beside them."""


class Teacher(Base):
    """Table of trained teachers, keyed by fingerprint."""

    __tablename__ = "nas_teachers"
    fingerprint: Mapped[str] = mapped_column(sa.String, primary_key=True)
    spec: Mapped[dict] = mapped_column(sa.JSON)
    val_accuracy: Mapped[float | None] = mapped_column(FiniteFloat)
    test_accuracy: Mapped[float | None] = mapped_column(FiniteFloat)
    weights: Mapped[bytes] = mapped_column(sa.LargeBinary, deferred=True)
    history: Mapped[list] = mapped_column(sa.JSON)
    created: Mapped[datetime] = mapped_column(UTCDateTime)


class Run(Base):
    """Table of student runs; column names are RunRecord's field names."""

    __tablename__ = "nas_runs"
    __table_args__ = (sa.Index("ix_nas_runs_dedup", "study", "genome", "attention", "status"),)
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    study: Mapped[str | None] = mapped_column(sa.String)
    trial: Mapped[int | None] = mapped_column(sa.Integer)
    genome: Mapped[str] = mapped_column(sa.String)
    attention: Mapped[str] = mapped_column(sa.String)
    seed: Mapped[int] = mapped_column(sa.Integer)
    recipe: Mapped[dict] = mapped_column(sa.JSON)
    data_fingerprint: Mapped[str] = mapped_column(sa.String)
    teacher_fingerprint: Mapped[str | None] = mapped_column(sa.String)
    flops: Mapped[int] = mapped_column(sa.BigInteger)
    params: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    val_accuracy: Mapped[float | None] = mapped_column(FiniteFloat)
    test_accuracy: Mapped[float | None] = mapped_column(FiniteFloat)
    best_epoch: Mapped[int | None] = mapped_column(sa.Integer)
    history: Mapped[list] = mapped_column(sa.JSON)
    meta: Mapped[dict] = mapped_column(sa.JSON)
    weights: Mapped[bytes | None] = mapped_column(sa.LargeBinary, deferred=True)
    duration_s: Mapped[float | None] = mapped_column(FiniteFloat)
    created: Mapped[datetime] = mapped_column(UTCDateTime)


class Blob(Base):
    """Table of generic key/value blobs (e.g. cached teacher outputs)."""

    __tablename__ = "nas_blobs"
    key: Mapped[str] = mapped_column(sa.String, primary_key=True)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created: Mapped[datetime] = mapped_column(UTCDateTime)


class Store:
    """Runs, teachers and blobs in the database an Optuna study shares (see normalize_url)."""

    def __init__(self, url: str | None = None) -> None:
        """Open the database and create the nas_ tables if missing; never leaves a stray file."""
        self.url = normalize_url(url)
        self._safe_url = _safe(self.url)
        path = _sqlite_path(self.url, self._safe_url)
        fresh = path is not None and not path.exists()
        with self._translate():
            self._engine = _engine(self.url)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        try:
            self._create_tables()
        except StoreError:
            self.close()
            for stray in [path, Path(f"{path}-wal"), Path(f"{path}-shm")] if fresh else []:
                stray.unlink(missing_ok=True)
            raise

    def close(self) -> None:
        """Close pooled connections (call before a worker process exits or forks)."""
        self._engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commit on success, roll back on error, driver errors -> StoreError."""
        with self._translate(), self._sessions.begin() as session:
            yield session

    def put_teacher(self, rec: TeacherRecord) -> None:
        """Insert the teacher, or replace the one with the same fingerprint."""
        with self.session() as session:
            self._upsert(session, Teacher, {**vars(rec), "created": rec.created or _now()})

    def get_teacher(self, fingerprint: str) -> TeacherRecord | None:
        """The teacher with this fingerprint (weights included), or None."""
        with self.session() as session:
            row = session.get(Teacher, fingerprint, options=[undefer(Teacher.weights)])
            return None if row is None else _record(TeacherRecord, row)

    def add_run(self, rec: RunRecord) -> int:
        """Insert a run (its `id` is ignored) and return the id the database gave it."""
        _check_status(rec.status)
        values = {**vars(rec), "created": rec.created or _now()}
        del values["id"]
        with self.session() as session:
            row = Run(**values)
            session.add(row)
            session.flush()
            return row.id

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set some fields of a run, e.g. status, accuracies, history and weights at the end."""
        for name in fields:
            if name not in RUN_FIELDS or name == "id":
                hint = nearest(name, RUN_FIELDS)
                raise StoreError(f"update_run: `{name}` is not a run field{hint}")
        if "status" in fields:
            _check_status(fields["status"])
        with self.session() as session:
            result = session.execute(sa.update(Run).where(Run.id == run_id).values(**fields))
            if result.rowcount == 0:
                raise StoreError(f"{self._safe_url}: run {run_id} does not exist")

    def get_run(self, run_id: int) -> RunRecord:
        """The run with this id, weights included; StoreError if there is none."""
        with self.session() as session:
            row = session.get(Run, run_id, options=[undefer(Run.weights)])
            if row is None:
                raise StoreError(f"{self._safe_url}: run {run_id} does not exist")
            return _record(RunRecord, row)

    def find_run(
        self, study: str, genome: str, attention: str, status: str = "ok", *, with_weights: bool = False
    ) -> RunRecord | None:
        """The newest run of this genome and attention in the study with this status (dedup)."""
        query = sa.select(Run).where(
            Run.study == study, Run.genome == genome, Run.attention == attention, Run.status == status
        )
        runs = self._runs(query.order_by(Run.id.desc()).limit(1), with_weights)
        return runs[0] if runs else None

    def list_runs(self, study: str | None = None, *, with_weights: bool = False) -> list[RunRecord]:
        """All runs (of one study, if given) in insertion order; weights only when asked."""
        query = sa.select(Run).order_by(Run.id)
        if study is not None:
            query = query.where(Run.study == study)
        return self._runs(query, with_weights)

    def put_blob(self, key: str, data: bytes) -> None:
        """Store bytes under a key, replacing what was there."""
        with self.session() as session:
            self._upsert(session, Blob, {"key": key, "data": data, "created": _now()})

    def get_blob(self, key: str) -> bytes | None:
        """The bytes stored under a key, or None."""
        with self.session() as session:
            row = session.get(Blob, key)
            return None if row is None else row.data

    def mark_interrupted(self, study: str | None = None) -> int:
        """Mark runs still 'running' as 'interrupted' (call when none of them can be alive)."""
        query = sa.update(Run).where(Run.status == "running").values(status="interrupted")
        if study is not None:
            query = query.where(Run.study == study)
        with self.session() as session:
            return session.execute(query).rowcount

    def _runs(self, query: sa.Select[tuple[Run]], with_weights: bool) -> list[RunRecord]:
        """Run the query; the deferred weights column is loaded only when asked."""
        skip = () if with_weights else ("weights",)
        if with_weights:
            query = query.options(undefer(Run.weights))
        with self.session() as session:
            return [_record(RunRecord, row, skip) for row in session.scalars(query)]

    @contextmanager
    def _translate(self) -> Iterator[None]:
        """Turn SQLAlchemy and driver errors into one-line StoreErrors naming the URL."""
        try:
            yield
        except (SQLAlchemyError, sqlite3.Error, ImportError) as exc:
            raise StoreError(f"{self._safe_url}: {_describe(exc)}") from exc

    def _create_tables(self) -> None:
        """Create missing nas_ tables; a second try covers a racing process on PostgreSQL."""
        with self._translate():
            try:
                Base.metadata.create_all(self._engine)
            except (IntegrityError, ProgrammingError):
                Base.metadata.create_all(self._engine)

    def _upsert(self, session: Session, model: type[Base], values: dict[str, Any]) -> None:
        """INSERT ... ON CONFLICT (primary key) DO UPDATE, on SQLite and PostgreSQL alike."""
        insert = pg_insert if self._engine.dialect.name == "postgresql" else sqlite_insert
        keys = [column.name for column in model.__table__.primary_key]
        stmt = insert(model).values(values)
        changes = {name: stmt.excluded[name] for name in values if name not in keys}
        session.execute(stmt.on_conflict_do_update(index_elements=keys, set_=changes))


def state_to_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """Serialise a state_dict (torch.save format) for a LargeBinary column."""
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def bytes_to_state(data: bytes) -> dict[str, torch.Tensor]:
    """Load weights written by state_to_bytes onto the CPU, refusing anything but tensors."""
    import torch

    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip, EOF and runtime errors alike
        raise StoreError(f"stored weights ({len(data)} bytes) cannot be read: {_describe(exc)}") from exc
    if not isinstance(state, dict):
        raise StoreError(f"stored weights must be a state_dict, got {type(state).__name__}")
    return state


def _engine(url: str) -> Engine:
    """An engine whose JSON is strict; SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE."""
    if not url.startswith("sqlite"):
        return sa.create_engine(
            url, json_serializer=_dumps, pool_pre_ping=True, connect_args={"connect_timeout": 10}
        )
    engine = sa.create_engine(url, json_serializer=_dumps, connect_args={"timeout": BUSY_TIMEOUT_S})
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: sqlite3.Connection, record: Any) -> None:
    """Pragmas for several worker processes on one file; transactions begin in _sqlite_begin."""
    dbapi_connection.isolation_level = None
    _sqlite_pragmas(dbapi_connection, record)
    dbapi_connection.execute("PRAGMA foreign_keys = ON")


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, record: Any) -> None:
    """WAL, a busy timeout and no fsync per commit (WAL keeps the file consistent)."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def tune_engine(engine: Engine) -> None:
    """Give another library's SQLite engine (Optuna's) our pragmas: several processes can then
    share the file without 'database is locked', and a commit costs no fsync."""
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        engine.dispose()


def _sqlite_begin(connection: Connection) -> None:
    """Take the write lock up front, so that a transaction never fails upgrading a read lock."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_path(url: str, safe_url: str) -> Path | None:
    """The file a SQLite URL names, once its directory is known to exist and be writable."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database).expanduser()
    parent = path.absolute().parent
    if not parent.exists():
        raise StoreError(f"{safe_url}: directory {parent} does not exist")
    if not parent.is_dir():
        raise StoreError(f"{safe_url}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"{safe_url}: directory {parent} is not writable")
    return path


def _record(cls: type[R], row: Base, skip: tuple[str, ...] = ()) -> R:
    """A record dataclass from a row, leaving the fields in `skip` (deferred weights) untouched."""
    names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    return cls(**{name: getattr(row, name) for name in names})


def _check_status(status: str) -> None:
    """Refuse statuses outside STATUSES."""
    if status not in STATUSES:
        raise StoreError(f"run status must be one of {list(STATUSES)}, got {status!r}")


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


def _now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def _safe(url: str) -> str:
    """The URL with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _describe(exc: BaseException) -> str:
    """The driver's own message, first line only, without SQLAlchemy's SQL echo."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__
