"""The nas_ tables: SQLAlchemy models of teachers, runs and blobs, and their portable column types.

Column names match the record dataclasses of nas.store.runs, which maps rows to records.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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


class Claim(Base):
    """Table of genomes being trained: one row per (study, genome, attention) while a worker
    trains it. The primary key makes a claim atomic; see nas.store.claims."""

    __tablename__ = "nas_claims"
    study: Mapped[str] = mapped_column(sa.String, primary_key=True)
    genome: Mapped[str] = mapped_column(sa.String, primary_key=True)
    attention: Mapped[str] = mapped_column(sa.String, primary_key=True)
    worker: Mapped[str] = mapped_column(sa.String)
    trial: Mapped[int | None] = mapped_column(sa.Integer)
    created: Mapped[datetime] = mapped_column(UTCDateTime)


class Worker(Base):
    """Table of the workers that joined a study, numbered 0, 1, 2... in joining order; the
    number derives the worker's sampler seed from the study's seed."""

    __tablename__ = "nas_workers"
    study: Mapped[str] = mapped_column(sa.String, primary_key=True)
    number: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    worker: Mapped[str] = mapped_column(sa.String)
    created: Mapped[datetime] = mapped_column(UTCDateTime)


class Quota(Base):
    """Table of shared quotas: the genomes the workers of one `nas search --jobs` run have still
    to judge; see nas.store.quotas."""

    __tablename__ = "nas_quotas"
    key: Mapped[str] = mapped_column(sa.String, primary_key=True)
    remaining: Mapped[int] = mapped_column(sa.Integer)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
