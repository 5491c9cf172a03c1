"""`nas ablate FILE`: groups of arms with recipe overrides, each (arm, seed) trained once,
paired differences to the baseline with t-intervals, resume, workers, bad input."""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from nas.cli import main
from nas.errors import SpaceError
from nas.store.claims import claim, holders, release
from nas.store.runs import RunRecord, Store
from nas.study.ablation import tables
from nas.study.ablation.file import load_ablation
from nas.study.ablation.run import ArmResult, GroupResult, run_ablation
from nas.study.ablation.stats import paired
from nas.train import experiment
from tests.conftest import make_image_folder, write_class

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "nas" / "search_spaces"
TINY = BUNDLED / "tiny.toml"
real_train = experiment.train_genome

GROUPS = '''seeds = [0, 1, 2]

[[group]]
name = "attention"
genome = "[1,8,1,1,0]"

[[group.arm]]
name = "eca"
attention = "eca"

[[group.arm]]
name = "none"
attention = "none"

[[group]]
name = "loss"
genome = "[1,8,1,1,0]"
attention = "eca"
baseline = "ce"

[[group.arm]]
name = "distilled"

[[group.arm]]
name = "ce"
distill.loss = "none"
"train.lr" = 0.01
'''


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every training, as (genome and attention, seed)."""
    seen: list[tuple[str, int]] = []

    def counting(ctx: Any, genome: Any, **kwargs: Any) -> RunRecord:
        seen.append((f"{genome} {ctx.space.distill.loss}", kwargs["seed"]))
        return real_train(ctx, genome, **kwargs)

    monkeypatch.setattr(experiment, "train_genome", counting)
    return seen


def write(tmp_path: Path, body: str, name: str = "ab.toml") -> Path:
    path = tmp_path / name
    path.write_text(f'name = "t"\nspace = "{TINY}"\ndata = "digits"\nimage_size = "8x8"\n'
                    f'epochs = 1\n' + body)
    return path


def ablate(path: Path, storage: str, *flags: str) -> int:
    return main(["ablate", str(path), "--storage", storage, "--quiet", "--threads", "1", *flags])


def test_groups_share_cells_and_stats_match_scipy(tmp_path: Path, calls: list[tuple[str, int]],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path, storage = write(tmp_path, GROUPS), f"sqlite:///{tmp_path / 'a.db'}"
    assert ablate(path, storage, "--format", "json") == 0
    out = json.loads(capsys.readouterr().out)
    # "eca" and "distilled" are the same arm: 3 cells x 3 seeds, each trained once
    assert sorted(calls) == sorted((f"[1,8,1,1,0] {a} {loss}", s) for a, loss in
                                   (("eca", "feature"), ("none", "feature"), ("eca", "none"))
                                   for s in (0, 1, 2))
    runs = {r.id: r for r in Store(storage).list_runs("ablate/t")}
    assert len(runs) == 9
    for group in out["groups"]:
        base = next(a for a in group["arms"] if a["baseline"])
        for arm in group["arms"]:
            _check_against_scipy(runs, base, arm)
    ce = out["groups"][1]["arms"][1]
    assert ce["changes"] == "distill.loss=none, train.lr=0.01" and ce["baseline"]
    assert runs[ce["runs"][0]["run_id"]].recipe["train"]["lr"] == 0.01
    assert runs[ce["runs"][0]["run_id"]].teacher_fingerprint != \
        runs[out["groups"][0]["arms"][0]["runs"][0]["run_id"]].teacher_fingerprint
    assert ablate(path, storage, "--format", "json") == 0
    assert len(calls) == 9                                         # nothing retrained
    assert json.loads(capsys.readouterr().out) == out


def test_an_arm_gives_its_own_image_size_and_changed_data_is_trained_again(
        tmp_path: Path, calls: list[tuple[str, int]], capsys: pytest.CaptureFixture[str]) -> None:
    """The README: an arm may give its own `image_size`, and runs are reused only when the data
    (and so the teacher) fingerprints match: one image rewritten in the folder retrains both arms.
    Before any run, `--no-train` shows each arm's FLOPs and params as its runs will count them."""
    folder = make_image_folder(tmp_path / "digits", 2, 12, 4, "d")
    path = write(tmp_path, 'seeds = [0]\n\n[[group]]\nname = "size"\ngenome = "[1,8,1,1,0]"\n'
                 'attention = "eca"\n\n[[group.arm]]\nname = "8"\n\n[[group.arm]]\nname = "12"\n'
                 'image_size = "12x12"\n')
    storage = f"sqlite:///{tmp_path / 'a.db'}"
    assert ablate(path, storage, "--data", str(folder), "--no-train", "--format", "json") == 0
    counted = {a["arm"]: (a["flops"], a["params"])
               for a in json.loads(capsys.readouterr().out)["groups"][0]["arms"]}
    assert ablate(path, storage, "--data", str(folder)) == 0
    assert ablate(path, storage, "--data", str(folder)) == 0 and len(calls) == 2     # reused
    runs = Store(storage).list_runs("ablate/t")
    assert sorted(r.meta["input"] for r in runs) == ["3x12x12", "3x8x8"]
    assert counted == {r.meta["input"].split("x")[1]: (r.flops, r.params) for r in runs}
    assert counted["8"][0] < counted["12"][0]
    write_class(folder / "train" / "d0", 1, 1)          # d0's first image is now a 1
    assert ablate(path, storage, "--data", str(folder)) == 0 and len(calls) == 4
    fingerprints = {(r.data_fingerprint, r.teacher_fingerprint) for r in Store(storage).list_runs("ablate/t")}
    assert len(fingerprints) == 4


