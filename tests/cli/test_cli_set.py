"""`--set KEY=VALUE` on train, teacher, search and ablate, and `nas train --lr/--batch-size`:
dotted recipe keys read by the space file's own section reader, bad ones one line and exit 2.
Cross-entropy only (`distill.loss=none`), so no teacher is trained."""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path

import optuna
import pytest

from nas.cli import main
from nas.cli.common import Setting, set_arg, with_sets
from nas.model.space import load_space
from nas.store.runs import Store
from nas.study.ablation.file import load_ablation
from tests.training import STUDENT, write_space

CE = ["--set", "distill.loss=none", "--train-per-class", "20"]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    write_space(tmp_path)
    return tmp_path


def flags(root: Path) -> list[str]:
    return ["--space", str(root / "space.toml"), "--image-size", "8x8", "--device", "cpu",
            "--storage", f"sqlite:///{root / 'x.db'}", "--quiet"]


def error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as stop:                 # argparse's own errors
        code = stop.code
    assert code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nas: error: "), lines
    return lines[0]


def test_values_are_typed_as_toml_and_by_the_section_reader() -> None:
    assert set_arg("train.lr=1e-3") == Setting("train.lr", 0.001)
    assert set_arg("distill.loss=none") == Setting("distill.loss", "none")
    assert set_arg("teacher.genome=[2,16,1,1,1] [2,32,1,2,0]").value == "[2,16,1,1,1] [2,32,1,2,0]"
    space = with_sets(load_space("tiny.toml"), [set_arg("train.augment.views=['hflip', 'blur']"),
                                                set_arg("train.epochs=3"), set_arg("distill.alpha=1"),
                                                ["search.trials", 7]])       # a --jobs worker's JSON
    assert space.train.augment.views == ("hflip", "blur") and space.train.epochs == 3
    assert space.distill.alpha == 1.0 and space.search.trials == 7
    assert with_sets(space, [set_arg("train.lr=0.1"), set_arg("train.lr=0.2")]).train.lr == 0.2
    for bad in ("lr=1", "train.lr", "train..lr=1", "=1"):
        with pytest.raises(argparse.ArgumentTypeError, match="dotted recipe key and a value"):
            set_arg(bad)


def test_train_set_and_shorthands_reach_the_stored_recipe(root: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", STUDENT, *flags(root), *CE, "--set", "train.lr=0.002", "--set",
            "train.optimizer=adamw", "--batch-size", "16", "--json"]
    assert main(argv) == 0
    row = json.loads(capsys.readouterr().out)
    run = Store(f"sqlite:///{root / 'x.db'}").get_run(row["run_id"])
    assert (run.recipe["train"]["lr"], run.recipe["train"]["optimizer"]) == (0.002, "adamw")
    assert run.recipe["train"]["batch_size"] == 16 and run.recipe["distill"]["loss"] == "none"
    assert main(["train", STUDENT, *flags(root), *CE, "--set", "train.lr=0.5", "--lr", "0.003",
                 "--json"]) == 0                                          # the shorthand wins
    row = json.loads(capsys.readouterr().out)
    assert Store(f"sqlite:///{root / 'x.db'}").get_run(row["run_id"]).recipe["train"]["lr"] == 0.003


@pytest.mark.parametrize(("extra", "message"), [
    (["--set", "train.lrr=0.1"], "--set: train.lrr is not a known key (did you mean `lr`?)"),
    (["--set", "train.lr=20"], "--set: train.lr must be in (0, 10], got 20.0"),
    (["--set", "distill.loss=fancy"], "--set: distill.loss must be one of"),
    (["--set", "model.stem=8"], "--set: model.stem is not a known key"),
    (["--set", "lr=1"], "--set must be a dotted recipe key and a value such as train.lr=1e-3"),
    (["--lr", "20"], "--lr: train.lr must be in (0, 10], got 20.0"),
    (["--batch-size", "1"], "--batch-size: train.batch_size must be between 2 and 65536, got 1"),
])
def test_bad_keys_and_values_are_one_line_exit_2(root: Path, capsys: pytest.CaptureFixture[str],
                                                  extra: list[str], message: str) -> None:
    assert message in error_line(capsys, ["train", STUDENT, *flags(root), *extra])
    assert not (root / "x.db").exists()                    # refused before the database


