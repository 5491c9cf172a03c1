"""What lets many search workers share one study: Optuna's storage opened safely by any number
of processes at once, heartbeats, the watchdog, per-worker sampler seeds, and the errors that
stop a worker.

Liveness: while a trial runs, its worker records an Optuna heartbeat every `heartbeat_s`
seconds (a thread). Every live worker also runs a watchdog thread that, every `heartbeat_s`
seconds, fails the study's trials whose last heartbeat is older than `grace_s`
(`optuna.storages.fail_stale_trials`); the storage's stale-trial callback then releases the
dead trial's genome claim and marks its run 'interrupted' (nas.store.claims.abandon_trial).
Heartbeats use the database's clock, so machines need not agree on the time.

A `--jobs` worker dies with its parent (die_with_parent): it watches a pipe whose write end only
the parent holds, which the kernel closes however the parent dies.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import optuna
from optuna.trial import FrozenTrial, Trial
from sqlalchemy.exc import SQLAlchemyError

from nas.errors import Stopped, StoreError, TrainError
from nas.store import claims
from nas.store.database import engine_options, retry_races, tune_engine
from nas.store.quotas import SharedQuota
from nas.store.runs import Store
from nas.study.storage_errors import first_line, optuna_errors

HEARTBEAT_S = 30
GRACE_S = 4 * HEARTBEAT_S
MAX_FAILURES = 5                # this many failed trials in a row stop the search
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)    # a clean stop, exit 128 + signal
# set by the parent of --jobs workers (nas.study.search.processes.start) for die_with_parent
LIFELINE_ENV, STORAGE_ENV, QUOTA_ENV = "NAS_JOBS_LIFELINE", "NAS_JOBS_STORAGE", "NAS_JOBS_QUOTA"
_orphaned = threading.Event()       # in a worker: its parent is gone


def open_storage(store: Store, heartbeat_s: int = HEARTBEAT_S,
                 grace_s: int = GRACE_S) -> optuna.storages.RDBStorage:
    """Optuna's storage in the store's database, with heartbeats; workers starting at once
    race to create Optuna's tables, so creation is retried on those races."""
    def stale(study: optuna.Study, trial: FrozenTrial) -> None:
        claims.abandon_trial(store, study.study_name, [trial.number])

    def make() -> optuna.storages.RDBStorage:
        return optuna.storages.RDBStorage(
            store.url, engine_kwargs=engine_options(store.url), heartbeat_interval=heartbeat_s,
            grace_period=grace_s, heartbeat_stale_trial_callback=stale)

    with optuna_errors(store.url):
        storage = retry_races(make, store.url)
    tune_engine(storage.engine)
    return storage


