"""`nas reproduce`: a tiny study's trial and its exported checkpoint train again to identical
metrics (CPU, one thread, the stored seed); other data is refused in one line before training."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from nas.cli import main
from nas.model.space import load_space
from nas.store.runs import Store
from nas.train.experiment import prepare, resolve_device
from tests.studies import add_trained, new_study
from tests.training import FAST_TEACHER, write_space


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A study with one trained trial (digits at 8x8, the tiny space, a fast genome teacher)
    and `student.pt` exported from it."""
    root = tmp_path_factory.mktemp("reproduce")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NAS_CACHE_DIR", str(root / "cache"))
        space = load_space(write_space(root, teacher=FAST_TEACHER))
        store = Store(f"sqlite:///{root / 'x.db'}")
        ctx = prepare(space, "digits", store, size=(8, 8),      # one thread, as reproduce trains
                      device=resolve_device("cpu", 1))
        add_trained(new_study(store.url, "tiny"), ctx, "[1,8,1,1,0] [2,16,1,2,0]")
        assert main(["export", "0", "--study", "tiny", "--storage", store.url,
                     "--out", str(root / "student.pt"), "--quiet"]) == 0
        yield root


def storage(root: Path) -> list[str]:
    return ["--storage", f"sqlite:///{root / 'x.db'}", "--quiet"]


