"""`--jobs N`: N search worker processes on one machine, sharing one study and database.

The parent starts each worker as a subprocess of the `nas` command (its own process group, so a
terminal's Ctrl-C reaches the parent only), polls the study for one progress display, and on
Ctrl-C, SIGTERM or SIGHUP sends each worker one SIGINT: the worker marks its running trial FAIL
('interrupted') and exits. A worker that does not exit within `STOP_GRACE_S` is killed, and the trials it held
claims for are failed and their claims released, so no trial is left RUNNING. The workers
coordinate through nas.store.claims (no genome is trained by two at once), take the genomes
they judge from one nas.store.quotas count that the parent creates (together exactly --trials),
and number themselves in the study (distinct sampler seeds).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import optuna
from optuna.trial import TrialState

from nas.errors import SpaceError, Stopped
from nas.store import claims
from nas.store.runs import Store
from nas.study.pareto import TrialRow, best_row, feasible_front, row_from_trial
from nas.study.workers import on_signals, uninterrupted

STOP_GRACE_S = 30.0
POLL_S = 1.0
# The worker runs the `nas` command line in a fresh interpreter (no fork of torch's threads).
WORKER_CODE = "import sys; from nas.cli import main; sys.exit(main())"


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        return os.cpu_count() or 1


def check_jobs(jobs: int) -> None:
    if jobs < 1:
        raise SpaceError(f"--jobs must be at least 1, got {jobs}")


def worker_threads(jobs: int, threads: int | None) -> int:
    """Torch threads per worker: --threads when given, else an equal share of the cores."""
    return threads if threads is not None else max(1, cores() // jobs)


@dataclass
class Progress:
    """What the study's new trials (those started after the parent) show at one poll."""

    outcomes: Counter[str] = field(default_factory=Counter)
    running: int = 0
    best: TrialRow | None = None
    front: int = 0

    @property
    def judged(self) -> int:
        """Genomes trained (fully or to a rung) in this run."""
        return self.outcomes["trained"] + self.outcomes["pruned"]


class StudyPoller:
    """Reads the study now and then; trials that existed before the parent started are not new
    (except those still WAITING: warm starts, nas.study.warmstart, which this run judges)."""

    def __init__(self, url: str, study: str) -> None:
        self.url, self.name = url, study
        self._study: optuna.Study | None = None
        self.before = {t.number for t in self._trials() if t.state != TrialState.WAITING}

    def _trials(self) -> list[optuna.trial.FrozenTrial]:
        if self._study is None:
            try:
                self._study = optuna.load_study(study_name=self.name, storage=self.url)
            except KeyError:        # no worker has created the study yet
                return []
        return self._study.get_trials(deepcopy=False)

    def poll(self) -> Progress:
        trials = self._trials()
        progress = Progress()
        for trial in trials:
            if trial.number in self.before or trial.state == TrialState.WAITING:
                continue
            if trial.state == TrialState.RUNNING:
                progress.running += 1
            else:
                progress.outcomes[trial.user_attrs.get("outcome", "failed")] += 1
        front = feasible_front([row_from_trial(t) for t in trials])
        progress.front, progress.best = len(front), best_row(front)
        return progress


@dataclass
class Worker:
    """One started worker process and the files its output goes to."""

    process: subprocess.Popen[bytes]
    out: IO[bytes]
    err: IO[bytes]

    @property
    def name(self) -> str:
        """The worker's name in claims (nas.store.claims.worker_name)."""
        return f"{socket.gethostname()}:{self.process.pid}"

    def result(self) -> dict[str, Any] | None:
        """The worker's JSON summary, or None when it printed none."""
        self.out.seek(0)
        try:
            return json.loads(self.out.read().decode() or "null")
        except json.JSONDecodeError:
            return None

    def error(self) -> str:
        """The last line the worker wrote on stderr."""
        self.err.seek(0)
        lines = [line for line in self.err.read().decode(errors="replace").splitlines() if line.strip()]
        return lines[-1] if lines else f"exit code {self.process.returncode}"


def start(argvs: Sequence[Sequence[str]], env: dict[str, str] | None = None) -> list[Worker]:
    """Start one worker per argument list (`nas` arguments, e.g. ['search', ...])."""
    started = []
    for argv in argvs:
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        process = subprocess.Popen([sys.executable, "-c", WORKER_CODE, *argv], stdout=out,
                                   stderr=err, stdin=subprocess.DEVNULL, start_new_session=True,
                                   env={**os.environ, **(env or {})})
        started.append(Worker(process, out, err))
    return started


def wait(workers: Sequence[Worker], poller: StudyPoller,
         show: Callable[[Progress], None]) -> Progress:
    """Poll the study and `show` progress until every worker exited; Ctrl-C, SIGTERM or SIGHUP
    stops them all and raises KeyboardInterrupt (nas.errors.Stopped for the last two).

    A signal only records itself for the loop to read (within POLL_S): a KeyboardInterrupt
    raised while the garbage collector runs a finalizer is printed and dropped by Python, and
    the workers would go on."""
    received: list[int] = []
    with on_signals(lambda signum, frame: received.append(signum)):
        while not received and (live := [w for w in workers if w.process.poll() is None]):
            show(poller.poll())
            with contextlib.suppress(subprocess.TimeoutExpired):     # back at once when it exits
                live[0].process.wait(timeout=POLL_S)
    if received:
        with uninterrupted():           # a second signal must not leave workers behind
            stop(workers, Store(poller.url), poller.name)
        raise KeyboardInterrupt if received[0] == signal.SIGINT else Stopped(received[0])
    progress = poller.poll()
    show(progress)
    return progress


def stop(workers: Sequence[Worker], store: Store, study: str) -> None:
    """SIGINT to every live worker; kill those still alive after STOP_GRACE_S and fail the trials
    they held claims for."""
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_S
    for worker in workers:
        try:
            worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
            _fail_held_trials(store, study, worker.name)


def _fail_held_trials(store: Store, study: str, worker: str) -> None:
    """Fail the RUNNING trials a killed worker held claims for, and release those claims."""
    numbers = [trial for _, _, holder, trial in claims.holders(store, study)
               if holder == worker and trial is not None]
    loaded = optuna.load_study(study_name=study, storage=store.url)
    for trial in loaded.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.number in numbers:
            loaded._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    claims.abandon_trial(store, study, numbers)


def totals(workers: Sequence[Worker]) -> dict[str, int]:
    """The workers' own tallies summed: trained, reused, rejected, pruned, failed."""
    keys = ("trained", "reused", "rejected", "pruned", "failed")
    summed = dict.fromkeys(keys, 0)
    for worker in workers:
        result = worker.result() or {}
        for key in keys:
            summed[key] += int(result.get(key) or 0)
    return summed


def failures(workers: Sequence[Worker]) -> list[str]:
    """One line per worker that exited with an error."""
    return [f"worker {i}: {w.error()}" for i, w in enumerate(workers, 1)
            if w.process.returncode not in (0, None)]
