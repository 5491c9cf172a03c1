"""SIGTERM and SIGHUP to a real `nas search`, alone or the parent of --jobs workers: the same
clean stop as Ctrl-C (trial FAIL 'interrupted', run 'interrupted', claims released, the shared
quota removed), exit code 128 + the signal, and no process left (issue 22). Trainings are faked
(tests/fake_training.py) and last long enough to be hit."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "nas" / "search_spaces" / "tiny.toml")
# the fake training for the search itself (jobs_hook), and for --jobs workers (NAS_WORKER_HOOK)
COMMAND = [sys.executable, "-c",
           "import sys, tests.jobs_hook; from nas.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data cache for the module: the digits are decoded once, not once per test."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def env(tmp_path: Path, cache: Path) -> dict[str, str]:
    return {**os.environ, "NAS_CACHE_DIR": str(cache),
            "NAS_WORKER_HOOK": "tests.jobs_hook", "NAS_TEST_TRAINED": str(tmp_path / "trained.log"),
            "NAS_TEST_SLEEP": "30",
            "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def start(db: Path, env: dict[str, str], *extra: str,
          hangup: signal.Handlers = signal.SIG_DFL) -> subprocess.Popen[str]:
    """The search, with SIGHUP as a terminal's child has it (SIG_DFL, also when the suite runs
    under `nohup`) or as `nohup` starts it (SIG_IGN, which the search must keep)."""
    return subprocess.Popen(
        [*COMMAND, "search", "--space", TINY, "--data", "digits", "--image-size", "8x8",
         "--storage", f"sqlite:///{db}", "--study", "sig", "--threads", "1", "--quiet",
         "--trials", "50", *extra], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, hangup))


def rows(db: Path, query: str) -> list[tuple]:
    try:
        with sqlite3.connect(db) as connection:
            return connection.execute(query).fetchall()
    except sqlite3.Error:           # not created yet
        return []


def training(db: Path, count: int) -> bool:
    """Whether `count` trials are RUNNING, one at least training (its run stored 'running',
    its genome claimed; another may wait for that claim)."""
    return (len(rows(db, "SELECT trial_id FROM trials WHERE state = 'RUNNING'")) >= count
            and len(rows(db, "SELECT id FROM nas_runs WHERE status = 'running'")) >= 1
            and len(rows(db, "SELECT worker FROM nas_claims")) >= 1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_and_check(search: subprocess.Popen[str], db: Path, signum: int, count: int) -> None:
    wait_until(lambda: training(db, count) or search.poll() is not None)
    assert training(db, count), search.stderr.read() if search.poll() is not None else "slow"
    holders = set(workers_of(db))
    search.send_signal(signum)
    _, err = search.communicate(timeout=90)
    assert search.returncode == 128 + signum, err
    assert err.splitlines()[-1] == f"nas: stopped by {signal.Signals(signum).name}"
    trials = optuna.load_study(study_name="sig", storage=f"sqlite:///{db}").get_trials()
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in trials if t.user_attrs.get("outcome") == "interrupted"]
    assert len(interrupted) == count and all(t.state == TrialState.FAIL for t in interrupted)
    assert rows(db, "SELECT id FROM nas_runs WHERE status = 'running'") == []
    assert 1 <= len(rows(db, "SELECT id FROM nas_runs WHERE status = 'interrupted'")) <= count
    assert rows(db, "SELECT * FROM nas_claims") == []
    assert rows(db, "SELECT * FROM nas_quotas") == []
    time.sleep(0.5)
    assert not [pid for pid in holders if alive(pid)], "a worker is still running"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_search_stops_cleanly_on(signum: int, tmp_path: Path, env: dict[str, str]) -> None:
    db = tmp_path / "s.db"
    stop_and_check(start(db, env), db, signum, 1)


def test_under_nohup_sighup_stays_ignored(tmp_path: Path, env: dict[str, str]) -> None:
    """Started with SIGHUP ignored, as `nohup` starts it: a hangup changes nothing, the trial
    goes on; SIGTERM then stops it cleanly."""
    db = tmp_path / "s.db"
    search = start(db, env, hangup=signal.SIG_IGN)
    assert wait_until(lambda: training(db, 1) or search.poll() is not None) and training(db, 1)
    search.send_signal(signal.SIGHUP)
    time.sleep(2)
    assert search.poll() is None and training(db, 1)
    stop_and_check(search, db, signal.SIGTERM, 1)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_jobs_parent_stops_its_workers_cleanly_on(signum: int, tmp_path: Path,
                                                    env: dict[str, str]) -> None:
    """The README: a `--jobs` parent stops its workers on any of the three signals (SIGINT:
    tests/study/test_jobs.py), and removes its shared count."""
    db = tmp_path / "s.db"
    stop_and_check(start(db, env, "--jobs", "2"), db, signum, 2)


def workers_of(db: Path) -> list[int]:
    return [int(w.rsplit(":", 1)[1]) for (w,) in rows(db, "SELECT worker FROM nas_workers")]


def test_workers_die_with_a_killed_parent_and_remove_its_quota(tmp_path: Path,
                                                               env: dict[str, str]) -> None:
    """kill -9 to the parent: its workers get SIGTERM from the kernel (a parent-death signal),
    stop cleanly, and the last to go removes the quota row the parent can no longer remove."""
    db = tmp_path / "s.db"
    parent = start(db, env, "--jobs", "2")
    assert wait_until(lambda: training(db, 2)), parent.stderr.read() if parent.poll() else "slow"
    pids = workers_of(db)
    parent.kill()
    parent.communicate(timeout=30)
    assert wait_until(lambda: not [pid for pid in pids if alive(pid)], 60), "a worker survived"
    trials = optuna.load_study(study_name="sig", storage=f"sqlite:///{db}").get_trials()
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    assert rows(db, "SELECT * FROM nas_quotas") == []
    assert rows(db, "SELECT * FROM nas_claims") == []
    assert rows(db, "SELECT id FROM nas_runs WHERE status = 'running'") == []


def kill_workers(db: Path, env: dict[str, str], trials: int, count: int) -> tuple[int, str]:
    """Start `--jobs 2 --trials N` whose first training lasts until killed and the others 3 s;
    once `count` trials run, kill -9 the worker of the first training (count 1) or both workers
    (count 2), and return the parent's exit code and stderr."""
    log = Path(env["NAS_TEST_TRAINED"])
    search = start(db, {**env, "NAS_TEST_SLEEP": "3", "NAS_TEST_SLOW_FIRST": "99"},
                   "--jobs", "2", "--trials", str(trials))

    def first() -> list[int]:     # the worker of the slow first training
        lines = log.read_text().splitlines() if log.exists() else []
        return [int(lines[0].split()[-2])] if lines else []

    if not wait_until(lambda: bool(first()) and training(db, count) or search.poll() is not None):
        search.kill()               # its workers follow it (their lifeline closes)
        pytest.fail(f"no {count} trials running: {search.communicate()[1][-500:]}")
    for pid in (first() if count == 1 else workers_of(db)):
        os.kill(pid, signal.SIGKILL)
    _, err = search.communicate(timeout=120)
    trials_left = optuna.load_study(study_name="sig", storage=f"sqlite:///{db}").get_trials()
    assert not [t.number for t in trials_left if t.state == TrialState.RUNNING]
    assert rows(db, "SELECT * FROM nas_quotas") == [] and rows(db, "SELECT * FROM nas_claims") == []
    return search.returncode, err


