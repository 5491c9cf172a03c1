"""What a search and an export leave behind when they cannot go on: kills during checkpoint
writes, a full disk, and a recipe whose every trial fails."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState

from nas.atomic import leftovers, sweep
from nas.cli import main
from nas.store import claims
from nas.store.runs import Store
from nas.study.report import export
from nas.study.search import loop
from tests.conftest import make_image_folder
from tests.training import write_space
from tests.workers import fork

ROOT = Path(__file__).resolve().parents[2]
SIZE = 500_000


WRITER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("atomic", sys.argv[1])
atomic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(atomic)
versions = [open(name, "rb").read() for name in sys.argv[3:]]
print("writing", flush=True)
n = 0
while True:
    atomic.write_atomic(sys.argv[2], versions[n % 2])
    n += 1
"""


def checkpoint(fill: float) -> dict[str, Any]:
    """A checkpoint-sized dict (2 MB of weights), so that a write takes long enough to be hit."""
    return {"kind": "test", "state_dict": {"w": torch.full((SIZE,), fill)}}


def test_200_kills_during_checkpoint_writes_leave_a_whole_file(tmp_path: Path) -> None:
    """A bare Python (nas.atomic alone, no torch: 200 starts are cheap) rewrites a checkpoint
    with two versions in turn and is killed at random moments of its writes."""
    versions = [tmp_path / "a.bytes", tmp_path / "b.bytes"]
    for fill, file in enumerate(versions):
        torch.save(checkpoint(float(fill)), file)
    whole = {file.read_bytes() for file in versions}
    path, rng, hit = tmp_path / "student.pt", random.Random(0), 0
    command = [sys.executable, "-S", "-c", WRITER, str(ROOT / "nas" / "atomic.py"), str(path),
               *map(str, versions)]
    for _ in range(200):
        writer = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
        time.sleep(rng.uniform(0.0, 0.02))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        assert not path.exists() or path.read_bytes() in whole      # old or new, never a mix
        hit += bool(leftovers(path))
    assert hit >= 20, f"only {hit} of 200 kills landed during a write"
    export.save_checkpoint(checkpoint(2.0), path)                   # the next start
    assert leftovers(path) == []
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.full((SIZE,), 2.0))


def test_sweep_keeps_the_temporary_file_of_a_live_writer(tmp_path: Path) -> None:
    path = tmp_path / "student.pt"
    mine = tmp_path / f".student.pt.{os.getpid()}.abcd.tmp"
    dead = tmp_path / ".student.pt.999999999.abcd.tmp"
    other = tmp_path / ".other.pt.999999999.abcd.tmp"
    for file in (mine, dead, other):
        file.write_bytes(b"partial")
    assert sweep(path) == [dead]
    assert mine.exists() and other.exists() and not dead.exists()


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(data folder, cache dir, space file): digits 0-3 and the tiny space without a teacher
    ([distill] loss = "none"), so that each test below starts a search at once."""
    root = tmp_path_factory.mktemp("warm")
    folder = make_image_folder(root / "digits4", 4, 24, 8, "d")
    return folder, root / "cache", write_space(root, distill={"loss": "none"})


def warm_search(warm: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                *extra: str) -> int:
    """`nas search` in-process on the teacherless tiny space at 8x8, study `s`."""
    folder, cache, space = warm
    monkeypatch.setenv("NAS_CACHE_DIR", str(cache))
    return main(["search", "--space", str(space), "--data", str(folder), "--image-size", "8x8",
                 "--storage", f"sqlite:///{tmp_path / 's.db'}", "--quiet", "--study", "s", *extra])


def trials_of(db: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="s", storage=f"sqlite:///{db}").trials


def test_full_disk_is_one_line_a_failed_trial_and_a_non_zero_exit(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, warm: tuple[Path, Path, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "weights"))

    monkeypatch.setattr(loop, "train_genome", disk_full)
    code = warm_search(warm, tmp_path, monkeypatch, "--trials", "3")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"nas: error: {tmp_path / 'weights'}: No space left on device")
    assert "(trial 0 marked FAIL; the search stopped)" in err
    assert [t.state for t in trials_of(tmp_path / "s.db")] == [TrialState.FAIL]
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    assert claims.holders(store, "s") == []                         # its claim was released
    store.close()


def test_a_recipe_whose_every_trial_fails_stops_with_the_first_error(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, warm: tuple[Path, Path, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def broken(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        raise ValueError(f"batch_size must be at least 2 (call {len(calls)})")

    monkeypatch.setattr(loop, "train_genome", broken)
    code = warm_search(warm, tmp_path, monkeypatch, "--trials", "1")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "the last 5 trials all failed" in err
    assert "trial 0: ValueError: batch_size must be at least 2 (call 1)" in err
    assert len(calls) == 5
    assert [t.state for t in trials_of(tmp_path / "s.db")] == [TrialState.FAIL] * 5


def test_a_sqlite_file_that_cannot_grow_stops_the_search_with_the_trial_failed(tmp_path: Path) -> None:
    """A real SQLITE_FULL (the store's connections may not grow the file): the stored weights
    do not fit, the search stops with the driver's one line, and the trial is FAIL."""
    url = f"sqlite:///{tmp_path / 'full.db'}"
    out = tmp_path / "worker.json"
    worker = fork({"url": url, "study": "s", "trials": 3, "weights": 1_000_000, "max_pages": 300,
                   "heartbeat_s": 1, "grace_s": 60}, out)
    worker.join(60)
    assert worker.exitcode == 1 and not out.exists()
    last = Path(f"{out}.err").read_text().strip().splitlines()[-1]
    assert last.startswith("nas.errors.StoreError: ") and "database or disk is full" in last, last
    assert "(trial 0 marked FAIL; the search stopped)" in last
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert [t.state for t in trials] == [TrialState.FAIL]
    store = Store(url)
    assert [r.status for r in store.list_runs("s")] == ["interrupted"]
    assert claims.holders(store, "s") == []
    store.close()
