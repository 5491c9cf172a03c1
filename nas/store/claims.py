"""Atomic claims on (study, genome, attention), so that no genome of a study is trained twice,
and the numbering of a study's workers.

    got = claim(store, study, genome, attention, worker=worker_name(), trial=7)
    if got.outcome == MINE:     # train it; store the run; then release(store, got)
    elif got.outcome == DONE:   # reuse got.run: judged already, stored as 'ok' or 'pruned'
    else:                       # TAKEN: got.holder trains it right now; wait_for(store, got)

A claim is one row of nas_claims, whose primary key is (study, genome, attention): the row is
inserted with INSERT ... ON CONFLICT DO NOTHING in the transaction that also looks for a judged
run (JUDGED: 'ok', or 'pruned' at a rung), so of any number of workers (processes or machines,
SQLite or PostgreSQL) exactly one gets MINE. The holder releases the claim after its run is
stored, whatever the run's status: later claims answer DONE with the run when it is judged (the
'ok' one when both exist), and MINE again when it failed, was interrupted or gave NaN, so a
failed genome may be tried again but a trained or pruned one never is. A search passes
`reusable`, which looks at a judged run's recipe: a run of another recipe answers nothing, as
if it were not there (a study made before recipes were part of its identity).

A worker killed while training cannot release its claim. The search's watchdog fails the
worker's Optuna trial once its heartbeat is older than the grace period and calls
`abandon_trial`, which deletes the trial's claims and marks its 'running' runs 'interrupted';
a worker that waits on such a claim then gets MINE. A dead worker therefore holds a claim for
at most the grace period plus one watchdog interval.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from nas.errors import StoreError
from nas.store.runs import RunRecord, Store
from nas.store.tables import Claim as ClaimRow
from nas.store.tables import Run, Worker

MINE, DONE, TAKEN = "mine", "done", "taken"
JUDGED = ("ok", "pruned")       # run statuses that answer DONE, in order of preference
TRIES = 50
RecipeCheck = Callable[[Any], bool]     # a stored run's recipe -> whether it may be reused


@dataclass(frozen=True)
class Claim:
    """The answer to a claim: MINE (train it), DONE (reuse `run`) or TAKEN (`holder` trains it)."""

    study: str
    genome: str
    attention: str
    worker: str
    trial: int | None
    outcome: str
    run: RunRecord | None = None        # DONE: the stored 'ok' (else 'pruned') run, no weights
    holder: str | None = None           # TAKEN: the worker that holds the claim
    holder_trial: int | None = None     # TAKEN: and its trial


def worker_name() -> str:
    """This process, as claims and the worker table name it: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(store: Store, study: str, genome: str, attention: str, *, worker: str,
          trial: int | None = None, reusable: RecipeCheck | None = None) -> Claim:
    """Claim (study, genome, attention) for `worker` in one transaction: MINE, DONE or TAKEN.
    With `reusable`, only a judged run whose recipe it accepts answers DONE."""
    ask = Claim(study, genome, attention, worker, trial, MINE)
    for _ in range(TRIES):
        with store.session() as session:
            outcome, holder = _try_claim(store, session, ask, reusable)
        if outcome == DONE:
            return Claim(**{**vars(ask), "outcome": DONE, "run": _judged(store, ask, reusable)})
        if outcome == MINE:
            return ask
        if holder is not None:
            return Claim(**{**vars(ask), "outcome": TAKEN, "holder": holder[0],
                            "holder_trial": holder[1]})
    raise StoreError(f"claim of {genome} {attention} in study {study!r}: the claim changed hands "
                     f"{TRIES} times in a row")


def _try_claim(store: Store, session: Any, ask: Claim, reusable: RecipeCheck | None = None
               ) -> tuple[str, tuple[str, int | None] | None]:
    """Insert the claim unless it exists, then look for a judged run (a holder may have stored
    it and released since our insert): (MINE | DONE | TAKEN, the holder when TAKEN)."""
    insert = pg_insert if store.dialect == "postgresql" else sqlite_insert
    row = {"study": ask.study, "genome": ask.genome, "attention": ask.attention,
           "worker": ask.worker, "trial": ask.trial, "created": datetime.now(UTC)}
    statement = insert(ClaimRow).values(row).on_conflict_do_nothing().returning(ClaimRow.worker)
    inserted = session.execute(statement).first() is not None     # a row back: ours
    recipes = session.scalars(sa.select(Run.recipe).where(
        Run.study == ask.study, Run.genome == ask.genome, Run.attention == ask.attention,
        Run.status.in_(JUDGED)))
    if any(reusable is None or reusable(recipe) for recipe in recipes):
        if inserted:
            session.execute(sa.delete(ClaimRow).where(*_key(ask), ClaimRow.worker == ask.worker))
        return DONE, None
    if inserted:
        return MINE, None
    holder = session.execute(sa.select(ClaimRow.worker, ClaimRow.trial).where(*_key(ask))).first()
    return TAKEN, None if holder is None else (holder[0], holder[1])