def _check_against_scipy(runs: dict[int, RunRecord], base: dict[str, Any],
                         arm: dict[str, Any]) -> None:
    """The reported numbers, recomputed from the stored runs with scipy.stats."""
    for metric, short in (("val_accuracy", "val"), ("test_accuracy", "test")):
        mine = {r["seed"]: getattr(runs[r["run_id"]], metric) for r in arm["runs"]}
        theirs = {r["seed"]: getattr(runs[r["run_id"]], metric) for r in base["runs"]}
        assert arm[f"{short}_mean"] == pytest.approx(stats.tmean(list(mine.values())))
        assert arm[f"{short}_sd"] == pytest.approx(stats.tstd(list(mine.values())))
        if arm["baseline"]:
            assert arm[f"{short}_diff"] is None
            continue
        diffs = [mine[s] - theirs[s] for s in sorted(mine)]
        mean, sem = sum(diffs) / 3, stats.sem(diffs)
        low, high = stats.t.interval(0.95, 2, loc=mean, scale=sem) if sem > 0 else (mean, mean)
        assert arm[f"{short}_pairs"] == 3
        assert arm[f"{short}_diff"] == pytest.approx(mean)
        assert (arm[f"{short}_low"], arm[f"{short}_high"]) == (pytest.approx(low), pytest.approx(high))
        assert arm[f"{short}_resolved"] == (not low <= 0 <= high)


def test_paired_intervals_resolved_and_not() -> None:
    base = {0: 0.70, 1: 0.75, 2: 0.80, 3: 0.72}
    better = paired(base, {0: 0.75, 1: 0.79, 2: 0.86, 3: 0.77})       # +5, +4, +6, +5 points
    noisy = paired(base, {0: 0.80, 1: 0.70, 2: 0.83, 3: 0.70})        # +10, -5, +3, -2
    t = stats.t.ppf(0.975, 3)
    assert better.n == 4 and better.mean == pytest.approx(0.05)
    assert better.high - better.mean == pytest.approx(t * stats.sem([.05, .04, .06, .05]))
    assert better.resolved and better.low > 0
    assert not noisy.resolved and noisy.low < 0 < noisy.high
    assert paired(base, {0: 0.9, 9: 0.1}) == type(better)(1, pytest.approx(0.2), None, None)
    assert not paired(base, {0: 0.9}).resolved and paired(base, {}).n == 0


