"""`nas delete`: only what the named study owns, and one of two deleters at once (issue 22)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from nas.cli import main
from nas.store import claims
from nas.store.runs import RunRecord, Store
from tests.studies import add_trial, new_study

ROOT = Path(__file__).resolve().parents[2]
GENOME = "[1,8,1,2,0]"


def add_run(store: Store, study: str, trial: int | None, arm: str | None = None) -> int:
    """A stored 'ok' run with 1 KB of weights; `arm` tags it as an ablation's run."""
    meta = {"ablation": {"key": f"key-{arm}", "arm": arm, "changes": {}}} if arm else {}
    return store.add_run(RunRecord(
        id=None, study=study, trial=trial, genome=GENOME, attention="eca", seed=0, recipe={},
        data_fingerprint="d", teacher_fingerprint="t", flops=1, params=1, status="ok",
        meta=meta, weights=b"\0" * 1000))


def test_a_search_study_named_like_an_ablation_is_refused(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["search", "--space", "tiny.toml", "--study", "ablate/ab", "--quiet",
                 "--storage", f"sqlite:///{tmp_path / 's.db'}"])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "nas: error: --study must not start with 'ablate/', the namespace of ablations' runs; "
        "got 'ablate/ab'"]
    assert list(tmp_path.iterdir()) == []


def test_delete_keeps_an_ablations_runs_under_the_same_name(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """An old database where a search study was named `ablate/ab` beside the ablation `ab`:
    deleting the search study deletes its own runs and claims; the ablation's stay, and a
    second delete removes them."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(url)
    study = new_study(url, "ablate/ab")
    searched = [add_run(store, "ablate/ab", trial) for trial in (0, 1)]
    for run_id in searched:
        add_trial(study, GENOME, 1, 1, val=0.5, run_id=run_id)
    ablated = [add_run(store, "ablate/ab", None, arm) for arm in ("base", "other")]
    other = add_run(store, "s", 0)
    claims.claim(store, "ablate/ab", "[2,8,1,1,0]", "eca", worker="w", trial=2)       # the search's
    claims.claim(store, "ablate/ab", "[2,8,1,1,0] #k seed 0", "eca", worker="w")      # the ablation's
    assert main(["delete", "ablate/ab", "--storage", url, "--json"]) == 0
    deleted = json.loads(capsys.readouterr().out)
    assert (deleted["optuna_study"], deleted["runs"], deleted["kept_runs"]) == (True, 2, 2)
    assert deleted["weight_bytes"] == 2000
    assert sorted(r.id for r in store.list_runs()) == sorted([*ablated, other])
    assert [h[0] for h in claims.holders(store, "ablate/ab")] == ["[2,8,1,1,0] #k seed 0"]
    assert "ablate/ab" not in optuna.get_all_study_names(url)
    assert main(["delete", "ablate/ab", "--storage", url, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["optuna_study"], again["runs"], again["kept_runs"]) == (False, 2, 0)
    assert [r.id for r in store.list_runs()] == [other]
    assert main(["delete", "ablate/ab", "--storage", url]) == 2
    assert "no study named 'ablate/ab' (deleted, or never made)" in capsys.readouterr().err


def test_two_deletes_at_once_one_deletes_the_other_says_it_is_gone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(url)
    study = new_study(url, "s")
    for trial in range(40):
        add_trial(study, GENOME, 1, 1, val=0.5, run_id=add_run(store, "s", trial))
    command = [sys.executable, "-c", "import sys; from nas.cli import main; sys.exit(main())",
               "delete", "s", "--storage", url]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    deleters = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=env) for _ in range(2)]
    started = time.monotonic()
    results = sorted((d.wait(timeout=120), d.communicate()[1]) for d in deleters)
    assert time.monotonic() - started < 120
    assert [code for code, _ in results] == [0, 2], results
    err = results[1][1].splitlines()
    assert len(err) == 1 and ("no study named 's' (deleted, or never made)" in err[0]
                              or "study 's' is being deleted by another process" in err[0]), err
    assert store.list_runs() == [] and optuna.get_all_study_names(url) == []
    assert claims.holders(store, "s") == []
