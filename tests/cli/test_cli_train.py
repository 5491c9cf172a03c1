"""`nas teacher` and `nas train` through nas.cli.main: one JSON object with --json, the run
stored, a NaN run as a status (exit 1), bad input as one line on stderr with exit code 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from nas.cli import main
from nas.model.builder import Student
from nas.model.complexity import count
from nas.model.genome import Genome
from nas.model.space import InputShape, load_space
from nas.store.runs import Store, bytes_to_state
from nas.units import percent
from tests.training import FAST_TEACHER, STUDENT, write_space


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A space file, a database and NAS_CACHE_DIR in one tmp folder; the teacher trained once."""
    root = tmp_path_factory.mktemp("cli")
    write_space(root, teacher=FAST_TEACHER)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NAS_CACHE_DIR", str(root / "cache"))
        assert main(["teacher", *flags(root), "--json"]) == 0
        yield root


def flags(root: Path, space: str = "space.toml") -> list[str]:
    return ["--space", str(root / space), "--data", "digits", "--image-size", "8x8",
            "--storage", f"sqlite:///{root / 'x.db'}", "--device", "cpu"]


def one_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """stdout must hold exactly one JSON object and nothing else."""
    out = capsys.readouterr().out
    value, end = json.JSONDecoder().raw_decode(out)
    assert isinstance(value, dict) and out[end:].strip() == ""
    return value


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = [line for line in err.splitlines() if line.strip()]   # rich may add a blank line
    assert len(lines) == 1 and lines[0].startswith("nas: error: ") and "Traceback" not in err
    return lines[0]


def test_teacher_is_reused_and_its_accuracy_shown(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["teacher", *flags(workdir), "--json"]) == 0
    row = one_json(capsys)
    assert row["cached"] is True and row["input"] == "3x8x8"
    record = Store(f"sqlite:///{workdir / 'x.db'}").get_teacher(row["fingerprint"])
    assert record is not None
    assert (row["val_accuracy"], row["test_accuracy"]) == (record.val_accuracy, record.test_accuracy)
    assert main(["teacher", *flags(workdir)]) == 0
    out = capsys.readouterr().out
    assert f"{row['fingerprint']}  (cached)" in out
    assert percent(record.val_accuracy) in out and percent(record.test_accuracy) in out


