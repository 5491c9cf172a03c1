"""`nas search --jobs N`: worker processes on one study, with a fake training (tests/jobs_hook.py)
so that the point is process behaviour: counts, claims, locks and Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas.cli import main
from nas.study.search.processes import worker_threads
from tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "nas" / "search_spaces" / "tiny.toml")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data cache for the module: the digits are decoded once, not once per test."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def env(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Workers import the fake training and log what they train; a data cache of the module."""
    values = {"NAS_CACHE_DIR": str(cache), "NAS_WORKER_HOOK": "tests.jobs_hook",
              "NAS_TEST_TRAINED": str(tmp_path / "trained.log"),
              "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def flags(db: Path, *extra: str) -> list[str]:
    return ["search", "--space", TINY, "--data", "digits", "--image-size", "8x8",
            "--storage", f"sqlite:///{db}", "--study", "jobs", "--threads", "1", *extra]


def trials_of(db: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="jobs", storage=f"sqlite:///{db}").get_trials()


def test_four_workers_train_forty_distinct_genomes(env: dict[str, str], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.db"
    code = main(flags(db, "--jobs", "4", "--trials", "40", "--quiet", "--json"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["trained"] == 40
    assert "locked" not in captured.err.lower()
    trials = trials_of(db)
    outcomes = Counter(t.user_attrs["outcome"] for t in trials)
    assert outcomes["trained"] == 40 and set(outcomes) <= {"trained", "reused"}
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert result["reused"] == outcomes["reused"]
    lines = Path(env["NAS_TEST_TRAINED"]).read_text().splitlines()
    genomes = [" ".join(line.split()[:-2]) for line in lines]
    assert len(genomes) == 40 and len(set(genomes)) == 40          # no genome trained twice
    assert len({line.split()[-2] for line in lines}) == 4          # by four processes
    trained = {t.user_attrs["genome"] + " " + t.user_attrs["attention"]
               for t in trials if t.user_attrs["outcome"] == "trained"}
    assert trained == set(genomes)


def test_the_parent_shows_one_progress_line_for_all_workers(
        env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README: `--jobs 2` without --quiet shows one progress line for the study, not a bar
    per worker or per trial. On a pipe rich writes each bar once, in its last state, so the
    run's every bar is there; without a teacher (cross-entropy) the search's is the only one."""
    assert main(flags(tmp_path / "s.db", "--jobs", "2", "--trials", "4",
                      "--set", "distill.loss=none")) == 0
    err = capsys.readouterr().err.splitlines()
    bars = [line for line in err if "\u2501" in line]                   # a bar's "━"
    assert len(bars) == 1 and bars[0].startswith("search "), err
    assert " 4/4 " in bars[0] and "running 0" in bars[0], bars
    assert len([line for line in err if re.match(r"worker [12] \(pid \d+\): judged", line)]) == 2


@pytest.mark.parametrize("started_ignoring", [False, True], ids=["foreground", "background"])
def test_ctrl_c_stops_every_worker_and_leaves_no_trial_running(env: dict[str, str], tmp_path: Path,
                                                              started_ignoring: bool) -> None:
    """Also when the search starts with SIGINT ignored, as a shell starts a background job: the
    parent's SIGINT to its workers must still stop them, not leave them to be killed."""
    db = tmp_path / "s.db"
    parent = subprocess.Popen(
        [sys.executable, "-c", "import sys; from nas.cli import main; sys.exit(main())",
         *flags(db, "--jobs", "2", "--trials", "100", "--quiet")],
        env={**os.environ, **env, "NAS_TEST_SLEEP": "2"}, stderr=subprocess.PIPE, text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if started_ignoring else None)
    assert wait_until(lambda: _running(db), poll_s=0.5), "no trial started"
    parent.send_signal(signal.SIGINT)
    _, err = parent.communicate(timeout=60)
    assert parent.returncode == 130, err
    trials = trials_of(db)
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    assert any(t.user_attrs.get("outcome") == "interrupted" for t in trials)


def _running(db: Path) -> bool:
    try:
        return any(t.state == TrialState.RUNNING for t in trials_of(db))
    except Exception:  # noqa: BLE001  (the study or its tables do not exist yet)
        return False


def test_workers_start_no_trial_after_the_timeout(env: dict[str, str], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`--jobs 2 --timeout 15s`: the workers get what is left of the parent's 15 s (after its
    data), counted from the parent's clock, not from a worker's own start, and start no trial
    after it, though 500 were asked for. A cross-entropy study: a teacher trained in the 15 s
    left the workers none on a loaded machine."""
    monkeypatch.setenv("NAS_TEST_SLEEP", "1")
    db = tmp_path / "s.db"
    before = datetime.now()
    code = main(flags(db, "--jobs", "2", "--trials", "500", "--timeout", "15s",
                      "--set", "distill.loss=none", "--quiet", "--json"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert 0 < json.loads(captured.out)["trained"] < 40
    assert max(t.datetime_start for t in trials_of(db)) <= before + timedelta(seconds=15.3)


def test_jobs_zero_is_one_line_and_exit_2(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(flags(tmp_path / "s.db", "--jobs", "0")) == 2
    err = capsys.readouterr().err.strip()
    assert err == "nas: error: --jobs must be between 1 and 256, got 0"


def test_a_worker_whose_genome_is_slow_leaves_the_rest_to_the_others(
        env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The workers share one count of genomes to judge: while one trains a slow genome, the
    other judges the rest instead of stopping at half of --trials."""
    monkeypatch.setenv("NAS_TEST_SLOW_FIRST", "10")     # until the 10th is trained
    db = tmp_path / "s.db"
    assert main(flags(db, "--jobs", "2", "--trials", "10", "--quiet", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["trained"] == 10
    lines = Path(env["NAS_TEST_TRAINED"]).read_text().splitlines()
    by_worker = Counter(line.split()[-2] for line in lines)
    assert len(lines) == 10 and sorted(by_worker.values()) == [1, 9], by_worker
    assert not any(store_quotas(db))                                 # the run's quota is gone


def store_quotas(db: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT key, remaining FROM nas_quotas").fetchall()


def test_threads_are_shared_among_workers() -> None:
    assert worker_threads(2, 3) == 3
    assert worker_threads(10_000, None) == 1
