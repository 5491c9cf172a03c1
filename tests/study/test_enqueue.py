"""Warm starts (`nas search --enqueue`, `[search] enqueue`): the enqueued genomes are the study's
first trials, in order, each judged once, and bad ones are refused before any work."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from nas.cli import main
from nas.model.genome import Genome
from nas.model.space import load_space
from nas.study.search import loop, rungs
from nas.study.search.loop import genome_params, sample_genome
from tests.fake_training import fake_train_genome

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "nas" / "search_spaces" / "tiny.toml"
A = "[2,16,1,1,1] [2,24,2,2,0] none"
B = "[1,8,1,2,0]"                       # eca, the default attention word


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """In-process fake training (tests/fake_training.py); its log of trained genomes."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NAS_TEST_TRAINED", str(tmp_path / "trained.log"))
    monkeypatch.setenv("NAS_TEST_SLEEP", "0")
    monkeypatch.setattr(loop, "train_genome", fake_train_genome)
    return tmp_path / "trained.log"


def search(db: Path, *extra: str, space: Path = TINY) -> list[str]:
    return ["search", "--space", str(space), "--data", "digits", "--image-size", "8x8",
            "--storage", f"sqlite:///{db}", "--study", "warm", "--quiet", "--json", *extra]


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def trials(db: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="warm", storage=f"sqlite:///{db}").get_trials()


def key(trial: optuna.trial.FrozenTrial) -> str:
    return f"{trial.user_attrs['genome']} {trial.user_attrs['attention']}"


def trained(log: Path) -> list[str]:
    return [" ".join(line.split()[:-2]) for line in log.read_text().splitlines()]


@pytest.mark.parametrize("name", ["tiny.toml", "seed.toml"])
def test_genome_params_are_the_params_that_sample_the_genome(name: str) -> None:
    """Random genomes of the space: their params, enqueued, make `sample_genome` return them
    with exactly the params a sampled trial has (optional stages and attention included)."""
    space = load_space(name)
    drawn = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    replay = optuna.create_study()
    for _ in range(30):
        trial = drawn.ask()
        genome = sample_genome(trial, space)
        replay.enqueue_trial(genome_params(genome, space))
        again = replay.ask()
        assert sample_genome(again, space) == genome
        assert again.params == trial.params
    assert {len(sample_genome(drawn.ask(), space).stages) for _ in range(30)} != {1}


def test_enqueued_genomes_run_first_in_order_and_once(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path, fake: Path) -> None:
    db = tmp_path / "s.db"
    argv = search(db, "--trials", "3", "--enqueue", A, "--enqueue", B, "--enqueue", f"{B} eca")
    assert run(capsys, argv)["trained"] == 3
    first = trials(db)
    assert [key(t) for t in first[:2]] == [A, f"{B} eca"]
    assert [t.user_attrs.get("enqueued") for t in first] == [A, f"{B} eca", None]
    assert trained(fake)[:2] == [A, f"{B} eca"] and len(trained(fake)) == 3
    sampled = key(first[2])       # judged by a sampled trial: not enqueued either
    result = run(capsys, argv[:-6] + ["--trials", "1", "--enqueue", A, "--enqueue", sampled])
    assert result["trained"] == 1 and result["reused"] == 0
    second = trials(db)
    assert len(second) == 4 and "enqueued" not in second[3].user_attrs
    assert key(second[3]) not in (A, f"{B} eca", sampled)
    log = trained(fake)
    assert len(log) == 4 and len(set(log)) == 4                # no genome trained twice


def test_more_enqueued_than_trials_wait_for_the_next_run(capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path, fake: Path) -> None:
    db = tmp_path / "s.db"
    argv = search(db, "--trials", "1", "--enqueue", A, "--enqueue", B)
    run(capsys, argv)
    run(capsys, argv)                 # B waits in the study: enqueued once, judged now
    assert [key(t) for t in trials(db)] == [A, f"{B} eca"]
    assert trained(fake) == [A, f"{B} eca"]