def test_train_json_is_one_object_and_the_run_is_stored(workdir: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    argv = ["train", STUDENT, "--attention", "eca", "--epochs", "2", "--seed", "4", *flags(workdir), "--json"]
    assert main(argv) == 0
    row = one_json(capsys)
    space = load_space(workdir / "space.toml")
    size = count(Genome.parse(STUDENT, "eca"), space, shape=InputShape(3, 8, 8), classes=10)
    assert {k: row[k] for k in ("genome", "attention", "flops", "params", "seed", "status")} == {
        "genome": STUDENT, "attention": "eca", "flops": size.flops, "params": size.params,
        "seed": 4, "status": "ok"}
    assert 0 <= row["val_accuracy"] <= 1 and 0 <= row["test_accuracy"] <= 1
    assert row["teacher"]["cached"] is True
    run = Store(f"sqlite:///{workdir / 'x.db'}").get_run(row["run_id"])
    assert (run.genome, run.attention, run.seed, run.status) == (STUDENT, "eca", 4, "ok")
    assert (run.val_accuracy, run.test_accuracy) == (row["val_accuracy"], row["test_accuracy"])
    assert run.recipe["train"]["epochs"] == 2 and [h["epoch"] for h in run.history] == [1, 2]
    assert run.weights is not None and "classifier.weight" in bytes_to_state(run.weights)


def test_train_for_a_wall_clock_stores_the_epochs_it_ran_and_the_seconds(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--time 1s`: the schedule spreads over one second (at least the epoch it is in, then
    validated); the stored recipe gives the epochs that ran and the clock."""
    capsys.readouterr()
    assert main(["train", STUDENT, "--time", "1s", "--epochs", "50", *flags(workdir), "--json"]) == 0
    row = one_json(capsys)
    run = Store(f"sqlite:///{workdir / 'x.db'}").get_run(row["run_id"])
    assert run.status == "ok" and run.recipe["seconds"] == 1.0
    assert 1 <= row["epochs"] == run.recipe["train"]["epochs"] == len(run.history) <= 50


def test_train_text_shows_accuracies_flops_and_params(workdir: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["train", "[1,8,1,1,0]", "--epochs", "1", *flags(workdir), "--quiet"]) == 0
    out = capsys.readouterr().out
    for label in ("val accuracy", "test accuracy", "FLOPs", "params", "best epoch 1", "stored"):
        assert label in out


def test_nan_run_is_a_status_not_a_crash(workdir: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A student whose outputs overflow (recipes that do are refused when the file is read, so
    the overflow is injected) ends as status 'nan' with exit 1, stored, not as a traceback."""
    features = Student.forward_features
    monkeypatch.setattr(Student, "forward_features", lambda self, x: features(self, x) * float("inf"))
    capsys.readouterr()
    assert main(["train", STUDENT, *flags(workdir), "--json"]) == 1
    row = one_json(capsys)
    assert row["status"] == "nan"
    assert Store(f"sqlite:///{workdir / 'x.db'}").get_run(row["run_id"]).status == "nan"


@pytest.mark.parametrize(("genome", "extra", "message"), [
    (STUDENT, ["--data", "/no/such/folder"], "data folder not found"),
    (STUDENT, ["--data", "digitz"], "did you mean `digits`?"),
    (STUDENT, ["--image-size", "8y8"], "image size must look like HxW"),
    (STUDENT, ["--epochs", "0"], "--epochs must be between 1 and 100000, got 0"),
    (STUDENT, ["--time", "0s"], "--time must be a positive duration such as 30m, 2h, 90s or 4m30s, got '0s'"),
    (STUDENT, ["--time", "soon"], "--time must be a positive duration"),
    (STUDENT, ["--time", ""], "--time must be a positive duration"),
    ("[1,8,1,1,0] [1,8,1,1,0] [1,8,1,1,0]", [], "has 3 stages, the space defines at most 2"),
    pytest.param(STUDENT, ["--device", "cuda"], "device 'cuda': no CUDA device is available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here")),
])
def test_bad_input_is_one_line_and_exit_2(workdir: Path, capsys: pytest.CaptureFixture[str],
                                          genome: str, extra: list[str], message: str) -> None:
    """A repeated flag overrides the earlier one (argparse keeps the last)."""
    assert message in one_line_error(capsys, ["train", genome, "--epochs", "1", *flags(workdir), *extra])


def test_cpu_threads_default_to_one_and_follow_the_flag(workdir: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The README: `--threads N` sets torch's CPU threads, default 1 (whatever torch had)."""
    try:
        for extra, threads in (([], 1), (["--threads", "2"], 2)):
            torch.set_num_threads(3 - threads)
            assert main(["train", "[1,8,1,1,0]", "--epochs", "1", *flags(workdir), "--quiet", *extra]) == 0
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(1)
    capsys.readouterr()


@pytest.mark.parametrize("content", [b"garbage \x00\x01", b""])
def test_teacher_weights_that_do_not_fit_exit_2(workdir: Path, capsys: pytest.CaptureFixture[str],
                                                content: bytes) -> None:
    weights = workdir / "bad.pt"
    weights.write_bytes(content)
    teacher = {"kind": "torchvision", "model": "resnet18", "weights": str(weights), "epochs": 1}
    write_space(workdir, "bad_teacher.toml", teacher=teacher)
    err = one_line_error(capsys, ["teacher", *flags(workdir, "bad_teacher.toml")])
    assert f"teacher.weights: {weights} is not a state_dict file" in err


def test_train_takes_the_final_recipe_not_the_searchs_trial_settings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The README: `nas train` trains on [train]'s subset and views; a space file's [search]
    train_per_class and views are the search's trials' alone."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    path = write_space(tmp_path, search={"train_per_class": 20, "views": ["hflip"]})
    assert load_space(path).for_trials().train.train_per_class == 20
    capsys.readouterr()
    assert main(["train", STUDENT, "--space", str(path), "--data", "digits", "--image-size", "8x8",
                 "--storage", f"sqlite:///{tmp_path / 'x.db'}", "--device", "cpu", "--epochs", "1",
                 "--set", "distill.loss=none", "--json"]) == 0
    run = Store(f"sqlite:///{tmp_path / 'x.db'}").get_run(one_json(capsys)["run_id"])
    train = load_space(path).train
    assert run.recipe["train"]["train_per_class"] == train.train_per_class != 20
    assert run.recipe["train"]["augment"]["views"] == list(train.augment.views) == []