def worker_seed(seed: int, number: int) -> int:
    """The sampler seed of a study's worker `number`: the study's seed for worker 0 (so one
    worker reproduces a study), a seed derived from (seed, number) in 0..2**32-1 for the rest."""
    if number == 0:
        return seed
    digest = hashlib.sha256(f"nas-worker:{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


@contextmanager
def heartbeat(study: optuna.Study, trial: Trial) -> Iterator[None]:
    """Record the trial's worker (`host:pid`) and its heartbeat now and then every interval while
    the block runs. Refuses a storage without heartbeats rather than silently recording none."""
    storage = study._storage      # Optuna wraps RDBStorage in _CachedStorage, which delegates
    interval = storage.get_heartbeat_interval() if hasattr(storage, "record_heartbeat") else None
    if interval is None:
        raise StoreError(f"study {study.study_name!r}: its storage records no heartbeats, so a "
                         "killed worker's trial would stay RUNNING; open it with open_study")
    trial.set_user_attr("worker", claims.worker_name())     # whose trial, should it die
    storage.record_heartbeat(trial._trial_id)
    with _every(interval, f"nas-heartbeat-{trial.number}", storage.record_heartbeat, trial._trial_id):
        yield


def watchdog(study: optuna.Study, every_s: float) -> AbstractContextManager[None]:
    """Fail the study's stale trials (killed workers) every `every_s` seconds while the block
    runs, so a study never waits on a dead worker for longer than the grace period."""
    return _every(every_s, "nas-watchdog", optuna.storages.fail_stale_trials, study)


def uninterrupted() -> AbstractContextManager[None]:
    """Ignore Ctrl-C, SIGTERM and SIGHUP while the block runs: the cleanup after a first stop
    (telling the trial FAIL, releasing its claim) must not be cut short by a second one."""
    return on_signals(signal.SIG_IGN)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP while the block runs and raise the first one right after
    it (KeyboardInterrupt, or Stopped): a trial Optuna creates inside (`study.ask`) is then
    always known to the code that must fail it."""
    received: list[int] = []
    ignored = {signum for signum in STOP_SIGNALS if signal.getsignal(signum) is signal.SIG_IGN}
    with on_signals(lambda signum, frame: signum in ignored or received.append(signum)):
        yield
    if received:
        raise KeyboardInterrupt if received[0] == signal.SIGINT else Stopped(received[0])


def die_with_parent() -> None:
    """In a worker, first thing: watch the lifeline (a pipe whose other end only the parent
    holds); when the parent dies, stop cleanly (SIGTERM to itself) and remove the run's quota
    row on the way out. Does nothing outside a --jobs worker."""
    fd = int(os.environ.get(LIFELINE_ENV) or -1)
    if fd < 0:
        return
    signal.signal(signal.SIGTERM, _raise_stopped)       # before `nas` installs its own: a clean stop too
    atexit.register(_remove_orphaned_quota)
    threading.Thread(target=_watch, args=(fd,), name="nas-lifeline", daemon=True).start()


def _watch(fd: int) -> None:
    """Block until the parent is gone (end of file on the lifeline), then stop this worker."""
    with contextlib.suppress(OSError):
        while os.read(fd, 64):
            pass
    _orphaned.set()
    os.kill(os.getpid(), signal.SIGTERM)


def _remove_orphaned_quota() -> None:
    """At a worker's exit: remove the quota row when the parent that owns it is gone."""
    if not _orphaned.is_set() or not os.environ.get(QUOTA_ENV):
        return
    with contextlib.suppress(Exception):        # the database is gone too: nothing to remove
        SharedQuota(Store(os.environ[STORAGE_ENV]), os.environ[QUOTA_ENV]).remove()


def stop_signals() -> AbstractContextManager[None]:
    """SIGTERM and SIGHUP raise `Stopped` while the block runs, as Ctrl-C raises
    KeyboardInterrupt, so a search stops the same clean way (trial FAIL 'interrupted', run
    'interrupted', claim released). A signal ignored when the process started (`nohup`) stays
    ignored."""
    return on_signals(_raise_stopped, STOP_SIGNALS[1:])


def _raise_stopped(signum: int, frame: Any) -> None:
    raise Stopped(signum)


@contextmanager
def on_signals(handler: Any, signals: tuple[int, ...] | None = None) -> Iterator[None]:
    """Handle the stop signals (SIGINT, SIGTERM, SIGHUP; or `signals`) with `handler`
    (signal.SIG_IGN, or a function of signum and frame) while the block runs; SIGTERM and
    SIGHUP are left alone when ignored (`nohup`). Only the main thread may change signal
    handlers; elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in STOP_SIGNALS if signals is None else signals:
        if signum == signal.SIGINT or signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def _every(seconds: float, name: str, call: Any, *args: Any) -> Iterator[None]:
    """Run `call(*args)` on a daemon thread every `seconds` while the block runs."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(seconds):
            _quietly(call, *args)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _quietly(call: Any, *args: Any) -> None:
    """Run a background beat or patrol; a database hiccup must not kill the thread (the next
    round retries), and a real outage stops the trial's own writes with one line."""
    try:
        call(*args)
    except Exception:  # noqa: BLE001  (any storage or driver error; retried next round)
        pass


def fatal_error(error: BaseException) -> str | None:
    """Why the search cannot go on after `error` (database or disk failure), or None when it is
    an ordinary failed trial."""
    if isinstance(error, StoreError):
        return str(error)
    if isinstance(error, SQLAlchemyError | optuna.exceptions.StorageInternalError):
        return first_line(error.__cause__ or error)
    if isinstance(error, OSError) and error.errno in DISK_ERRNOS:
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or first_line(error)}"
    return None


class FailureStreak:
    """Stops a search whose last `limit` trials all failed, naming the streak's first error."""

    def __init__(self, limit: int = MAX_FAILURES) -> None:
        self.limit, self.count, self.first = limit, 0, ""

    def add(self, trial: int, outcome: str, error: str | None) -> None:
        """Count a trial's outcome; TrainError on the `limit`-th failure in a row."""
        if outcome not in ("failed", "nan"):
            self.count = 0
            return
        if self.count == 0:
            self.first = f"trial {trial}: {error or 'training diverged (loss is not finite)'}"
        self.count += 1
        if self.count >= self.limit:
            raise TrainError(f"the last {self.count} trials all failed, so the recipe or the "
                             f"data is broken; the first: {first_line(self.first)[:300]}")
