"""`--jobs N`: N search worker processes on one machine, sharing one study and database.

The parent starts each worker as a subprocess of the `nas` command (its own process group, so a
terminal's Ctrl-C reaches the parent only), polls the study for one progress display, and on
Ctrl-C, SIGTERM or SIGHUP sends each worker one SIGINT: the worker marks its running trial FAIL
('interrupted') and exits. A worker that does not exit within `STOP_GRACE_S` is killed, and the trials it held
claims for are failed and their claims released, so no trial is left RUNNING. The workers
coordinate through nas.store.claims (no genome is trained by two at once), take the genomes
they judge from one nas.store.quotas count that the parent creates (together exactly --trials),
and number themselves in the study (distinct sampler seeds).

Workers die with their parent: each watches a pipe whose write end only the parent holds (the
kernel closes it however the parent dies, kill -9 included); at its end of file the worker
stops the clean way (SIGTERM to itself), and removes the run's quota row on its way out. A
worker that dies on its own (kill -9, the OOM killer) is *lost*: the parent fails its trial at
once and gives its genome back to the quota for another worker to redo; the summary names it,
and the run exits 1 when that genome was not redone.
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
from nas.store.quotas import SharedQuota
from nas.store.runs import Store
from nas.study.pareto import TrialRow, objectives_of
from nas.study.search.shared_study import LIFELINE_ENV, QUOTA_ENV, STORAGE_ENV, on_signals, uninterrupted
from nas.study.search.tally import KEYS, front_and_best

STOP_GRACE_S = 30.0
POLL_S = 1.0
LOST_EXIT = 1       # the exit code of a run that lost a worker and did not redo its genome
# The worker runs the `nas` command line in a fresh interpreter (no fork of torch's threads).
WORKER_CODE = ("import sys; from nas.study.search.shared_study import die_with_parent; die_with_parent(); "
               "from nas.cli import main; sys.exit(main())")


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        return os.cpu_count() or 1


MAX_JOBS = 256        # worker processes on one machine


def check_jobs(jobs: int) -> None:
    if not 1 <= jobs <= MAX_JOBS:
        raise SpaceError(f"--jobs must be between 1 and {MAX_JOBS}, got {str(jobs)[:30]}")


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
    (except those still WAITING: warm starts, nas.study.search.warmstart, which this run judges)."""

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
        progress.front, progress.best = front_and_best(trials, self._objectives())
        return progress

    def _objectives(self) -> tuple[str, ...]:
        """The study's own objectives, as `nas report` reads them (the default three until a
        worker has created the study)."""
        if self._study is None:
            return objectives_of({})
        return objectives_of(self._study.user_attrs.get("nas") or {})


@dataclass
class Worker:
    """One started worker process, the files its output goes to, and the trials the parent
    failed for it once it died."""

    process: subprocess.Popen[bytes]
    out: IO[bytes]
    err: IO[bytes]
    lifeline: int                   # the write end of the pipe the worker watches
    failed_trials: list[int] = field(default_factory=list)
    reaped: bool = False

    @property
    def lost(self) -> str | None:
        """`killed by SIGKILL` for a worker a signal killed (kill -9, the OOM killer) before it
        could stop cleanly, else None."""
        code = self.process.returncode
        return f"killed by {_signal_name(-code)}" if code is not None and code < 0 else None

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


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def start(argvs: Sequence[Sequence[str]], env: dict[str, str] | None = None,
          quota: SharedQuota | None = None) -> list[Worker]:
    """Start one worker per argument list (`nas` arguments, e.g. ['search', ...]); each stops
    when this process dies or calls `cut`, and removes `quota` if it outlives this process."""
    watched, lifeline = os.pipe()           # both ends not inherited unless passed
    own = {LIFELINE_ENV: str(watched)}
    if quota is not None:
        own |= {STORAGE_ENV: quota.store.url, QUOTA_ENV: quota.key}
    started = []
    try:
        for argv in argvs:
            out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
            process = subprocess.Popen([sys.executable, "-c", WORKER_CODE, *argv], stdout=out,
                                       stderr=err, stdin=subprocess.DEVNULL, pass_fds=(watched,),
                                       start_new_session=True, env={**os.environ, **(env or {}), **own})
            started.append(Worker(process, out, err, lifeline))
    except BaseException:
        os.close(lifeline)                  # those started stop again
        raise
    finally:
        os.close(watched)
    return started


def cut(workers: Sequence[Worker]) -> None:
    """Close the workers' lifeline: those still running stop as if this process had died."""
    for fd in {worker.lifeline for worker in workers}:
        with contextlib.suppress(OSError):
            os.close(fd)


