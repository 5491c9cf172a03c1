"""Optuna's storage errors, and the database driver's, as one line naming the database.

Shared by the search (its workers open the storage) and the report and `nas delete` (which read
and delete studies), so every command words a database failure the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import optuna
from sqlalchemy.exc import SQLAlchemyError

from nas.errors import StoreError
from nas.store.database import safe_url


@contextmanager
def optuna_errors(url: str) -> Iterator[None]:
    """Optuna's storage errors, and its refusal of a foreign schema version, -> one-line
    StoreError naming the URL (password masked)."""
    try:
        yield
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as error:
        raise StoreError(f"{safe_url(url)}: {first_line(error.__cause__ or error)}") from error
    except RuntimeError as error:       # Optuna's check of the schema version (alembic_version)
        if "table schema" not in str(error):
            raise
        raise StoreError(f"{safe_url(url)}: its alembic_version is not one of Optuna's schema "
                         "versions (another program's database?)") from error


def first_line(error: object) -> str:
    """The first non-empty line of an error's text, or its type's name."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