def _judged(store: Store, ask: Claim, reusable: RecipeCheck | None = None) -> RunRecord | None:
    """The newest judged run of the claim's genome that `reusable` accepts: an 'ok' one if
    any, else a 'pruned' one."""
    runs = store.find_runs(ask.study, ask.genome, ask.attention, JUDGED)
    for status in JUDGED:
        for run in runs:
            if run.status == status and (reusable is None or reusable(run.recipe)):
                return run
    return None


def release(store: Store, held: Claim) -> bool:
    """Give back a MINE claim once its run is stored (any status); False if it was not held
    any more (the watchdog abandoned its trial)."""
    if held.outcome != MINE:
        return False
    with store.session() as session:
        result = session.execute(sa.delete(ClaimRow).where(
            *_key(held), ClaimRow.worker == held.worker))
        return result.rowcount == 1


def wait_for(store: Store, taken: Claim, *, poll_s: float = 1.0,
             deadline: float | None = None, reusable: RecipeCheck | None = None) -> Claim:
    """Claim again every `poll_s` seconds until the answer is not TAKEN (the holder stored its
    run, failed, or was abandoned by the watchdog) or time.monotonic() passes `deadline`."""
    again = taken
    while again.outcome == TAKEN and (deadline is None or time.monotonic() < deadline):
        time.sleep(poll_s)
        again = claim(store, taken.study, taken.genome, taken.attention, worker=taken.worker,
                      trial=taken.trial, reusable=reusable)
    return again


def holder_dead(holder: str | None) -> bool:
    """True for a `host:pid` holder on this host whose process is gone."""
    host, _, pid = (holder or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def abandon_trial(store: Store, study: str, trials: Iterable[int]) -> tuple[int, int]:
    """After trials failed (a stale heartbeat, or a worker that could not clean up): delete
    their claims and mark their 'running' runs 'interrupted', in one transaction. Returns
    (claims released, runs interrupted)."""
    numbers = list(trials)
    if not numbers:
        return 0, 0
    with store.session() as session:
        released = session.execute(sa.delete(ClaimRow).where(
            ClaimRow.study == study, ClaimRow.trial.in_(numbers))).rowcount
        runs = session.execute(sa.update(Run).where(
            Run.study == study, Run.trial.in_(numbers), Run.status == "running"
        ).values(status="interrupted")).rowcount
    return released, runs


def holders(store: Store, study: str) -> list[tuple[str, str, str, int | None]]:
    """The claims held now in a study: (genome, attention, worker, trial)."""
    with store.session() as session:
        rows = session.execute(sa.select(ClaimRow.genome, ClaimRow.attention, ClaimRow.worker,
                                         ClaimRow.trial).where(ClaimRow.study == study))
        return [tuple(row) for row in rows]


def join(store: Store, study: str, worker: str) -> int:
    """Number this worker in the study: 0 for the first to join, then 1, 2...; the number is
    the primary key, so two workers joining at once cannot get the same one."""
    for _ in range(TRIES):
        try:
            with store.session() as session:
                number = session.scalar(sa.select(sa.func.coalesce(sa.func.max(Worker.number) + 1, 0))
                                        .where(Worker.study == study))
                session.add(Worker(study=study, number=number, worker=worker,
                                   created=datetime.now(UTC)))
            return int(number)
        except StoreError as error:
            if not isinstance(error.__cause__, IntegrityError):
                raise
    raise StoreError(f"study {study!r}: could not number worker {worker} after {TRIES} tries")


def _key(held: Claim) -> tuple[Any, ...]:
    """The WHERE clause naming a claim's row."""
    return (ClaimRow.study == held.study, ClaimRow.genome == held.genome,
            ClaimRow.attention == held.attention)
