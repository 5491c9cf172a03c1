"""Persistence: runs, teachers and blobs in SQLAlchemy tables prefixed `nas_`.

The tables live in the same database as the Optuna study (one SQLite file, or one
PostgreSQL URL when many machines share a study), and student weights are stored
in them, so that one URL holds everything. `Store.session` is the one place that
commits, rolls back and turns driver errors into `StoreError`. The tables are defined
in nas.store.tables, URLs and engines are made in nas.store.database.
"""

from __future__ import annotations

import dataclasses
import io
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker, undefer

from nas.errors import StoreError, nearest
from nas.store.database import describe as _describe
from nas.store.database import make_engine, normalize_url, refuse_foreign, safe_url, sqlite_path
from nas.store.tables import Base, Blob, Claim, Run, Teacher, Worker

if TYPE_CHECKING:
    import torch

STATUSES = ("running", "ok", "nan", "failed", "interrupted", "pruned")   # pruned: at a rung
R = TypeVar("R")


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


CREATE_TRIES = 20


class Store:
    """Runs, teachers and blobs in the database an Optuna study shares (see normalize_url)."""

    def __init__(self, url: str | None = None, readonly: bool = False) -> None:
        """Open the database and create the nas_ tables if missing; never leaves a stray file.
        `readonly` (report, export): a SQLite file is opened read-only and nothing is created."""
        self.url = normalize_url(url)
        self._safe_url = safe_url(self.url)
        with self._translate():
            self._engine = make_engine(self.url, readonly)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        if readonly:
            return
        path = sqlite_path(self.url, self._safe_url)
        fresh = path is not None and not path.exists()
        refuse_foreign(self.url)
        try:
            self._create_tables()
        except StoreError:
            self.close()
            if fresh and path.exists() and path.stat().st_size == 0:    # ours, and still empty
                for stray in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                    stray.unlink(missing_ok=True)
            raise

    def close(self) -> None:
        """Close pooled connections (call before a worker process exits or forks)."""
        self._engine.dispose()

    @property
    def dialect(self) -> str:
        """The backend's name: `sqlite` or `postgresql`."""
        return self._engine.dialect.name

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

    def find_runs(self, study: str, genome: str, attention: str,
                  statuses: tuple[str, ...]) -> list[RunRecord]:
        """The runs of this genome and attention in the study with one of `statuses`, newest
        first, without weights."""
        query = sa.select(Run).where(Run.study == study, Run.genome == genome,
                                     Run.attention == attention, Run.status.in_(statuses))
        return self._runs(query.order_by(Run.id.desc()), False)

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

    def delete_study(self, study: str, *, search: bool = False) -> tuple[int, int, int]:
        """Delete what a study owns: (runs deleted, their weight bytes, ablation runs kept).
        With `search`, a search study's runs, claims and worker numbers: runs an ablation tagged
        (meta["ablation"]) under the same name are kept; without, every row of the name."""
        with self.session() as session:
            kept = self._ablation_runs(session, study) if search else []
            owned = (Run.study == study, Run.id.not_in(kept))
            size = session.execute(sa.select(sa.func.coalesce(sa.func.sum(sa.func.length(
                Run.weights)), 0)).where(*owned)).scalar_one()
            claims = sa.delete(Claim).where(Claim.study == study)
            session.execute(claims.where(Claim.trial.is_not(None)) if search else claims)
            session.execute(sa.delete(Worker).where(Worker.study == study))
            return session.execute(sa.delete(Run).where(*owned)).rowcount, int(size), len(kept)

    @staticmethod
    def _ablation_runs(session: Session, study: str) -> list[int]:
        """Ids of the study's runs that an ablation tagged (meta["ablation"])."""
        rows = session.execute(sa.select(Run.id, Run.meta).where(Run.study == study))
        return [i for i, meta in rows if isinstance(meta, dict) and "ablation" in meta]

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
        """Create missing nas_ tables; retries cover processes racing to create them (a
        PostgreSQL catalog conflict, or SQLite busy while another one switches to WAL)."""
        for attempt in range(CREATE_TRIES):
            try:
                with self._translate():
                    Base.metadata.create_all(self._engine)
                return
            except StoreError as error:
                racing = isinstance(error.__cause__, IntegrityError | ProgrammingError) or \
                    "locked" in str(error)
                if not racing or attempt == CREATE_TRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

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
    from nas.model.weights import UnreadableWeights, load_weights

    try:
        state = load_weights(data)
    except UnreadableWeights as error:
        raise StoreError(f"stored weights ({len(data)} bytes) cannot be read: {error}") from None
    if not isinstance(state, dict):
        raise StoreError(f"stored weights must be a state_dict, got {type(state).__name__}")
    return state


def _record(cls: type[R], row: Base, skip: tuple[str, ...] = ()) -> R:
    """A record dataclass from a row, leaving the fields in `skip` (deferred weights) untouched."""
    names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    return cls(**{name: getattr(row, name) for name in names})


def _check_status(status: str) -> None:
    """Refuse statuses outside STATUSES."""
    if status not in STATUSES:
        raise StoreError(f"run status must be one of {list(STATUSES)}, got {status!r}")


def _now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)
