"""nas export and nas.load: checkpoints that reload bit-equal, ONNX parity, trial choice.

One real study (module fixture): digits at 8x8, tiny.toml, one epoch per genome, in
a SQLite file, with trained, reused, rejected and failed trials.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import nas
from nas.cli import main
from nas.data.dataset import Dataset, load_data, normalize
from nas.errors import ReportError
from nas.model.complexity import count
from nas.model.space import InputShape, load_space
from nas.store.runs import RunRecord, Store, bytes_to_state
from nas.study.pareto import TrialRow
from nas.study.report.export import CheckpointError, best_trial, read_checkpoint
from nas.train.distill import accuracy
from nas.train.experiment import Context, prepare
from nas.units import count_text, percent
from tests.studies import add_trained, add_trial, new_study

TINY = Path(__file__).resolve().parents[2] / "nas" / "search_spaces" / "tiny.toml"
SMALL, LARGE = "[1,8,1,2,0]", "[2,8,1,1,0] [2,16,1,2,0]"


@dataclass(frozen=True)
class Trained:
    url: str
    cache: Path
    ctx: Context
    runs: dict[int, RunRecord]      # trial number -> its run
    reused: int
    rejected: int
    failed: int


def fast_space(path: Path) -> Path:
    """tiny.toml with big batches and a one-epoch teacher: a few optimiser steps in all."""
    text = TINY.read_text()
    for old, new in (("batch_size = 64", "batch_size = 256"),
                     ("epochs = 2", "epochs = 1\nbatch_size = 256")):
        assert old in text, f"tiny.toml changed: {old!r} not found"
        text = text.replace(old, new)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Trials 0, 1 trained; 2 reuses 0; 3 rejected (over the FLOPs budget); 4 failed."""
    root = tmp_path_factory.mktemp("export")
    space = fast_space(root / "tiny.toml")
    store = Store(f"sqlite:///{root / 'studies.db'}")
    ctx = prepare(load_space(space), "digits", store, size=(8, 8), device=torch.device("cpu"),
                  cache_dir=root / "cache")
    teacher = {"fingerprint": ctx.teacher.fingerprint, "val_accuracy": ctx.teacher.val_accuracy,
               "test_accuracy": ctx.teacher.test_accuracy}
    s = new_study(store.url, "s", budget_flops=60_000, teacher=teacher, space=str(space))
    first, second = add_trained(s, ctx, SMALL), add_trained(s, ctx, LARGE)
    runs = {trial: store.get_run(int(s.trials[trial].user_attrs["run_id"])) for trial in (first, second)}
    run = runs[first]
    reused = add_trial(s, run.genome, run.flops, run.params, val=run.val_accuracy or 0.0,
                       test=run.test_accuracy, outcome="reused", run_id=run.id)
    rejected = add_trial(s, "[2,16,1,1,1] [2,24,2,2,0]", 125_000, 3_000, outcome="rejected")
    failed = add_trial(s, "[1,16,1,1,0]", 20_000, 900, outcome="failed")
    return Trained(store.url, root / "cache", ctx, runs, reused, rejected, failed)


def export(tmp_path: Path, study: Trained, *args: str) -> dict:
    out = tmp_path / "student.pt"
    assert main(["export", *args, "--storage", study.url, "--out", str(out), "--quiet"]) == 0
    return torch.load(out, weights_only=True)


def digits(study: Trained) -> Dataset:
    return load_data("digits", (8, 8), cache_dir=study.cache)


def test_best_export_reloads_to_the_same_test_accuracy(study: Trained, tmp_path: Path) -> None:
    export(tmp_path, study)
    best = max(study.runs.items(), key=lambda item: (item[1].val_accuracy, -item[1].flops))
    model = nas.load(tmp_path / "student.pt")
    assert not model.training
    assert model.checkpoint["trial"] == best[0] and model.checkpoint["run_id"] == best[1].id
    data = digits(study)
    tested = accuracy(model, data.test, model.checkpoint["mean"], model.checkpoint["std"],
                      torch.device("cpu"))
    assert tested == best[1].test_accuracy == model.checkpoint["metrics"]["test_accuracy"]


