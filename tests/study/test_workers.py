"""Search workers as real processes: many at once on a fresh database, and kill -9 mid-trial.

Workers run nas.study.search.loop with a fake training (tests/workers.py), so these tests measure
the storage, claims, heartbeats and watchdog, not the training.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import alembic.migration  # noqa: F401  (Optuna's storage imports it lazily: once here, not 8 times)
import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

import nas.study.search.loop  # noqa: F401  (imported once here, so forked workers start at once)
from nas.errors import StoreError
from nas.store import claims
from nas.store.runs import Store
from tests.postgres import postgres_db, postgres_url  # noqa: F401
from tests.workers import fake_context, fork


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: a SQLite file not yet created, or a new empty PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return request.getfixturevalue("postgres_db")


def results(processes: list[Any], outs: list[Path], timeout: float = 120) -> list[dict[str, Any]]:
    """Wait for forked workers; every one must exit 0 with its JSON result."""
    for process in processes:
        process.join(timeout)
    errors = [Path(f"{out}.err").read_text() for out in outs if Path(f"{out}.err").exists()]
    assert [p.exitcode for p in processes] == [0] * len(processes), "\n".join(errors)[-3000:]
    return [json.loads(out.read_text()) for out in outs]


def test_eight_workers_start_together_and_never_train_a_genome_twice(url: str,
                                                                      tmp_path: Path) -> None:
    spec = {"url": url, "study": "many", "trials": 5, "sleep_s": 0.2, "heartbeat_s": 1,
            "grace_s": 60, "sampler": "random"}
    outs = [tmp_path / f"worker{i}.json" for i in range(8)]
    done = results([fork(spec, out) for out in outs], outs)
    assert [r["trained"] for r in done] == [5] * 8 and sum(r["failed"] for r in done) == 0
    genomes = [g for r in done for g in r["genomes"]]
    assert len(genomes) == 40 and len(set(genomes)) == 40          # no genome trained twice
    trials = optuna.load_study(study_name="many", storage=url).get_trials(deepcopy=False)
    outcomes = Counter(t.user_attrs.get("outcome") for t in trials)
    assert outcomes["trained"] == 40 and set(outcomes) <= {"trained", "reused"}
    assert all(t.state == TrialState.COMPLETE for t in trials)
    store = Store(url)
    runs = store.list_runs("many")
    assert len(runs) == 40 and {r.status for r in runs} == {"ok"}
    assert len({(r.genome, r.attention) for r in runs}) == 40
    assert claims.holders(store, "many") == []
    with store.session() as session:                                # 8 distinct sampler seeds
        numbers = session.execute(sa.text("SELECT number FROM nas_workers")).scalars().all()
    assert sorted(numbers) == list(range(8))
    store.close()


def wait_until(what: str, check: Any, timeout: float = 30) -> Any:
    """Poll `check()` every 50 ms until it returns something truthy."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_killed_worker_trial_fails_within_grace_and_the_study_finishes(tmp_path: Path) -> None:
    url, heartbeat, grace = f"sqlite:///{tmp_path / 'k.db'}", 1, 2
    base = {"url": url, "study": "k", "heartbeat_s": heartbeat, "grace_s": grace}
    results([fork({**base, "trials": 2}, tmp_path / "first.json")], [tmp_path / "first.json"])
    store = Store(url)
    before = {r.id: (r.status, r.val_accuracy, r.weights) for r in store.list_runs("k", with_weights=True)}
    assert len(before) == 2
    victim = fork({**base, "trials": 3, "hang_at": 1}, tmp_path / "victim.json")
    live = fork({**base, "trials": 1000, "sleep_s": 0.3, "seconds": 9}, tmp_path / "live.json")
    held = wait_until("the victim's claim", lambda: [h for h in claims.holders(store, "k")
                                                     if h[2].endswith(f":{victim.pid}")])
    genome, attention, _, number = held[0]
    wait_until("the live worker's first run", lambda: len(store.list_runs("k")) > 3)
    os.kill(victim.pid, signal.SIGKILL)
    killed = time.monotonic()
    victim.join()
    study = optuna.load_study(study_name="k", storage=url)
    wait_until("the killed trial to fail", lambda: study.trials[number].state == TrialState.FAIL,
               timeout=grace + 10)
    assert time.monotonic() - killed < grace + 2 * heartbeat + 2
    assert live.is_alive()                                          # the live worker failed it
    results([live], [tmp_path / "live.json"])
    runs = {r.id: r for r in store.list_runs("k", with_weights=True)}
    victim_runs = [r for r in runs.values() if r.trial == number]
    assert [r.status for r in victim_runs] == ["interrupted"]
    assert {i: (runs[i].status, runs[i].val_accuracy, runs[i].weights) for i in before} == before
    again = claims.claim(store, "k", genome, attention, worker="probe", trial=None)
    assert again.outcome in (claims.MINE, claims.DONE)              # released: it may train again
    claims.release(store, again)
    rerun = results([fork({**base, "trials": 3}, tmp_path / "rerun.json")], [tmp_path / "rerun.json"])
    assert rerun[0]["trained"] == 3
    states = Counter(t.state for t in optuna.load_study(study_name="k", storage=url).trials)
    assert states[TrialState.RUNNING] == 0 and states[TrialState.FAIL] == 1
    store.close()


def test_heartbeats_are_recorded_under_optunas_storage_cache(tmp_path: Path) -> None:
    """Optuna wraps RDBStorage in a cache; the heartbeat must still reach the database."""
    from nas.study.search import loop, shared_study

    url = f"sqlite:///{tmp_path / 'h.db'}"
    ctx = fake_context(url)
    settings = loop.SearchSettings(study="h", trials=1, epochs=1, heartbeat_s=1, grace_s=2)
    study = loop.open_study(ctx, settings, "digits")
    trial = study.ask()
    with shared_study.heartbeat(study, trial), ctx.store.session() as session:
        beats = session.execute(sa.text("SELECT trial_id FROM trial_heartbeats")).scalars().all()
    assert beats == [trial._trial_id]
    plain = optuna.create_study(study_name="plain", storage=url,
                                directions=["maximize", "minimize", "minimize"])
    with pytest.raises(StoreError, match="records no heartbeats"), \
            shared_study.heartbeat(plain, plain.ask()):
        pass
    ctx.store.close()


def test_a_search_beats_every_30_s_and_fails_a_trial_silent_for_120_s(tmp_path: Path) -> None:
    """The README's figures are what a search's storage gets by default."""
    from nas.study.search import loop

    ctx = fake_context(f"sqlite:///{tmp_path / 'd.db'}")
    study = loop.open_study(ctx, loop.SearchSettings(study="d", trials=1, epochs=1), "digits")
    storage = study._storage                    # Optuna's cache, which delegates to RDBStorage
    assert storage.get_heartbeat_interval() == 30
    assert storage._backend.grace_period == 120
    ctx.store.close()