def test_a_lost_worker_is_said_and_its_genome_redone(tmp_path: Path, env: dict[str, str]) -> None:
    """kill -9 to one worker: the parent fails its trial at once, gives its genome to the other
    worker, and says so even with --quiet; the run judged every genome, so it exits 0."""
    db = tmp_path / "s.db"
    code, err = kill_workers(db, env, 3, 1)
    assert code == 0, err
    trials = optuna.load_study(study_name="sig", storage=f"sqlite:///{db}").get_trials()
    lost = [t for t in trials if "died (killed by SIGKILL)" in t.user_attrs.get("error", "")]
    assert len(lost) == 1 and lost[0].state == TrialState.FAIL
    killed = Path(env["NAS_TEST_TRAINED"]).read_text().splitlines()[0].split()[-2]
    said = (rf"worker [12] \(pid {killed}\): lost \(killed by SIGKILL\) after judging 0; "
            rf"trial failed: {lost[0].number}; its genome was redone")
    assert re.search(said, err), err
    assert sum(t.user_attrs.get("outcome") == "trained" for t in trials) == 3


def test_lost_workers_whose_genomes_were_not_redone_exit_1(tmp_path: Path,
                                                          env: dict[str, str]) -> None:
    db = tmp_path / "s.db"
    code, err = kill_workers(db, env, 10, 2)
    assert code == 1, err
    assert err.count("lost (killed by SIGKILL)") == 2 and "genomes of --trials not judged" in err