def test_enqueued_with_rungs_is_recorded_at_the_rungs_and_never_pruned(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Real training on 8x8 digits under a gate that ranks every trial out: the enqueued genome
    is trial 0, records its rung accuracy and is judged over the whole schedule; the sampled
    trial after it is pruned at the rung."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(rungs, "passes", lambda *args: False)
    db = tmp_path / "s.db"
    result = run(capsys, search(db, "--trials", "2", "--rungs", "1", "--epochs", "2",
                                "--enqueue", B))
    assert (result["trained"], result["pruned"]) == (1, 1)
    first, second = trials(db)
    assert key(first) == f"{B} eca" and set(first.user_attrs["rungs"]) == {"1"}
    assert first.state == TrialState.COMPLETE and first.user_attrs["outcome"] == "trained"
    assert second.state == TrialState.PRUNED and set(second.user_attrs["rungs"]) == {"1"}


def test_jobs_workers_take_the_enqueued_genomes_first(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """--jobs 2: the parent enqueues, the workers (fake training, tests/jobs_hook.py) pop them."""
    log = tmp_path / "trained.log"
    for name, value in {"NAS_CACHE_DIR": str(tmp_path / "cache"),
                        "NAS_WORKER_HOOK": "tests.jobs_hook", "NAS_TEST_TRAINED": str(log),
                        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
                        }.items():
        monkeypatch.setenv(name, value)
    db = tmp_path / "s.db"
    argv = search(db, "--jobs", "2", "--threads", "1", "--trials", "4", "--enqueue", A,
                  "--enqueue", B)
    assert run(capsys, argv)["trained"] == 4
    got = trials(db)
    assert sorted(key(t) for t in got[:2]) == sorted([A, f"{B} eca"])
    assert [t.user_attrs.get("enqueued") for t in got[:2]] == [A, f"{B} eca"]
    assert sum("enqueued" in t.user_attrs for t in got) == 2
    lines = trained(log)
    assert len(lines) == 4 and len(set(lines)) == 4 and {A, f"{B} eca"} <= set(lines)


@pytest.mark.parametrize(("flags", "message"), [
    (["--enqueue", "[2,8]"], "--enqueue: genome '[2,8]': stage 1 [2,8] has 2 genes"),
    (["--enqueue", "[2,8,1,1,0] cbam"], "at most one attention word"),
    (["--enqueue", "[3,16,1,1,1]"],
     "tiny.toml: stage[1].t = 3 is not among the choices [1, 2]"),
    (["--enqueue", "[2,16,1,1,1] se"], "attention 'se' is not among the space's choices"),
    (["--enqueue", f"{A[:-5]} [2,16,1,2,0]"], "has 3 stages, the space defines at most 2"),
    (["--enqueue", B, "--enqueue", A, "--budget-flops", "20K"],
     f"--enqueue '{A}' is over the budget at 3x8x8: 0.122 M (121,664) FLOPs > 20.0 K (20,000)"),
    (["--enqueue", A, "--budget-params", "2K"], "params > 2.00 K (2,000)"),
    (["--enqueue", A, "--no-enqueue"], "--enqueue and --no-enqueue exclude each other"),
])
def test_a_bad_enqueued_genome_is_refused_before_any_work(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, fake: Path, flags: list[str],
        message: str) -> None:
    db = tmp_path / "s.db"
    code = main(search(db, *flags))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert err.startswith("nas: error: --enqueue")
    assert not db.exists() and not fake.exists()
    assert not (tmp_path / "cache" / "teachers").exists()       # the teacher never trained


def space_file(tmp_path: Path, *enqueue: str) -> Path:
    text = TINY.read_text() + "enqueue = [" + ", ".join(json.dumps(e) for e in enqueue) + "]\n"
    path = tmp_path / "warm.toml"
    path.write_text(text)
    return path


def test_the_space_files_list_goes_first_and_the_flags_replace_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, fake: Path) -> None:
    space = space_file(tmp_path, A)
    db = tmp_path / "s.db"
    run(capsys, search(db, "--trials", "1", space=space))
    run(capsys, search(db, "--trials", "1", "--enqueue", B, space=space))
    run(capsys, search(tmp_path / "cold.db", "--trials", "1", "--no-enqueue", space=space))
    assert trained(fake)[:2] == [A, f"{B} eca"] and len(trained(fake)) == 3
    assert "enqueued" not in trials(tmp_path / "cold.db")[0].user_attrs


def test_the_space_files_genome_over_the_budget_is_left_out_with_a_note(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, fake: Path) -> None:
    space = space_file(tmp_path, A, B)
    argv = search(tmp_path / "s.db", "--trials", "1", "--budget-flops", "20K", space=space)
    code = main([a for a in argv if a not in ("--quiet", "--json")])     # notes are shown
    captured = capsys.readouterr()
    assert code == 0, captured.err
    said = "".join(captured.err.split())        # as rich wrapped it
    for note in (f"warm.toml: search.enqueue[0] '{A}' is over the budget at 3x8x8 (0.122 M "
                 "(121,664) FLOPs > 20.0 K (20,000)): not enqueued", "warm start: 1 genome enqueued first"):
        assert "".join(note.split()) in said
    assert trained(fake) == [f"{B} eca"]


@pytest.mark.parametrize(("enqueue", "message"), [
    ("[3,16,1,1,1]", "warm.toml: search.enqueue[0] '[3,16,1,1,1]': stage[1].t = 3 is not among"),
    ("", "warm.toml: search.enqueue[0]: genome '': no stage found"),
])
def test_nas_space_refuses_a_bad_enqueue_naming_file_and_key(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, enqueue: str, message: str) -> None:
    assert main(["space", str(space_file(tmp_path, enqueue))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_the_bundled_spaces_enqueue_the_seed_reports_student_and_cifar10_mobilenet_v2() -> None:
    student = Genome.parse("[2,8,6,1,0] [2,16,4,1,0]", "eca")
    for name in ("seed.toml", "photos.toml"):
        space = load_space(name)
        assert space.search.enqueued() == (student,)
        assert space.check(student) == student
    mobilenet_v2 = Genome.parse("[1,8,1,1,0] [6,16,1,1,0] [6,24,2,2,0] [6,32,3,2,0]", "none")
    assert load_space("cifar10.toml").search.enqueued() == (student, mobilenet_v2)


def test_the_jobs_progress_counts_the_warm_starts_the_run_judges(tmp_path: Path) -> None:
    """The --jobs parent enqueues before its poller starts: WAITING trials are this run's."""
    from nas.study.search.processes import StudyPoller

    url = f"sqlite:///{tmp_path / 'p.db'}"
    study = optuna.create_study(study_name="warm", storage=url,
                                directions=["maximize", "minimize", "minimize"])
    study.add_trial(optuna.trial.create_trial(values=[0.5, 9, 9], user_attrs={"outcome": "trained"}))
    study.enqueue_trial({"x": 1}, user_attrs={"enqueued": B})
    poller = StudyPoller(url, "warm")
    assert poller.before == {0} and not poller.poll().outcomes       # waiting: not failed
    trial = study.ask()
    trial.set_user_attr("outcome", "trained")
    study.tell(trial, [0.7, 9, 9])
    assert trial.number == 1 and poller.poll().outcomes == {"trained": 1}


def test_the_readmes_cifar10_budget_admits_both_enqueued_designs() -> None:
    """`nas search --space cifar10.toml --budget-flops 6.21M` (the README's command) judges the
    hand design and MobileNetV2-style first: both are within the budget at 32x32 (6.2M is not:
    the hand design has 6,209,920 FLOPs)."""
    from nas.model.complexity import count
    from nas.model.space import InputShape
    from nas.units import parse_quantity

    space = load_space("cifar10.toml")
    flops = [count(g.rounded(space.model.divisor), space, shape=InputShape(3, 32, 32), classes=10).flops
             for g in space.search.enqueued()]
    assert len(flops) == 2 and max(flops) == 6_209_920
    assert max(flops) <= parse_quantity("6.21M", "--budget-flops") and max(flops) > 6.2e6