def _result(name: str, values: list[float], baseline: bool, flops: int = 1000) -> ArmResult:
    from nas.model.genome import Genome
    from nas.model.space import load_space
    from nas.study.ablation.file import Arm

    arm = Arm(name, Genome.parse("[1,8,1,1,0]", "eca"), load_space(TINY))
    runs = {s: RunRecord(s, "x", None, "[1,8,1,1,0]", "eca", s, {}, "d", "t", flops, 10, "ok",
                         val_accuracy=v, test_accuracy=v, duration_s=2.0)
            for s, v in enumerate(values)}
    return ArmResult(arm, name, runs)


def test_tables_mark_unresolved_differences() -> None:
    from nas.study.ablation.file import Group

    arms = [_result("base", [0.70, 0.75, 0.80], True), _result("up", [0.75, 0.80, 0.86], False),
            _result("noise", [0.80, 0.70, 0.79], False)]
    result = GroupResult(Group("g", "base", tuple(a.arm for a in arms)), arms)
    text = tables.markdown("t", [result])
    lines = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if "|" in line}
    assert "baseline" in lines["base"] and "not resolved" not in lines["up"]
    assert "+5.3 [" in lines["up"] and "(n=3)" in lines["up"]
    assert "not resolved" in lines["noise"] and "2.0 s" in lines["noise"]
    rows = list(csv.DictReader(io.StringIO(tables.to_csv([result]))))
    assert [r["val_resolved"] for r in rows] == ["", "True", "False"]
    assert float(rows[1]["val_diff"]) == pytest.approx(0.0533333333)


def test_the_front_after_retraining_is_marked_by_mean_test_accuracy_and_flops() -> None:
    """An arm is on the group's front when no other arm has a mean test accuracy at least as
    high at no more FLOPs (and is better on one); the tables say which, in every format."""
    from nas.study.ablation.file import Group

    arms = [_result("hand", [0.70, 0.72, 0.74], True, flops=6000),           # 72 %: dominated
            _result("smaller, better", [0.73, 0.75, 0.77], False, flops=3000),    # 75 %
            _result("its twin", [0.74, 0.75, 0.76], False, flops=3000),   # the same point: both
            _result("cheapest", [0.60, 0.62, 0.64], False, flops=1000),
            _result("larger, worse", [0.74, 0.74, 0.74], False, flops=5000),  # below 3000's 75
            _result("most accurate", [0.80, 0.81, 0.82], False, flops=9000),
            _result("no runs", [], False)]
    result = GroupResult(Group("g", "hand", tuple(a.arm for a in arms)), arms)
    front = {"smaller, better", "its twin", "cheapest", "most accurate"}
    assert result.front() == front
    rows = list(csv.DictReader(io.StringIO(tables.to_csv([result]))))
    assert {r["arm"] for r in rows if r["front"] == "True"} == front
    text = tables.markdown("t", [result])
    header, *table = [line.split(" | ") for line in text.splitlines() if line.startswith("| ")]
    column = header.index("front")
    assert {row[0].strip("| ") for row in table if row[column] == "yes"} == front
    payload = tables.to_json("t", "ablate/t", [result])["groups"][0]["arms"]
    assert {a["arm"] for a in payload if a["front"]} == front


def test_resume_trains_only_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GROUPS.replace("[0, 1, 2]", "[0, 1]"))
    storage = f"sqlite:///{tmp_path / 'a.db'}"
    trained: list[int] = []

    def interrupted(ctx: Any, genome: Any, **kwargs: Any) -> RunRecord:
        if len(trained) == 4:
            raise KeyboardInterrupt
        trained.append(kwargs["seed"])
        return real_train(ctx, genome, **kwargs)

    monkeypatch.setattr(experiment, "train_genome", interrupted)
    assert ablate(path, storage) == 130
    assert trained == [0, 0, 0, 1]                   # seed by seed: seed 0 whole
    assert holders(Store(storage), "ablate/t") == []  # the claim was given back
    trained.clear()
    monkeypatch.setattr(experiment, "train_genome", lambda *a, **k: (trained.append(k["seed"]),
                                                                      real_train(*a, **k))[1])
    assert ablate(path, storage, "--format", "csv") == 0
    assert trained == [1, 1]                         # 6 cells, 4 stored
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["seeds"] for r in rows] == ["0 1"] * 4


