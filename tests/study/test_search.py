"""`nas search` end to end on tiny real data: budget gate, dedup, resume, no test leakage."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from nas.cli import main
from nas.model.space import load_space
from nas.store.runs import Store
from nas.study.pareto import feasible_front, row_from_trial
from nas.study.search import identity, loop
from nas.study.search.loop import Budget, default_study_name
from tests.conftest import make_image_folder
from tests.fake_training import fake_train_genome

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "nas" / "search_spaces" / "tiny.toml")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A real ImageFolder of digits 0-3: 24 train and 8 test images per class."""
    return make_image_folder(tmp_path / "digits4", 4, 24, 8, "d")


def search(capsys: pytest.CaptureFixture[str], db: Path, data: Path, *extra: str) -> dict[str, Any]:
    """Run `nas search --json` in-process; return its one JSON object."""
    code = main(["search", "--space", TINY, "--data", str(data), "--image-size", "8x8",
                 "--storage", f"sqlite:///{db}", "--quiet", "--json", *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def load(db: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}")


def test_search_trains_rejects_and_stores(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          folder: Path) -> None:
    db = tmp_path / "s.db"
    result = search(capsys, db, folder, "--trials", "4", "--budget-flops", "40K", "--seed", "3")
    assert result["trained"] == 4
    study = load(db, result["study"])
    assert result["study"] == "tiny-digits4-8x8-f40K"
    trials = study.get_trials(deepcopy=False)
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials)
    rejected = [t for t in trials if t.user_attrs["outcome"] == "rejected"]
    trained = [t for t in trials if t.user_attrs["outcome"] == "trained"]
    assert len(rejected) == result["rejected"]
    assert all(t.user_attrs["flops"] > 40_000 for t in rejected)
    assert all(t.user_attrs["flops"] <= 40_000 for t in trained)
    assert all(t.user_attrs["constraint"][0] > 0 for t in rejected)
    runs = {r.trial: r for r in Store(f"sqlite:///{db}").list_runs(result["study"])}
    assert set(runs) == {t.number for t in trained}       # rejected genomes were never trained
    for t in trained:
        run = runs[t.number]
        assert (run.genome, run.attention) == (t.user_attrs["genome"], t.user_attrs["attention"])
        assert t.values[0] == run.val_accuracy and run.status == "ok"
        assert t.user_attrs["test_accuracy"] == run.test_accuracy
    assert len({(r.genome, r.attention) for r in runs.values()}) == len(runs)   # no genome twice
    meta = study.user_attrs["nas"]
    assert meta["budget_flops"] == 40_000 and meta["image_size"] == [8, 8]


def test_rerun_continues_the_study_and_reuses_genomes(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path, folder: Path) -> None:
    db = tmp_path / "s.db"
    first = search(capsys, db, folder, "--trials", "3")
    second = search(capsys, db, folder, "--trials", "3")
    assert first["study"] == second["study"]
    study = load(db, first["study"])
    outcomes = [t.user_attrs["outcome"] for t in study.trials]
    assert outcomes.count("trained") == 6
    runs = Store(f"sqlite:///{db}").list_runs(first["study"])
    assert len(runs) == 6 and len({(r.genome, r.attention) for r in runs}) == 6
    for t in study.trials:
        if t.user_attrs["outcome"] == "reused":
            original = next(r for r in runs if r.id == t.user_attrs["run_id"])
            assert t.values[0] == original.val_accuracy


def test_ctrl_c_marks_the_trial_failed_and_the_next_run_resumes(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, folder: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "s.db"
    real = loop.train_genome
    calls = {"n": 0}

    def interrupting(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_genome", interrupting)
    code = main(["search", "--space", TINY, "--data", str(folder), "--image-size", "8x8",
                 "--storage", f"sqlite:///{db}", "--quiet", "--trials", "3"])
    assert code == 130
    name = "tiny-digits4-8x8-nobudget"
    trials = load(db, name).trials
    assert [t.state for t in trials].count(TrialState.RUNNING) == 0
    assert trials[-1].state == TrialState.FAIL and trials[-1].user_attrs["outcome"] == "interrupted"
    monkeypatch.setattr(loop, "train_genome", real)
    result = search(capsys, db, folder, "--trials", "2")
    assert result["study"] == name and result["trained"] == 2
    assert sum(t.user_attrs["outcome"] == "trained" for t in load(db, name).trials) == 3


def test_a_second_ctrl_c_during_the_cleanup_is_ignored(
        tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C twice, the second while the interrupted trial is being told FAIL: a real SIGINT
    to this process lands in the middle of the cleanup, which still finishes: exit 130, one
    trial, FAIL, nothing RUNNING."""
    import os
    import signal

    def interrupting(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    real_tell = loop._tell

    def second_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)          # delivered at once, inside the cleanup
        return real_tell(*args, **kwargs)

    monkeypatch.setattr(loop, "train_genome", interrupting)
    monkeypatch.setattr(loop, "_tell", second_ctrl_c)
    before = signal.getsignal(signal.SIGINT)     # default, or ignored when run in the background
    db = tmp_path / "s.db"
    code = main(["search", "--space", TINY, "--data", str(folder), "--image-size", "8x8",
                 "--storage", f"sqlite:///{db}", "--quiet", "--trials", "3"])
    assert code == 130
    trials = load(db, "tiny-digits4-8x8-nobudget").trials
    assert [t.state for t in trials] == [TrialState.FAIL]
    assert trials[0].user_attrs["outcome"] == "interrupted"
    assert signal.getsignal(signal.SIGINT) is before


def test_test_labels_do_not_change_the_selection(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path, folder: Path) -> None:
    shuffled = tmp_path / "shuffled"
    shutil.copytree(folder, shuffled)
    test = shuffled / "test"
    (test / "d0").rename(test / "tmp")          # swap the labels of two test classes
    (test / "d1").rename(test / "d0")
    (test / "tmp").rename(test / "d1")
    picks = []
    for data, db in ((folder, tmp_path / "a.db"), (shuffled, tmp_path / "b.db")):
        result = search(capsys, db, data, "--trials", "4", "--study", "leak")
        trials = load(db, "leak").trials
        picks.append(([(t.user_attrs["genome"], t.values and t.values[0]) for t in trials],
                      result["best"]["genome"], result["best"]["val_accuracy"]))
    assert picks[0] == picks[1]


def test_budget_below_the_smallest_genome_is_refused(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path, folder: Path) -> None:
    code = main(["search", "--space", TINY, "--data", str(folder), "--image-size", "8x8",
                 "--storage", f"sqlite:///{tmp_path / 's.db'}", "--quiet",
                 "--budget-flops", "1K"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "below the smallest genome" in err and "[1,8,1,2,0]" in err
    assert not (tmp_path / "cache" / "teachers").exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--budget-flops", "0.2X"], "--budget-flops must be a positive number"),
    (["--budget-params=-5K"], "--budget-params must be a positive number"),
    (["--timeout", "soon"], "--timeout must be a positive duration"),
    (["--timeout", ""], "--timeout must be a positive duration"),
    (["--storage", "sqlte:///x.db"], "did you mean `sqlite`"),
    (["--storage", "sqlite:////nonexistent-dir/sub/x.db"], "nonexistent-dir"),
    (["--trials", "0"], "--trials must be between 1 and 1000000, got 0"),
    (["--epochs", "100001"], "--epochs must be between 1 and 100000, got 100001"),
    (["--rungs", "1,999999999999999999999"], "--rungs must be epochs from 1 to 100000"),
])
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          folder: Path, flags: list[str], message: str) -> None:
    args = ["search", "--space", TINY, "--data", str(folder), "--quiet"]
    if not any(f.startswith("--storage") for f in flags):
        args += ["--storage", f"sqlite:///{tmp_path / 's.db'}"]
    code = main(args + flags)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and message in err


def test_default_study_name_and_budget() -> None:
    space = load_space(TINY)
    budget = Budget({"flops": 2e8, "params": 5e4})
    assert default_study_name(space, "/x/hymenoptera/", (185, 160), budget) == \
        "tiny-hymenoptera-185x160-f0.2G-p50K"
    timed = Budget({"latency": 2.0, "flops": 2e8}, ("flops", "params", "latency"))
    assert default_study_name(space, "/x/h", (8, 8), timed, ("accuracy", "flops", "latency")) == \
        "tiny-h-8x8-f0.2G-l2ms-flops-latency"
    assert Budget({"flops": 100.0}).violation({"flops": 150, "params": 10**9}) == [50.0, 0.0]
    assert timed.violation({"flops": 1, "params": 1, "latency": 2.5}) == [-2e8 + 1, 0.0, 0.5]


def test_feasible_front_is_non_dominated_and_one_per_genome() -> None:
    def trial(number: int, genome: str, outcome: str, values: list[float],
              constraint: list[float] | None = None) -> optuna.trial.FrozenTrial:
        frozen = optuna.trial.create_trial(values=values, user_attrs={
            "genome": genome, "attention": "eca", "outcome": outcome, "flops": int(values[1]),
            "params": int(values[2]), "constraint": constraint or [0.0, 0.0]})
        frozen.number = number
        return frozen

    trials = [
        trial(0, "a", "trained", [0.9, 100, 10]),
        trial(1, "b", "trained", [0.8, 200, 20]),     # dominated by a
        trial(2, "c", "trained", [0.95, 300, 30]),
        trial(3, "a", "reused", [0.9, 100, 10]),      # same genome as 0
        trial(4, "d", "rejected", [0.0, 50, 5], [10.0, 0.0]),      # infeasible
        trial(5, "e", "trained", [0.7, 50, 50]),
    ]
    front = feasible_front([row_from_trial(t) for t in trials])
    assert [r.genome for r in front] == ["e", "a", "c"]           # sorted by FLOPs
    assert [r.trial for r in front] == [5, 0, 2]


def test_search_report_export_reload_end_to_end(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path, folder: Path) -> None:
    import torch

    import nas
    from nas.data.dataset import load_data
    from nas.train.distill import accuracy

    db = tmp_path / "e2e.db"
    storage = f"sqlite:///{db}"
    result = search(capsys, db, folder, "--trials", "4", "--budget-flops", "40K")
    assert main(["report", "--storage", storage, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["study"] == result["study"]
    front = report["front"]
    assert front and all(row["flops"] <= 40_000 for row in front)
    keys = [(-r["val_accuracy"], r["flops"], r["params"]) for r in front]
    for a in keys:                                        # no row dominates another
        assert not any(all(x <= y for x, y in zip(b, a, strict=True)) and b != a for b in keys)
    best = max(front, key=lambda r: (r["val_accuracy"], -r["flops"]))
    out = tmp_path / "student.pt"
    assert main(["export", "best", "--storage", storage, "--out", str(out), "--quiet"]) == 0
    model = nas.load(out)
    assert model.checkpoint["genome"] == best["genome"]
    data = load_data(str(folder), (8, 8))
    mean, std = model.checkpoint["mean"], model.checkpoint["std"]
    again = accuracy(model, data.test, mean, std, torch.device("cpu"))
    assert again == best["test_accuracy"]


@pytest.mark.parametrize("sampler", ["nsga2", "random", "tpe-joint"])
def test_every_sampler_runs_under_a_budget(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           folder: Path, sampler: str) -> None:
    db = tmp_path / "s.db"
    result = search(capsys, db, folder, "--trials", "2", "--sampler", sampler,
                    "--budget-params", "3K")
    assert result["trained"] == 2
    for t in load(db, result["study"]).trials:
        assert (t.user_attrs["params"] <= 3000) == (t.user_attrs["outcome"] != "rejected")


def test_after_tpe_repeats_a_judged_genome_one_trial_is_drawn_at_random() -> None:
    tpe = loop.make_sampler("tpe", 0)
    settings = loop.SearchSettings(study="s", trials=1, epochs=1, seed=7)
    assert loop._next_sampler(settings, tpe, 4, "trained") is tpe
    assert loop._next_sampler(settings, tpe, 4, "rejected") is tpe
    explorer = loop._next_sampler(settings, tpe, 4, "reused")
    assert isinstance(explorer, optuna.samplers.RandomSampler)
    again = loop._next_sampler(settings, tpe, 4, "reused")       # seeded: reproducible
    other = loop._next_sampler(settings, tpe, 5, "reused")
    draws = [_draw(sampler) for sampler in (explorer, again, other)]
    assert draws[0] == draws[1] != draws[2]
    nsga = loop.make_sampler("nsga2", 0)                         # TPE only
    nsga_settings = loop.SearchSettings(study="s", trials=1, epochs=1, sampler="nsga2")
    assert loop._next_sampler(nsga_settings, nsga, 4, "reused") is nsga


def _draw(sampler: optuna.samplers.BaseSampler) -> list[int]:
    study = optuna.create_study(sampler=sampler)
    return [study.ask().suggest_int("x", 0, 10**6) for _ in range(3)]


def test_a_search_draws_the_trial_after_a_repeat_at_random(capsys: pytest.CaptureFixture[str],
                                                            tmp_path: Path, folder: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end, one worker: every trial that follows a reused one samples exactly the genome
    that the seeded RandomSampler draws."""
    monkeypatch.setenv("NAS_TEST_TRAINED", str(tmp_path / "trained.log"))
    monkeypatch.setenv("NAS_TEST_SLEEP", "0")
    monkeypatch.setattr(loop, "train_genome", fake_train_genome)
    db = tmp_path / "s.db"
    result = search(capsys, db, folder, "--trials", "40", "--seed", "3")
    trials = load(db, result["study"]).trials
    after = [t for t in trials[1:] if trials[t.number - 1].user_attrs["outcome"] == "reused"]
    assert result["reused"] >= 3 and after
    space = load_space(TINY)
    for trial in after:
        sampler = loop.make_sampler("random", loop.shared_study.worker_seed(3, trial.number))
        drawn = loop.sample_genome(optuna.create_study(sampler=sampler).ask(), space)
        genome = drawn.rounded(space.model.divisor)
        assert (genome.notation, genome.attention) == (trial.user_attrs["genome"],
                                                       trial.user_attrs["attention"])


# ----------------------------------------------------------------- a study's identity (issue 22)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trials store a run without training (tests/fake_training.py)."""
    monkeypatch.setenv("NAS_TEST_TRAINED", str(tmp_path / "trained.log"))
    monkeypatch.setenv("NAS_TEST_SLEEP", "0")
    monkeypatch.setattr(loop, "train_genome", fake_train_genome)


def test_timeout_starts_no_trial_after_the_deadline(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path, folder: Path, fake: None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`--timeout 6s`: trials start until 6 s after the command and none after, though 500 were
    asked for; seed.toml's `timeout = "8m"` (the README's main job) is 480 s."""
    monkeypatch.setenv("NAS_TEST_SLEEP", "0.5")
    db = tmp_path / "s.db"
    before = datetime.now()
    result = search(capsys, db, folder, "--trials", "500", "--timeout", "6s")
    starts = [t.datetime_start for t in load(db, result["study"]).trials]
    assert 0 < result["trained"] < 20
    assert max(starts) <= before + timedelta(seconds=6.5)
    assert load_space(str(ROOT / "nas" / "search_spaces" / "seed.toml")).search.timeout_seconds() == 480


def edited_space(path: Path, old: str, new: str) -> Path:
    text = Path(TINY).read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(("old", "new", "changed"), [
    ("[search]", '[distill]\nloss = "logit"\n\n[search]', 'distill.loss "feature" -> "logit"'),
    ("[search]", '[distill]\ntemperature = 4.0\n\n[search]', "distill.temperature 2.0 -> 4.0"),
    ("c = [8, 16]", "c = [8, 24]", "stage[1].c [8, 16] -> [8, 24]"),
    ("batch_size = 64", "batch_size = 32", "train.batch_size 64 -> 32"),
])
def test_a_rerun_with_another_recipe_or_genes_is_refused(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, folder: Path, fake: None,
        old: str, new: str, changed: str) -> None:
    db, space = tmp_path / "s.db", tmp_path / "space.toml"
    space.write_text(Path(TINY).read_text())
    argv = ["search", "--space", str(space), "--data", str(folder), "--image-size", "8x8",
            "--storage", f"sqlite:///{db}", "--quiet", "--study", "x", "--trials", "3"]
    assert main(argv) == 0
    capsys.readouterr()
    before = len(load(db, "x").trials)
    edited_space(space, old, new)
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"nas: error: study 'x' was made with another recipe or space: {changed}; "
                   "continue it with its own space file, or pick a new --study name (e.g. x-2)"]
    assert len(load(db, "x").trials) == before                     # nothing sampled or trained
    assert main([*argv[:-4], "--study", "x-2", "--trials", "3"]) == 0   # a new name is fine
    assert main(argv[:-2] + ["--trials", "1", "--epochs", "2"]) == 2     # --epochs is no cure


def test_a_ce_study_continues_when_a_key_ce_does_not_read_changes(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, folder: Path, fake: None) -> None:
    """Cross-entropy's fingerprint holds the loss alone: a new default temperature or teacher
    neither refuses a CE study (one fingerprinted with those keys, too) nor its stored runs."""
    db, space = tmp_path / "s.db", tmp_path / "space.toml"
    ce = '[distill]\nloss = "none"\ntemperature = {}\n\n[search]'
    edited_space(space, "[search]", ce.format(4.0))
    argv = ["search", "--space", str(space), "--data", str(folder), "--image-size", "8x8",
            "--storage", f"sqlite:///{db}", "--quiet", "--study", "x", "--trials", "2"]
    assert main(argv) == 0
    attrs = load(db, "x").user_attrs["nas"]
    assert attrs["fingerprint"]["distill.loss"] == "none"
    assert not [key for key in attrs["fingerprint"] if key.startswith(("teacher.", "distill.t"))]
    old_style = {**attrs, "fingerprint": {**attrs["fingerprint"], "distill.temperature": 4.0,
                                          "teacher.kind": "genome"}}
    load(db, "x").set_user_attr("nas", old_style)
    edited_space(space, "[search]", ce.format(2.0)).write_text(
        space.read_text().replace('attention = "eca"\nepochs = 2', 'attention = "se"\nepochs = 7'))
    capsys.readouterr()
    assert main(argv[:-1] + ["4"]) == 0, capsys.readouterr().err
    (run, *_) = Store(f"sqlite:///{db}").list_runs("x")
    assert run.recipe["distill"]["temperature"] == 4.0
    assert identity.same_recipe(run.recipe, {**run.recipe, "distill": {"loss": "none"}})


def test_a_study_made_before_fingerprints_stores_one_and_reuses_only_its_recipe(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, folder: Path, fake: None) -> None:
    """An old study: no fingerprint, runs of another recipe. Continuing it stores the
    fingerprint and trains those genomes again instead of reusing them."""
    db = tmp_path / "s.db"
    first = search(capsys, db, folder, "--trials", "20", "--seed", "1")
    study, store = load(db, first["study"]), Store(f"sqlite:///{db}")
    before = len(study.trials)
    attrs = dict(study.user_attrs["nas"])
    fingerprint = attrs.pop("fingerprint")
    study.set_user_attr("nas", attrs)
    old = {run.id: run for run in store.list_runs(first["study"])}
    for run in old.values():
        store.update_run(run.id, recipe={**run.recipe, "distill": {**run.recipe["distill"],
                                                                     "loss": "logit"}})
    second = search(capsys, db, folder, "--trials", "20", "--seed", "1")
    study = load(db, first["study"])
    assert study.user_attrs["nas"]["fingerprint"] == fingerprint
    new = study.trials[before:]
    assert not [t.number for t in new if t.user_attrs.get("run_id") in old]
    old_genomes = {(r.genome, r.attention) for r in old.values()}
    again = [t for t in new if t.user_attrs["outcome"] == "trained"
             and (t.user_attrs["genome"], t.user_attrs["attention"]) in old_genomes]
    assert again and second["trained"] == 20
