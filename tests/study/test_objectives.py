"""OBJECTIVES end to end: every objective reaches Optuna, the front, the tables and the plot; a
latency study measures once per genome, gates on its budget untrained, and says where it timed."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from nas.cli import main
from nas.errors import SpaceError
from nas.model.objectives import (
    DEFAULT_OBJECTIVES,
    OBJECTIVES,
    constraint_names,
    dominates,
    parse_objectives,
    plot_axes,
    select,
)
from nas.model.space import load_space
from nas.study.pareto import pareto_front, row_from_trial
from nas.study.search import loop
from nas.units import parse_milliseconds
from tests.conftest import make_image_folder
from tests.fake_training import fake_train_genome

ROOT = Path(__file__).resolve().parents[2]
EVERY = ",".join(OBJECTIVES)            # accuracy first, then every measured objective


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def space(tmp_path: Path) -> str:
    """tiny.toml without a teacher (distill loss none): the search's own work, in seconds."""
    path = tmp_path / "tiny.toml"
    text = (ROOT / "nas" / "search_spaces" / "tiny.toml").read_text()
    path.write_text(text + '\n[distill]\nloss = "none"\n')
    return str(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "digits4", 4, 24, 8, "d")


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Training replaced by a stored 'ok' run (tests/fake_training.py); returns its log."""
    log = tmp_path / "trained.txt"
    monkeypatch.setenv("NAS_TEST_TRAINED", str(log))
    monkeypatch.setenv("NAS_TEST_SLEEP", "0")
    monkeypatch.setattr(loop, "train_genome", fake_train_genome)
    return log


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def search(capsys: pytest.CaptureFixture[str], url: str, data: Path, *extra: str) -> dict[str, Any]:
    code, out, err = run(capsys, "search", "--data", str(data), "--image-size",
                         "8x8", "--storage", url, "--quiet", "--json", "--epochs", "1", *extra)
    assert code == 0, err
    return json.loads(out)


def test_every_objective_reaches_optuna_the_front_the_tables_and_the_plot(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, folder: Path, fake: Path,
        space: str) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    name = search(capsys, url, folder, "--space", space, "--objectives", EVERY, "--trials", "3",
                  "--seed", "2")["study"]
    assert name.endswith("-nobudget-flops-params-latency")
    study = optuna.load_study(study_name=name, storage=url)
    code, out, _ = run(capsys, "report", "--storage", url, "--format", "csv", "--all")
    table = list(csv.DictReader(io.StringIO(out)))
    code_json, report, _ = run(capsys, "report", "--storage", url, "--json")
    front = json.loads(report)["front"]
    assert code == code_json == 0 and front
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    for index, objective in enumerate(OBJECTIVES.values()):
        assert study.metric_names[index] == objective.metric
        assert study.directions[index].name.lower() == objective.direction
        assert all(objective.metric in row for row in front)
        assert objective.metric in table[0]
        for trial in complete:
            row = row_from_trial(trial, tuple(OBJECTIVES))
            assert row.value(objective) == pytest.approx(trial.values[index])
            if objective.measure is not None:
                assert trial.user_attrs[objective.metric] == pytest.approx(trial.values[index])
    assert set(study.trials[0].constraints) == set(constraint_names(tuple(OBJECTIVES)))
    assert set(plot_axes()) >= {"latency-accuracy", "params-latency"}
    for axes in ("latency-accuracy", "params-latency"):        # every objective on an axis
        plot = tmp_path / f"{axes}.svg"
        assert run(capsys, "report", "--storage", url, "--plot", str(plot), "--plot-axes", axes,
                   "--json")[0] == 0
        assert plot.stat().st_size > 0


def test_a_latency_study_times_each_genome_once_and_rejects_over_budget_untrained(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, folder: Path, fake: Path,
        monkeypatch: pytest.MonkeyPatch, space: str) -> None:
    """Real timing (tiny genomes, 8x8): each genome is timed once however often it is sampled;
    a genome over the latency budget is rejected and never trained; the report names the CPU,
    the threads and the backend."""
    from nas.model import latency
    from nas.model.space import InputShape

    tiny, shape = load_space(space), InputShape(3, 8, 8)
    ends = [latency.time_genome(g, tiny, shape, 4).ms for g in (tiny.extremes(False)[0],
                                                                tiny.extremes(True)[0])]
    budget = (min(ends) * max(ends)) ** 0.5         # between the smallest and the largest genome
    timed: list[str] = []
    real = latency.time_genome
    monkeypatch.setattr(latency, "time_genome",
                        lambda genome, *a, **k: (timed.append(str(genome)), real(genome, *a, **k))[1])
    url = f"sqlite:///{tmp_path / 'l.db'}"
    result = search(capsys, url, folder, "--space", space, "--objectives", "accuracy,flops,latency",
                    "--budget-latency", f"{budget}ms", "--trials", "3", "--seed", "1")
    study = optuna.load_study(study_name=result["study"], storage=url)
    genomes = {f"{t.user_attrs['genome']} {t.user_attrs['attention']}" for t in study.trials}
    preflight = len(tiny.extremes(False))           # the smallest genomes, timed by the budget check
    assert set(timed) >= genomes and len(timed) == len(genomes) + preflight   # once per genome
    trained = {" ".join(line.split()[:-2]) for line in fake.read_text().splitlines()}
    for trial in study.trials:
        over = trial.user_attrs["latency_ms"] > budget
        assert (trial.user_attrs["outcome"] == "rejected") == over
        assert trial.constraints["latency"] == pytest.approx(trial.user_attrs["latency_ms"] - budget)
        key = f"{trial.user_attrs['genome']} {trial.user_attrs['attention']}"
        assert (key in trained) == (not over)
    code, out, _ = run(capsys, "report", "--storage", url, "--json")
    assert code == 0 and all(r["latency_ms"] <= budget for r in json.loads(out)["front"])
    code, out, _ = run(capsys, "report", "--storage", url)
    assert code == 0 and "on 1 thread of" in out and "batch 1" in out and "latency <= " in out


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="no onnxruntime")
def test_a_space_files_latency_backend_times_through_onnxruntime(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, folder: Path, fake: Path,
        space: str) -> None:
    """The README: `[search] latency_backend = "onnxruntime"` in a space file times the genomes
    through ONNX Runtime, and the report names that backend."""
    path = Path(space)
    path.write_text(path.read_text().replace("[search]\n", '[search]\nlatency_backend = "onnxruntime"\n', 1))
    url = f"sqlite:///{tmp_path / 'o.db'}"
    result = search(capsys, url, folder, "--space", space, "--objectives", "accuracy,latency",
                    "--trials", "2")
    trials = optuna.load_study(study_name=result["study"], storage=url).trials
    assert trials and all(t.user_attrs["latency_ms"] > 0 for t in trials)
    code, out, _ = run(capsys, "report", "--storage", url)
    assert code == 0 and "median ms per image at batch 1, onnxruntime " in " ".join(out.split())


def test_other_objectives_or_a_budget_on_an_unmeasured_one_are_refused_in_one_line(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, folder: Path, fake: Path,
        space: str) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    search(capsys, url, folder, "--space", space, "--trials", "1", "--study", "s")
    cases = [
        (("--objectives", "accuracy,flops,latency", "--study", "s"),
         "study 's' optimises accuracy,flops,params, not accuracy,flops,latency"),
        (("--budget-latency", "2ms"), "--budget-latency needs latency among the objectives"),
        (("--objectives", "accuracy,speed"), "unknown objective 'speed'"),
        (("--objectives", "flops,accuracy"), "--objectives must be accuracy followed by"),
        (("--budget-latency", "fast"), "--budget-latency must be a positive time"),
    ]
    for extra, message in cases:
        code, _, err = run(capsys, "search", "--space", space, "--data", str(folder),
                           "--image-size", "8x8", "--storage", url, "--quiet", "--trials", "1",
                           *extra)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert optuna.load_study(study_name="s", storage=url).metric_names == ["val_accuracy", "flops",
                                                                           "params"]
    code, _, err = run(capsys, "report", "--storage", url, "--budget-latency", "1ms")
    assert code == 2 and "study 's' did not measure latency" in err


def test_objectives_parse_dominate_and_sort_in_their_directions() -> None:
    assert parse_objectives("accuracy, latency", "--objectives") == ("accuracy", "latency")
    with pytest.raises(SpaceError, match="each once"):
        parse_objectives("accuracy,flops,flops", "x")
    with pytest.raises(SpaceError, match="did you mean `latency`"):
        parse_objectives("accuracy,latncy", "x")
    assert [parse_milliseconds(t, "x") for t in ("2ms", "500us", "0.01s", "3")] == [2, 0.5, 10, 3]
    objectives = select(("accuracy", "latency"))
    assert dominates((0.9, 1.0), (0.8, 2.0), objectives)
    assert not dominates((0.9, 3.0), (0.8, 2.0), objectives)
    assert not dominates((0.9, 1.0), (0.9, 1.0), objectives)
    assert constraint_names(DEFAULT_OBJECTIVES) == ("flops", "params")
    assert constraint_names(("accuracy", "latency")) == ("flops", "params", "latency")


def test_the_front_of_an_accuracy_latency_study_ignores_flops() -> None:
    def trial(number: int, values: list[float], flops: int) -> optuna.trial.FrozenTrial:
        frozen = optuna.trial.create_trial(values=values, user_attrs={
            "genome": f"g{number}", "attention": "eca", "outcome": "trained", "flops": flops,
            "params": 1, "latency_ms": values[1], "constraint": [0.0, 0.0, 0.0]})
        frozen.number = number
        return frozen

    names = ("accuracy", "latency")
    rows = [row_from_trial(t, names) for t in (trial(0, [0.9, 2.0], 10), trial(1, [0.8, 1.0], 99),
                                               trial(2, [0.7, 3.0], 1))]
    assert [r.trial for r in pareto_front(rows, names)] == [1, 0]        # by latency
    assert [r.trial for r in pareto_front(rows)] == [2, 0]       # the default three: FLOPs count
