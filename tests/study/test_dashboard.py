"""What Optuna's tools read (objective names, learning curves) and `nas delete`, through optuna's API."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from nas.cli import main
from nas.model.objectives import DEFAULT_OBJECTIVES, select
from nas.store.runs import Store
from nas.study.search.dashboard import name_metrics
from tests.conftest import make_image_folder

TINY = str(Path(__file__).resolve().parents[2] / "nas" / "search_spaces" / "tiny.toml")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))


def search(capsys: pytest.CaptureFixture[str], url: str, data: Path) -> str:
    code = main(["search", "--space", TINY, "--data", str(data), "--image-size", "8x8", "--storage", url,
                 "--quiet", "--json", "--trials", "2", "--epochs", "2", "--seed", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)["study"]


def test_names_curves_and_delete(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = make_image_folder(tmp_path / "digits4", 4, 24, 8, "d")
    url = f"sqlite:///{tmp_path / 's.db'}"
    name = search(capsys, url, folder)
    study = optuna.load_study(study_name=name, storage=url)
    assert study.metric_names == ["val_accuracy", "flops", "params"]
    runs = {r.trial: r for r in Store(url).list_runs(name)}
    trained = [t for t in study.trials if t.user_attrs.get("outcome") == "trained"]
    assert trained
    for trial in trained:
        history = runs[trial.number].history
        assert len(history) == 2
        assert trial.intermediate_values == {int(h["epoch"]): h["val_accuracy"] for h in history}

    assert main(["delete", name, "--storage", url, "--json"]) == 0
    deleted = json.loads(capsys.readouterr().out)
    assert (deleted["study"], deleted["optuna_study"], deleted["runs"]) == (name, True, len(runs))
    assert deleted["weight_bytes"] > 0
    assert name not in optuna.get_all_study_names(url)
    assert Store(url).list_runs(name) == []
    assert main(["delete", name, "--storage", url]) == 2
    assert f"no study named {name!r}" in capsys.readouterr().err


def test_a_study_made_without_names_gets_them_when_opened(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    optuna.create_study(study_name="old", storage=url,
                        directions=[o.direction for o in select(DEFAULT_OBJECTIVES)])
    assert optuna.load_study(study_name="old", storage=url).metric_names is None
    name_metrics(optuna.load_study(study_name="old", storage=url))
    assert optuna.load_study(study_name="old", storage=url).metric_names == ["val_accuracy",
                                                                           "flops", "params"]


def test_delete_leaves_an_unrelated_database_untouched(tmp_path: Path) -> None:
    """`nas delete` on a file without nas or Optuna tables, or on no file, refuses in one line
    and creates or changes nothing."""
    import sqlite3


    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("create table notes (body text)")
    before = other.read_bytes()
    for url in (f"sqlite:///{other}", f"sqlite:///{tmp_path / 'missing.db'}"):
        assert main(["delete", "s", "--storage", url]) == 2
    assert other.read_bytes() == before and not (tmp_path / "missing.db").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]