def test_no_train_reports_stored_runs(tmp_path: Path, calls: list[tuple[str, int]],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    path, storage = write(tmp_path, GROUPS), f"sqlite:///{tmp_path / 'a.db'}"
    assert ablate(path, storage, "--no-train", "--format", "json") == 0
    empty = json.loads(capsys.readouterr().out)
    assert all(a["runs"] == [] for g in empty["groups"] for a in g["arms"]) and calls == []
    assert ablate(path, storage, "--group", "loss", "--seeds", "0,1", "--format", "json") == 0
    trained = json.loads(capsys.readouterr().out)
    assert len(calls) == 4
    counted = [(a["flops"], a["params"]) for a in empty["groups"][1]["arms"]]
    assert counted == [(a["flops"], a["params"]) for a in trained["groups"][0]["arms"]]  # as run
    assert all(isinstance(f, int) and f > 0 for f, _ in counted)   # known before any run
    assert ablate(path, storage, "--no-train", "--seeds", "0,1", "--format", "json") == 0
    stored = json.loads(capsys.readouterr().out)
    assert stored["groups"][1] == trained["groups"][0] and len(calls) == 4
    assert [len(a["runs"]) for a in stored["groups"][0]["arms"]] == [2, 0]   # eca shared
    assert ablate(path, storage, "--no-train", "--format", "markdown") == 0
    assert "#### t: loss (baseline: ce)" in capsys.readouterr().out


def test_no_train_on_a_torchvision_set_shows_no_counts_and_loads_nothing(
        tmp_path: Path, calls: list[tuple[str, int]], capsys: pytest.CaptureFixture[str]) -> None:
    """The README: a torchvision set's classes are known once it is loaded, so before any run
    `--no-train` shows `-` for its arms' FLOPs and params, and downloads nothing."""
    path, storage = write(tmp_path, GROUPS), f"sqlite:///{tmp_path / 'a.db'}"
    assert ablate(path, storage, "--no-train", "--data", "cifar10", "--format", "json") == 0
    arms = [a for g in json.loads(capsys.readouterr().out)["groups"] for a in g["arms"]]
    assert {(a["flops"], a["params"]) for a in arms} == {(None, None)} and calls == []
    assert ablate(path, storage, "--no-train", "--data", "cifar10", "--format", "markdown") == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| eca "))
    assert row.split(" | ")[4:6] == ["-", "-"]
    assert not any((tmp_path / "cache").rglob("*cifar*"))


def test_a_second_worker_waits_and_reuses(tmp_path: Path, calls: list[tuple[str, int]]) -> None:
    """A cell claimed by another live worker is not trained here: this worker waits until the
    holder has stored the run, then reuses it. A claim of a dead process on this host is taken."""
    ablation, storage, store = _attention_ablation(tmp_path)
    from nas.api import opener as open_arm
    from nas.cli.console import ProgressView

    with ProgressView(True):
        opener = open_arm("digits", store, device="cpu", threads=1)
        other = {}
        cells = run_ablation(ablation, store, "digits", opener, train=False)[0].arms
        for cell, holder in zip(cells, (f"{socket.gethostname()}:{_dead_pid()}", "elsewhere:1"),
                                strict=True):
            genome = f"{cell.arm.genome.notation} #{cell.key} seed 0"
            other[cell.arm.name] = claim(store, "ablate/t", genome, cell.arm.genome.attention,
                                         worker=holder)
        thread, done = _second_worker(ablation, store, opener, storage)
        assert thread.is_alive() and calls == [("[1,8,1,1,0] eca feature", 0)]   # dead one taken
        # the live holder trains and stores its cell, then releases its claim
        ctx = opener(ablation.arms[1].space, "8x8")
        from nas.study.ablation.run import _train

        _train(ctx, "ablate/t", cells[1], 0, lambda arm, seed: ())
        release(store, other["none"])
        thread.join(timeout=60)
    assert not thread.is_alive() and calls == [("[1,8,1,1,0] eca feature", 0),
                                               ("[1,8,1,1,0] none feature", 0)]   # reused
    assert [len(a.runs) for a in done[0][0].arms] == [1, 1]
    assert len(Store(storage).list_runs("ablate/t")) == 2


def test_workers_side_by_side_train_different_cells(tmp_path: Path,
                                                    calls: list[tuple[str, int]]) -> None:
    """A cell another live worker holds is passed over, not waited on, while a free one is
    left: this worker trains the free cell first, then waits for the held one and reuses it."""
    ablation, storage, store = _attention_ablation(tmp_path)
    from nas.api import opener as open_arm
    from nas.cli.console import ProgressView
    from nas.study.ablation.run import _train

    with ProgressView(True):
        opener = open_arm("digits", store, device="cpu", threads=1)
        first = run_ablation(ablation, store, "digits", opener, train=False)[0].arms[0]
        held = claim(store, "ablate/t", f"{first.arm.genome.notation} #{first.key} seed 0",
                     first.arm.genome.attention, worker="elsewhere:1")
        thread, done = _second_worker(ablation, store, opener, storage)
        assert thread.is_alive() and calls == [("[1,8,1,1,0] none feature", 0)]   # the free one
        _train(opener(ablation.arms[0].space, "8x8"), "ablate/t", first, 0, lambda arm, seed: ())
        release(store, held)
        thread.join(timeout=60)
    assert not thread.is_alive() and calls == [("[1,8,1,1,0] none feature", 0),
                                               ("[1,8,1,1,0] eca feature", 0)]   # the holder's
    assert [len(a.runs) for a in done[0][0].arms] == [1, 1]
    assert len(Store(storage).list_runs("ablate/t")) == 2


def _attention_ablation(tmp_path: Path) -> tuple[Any, str, Store]:
    """GROUPS' attention group (eca, none) with one seed, and its database."""
    path = write(tmp_path, GROUPS.replace("[0, 1, 2]", "[0]"))
    storage = f"sqlite:///{tmp_path / 'a.db'}"
    return load_ablation(path).only(["attention"]), storage, Store(storage)


def _second_worker(ablation: Any, store: Store, opener: Any,
                   storage: str) -> tuple[threading.Thread, list[Any]]:
    """run_ablation in a thread, returned once it has stored its first run (or after 60 s)."""
    done: list[Any] = []
    thread = threading.Thread(target=lambda: done.append(run_ablation(
        ablation, store, "digits", opener, poll_s=0.05)))
    thread.start()
    deadline = time.monotonic() + 60
    while len(Store(storage).list_runs("ablate/t")) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    thread.join(timeout=1.0)
    return thread, done


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize(("body", "message"), [
    ('[[arm]]\ngenome = "[1,8,1,1,0]"\ndistill.los = "none"\n',
     "ab.toml: arm[1]: distill.los is not a known key (did you mean `loss`?)"),
    ('[[arm]]\ngenome = "[1,8,1,1,0]"\n"train.augment.view" = ["hflip"]\n',
     "ab.toml: arm[1]: train.augment.view is not a known key (did you mean `views`?)"),
    ('[[arm]]\ngenome = "[1,8,1,1,0]"\ndistill.alpha = "high"\n',
     "ab.toml: arm[1]: distill.alpha must be float, got 'high'"),
    ('[[arm]]\ngenome = "[1,8,1,1,0]"\nepochs = 3\n',
     "ab.toml: arm[1]: epochs is not a known key"),
    ('[[arm]]\nname = "a"\ngenome = "[1,8,1,1,0]"\n[[arm]]\nname = "b"\n'
     'genome = "[1,8,1,1,0]"\ndistill.alpha = 0.5\n',
     "ab.toml: arm 'b' is identical to the baseline 'a' (same genome, attention, image size and "
     "recipe)"),
    ('seeds = []\n[[arm]]\ngenome = "[1,8,1,1,0]"\n', "ab.toml: seeds must be a non-empty list"),
    ('[[group]]\nname = "g"\nbaseline = "ec"\n[[group.arm]]\nname = "eca"\n'
     'genome = "[1,8,1,1,0]"\n', "ab.toml: group[1]: baseline 'ec' is not an arm of group 'g' "
                                 "(did you mean `eca`?)"),
    ('[[arm]]\ngenome = "[1,8,1,3,0]"\n', "s must be 1 or 2, got 3"),
    ('[[arm]]\ngenome = "[1,8,1,1,0]"\ntrain.epochs = 0\n',
     "ab.toml: arm[1]: train.epochs must be between 1 and 100000, got 0"),
    ("", "at least one [[arm]]"),
    ('seed = [1]\n[[arm]]\ngenome = "[1,8,1,1,0]"\n',
     "ab.toml: seed is not a known key (did you mean `seeds`?)"),
    ('train.epoch = 2\n[[arm]]\ngenome = "[1,8,1,1,0]"\n',
     "ab.toml: train.epoch is not a known key (did you mean `epochs`?)"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, body: str, message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, body)
    assert ablate(path, f"sqlite:///{tmp_path / 'a.db'}") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "a.db").exists() or Store(f"sqlite:///{tmp_path / 'a.db'}").list_runs() == []


def test_bad_flags_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GROUPS)
    assert ablate(path, f"sqlite:///{tmp_path / 'a.db'}", "--group", "atention") == 2
    assert "no group 'atention' (did you mean `attention`?)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        ablate(path, f"sqlite:///{tmp_path / 'a.db'}", "--seeds", "")
    assert exit_.value.code == 2


def test_shipped_ablations_parse() -> None:
    for path in sorted((BUNDLED / "ablations").glob("*.toml")):
        ablation = load_ablation(path)
        assert ablation.arms and ablation.seeds[:3] == (0, 1, 2)    # at least three seeds
    report = load_ablation("ablations/seed_report.toml")
    assert [g.name for g in report.groups] == ["depth vs width", "expansion ratio",
                                               "stride placement", "attention", "distillation"]
    assert report.groups[4].arms[1].space.distill.loss == "none"
    assert len({arm.key(None, "x") for arm in report.arms}) == 10      # 13 arms, 10 cells
    with pytest.raises(SpaceError, match="no such ablation file"):
        load_ablation("ablations/missing.toml")


def test_the_final_recipe_file_holds_the_readmes_final_recipe_table() -> None:
    """`ablations/cifar10_final.toml` reproduces the README's table "On the final recipe": the
    same designs (genome and attention, each row's command naming them), the FLOPs and params
    the README prints for them, trained on cifar10.toml's recipe as it stands; the table's
    `front` column marks the rows the front after retraining holds, by its own numbers."""
    from nas.model.complexity import count
    from nas.model.objectives import dominates
    from nas.model.space import load_space
    from nas.study.ablation.run import FRONT
    from nas.units import count_text, parse_quantity

    readme = (ROOT / "README.md").read_text()
    table = readme.split("| design | FLOPs | params | test accuracy |", 1)[1].split("\n\n", 1)[0]
    printed, points, marked = {}, {}, set()
    for line in table.splitlines()[2:]:
        design, flops, params, test, _, front, command = line.strip("| ").split(" | ")
        genome, attention = re.search(r"`(\[[^`]+\])`( (ECA|SE))?", design).group(1, 3)
        attention = (attention or "none").lower()
        assert f"nas train '{genome}' --attention {attention} --space cifar10.toml" in command
        printed[(genome, attention)] = (flops, params)
        points[(genome, attention)] = (float(test.strip("*").split()[0]), parse_quantity(flops, "FLOPs"))
        marked |= {(genome, attention)} if front == "yes" else set()
    assert marked == {row for row, point in points.items()
                      if not any(dominates(other, point, FRONT) for other in points.values())}
    ablation = load_ablation("ablations/cifar10_final.toml")
    space = load_space("cifar10.toml")
    assert {(a.genome.notation, a.genome.attention) for a in ablation.arms} == set(printed)
    assert len(ablation.arms) == len(printed) and ablation.seeds == (0, 1, 2, 3, 4)
    for arm in ablation.arms:
        size = count(arm.genome, space)
        assert printed[(arm.genome.notation, arm.genome.attention)] == (
            count_text(size.flops), count_text(size.params))
        assert arm.space.recipe() == space.recipe()         # the final recipe, nothing pinned
    assert ablation.groups[0].baseline == "hand design (seed report)"


def test_each_rows_command_retrains_that_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The markdown table's command column, run as a user would, trains the same run again:
    the arm's own keys, the file's top-level recipe keys (a list too) and the command line's
    --set become --set flags of `nas train`."""
    path = write(tmp_path, 'seeds = [1]\ntrain.lr_min_ratio = 0.5\ntrain.augment.views = ["hflip"]\n\n'
                           '[[arm]]\nname = "ce"\ngenome = "[1,8,1,1,0]"\n'
                           'attention = "none"\ndistill.loss = "none"\n\n[[arm]]\nname = "lr"\n'
                           'genome = "[1,8,1,1,0]"\nattention = "none"\ndistill.loss = "none"\n'
                           '"train.lr" = 0.02\n')
    storage = f"sqlite:///{tmp_path / 'ab.db'}"
    assert ablate(path, storage, "--set", "train.batch_size=16", "--format", "csv") == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert ablate(path, storage, "--no-train", "--set", "train.batch_size=16",
                  "--format", "markdown") == 0
    commands = [line.rsplit("`", 2)[1] for line in capsys.readouterr().out.splitlines()
                if line.startswith("| ") and "`" in line]
    assert [row["command"] for row in table] == commands
    assert "--set train.lr=0.02" in commands[1]
    assert all("--set train.lr_min_ratio=0.5" in command for command in commands)
    assert all("train.augment.views=" in command for command in commands)      # a list value
    assert "--set train.batch_size=16" in commands[0] and commands[0].endswith("--seed 1")
    for row, command in zip(table, commands, strict=True):
        words = [*shlex.split(command)[2:], "--storage", f"sqlite:///{tmp_path / 'r.db'}",
                 "--threads", "1", "--json"]
        done = subprocess.run([sys.executable, "-c", "import sys; from nas.cli import main; "
                               "sys.exit(main())", "train", *words], capture_output=True,
                              text=True, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["test_accuracy"] == pytest.approx(float(row["test_mean"]))


CE_ONLY = '''seeds = [0]

[[arm]]
name = "ce"
genome = "[1,8,1,1,0]"
attention = "eca"
distill.loss = "none"
distill.temperature = {temperature}
teacher.epochs = {teacher_epochs}
'''


def test_a_ce_arm_is_keyed_on_the_loss_alone(tmp_path: Path, calls: list[tuple[str, int]]) -> None:
    """Cross-entropy reads no other distillation or teacher key: changing one (a new default
    temperature) keeps the CE runs, and runs stored under the key CE arms had before, with the
    whole sections, are still found."""
    storage = f"sqlite:///{tmp_path / 'a.db'}"
    path = write(tmp_path, CE_ONLY.format(temperature=4.0, teacher_epochs=2))
    assert ablate(path, storage) == 0 and len(calls) == 1
    path = write(tmp_path, CE_ONLY.format(temperature=2.0, teacher_epochs=3))
    assert ablate(path, storage) == 0 and len(calls) == 1          # reused

    store = Store(storage)
    (run,) = store.list_runs("ablate/t")
    arm = load_ablation(write(tmp_path, CE_ONLY.format(temperature=4.0, teacher_epochs=2))).arms[0]
    former = arm.former_key("8x8", "digits", run.recipe["distill"])
    assert former != arm.key("8x8", "digits")
    store.update_run(run.id, meta={**run.meta, "ablation": {**run.meta["ablation"], "key": former}})
    assert ablate(path, storage) == 0 and len(calls) == 1          # found under its former key
    path = write(tmp_path, CE_ONLY.format(temperature=4.0, teacher_epochs=2).replace(
        'genome = "[1,8,1,1,0]"', 'genome = "[1,16,1,1,0]"'))
    assert ablate(path, storage) == 0 and len(calls) == 2          # another arm: trained


def test_a_ce_arm_differing_only_in_distillation_keys_is_the_baseline(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = CE_ONLY.format(temperature=4.0, teacher_epochs=2) + (
        '\n[[arm]]\nname = "ce at T 2"\ngenome = "[1,8,1,1,0]"\nattention = "eca"\n'
        'distill.loss = "none"\ndistill.temperature = 2.0\n')
    assert ablate(write(tmp_path, body), f"sqlite:///{tmp_path / 'a.db'}") == 2
    assert "arm 'ce at T 2' is identical to the baseline 'ce'" in capsys.readouterr().err