def test_checkpoint_holds_what_rebuilding_and_provenance_need(study: Trained, tmp_path: Path) -> None:
    checkpoint = export(tmp_path, study, "1")
    run, ctx = study.runs[1], study.ctx
    assert checkpoint["format"] == 1 and checkpoint["kind"] == "nas.student"
    assert (checkpoint["genome"], checkpoint["attention"]) == (LARGE, "eca")
    assert checkpoint["classes"] == [str(c) for c in range(10)]
    assert checkpoint["input"] == [3, 8, 8]
    assert (checkpoint["mean"], checkpoint["std"]) == (list(ctx.data.mean), list(ctx.data.std))
    size = count(LARGE, ctx.space, shape=InputShape(3, 8, 8), classes=10)
    assert (checkpoint["flops"], checkpoint["params"]) == (size.flops, size.params) == (run.flops, run.params)
    assert checkpoint["metrics"] == {"val_accuracy": run.val_accuracy, "test_accuracy": run.test_accuracy,
                                     "best_epoch": 1}
    assert checkpoint["teacher"]["fingerprint"] == ctx.teacher.fingerprint
    assert (checkpoint["study"], checkpoint["trial"], checkpoint["run_id"]) == ("s", 1, run.id)
    assert checkpoint["model"]["head"] == 32 and len(checkpoint["overrides"]) == 2
    assert checkpoint["versions"]["torch"] == torch.__version__ and checkpoint["retrained"] is None
    stored = bytes_to_state(run.weights or b"")
    assert checkpoint["state_dict"].keys() == stored.keys()
    assert all(torch.equal(checkpoint["state_dict"][k], stored[k]) for k in stored)


def test_a_reused_trial_exports_the_run_it_reused(study: Trained, tmp_path: Path) -> None:
    checkpoint = export(tmp_path, study, str(study.reused))
    assert checkpoint["trial"] == study.reused and checkpoint["run_id"] == study.runs[0].id
    assert checkpoint["genome"] == SMALL