def reproduced(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main(["reproduce", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_study_trial_reproduces_identically(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, row = reproduced(capsys, "tiny", "0", *storage(study))
    assert code == 0 and row["identical"] is True and row["seed"] == 0
    stored = Store(f"sqlite:///{study / 'x.db'}").get_run(1)
    metrics = row["metrics"]
    assert metrics["val_accuracy"] == {"stored": stored.val_accuracy, "reproduced": stored.val_accuracy}
    assert metrics["test_accuracy"]["reproduced"] == stored.test_accuracy
    again = Store(f"sqlite:///{study / 'x.db'}").get_run(row["run_id"])
    def timeless(history: list[dict[str, float]]) -> list[dict[str, float]]:
        return [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in history]

    assert again.id != stored.id and timeless(again.history) == timeless(stored.history)
    assert again.weights == stored.weights


def test_a_checkpoint_reproduces_identically_and_prints_side_by_side(
        study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, row = reproduced(capsys, str(study / "student.pt"), *storage(study))
    assert code == 0 and row["identical"] is True and row["source"] == str(study / "student.pt")
    checkpoint = torch.load(study / "student.pt", weights_only=True)
    assert row["metrics"]["test_accuracy"]["stored"] == checkpoint["metrics"]["test_accuracy"]
    assert row["metrics"]["params"] == {"stored": checkpoint["params"], "reproduced": checkpoint["params"]}
    assert main(["reproduce", str(study / "student.pt"), *storage(study)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "stored" in out and "reproduced" in out and "identical" in out and "differs" not in out


def test_other_data_is_refused_in_one_line(study: Path, capsys: pytest.CaptureFixture[str],
                                          image_folder: Path) -> None:
    runs = len(Store(f"sqlite:///{study / 'x.db'}").list_runs())
    capsys.readouterr()
    assert main(["reproduce", str(study / "student.pt"), "--data", str(image_folder),
                 *storage(study)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "the run was trained on" in err[0] and "give --data" in err[0]
    assert len(Store(f"sqlite:///{study / 'x.db'}").list_runs()) == runs       # nothing trained


def test_a_checkpoint_without_a_data_fingerprint_is_refused(
        study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = torch.load(study / "student.pt", weights_only=True)
    del checkpoint["data_fingerprint"]
    torch.save(checkpoint, tmp_path / "old.pt")
    capsys.readouterr()
    assert main(["reproduce", str(tmp_path / "old.pt"), *storage(study)]) == 2
    assert "records no data fingerprint" in capsys.readouterr().err
    assert main(["reproduce", "tiny", "7", *storage(study)]) == 2
    assert "has no trial 7" in capsys.readouterr().err


def test_a_reproduction_that_differs_exits_1(study: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A checkpoint whose stored test accuracy was edited: trained again, it differs, exit 1."""
    checkpoint = torch.load(study / "student.pt", weights_only=True)
    checkpoint["metrics"]["test_accuracy"] += 0.125
    torch.save(checkpoint, tmp_path / "edited.pt")
    code, row = reproduced(capsys, str(tmp_path / "edited.pt"), *storage(study))
    assert code == 1 and row["identical"] is False
    assert main(["reproduce", str(tmp_path / "edited.pt"), *storage(study)]) == 1
    assert "differs" in capsys.readouterr().out


def test_a_changed_teacher_is_refused_in_one_line(study: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The space file the run names supplies its teacher, checked by fingerprint: another
    [teacher] there is refused, naming the section to restore, and no student is trained."""
    runs = len(Store(f"sqlite:///{study / 'x.db'}").list_runs())
    write_space(study, teacher={**FAST_TEACHER, "epochs": 3})
    try:
        capsys.readouterr()
        assert main(["reproduce", str(study / "student.pt"), *storage(study)]) == 2
    finally:
        write_space(study, teacher=FAST_TEACHER)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "restore its [teacher] section" in err[0]
    assert len(Store(f"sqlite:///{study / 'x.db'}").list_runs()) == runs


def test_a_wall_clock_retraining_is_exported_and_not_reproduced(
        study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`export --retrain-time 1s` retrains on a one-second clock and says so in the checkpoint;
    `nas reproduce` refuses it in one line, naming the epochs to train for a comparison (a
    clock's schedule followed that machine's speed), and trains nothing."""
    out = tmp_path / "clock.pt"
    assert main(["export", "0", "--study", "tiny", "--out", str(out), "--retrain-time", "1s",
                 "--retrain-epochs", "40", "--device", "cpu", "--threads", "1", *storage(study)]) == 0
    retrained = torch.load(out, weights_only=True)["retrained"]
    assert retrained["seconds"] == 1.0 and 1 <= retrained["epochs"] <= 40
    runs = len(Store(f"sqlite:///{study / 'x.db'}").list_runs())
    capsys.readouterr()
    assert main(["reproduce", str(out), *storage(study)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "trained on a 1-second wall clock" in err[0]
    assert f"--epochs {retrained['epochs']}" in err[0]
    assert len(Store(f"sqlite:///{study / 'x.db'}").list_runs()) == runs
    capsys.readouterr()
    assert main(["export", "0", "--study", "tiny", "--out", str(out), "--retrain-time", "0m",
                 *storage(study)]) == 2
    assert "--retrain-time must be a positive duration" in capsys.readouterr().err


def test_moved_data_is_found_with_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str], image_folder: Path) -> None:
    """A student searched and exported on an image folder that then moved: `--data NEWPATH` (the
    same content, so the same fingerprint) is accepted, the student trains again and the stored
    and reproduced metrics print side by side, identical; the old path alone is gone."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    url, student = f"sqlite:///{tmp_path / 'f.db'}", str(tmp_path / "student.pt")
    assert main(["search", "--data", str(image_folder), "--space", str(write_space(tmp_path)),
                 "--image-size", "8x8", "--device", "cpu", "--set", "distill.loss=none",
                 "--trials", "1", "--epochs", "1", "--study", "f", "--storage", url, "--quiet"]) == 0
    assert main(["export", "best", "--study", "f", "--out", student, "--storage", url, "--quiet"]) == 0
    moved = image_folder.rename(tmp_path / "moved")
    capsys.readouterr()
    assert main(["reproduce", student, "--storage", url, "--quiet"]) == 2        # no --data: gone
    assert f"{image_folder}: data folder not found" in capsys.readouterr().err
    code, row = reproduced(capsys, student, "--data", str(moved), "--storage", url, "--quiet")
    stored = torch.load(student, weights_only=True)
    assert code == 0 and row["identical"] is True and row["data"] == str(moved)
    assert stored["data"] == str(image_folder)
    assert row["metrics"]["test_accuracy"] == {"stored": stored["metrics"]["test_accuracy"],
                                               "reproduced": stored["metrics"]["test_accuracy"]}
    assert main(["reproduce", student, "--data", str(moved), "--storage", url, "--quiet"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "stored" in out and "reproduced" in out and "identical" in out and "differs" not in out
