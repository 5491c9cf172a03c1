"""`nas delete`: a study's Optuna trials and the `nas_` rows it owns, one deleter at a time.

A search study owns its Optuna study and its runs, except runs an ablation tagged under the
same name (a study named `ablate/...` before such names were refused); an ablation, which has
no Optuna study, owns every run of its name. Deleters of one name take a claim on it first, so
of two at once one deletes and the other is told the study is gone or going.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nas.errors import ReportError, StoreError, nearest
from nas.store import claims
from nas.store.database import existing_tables, normalize_url, refuse_foreign, safe_url
from nas.store.runs import Store
from nas.study.report.summary import database_exists
from nas.study.storage_errors import optuna_errors

LOCK = "#delete"            # the claim's genome while a study is being deleted


def delete_study(url: str | None, name: str) -> dict[str, Any]:
    """Delete the Optuna study named `name` and what it owns in the `nas_` tables (runs with
    their weights, claims, worker numbers); either may be missing, not both."""
    normalized = normalize_url(url)
    where = safe_url(normalized)
    tables = existing_tables(normalized) if database_exists(normalized) else set()
    if "studies" not in tables and "nas_runs" not in tables:
        raise StoreError(f"{where}: holds no nas study (no such file, or no Optuna or nas "
                         "tables); nothing deleted")
    refuse_foreign(normalized)      # a `studies` table of another program's, or of another schema
    store = Store(normalized) if "nas_runs" in tables else None
    try:
        with _deleting(store, name, where):
            names, found = _delete_optuna(normalized, name, "studies" in tables)
            runs, weight_bytes, kept = store.delete_study(name, search=found) if store else (0, 0, 0)
    finally:
        if store is not None:
            store.close()
    if not found and runs == 0:
        raise ReportError(f"{where}: no study named {name!r}{nearest(name, names)} (deleted, "
                          f"or never made); studies: {', '.join(sorted(names)) or 'none'}")
    return {"study": name, "storage": where, "optuna_study": found, "runs": runs,
            "weight_bytes": weight_bytes, "kept_runs": kept}


def _delete_optuna(url: str, name: str, has_tables: bool) -> tuple[list[str], bool]:
    """(the Optuna study names, whether `name` was one and is now deleted)."""
    if not has_tables:
        return [], False
    import optuna

    with optuna_errors(url):
        storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
        try:
            names = optuna.get_all_study_names(storage)
            if name not in names:
                return names, False
            optuna.delete_study(study_name=name, storage=storage)
        except KeyError:            # deleted since (a deleter that ignored the claim)
            return names, False
        finally:
            storage.engine.dispose()
    return names, True


@contextmanager
def _deleting(store: Store | None, name: str, where: str) -> Iterator[None]:
    """Hold the delete claim on `name` while the block runs; another live deleter holding it
    is a ReportError. A claim left by a killed deleter on this host is taken over."""
    if store is None:
        yield
        return
    me = claims.worker_name()
    held = claims.claim(store, name, LOCK, "", worker=me)
    if held.outcome == claims.TAKEN and claims.holder_dead(held.holder):
        claims.release(store, claims.Claim(name, LOCK, "", held.holder or "", None, claims.MINE))
        held = claims.claim(store, name, LOCK, "", worker=me)
    if held.outcome != claims.MINE:
        raise ReportError(f"{where}: study {name!r} is being deleted by another process "
                          f"({held.holder})")
    try:
        yield
    finally:
        claims.release(store, held)
