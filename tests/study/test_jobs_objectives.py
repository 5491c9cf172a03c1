"""A study's own objectives (`--objectives accuracy,flops,latency`) in what reads a study besides
`nas report`: the progress that `nas search --jobs` polls (nas.study.search.processes.StudyPoller) and the
trial `nas export best` picks (nas.study.report.export.choose_trial)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from nas.cli import main
from nas.model.objectives import select
from nas.study.report.export import choose_trial
from nas.study.report.summary import read_study, summarize
from nas.study.search import loop
from nas.study.search.processes import StudyPoller
from tests.conftest import make_image_folder
from tests.fake_training import fake_train_genome

TIMED = ("accuracy", "flops", "latency")
# (genome, val accuracy, FLOPs, params, latency ms). Over accuracy, FLOPs and latency, trial 1
# beats trial 0 (faster, the same accuracy and FLOPs) and trial 3 (slower, less accurate): the
# front is trials 1 and 2, the best trial 1. Over the default three (params, not latency) trial 0
# would beat trial 1 and trial 3 would be on the front: trials 0, 2 and 3, the best trial 0.
TRIALS = (("[1,8,1,1,0]", 0.9, 100, 50, 2.0), ("[1,8,1,2,0]", 0.9, 100, 60, 1.0),
          ("[1,8,2,2,0]", 0.8, 50, 70, 3.0), ("[1,16,1,1,0]", 0.85, 100, 40, 5.0))


def timed_study(url: str, name: str) -> optuna.Study:
    """A study as `nas search --objectives accuracy,flops,latency` writes it, trials by hand."""
    study = optuna.create_study(storage=url, study_name=name,
                                directions=[o.direction for o in select(TIMED)])
    study.set_user_attr("nas", {
        "space": "tiny.toml", "data": "digits", "image_size": [8, 8], "budget_flops": None,
        "budget_params": None, "objectives": list(TIMED), "epochs": 1, "seed": 0,
        "classes": [str(c) for c in range(10)],
        "teacher": {"fingerprint": "f00d", "val_accuracy": 0.9, "test_accuracy": 0.875}})
    for run_id, (genome, val, flops, params, latency) in enumerate(TRIALS, 1):
        study.add_trial(optuna.trial.create_trial(values=[val, flops, latency], user_attrs={
            "genome": genome, "attention": "eca", "flops": flops, "params": params,
            "latency_ms": latency, "outcome": "trained", "run_id": run_id, "test_accuracy": val,
            "constraint": [0.0, 0.0, 0.0], "seconds": 1.0}))
    return study


def test_jobs_progress_and_export_rank_by_the_studys_own_objectives(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    timed_study(url, "timed")
    progress = StudyPoller(url, "timed").poll()
    assert progress.front == 2 and progress.best is not None and progress.best.trial == 1
    data = read_study(url, "timed")
    assert [row.trial for row in summarize(data).front] == [2, 1]       # the report agrees
    assert choose_trial(data, "best").trial == 1


def test_a_poller_before_the_study_exists_reports_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(storage=url, study_name="other")      # Optuna's tables, not the study
    poller = StudyPoller(url, "timed")
    assert (poller.poll().front, poller.poll().best) == (0, None)
    timed_study(url, "timed")
    assert poller.poll().best.trial == 1                     # type: ignore[union-attr]


def test_a_latency_search_agrees_with_its_progress_and_its_export(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A real latency study of tiny genomes (training replaced by tests/fake_training.py): the
    search's own summary, the --jobs poller and export name the same front size and best."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NAS_TEST_TRAINED", str(tmp_path / "trained.txt"))
    monkeypatch.setenv("NAS_TEST_SLEEP", "0")
    monkeypatch.setattr(loop, "train_genome", fake_train_genome)
    folder = make_image_folder(tmp_path / "digits4", 4, 24, 8, "d")
    url = f"sqlite:///{tmp_path / 'l.db'}"
    code = main(["search", "--space", "tiny.toml", "--set", "distill.loss=none", "--data",
                 str(folder), "--image-size", "8x8", "--storage", url, "--quiet", "--json",
                 "--epochs", "1", "--objectives", ",".join(TIMED), "--trials", "4", "--seed", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    progress = StudyPoller(url, summary["study"]).poll()
    assert progress.front == summary["front_size"] > 0
    assert progress.best is not None and progress.best.trial == summary["best"]["trial"]
    assert choose_trial(read_study(url), "best").trial == summary["best"]["trial"]