def test_search_and_teacher_take_set(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", *flags(root), *CE, "--set", "train.lr=0.004", "--set", "search.trials=1",
                 "--epochs", "1", "--study", "s", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trained"] == 1          # search.trials=1
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{root / 'x.db'}")
    run = Store(f"sqlite:///{root / 'x.db'}").get_run(study.trials[0].user_attrs["run_id"])
    assert run.recipe["train"]["lr"] == 0.004
    assert "--set: teacher.epoch is not a known key (did you mean `epochs`?)" in error_line(
        capsys, ["teacher", *flags(root), "--set", "teacher.epoch=1"])
    assert "--set: search.trials must be between 1 and" in error_line(
        capsys, ["search", *flags(root), "--set", "search.trials=0"])



def test_export_retrain_keeps_the_searched_recipe_on_the_files_subset(
        root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A study searched with --set keys retrains (`export --retrain-epochs`) under the same
    keys (the views too: the README), no teacher for `distill.loss=none`, on the space file's
    training subset, not the search's --train-per-class."""
    url = f"sqlite:///{root / 'x.db'}"
    assert load_space(str(root / "space.toml")).train.augment.views == ()
    assert main(["search", *flags(root), *CE, "--set", "train.lr=0.004", "--set",
                 "train.augment.views=['hflip']", "--trials", "1", "--epochs", "1", "--study", "s",
                 "--json"]) == 0
    capsys.readouterr()
    assert main(["export", "best", "--study", "s", "--storage", url, "--retrain-epochs", "1",
                 "--out", str(root / "final.pt"), "--device", "cpu", "--json"]) == 0
    run = Store(url).get_run(json.loads(capsys.readouterr().out)["run_id"])
    assert run.recipe["train"]["lr"] == 0.004 and run.recipe["distill"]["loss"] == "none"
    assert run.recipe["train"]["augment"]["views"] == ["hflip"]
    assert run.teacher_fingerprint == "none"                             # no teacher trained
    file = load_space(str(root / "space.toml")).train.train_per_class
    assert run.recipe["train"]["train_per_class"] == file != 20

def test_a_set_of_the_trials_views_is_not_the_final_models(
        root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--set search.views=...` is the trials' views alone: the study records the user's keys,
    and `export --retrain` trains on [train]'s views (none in tiny.toml), not the trials'."""
    url = f"sqlite:///{root / 'x.db'}"
    assert main(["search", *flags(root), *CE, "--set", "search.views=['hflip']", "--trials", "1",
                 "--epochs", "1", "--study", "v", "--json"]) == 0
    capsys.readouterr()
    study = optuna.load_study(study_name="v", storage=url)
    sets = {"distill.loss": "none", "search.views": ["hflip"]}
    assert study.user_attrs["nas"]["sets"] == sets
    study.set_user_attr("nas", {k: v for k, v in study.user_attrs["nas"].items() if k != "sets"})
    assert main(["search", *flags(root), *CE, "--set", "search.views=['hflip']", "--trials", "1",
                 "--epochs", "1", "--study", "v", "--json"]) == 0     # a study made before: kept now
    assert optuna.load_study(study_name="v", storage=url).user_attrs["nas"]["sets"] == sets
    capsys.readouterr()
    trial = Store(url).get_run(study.trials[0].user_attrs["run_id"])
    assert trial.recipe["train"]["augment"]["views"] == ["hflip"]
    assert main(["export", "best", "--study", "v", "--storage", url, "--retrain-epochs", "1",
                 "--out", str(root / "final.pt"), "--device", "cpu", "--json"]) == 0
    run = Store(url).get_run(json.loads(capsys.readouterr().out)["run_id"])
    assert run.recipe["train"]["augment"]["views"] == []


def test_ablate_set_changes_the_base_and_arms_win(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ab.toml"
    path.write_text('space = "tiny.toml"\n[[arm]]\nname = "a"\ngenome = "[1,8,1,1,0]"\n'
                    '[[arm]]\nname = "b"\ngenome = "[1,8,1,1,0]"\ntrain.lr = 0.01\n')
    ablation = load_ablation(path, overrides={"train.lr": 0.002, "distill.loss": "none"})
    assert [arm.space.train.lr for arm in ablation.arms] == [0.002, 0.01]
    assert {arm.space.distill.loss for arm in ablation.arms} == {"none"}
    assert "--set: distill.los is not a known key (did you mean `loss`?)" in error_line(
        capsys, ["ablate", str(path), "--set", "distill.los=none", "--no-train",
                 "--storage", f"sqlite:///{tmp_path / 'a.db'}"])
    assert "--set: search.trials is not a known key" in error_line(
        capsys, ["ablate", str(path), "--set", "search.trials=2", "--no-train",
                 "--storage", f"sqlite:///{tmp_path / 'a.db'}"])


def test_teacher_set_trains_another_teacher_that_train_reuses(
        root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`nas teacher --set teacher.epochs=1` trains a 1-epoch teacher (tiny.toml says 2) under its
    own fingerprint, not the file's; `nas train --set teacher.epochs=1` distils from that one."""
    url, spec = f"sqlite:///{root / 'x.db'}", load_space(str(root / "space.toml")).teacher
    assert spec.epochs == 2 and spec.kind == "genome"
    assert main(["teacher", *flags(root), "--set", "teacher.epochs=1", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    record = Store(url).get_teacher(row["fingerprint"])
    assert row["cached"] is False and record is not None
    assert record.spec["epochs"] == 1 and len(record.history) == 1
    assert main(["train", STUDENT, *flags(root), "--set", "teacher.epochs=1", "--epochs", "1",
                 "--json"]) == 0
    run = Store(url).get_run(json.loads(capsys.readouterr().out)["run_id"])
    assert run.teacher_fingerprint == row["fingerprint"]
    with sqlite3.connect(root / "x.db") as db:                         # not the file's teacher
        assert db.execute("SELECT fingerprint FROM nas_teachers").fetchall() == [(row["fingerprint"],)]