def test_onnx_outputs_match_pytorch(study: Trained, tmp_path: Path) -> None:
    import onnxruntime

    onnx_path = tmp_path / "student.onnx"
    export(tmp_path, study, "1", "--onnx", str(onnx_path))
    model = nas.load(tmp_path / "student.pt")
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert [o.name for o in session.get_outputs()] == ["logits", "features"]
    assert session.get_modelmeta().custom_metadata_map["nas.genome"] == f'"{LARGE}"'
    images = digits(study).test.images
    for batch in (images[:1], images[:37]):            # dynamic batch
        x = normalize(batch, tuple(model.checkpoint["mean"]), tuple(model.checkpoint["std"]))
        logits, feature = session.run(None, {"images": x.numpy()})
        with torch.no_grad():
            expected = model(x, return_features=True)
            assert torch.equal(model(x), expected[1])        # forward alone: logits, like timm
        assert feature.shape == (len(batch), 32) and logits.shape == (len(batch), 10)
        np.testing.assert_allclose(feature, expected[0].numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(logits, expected[1].numpy(), atol=1e-4, rtol=0)


def test_retrain_exports_the_new_run_and_says_so(study: Trained, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(study.cache))
    before = {run.id for run in Store(study.url).list_runs()}
    out = tmp_path / "student.pt"
    assert main(["export", "0", "--storage", study.url, "--out", str(out), "--retrain-epochs", "2",
                 "--device", "cpu", "--threads", "2"]) == 0
    assert torch.get_num_threads() == 2                                    # --threads reached torch
    torch.set_num_threads(1)
    assert "retrained" in capsys.readouterr().out
    checkpoint = torch.load(out, weights_only=True)
    runs = {run.id: run for run in Store(study.url).list_runs()}
    (new_id,) = set(runs) - before
    new = runs[new_id]
    assert checkpoint["run_id"] == new_id and checkpoint["trial"] == 0
    assert (new.study, new.trial, new.status, new.genome) == ("s", None, "ok", SMALL)
    assert new.recipe["train"]["epochs"] == 2 and len(new.history) == 2
    assert new.teacher_fingerprint == study.ctx.teacher.fingerprint        # the cached teacher
    assert checkpoint["retrained"] == {"from_run": study.runs[0].id, "epochs": 2, "seconds": None,
                                       "trial_val_accuracy": study.runs[0].val_accuracy,
                                       "trial_test_accuracy": study.runs[0].test_accuracy}
    assert checkpoint["metrics"]["test_accuracy"] == new.test_accuracy
    model = nas.load(out)
    data = digits(study)
    assert accuracy(model, data.test, data.mean, data.std, torch.device("cpu")) == new.test_accuracy


def test_retrain_trains_the_spaces_whole_schedule(study: Trained, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`--retrain` is the final model's recipe: the space's [train] epochs; without it the
    export says its accuracies are the search trial's, not a final model's."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(study.cache))
    assert main(["export", "1", "--storage", study.url, "--out", str(tmp_path / "trial.pt")]) == 0
    assert "search trial, not final (--retrain: the whole schedule)" in capsys.readouterr().out
    out = tmp_path / "final.pt"
    assert main(["export", "1", "--storage", study.url, "--out", str(out), "--retrain",
                 "--device", "cpu", "--threads", "1", "--quiet"]) == 0
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint["retrained"]["epochs"] == study.ctx.space.train.epochs
    assert checkpoint["recipe"]["train"]["epochs"] == study.ctx.space.train.epochs


@pytest.mark.parametrize(("which", "message"), [
    ("rejected", "trial 3 was rejected by the budget, never trained"),
    ("failed", "trial 4 was failed, no trained weights"),
    ("99", "has no trial 99 (trials: 0 to 4)"),
    ("worst", "expected `best` or a trial number, got 'worst'"),
])
def test_trials_without_weights_are_clear_errors(study: Trained, tmp_path: Path, which: str,
                                                 message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    number = {"rejected": study.rejected, "failed": study.failed}.get(which, which)
    out = tmp_path / "x.pt"
    assert main(["export", str(number), "--storage", study.url, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_output_directory_must_exist(study: Trained, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "missing" / "student.pt"
    assert main(["export", "--storage", study.url, "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def row(trial: int, val: float, flops: int, params: int, *, outcome: str = "trained",
        over: bool = False) -> TrialRow:
    return TrialRow(trial, "COMPLETE", outcome, f"[1,8,{trial + 1},1,0]", "eca", flops, params, val,
                    val, trial, (1.0 if over else 0.0, 0.0), 1.0)


def test_best_breaks_ties_by_flops_then_params() -> None:
    rows = [row(0, 0.8, 500, 50), row(1, 0.9, 900, 90), row(2, 0.9, 700, 95),
            row(3, 0.9, 700, 60), row(4, 0.95, 100, 10, over=True),
            row(5, 0.99, 50, 5, outcome="rejected"), row(6, 0.9, 700, 60, outcome="reused")]
    assert best_trial(rows).trial == 3
    assert best_trial(rows[:3]).trial == 2
    with pytest.raises(ReportError, match="no trained trial"):
        best_trial(rows[4:6])


def test_load_refuses_what_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        nas.load(tmp_path / "none.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a nas checkpoint"):
        read_checkpoint(tmp_path / "list.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a nas checkpoint"):
        nas.load(tmp_path / "junk.pt")


def test_load_refuses_weights_of_another_genome(study: Trained, tmp_path: Path) -> None:
    checkpoint = export(tmp_path, study, "1")
    checkpoint["genome"] = SMALL
    torch.save(checkpoint, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match="weights do not fit the genome"):
        nas.load(tmp_path / "wrong.pt")


def test_checkpoint_records_pixel_scale_and_interpolation(study: Trained, tmp_path: Path) -> None:
    checkpoint = export(tmp_path, study, "1")
    assert (checkpoint["pixel_scale"], checkpoint["interpolation"], checkpoint["antialias"]) == \
        (1 / 255, "bilinear", True)
    data = digits(study)            # the split's pixels, normalised the way the checkpoint says
    raw = data.test.images[:2].to(torch.float32)
    mean = torch.tensor(checkpoint["mean"]).view(3, 1, 1)
    std = torch.tensor(checkpoint["std"]).view(3, 1, 1)
    expected = (raw * checkpoint["pixel_scale"] - mean) / std
    assert torch.allclose(expected, normalize(data.test.images[:2], checkpoint["mean"], checkpoint["std"]))


def test_export_json_describes_the_checkpoint(study: Trained, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "student.pt"
    assert main(["export", "1", "--storage", study.url, "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = torch.load(out, weights_only=True)
    for key in ("genome", "attention", "flops", "params", "classes", "input", "mean", "std",
                "pixel_scale", "interpolation", "metrics", "run_id", "trial"):
        assert printed[key] == saved[key], key
    assert (printed["checkpoint"], printed["onnx"]) == (str(out), None)
    assert "state_dict" not in printed


def test_onnx_without_onnx_writes_nothing(study: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)       # `import onnx` raises ImportError
    out, onnx_path = tmp_path / "student.pt", tmp_path / "student.onnx"
    assert main(["export", "--storage", study.url, "--out", str(out), "--onnx", str(onnx_path)]) == 2
    assert "needs the onnx package" in capsys.readouterr().err
    assert not out.exists() and not onnx_path.exists()


def _fields(text: str) -> dict[str, str]:
    """`name  value` lines of print_fields as a dict (first two-space gap splits)."""
    return {line.split("  ", 1)[0].strip(): line.split("  ", 1)[1].strip()
            for line in text.splitlines() if "  " in line.strip()}


def test_report_export_and_count_print_numbers_one_way(study: Trained, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The same trial's FLOPs, params and accuracy read digit for digit alike in all three commands."""
    run = study.runs[1]
    assert main(["export", "1", "--storage", study.url, "--out", str(tmp_path / "s.pt")]) == 0
    exported = _fields(capsys.readouterr().out)
    assert main(["report", "--storage", study.url, "--format", "markdown", "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    cells = dict(zip([c.strip() for c in lines[0].strip("|").split("|")],
                     [c.strip() for c in lines[2 + 1].strip("|").split("|")], strict=True))
    space = study.ctx.space.path
    assert main(["count", run.genome, "--attention", run.attention, "--space", str(space),
                 "--input", "3x8x8", "--classes", "10"]) == 0
    counted = _fields(capsys.readouterr().out)
    flops = count_text(run.flops, exact=True)
    assert cells["trial"] == "1" and cells["genome"] == run.genome
    assert exported["FLOPs"] == cells["FLOPs"] == counted["FLOPs"] == flops
    assert exported["params"] == cells["params"] == counted["params"] == count_text(run.params, exact=True)
    assert exported["val accuracy"].split("  ")[0] == cells["val acc"] == percent(run.val_accuracy)
    assert exported["test accuracy"] == cells["test acc"] == percent(run.test_accuracy)


# ----------------------------------------------------------------- files export may replace


def _database(study: Trained) -> Path:
    return Path(study.url.removeprefix("sqlite:///"))


def _refused_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nas: error: "), err
    return err[0]


@pytest.mark.parametrize("flag", ["--out", "--onnx"])
@pytest.mark.parametrize("force", [False, True], ids=["", "force"])
def test_export_never_replaces_the_study_database(study: Trained, tmp_path: Path, flag: str,
                                                  force: bool,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    db = _database(study)
    before = db.read_bytes()
    argv = ["export", "--storage", study.url, "--out", str(tmp_path / "s.pt")]
    argv += [flag, str(db)] + (["--force"] if force else [])
    line = _refused_line(capsys, argv)
    assert f"{db}: is the study's database" in line
    assert db.read_bytes() == before and not (tmp_path / "s.pt").exists()
    assert main(["report", "--storage", study.url, "--json"]) == 0          # still a database
    capsys.readouterr()


def test_export_never_replaces_a_sqlite_database_even_with_force(
        study: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    other = tmp_path / "other.bin"          # any name: the 16-byte header tells
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE t (x)")
    before = other.read_bytes()
    for extra in ([], ["--force"]):
        line = _refused_line(capsys, ["export", "--storage", study.url, "--out", str(other), *extra])
        assert line == f"nas: error: {other}: is a SQLite database; export never replaces one, " \
                       "give another file name"
    assert other.read_bytes() == before


def test_export_never_replaces_the_database_wal_file(study: Trained, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    wal = Path(f"{_database(study)}-wal")
    line = _refused_line(capsys, ["export", "--storage", study.url, "--out", str(wal), "--force"])
    assert "is the study's database" in line


def test_a_foreign_file_needs_force(study: Trained, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    line = _refused_line(capsys, ["export", "--storage", study.url, "--out", str(notes)])
    assert line == (f"nas: error: {notes}: exists and is not a nas checkpoint; pass --force to "
                    "replace it, or give another file name")
    assert notes.read_text() == "my notes"
    assert main(["export", "--storage", study.url, "--out", str(notes), "--force", "--quiet"]) == 0
    assert nas.load(notes).checkpoint["kind"] == "nas.student"


def test_a_checkpoint_and_an_onnx_file_are_replaced(study: Trained, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out, onnx_path = tmp_path / "s.pt", tmp_path / "s.onnx"
    argv = ["export", "1", "--storage", study.url, "--out", str(out), "--onnx", str(onnx_path),
            "--quiet"]
    assert main(argv) == 0
    first = out.stat().st_mtime_ns, onnx_path.stat().st_mtime_ns
    assert main([*argv[:1], "0", *argv[2:]]) == 0                           # trial 0 over trial 1
    assert nas.load(out).checkpoint["trial"] == 0
    assert (out.stat().st_mtime_ns, onnx_path.stat().st_mtime_ns) != first
    onnx_path.write_bytes(b"")                              # empty: not an ONNX model
    line = _refused_line(capsys, argv)
    assert "exists and is not a ONNX model" not in line and "is not an ONNX model" in line


def test_an_onnx_export_that_fails_midway_leaves_the_old_file_whole(
        study: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The README: export writes the ONNX file to a temporary file and renames it. An exporter
    that dies after writing half a file leaves the older ONNX file byte for byte, no temporary
    file, and the leftover of a killed earlier export (a dead process's) swept away."""
    out, onnx_path = tmp_path / "s.pt", tmp_path / "s.onnx"
    argv = ["export", "1", "--storage", study.url, "--out", str(out), "--onnx", str(onnx_path), "--quiet"]
    assert main(argv) == 0
    before = onnx_path.read_bytes()
    killed = tmp_path / ".s.onnx.999999999.abcd1234.tmp"          # pid 999999999: no such process
    killed.write_bytes(b"half a graph")

    def dies_midway(model: torch.nn.Module, args: tuple, f: str, **kwargs: object) -> None:
        Path(f).write_bytes(b"half a graph")
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(torch.onnx, "export", dies_midway)
    line = _refused_line(capsys, argv)
    assert line == f"nas: error: {onnx_path}: ONNX export failed: exporter crashed"
    assert onnx_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.onnx", "s.pt"]