def wait(workers: Sequence[Worker], poller: StudyPoller, show: Callable[[Progress], None],
         quota: SharedQuota | None = None) -> Progress:
    """Poll the study and `show` progress until every worker exited, failing at once the trial
    of a worker that died (see `reap`); Ctrl-C, SIGTERM or SIGHUP stops them all and raises
    KeyboardInterrupt (nas.errors.Stopped for the last two).

    A signal only records itself for the loop to read (within POLL_S): a KeyboardInterrupt
    raised while the garbage collector runs a finalizer is printed and dropped by Python, and
    the workers would go on."""
    received: list[int] = []
    store = Store(poller.url)
    try:
        with on_signals(lambda signum, frame: received.append(signum)):
            while not received and (live := [w for w in workers if w.process.poll() is None]):
                reap(workers, store, poller.name, quota)
                show(poller.poll())
                with contextlib.suppress(subprocess.TimeoutExpired):    # back at once when it exits
                    live[0].process.wait(timeout=POLL_S)
        if received:
            with uninterrupted():           # a second signal must not leave workers behind
                stop(workers, store, poller.name)
            raise KeyboardInterrupt if received[0] == signal.SIGINT else Stopped(received[0])
        reap(workers, store, poller.name, quota)
    finally:
        cut(workers)                        # an error here stops the workers too
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


def reap(workers: Sequence[Worker], store: Store, study: str, quota: SharedQuota | None) -> None:
    """For each worker that exited since the last call: fail the trials it still held (none
    after a clean exit), and give a lost worker's genome back to `quota` for another worker."""
    for worker in workers:
        if worker.reaped or worker.process.poll() is None:
            continue
        worker.reaped = True
        if worker.process.returncode == 0:
            continue
        worker.failed_trials = _fail_held_trials(store, study, worker.name, worker.lost)
        if worker.failed_trials and worker.lost and quota is not None:
            with contextlib.suppress(Exception):    # the database is gone: one genome fewer
                quota.give_back()


def _fail_held_trials(store: Store, study: str, worker: str, why: str | None = None) -> list[int]:
    """Fail the RUNNING trials of a dead or killed worker (those it recorded as its own, see
    nas.study.search.shared_study.heartbeat, or held claims for), and release its claims; the numbers of
    the trials failed."""
    numbers = {trial for _, _, holder, trial in claims.holders(store, study)
               if holder == worker and trial is not None}
    loaded = optuna.load_study(study_name=study, storage=store.url)
    failed = []
    for trial in loaded.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.number in numbers or trial.user_attrs.get("worker") == worker:
            loaded._storage.set_trial_user_attr(trial._trial_id, "outcome", "interrupted")
            loaded._storage.set_trial_user_attr(trial._trial_id, "error",
                                                f"worker {worker} died ({why or 'stopped'})")
            loaded._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            failed.append(trial.number)
    claims.abandon_trial(store, study, numbers | set(failed))
    return failed


def totals(workers: Sequence[Worker]) -> dict[str, int]:
    """The workers' own tallies summed: trained, reused, rejected, pruned, failed."""
    summed = dict.fromkeys(KEYS, 0)
    for worker in workers:
        result = worker.result() or {}
        for key in KEYS:
            summed[key] += int(result.get(key) or 0)
    return summed


def failures(workers: Sequence[Worker]) -> list[str]:
    """One line per worker that exited with an error (not the lost ones: see `lines`)."""
    return [f"worker {i}: {w.error()}" for i, w in enumerate(workers, 1)
            if w.process.returncode not in (0, None) and not w.lost]


@dataclass(frozen=True)
class Outcome:
    """What each worker of a run did, one line each, and the run's exit code."""

    lines: list[str]
    lost: int               # workers that died without a summary
    exit_code: int          # LOST_EXIT when a lost worker's genome was not redone


def outcome(workers: Sequence[Worker], progress: Progress, unfinished: int) -> Outcome:
    """Per worker: genomes judged and trials failed, or how it was lost and after how many (the
    study's judged genomes that no surviving worker reported). `unfinished`: quota units left."""
    lines, accounted, lost = [], 0, []
    for number, worker in enumerate(workers, 1):
        result = worker.result()
        if worker.lost:
            lost.append((number, worker))
            continue
        judged = int((result or {}).get("trained") or 0) + int((result or {}).get("pruned") or 0)
        accounted += judged
        lines.append(f"worker {number} (pid {worker.process.pid}): judged {judged}, failed "
                     f"{int((result or {}).get('failed') or 0)}")
    share = max(0, progress.judged - accounted)
    for number, worker in lost:
        trials = ", ".join(map(str, worker.failed_trials)) or "none held"
        lines.append(f"worker {number} (pid {worker.process.pid}): lost ({worker.lost}) after "
                     f"judging {share}{' between the lost workers' if len(lost) > 1 else ''}; "
                     f"trial failed: {trials}; "
                     + ("its genome was redone" if not unfinished else
                        f"{unfinished} genomes of --trials not judged"))
    code = LOST_EXIT if lost and unfinished else 0
    return Outcome(lines, len(lost), code)
