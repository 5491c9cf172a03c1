"""The hostile-input suite (issue 11): each case must exit 2 with one line on stderr and write
nothing (no database, no cache, no output file). Cases run in-process through `nas.cli.main`;
the ones that need a real process (a FIFO that would hang a reader) run under a timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from nas.cli import main
from nas.errors import CheckpointError, NasError, ReportError
from nas.model.builder import Student
from nas.model.decode import resolve
from nas.model.genome import Genome
from nas.model.space import InputShape
from nas.study.report.export import read_checkpoint, restore, save_checkpoint
from nas.study.report.plot import plot_front
from tests.conftest import write_class

TINY = (Path(__import__("nas").__file__).parent / "search_spaces" / "tiny.toml").read_text()
GENOME = "[2,8,1,1,0]"
LONG = "x" * 1001               # one character over the bound on names and strings (issue 22)
ABLATIONS = Path(__import__("nas").__file__).parent / "search_spaces" / "ablations"


# ----------------------------------------------------------------- fixtures written per case


def _space(edit: Callable[[str], str]) -> Callable[[Path], None]:
    return lambda root: (root / "s.toml").write_text(edit(TINY))


def _set(section: str, line: str) -> Callable[[Path], None]:
    """tiny.toml with `line` added at the top of `[section]` (TOML keeps the last duplicate? no:
    a duplicate is an error, so keys added here are ones tiny.toml does not set)."""
    def edit(text: str) -> str:
        if f"[{section}]\n" in text:
            return text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)
        return f"{text}\n[{section}]\n{line}\n"
    return _space(edit)


def _replace(old: str, new: str) -> Callable[[Path], None]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)
    return _space(edit)


def _folder(classes: dict[str, int], extra: Callable[[Path], None] | None = None,
            split: bool = False) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        data = root / "data"
        for index, (name, count) in enumerate(classes.items()):
            if split:
                write_class(data / "train" / name, index, count)
                write_class(data / "test" / name, index, 2, start=count)
            else:
                write_class(data / name, index, count)
        if extra is not None:
            extra(data)
    return build


def _fifos(data: Path) -> None:
    (data / "a").mkdir(parents=True, exist_ok=True)
    for name in ("x.png", "y.png", "z.jpg"):
        os.mkfifo(data / "a" / name)


def _zeros(data: Path) -> None:
    (data / "a").mkdir(parents=True, exist_ok=True)
    for name in ("x.png", "y.png", "z.png"):
        (data / "a" / name).symlink_to("/dev/zero")


def _links(data: Path) -> None:
    (data / "a").mkdir(parents=True, exist_ok=True)
    (data / "a" / "gone.png").symlink_to(data / "nowhere.png")
    (data / "a" / "loop.png").symlink_to(data / "a" / "loop.png")
    (data / "a" / "out.png").symlink_to("/etc/hostname")


def _text(data: Path) -> None:
    (data / "a").mkdir(parents=True, exist_ok=True)
    for name in ("a.txt", "b.csv", "c.json"):
        (data / "a" / name).write_text("not an image")


def _broken(data: Path) -> None:
    (data / "a").mkdir(parents=True, exist_ok=True)
    for name in ("a.png", "b.jpg", "c.png"):
        (data / "a" / name).write_bytes(b"\x89PNG broken")


def _plain(root: Path) -> None:
    (root / "plain.txt").write_text("a file, not a folder")


def _dir_named_out(root: Path) -> None:
    (root / "outdir").mkdir()


def _nothing(root: Path) -> None:
    pass


# ----------------------------------------------------------------- the cases

TRAIN = ["train", GENOME, "--space", "s.toml", "--quiet"]
SPACE = ["space", "s.toml"]
COUNT = ["count"]
SEARCH = ["search", "--space", "s.toml", "--quiet"]

SPACE_CASES = {
    "toml syntax": _space(lambda t: t + "\n[train\n"),
    "unknown top key": _space(lambda t: "nmae = 'x'\n" + t),
    "unknown model key": _set("model", "stemm = 8"),
    "stage s=3": _replace("s = [1, 2]", "s = [1, 3]"),
    "stage t=0": _replace("t = [1, 2]", "t = [0, 2]"),
    "stage c=0": _replace("c = [8, 16]", "c = [0, 16]"),
    "stage n=0": _replace("n = 1\n", "n = 0\n"),
    "stage fused=2": _replace("fused = [0, 1]", "fused = [0, 2]"),
    "stage c string": _replace("c = [8, 16]", 'c = ["8", 16]'),
    "no stages": _space(lambda t: t.split("[[stage]]")[0]),
    "kernel 4": _set("model", "kernel = 4"),
    "attention unknown": _replace('choices = ["eca", "none"]', 'choices = ["cbam"]'),
    "input channels 0": _replace("channels = 3", "channels = 0"),
    "input height 99999": _replace("height = 16", "height = 99999"),
    "batch_size 0": _replace("batch_size = 64", "batch_size = 0"),
    "batch_size 1": _replace("batch_size = 64", "batch_size = 1"),
    "lr 1e300": _set("train", "lr = 1e300"),
    "lr 0": _set("train", "lr = 0.0"),
    "lr negative": _set("train", "lr = -1.0"),
    "epochs 0": _replace("epochs = 1\nbatch_size", "epochs = 0\nbatch_size"),
    "optimizer unknown": _set("train", 'optimizer = "adamx"'),
    "weight_decay 2": _set("train", "weight_decay = 2.0"),
    "val_fraction 1": _set("train", "val_fraction = 1.0"),
    "lr_min_ratio 2": _set("train", "lr_min_ratio = 2.0"),
    "split_seed -1": _set("train", "split_seed = -1"),
    "split_seed huge": _set("train", "split_seed = 99999999999999999999"),
    "split_seed 2**63-1": _set("train", "split_seed = 9223372036854775807"),
    "view unknown op": _set("train.augment", 'views = ["flip+spin"]'),
    "temperature 0": _set("distill", "temperature = 0.0"),
    "alpha 2": _set("distill", "alpha = 2.0"),
    "alpha -1": _set("distill", "alpha = -1.0"),
    "loss unknown": _set("distill", 'loss = "kl"'),
    "teacher kind unknown": _set("teacher", 'kind = "oracle"'),
    "teacher feature_dim 1e9": _set("teacher", "feature_dim = 1e9"),
    "teacher feature_dim 10**9": _set("teacher", "feature_dim = 1000000000"),
    "teacher image_size huge": _set("teacher", "image_size = 100000"),
    "teacher batch_size 1": _replace('attention = "eca"\nepochs = 2',
                                     'attention = "eca"\nepochs = 2\nbatch_size = 1'),
    "teacher lr 0": _set("teacher", "lr = 0.0"),
    "search seed 2**63-1": _set("search", "seed = 9223372036854775807"),
    "search seed -1": _set("search", "seed = -1"),
    "search trials 0": _replace("trials = 4", "trials = 0"),
    "search budget_flops abc": _set("search", 'budget_flops = "abc"'),
    "search budget_params -5": _set("search", 'budget_params = "-5K"'),
    "search timeout bad": _set("search", 'timeout = "soon"'),
    "search sampler unknown": _set("search", 'sampler = "grid"'),
    # issue 22: bounds checked when parsed, and what a checkpoint's settings are held to too
    "search epochs 100001": _replace("trials = 4\nepochs = 1", "trials = 4\nepochs = 100001"),
    "search trials 10**20": _replace("trials = 4", "trials = 99999999999999999999"),
    "search seed 2**32": _set("search", "seed = 4294967296"),
    "train epochs 100001": _replace("epochs = 1\nbatch_size", "epochs = 100001\nbatch_size"),
    "teacher epochs 100001": _replace('attention = "eca"\nepochs = 2', 'attention = "eca"\nepochs = 100001'),
    "name 1001 characters": _replace('name = "tiny"', f'name = "{LONG}"'),
    "description 1001 characters": _space(lambda t: f'description = "{LONG}"\n{t}'),
    "teacher model 1001 characters": _set("teacher", f'model = "{LONG}"'),
    "teacher genome 1001 characters": _replace('genome = "[2,16,1,1,1] [2,32,1,2,0]"',
                                               f'genome = "[2,16,1,1,1] {" " * 1000}"'),
    "search enqueue genome 1001 characters": _set("search", f'enqueue = ["[2,8,1,1,0]{" " * 1000}"]'),
    "key 1001 characters": _set("train", f"{'k' * 1001} = 1"),
    "nested 1000 arrays": _space(lambda t: f"x = {'[' * 1000}{']' * 1000}\n{t}"),
    "nested 100 tables": _space(lambda t: f"[{'.'.join(['t'] * 100)}]\n{t}"),
    "model divisor 0": _set("model", "divisor = 0"),
    "model stem -8": _replace("stem = 8", "stem = -8"),
    "model se_ratio nan": _set("model", "se_ratio = nan"),
    "model bn_eps inf": _set("model", "bn_eps = inf"),
    "model se_ratio text": _set("model", 'se_ratio = "x"'),
    "input 3x0x0": _replace("[input]\nchannels = 3\nheight = 16\nwidth = 16", 'input = "3x0x0"'),
    "input height 0": _replace("height = 16", "height = 0"),
}

GENOME_CASES = ["", "abc", "[", "[2,8]", "[2,8,1,1,0,0]", "[0,8,1,1,0]", "[2,8,1,3,0]", "[2,8,1,1,2]",
                "[2,-8,1,1,0]", "[2,8,0,1,0]", "[2.5,8,1,1,0]", "[2,8,1,1,0] junk"]

CLI_CASES: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "train seed -1": (_space(lambda t: t), [*TRAIN, "--seed", "-1"]),
    "train seed 2**32": (_space(lambda t: t), [*TRAIN, "--seed", "4294967296"]),
    "train seed 2**63-1": (_space(lambda t: t), [*TRAIN, "--seed", "9223372036854775807"]),
    "search seed -1": (_space(lambda t: t), [*SEARCH, "--seed", "-1"]),
    "search seed huge": (_space(lambda t: t), [*SEARCH, "--seed", "99999999999999999999"]),
    "search budget abc": (_space(lambda t: t), [*SEARCH, "--budget-flops", "abc"]),
    "search timeout bad": (_space(lambda t: t), [*SEARCH, "--timeout", "soon"]),
    "image-size 4096x4096": (_space(lambda t: t), [*TRAIN, "--image-size", "4096x4096"]),
    "image-size 0x5": (_space(lambda t: t), [*TRAIN, "--image-size", "0x5"]),
    "image-size 5000x10": (_space(lambda t: t), [*TRAIN, "--image-size", "5000x10"]),
    "image-size abc": (_space(lambda t: t), [*TRAIN, "--image-size", "abc"]),
    "image-size 3x": (_space(lambda t: t), [*TRAIN, "--image-size", "3x"]),
    "genome [32,8192,64,1,1]": (_space(lambda t: t), ["train", "[32,8192,64,1,1]", "--space", "s.toml"]),
    "genome deeper than space": (_space(lambda t: t), ["train", "[2,8,1,1,0] [2,16,1,2,0] [2,16,1,2,0]",
                                                       "--space", "s.toml"]),
    "epochs 0": (_space(lambda t: t), [*TRAIN, "--epochs", "0"]),
    "space missing": (_nothing, ["train", GENOME, "--space", "missing.toml"]),
    "data unknown": (_space(lambda t: t), [*TRAIN, "--data", "cifar1"]),
    "data missing folder": (_space(lambda t: t), [*TRAIN, "--data", "./nowhere"]),
    "data is a file": (_plain, ["train", GENOME, "--data", "./plain.txt"]),
    "data one class": (_folder({"a": 6}), [*TRAIN, "--data", "./data"]),
    "data class of 2": (_folder({"a": 6, "b": 2}), [*TRAIN, "--data", "./data"]),
    "data empty class": (_folder({"a": 6}, lambda d: (d / "b").mkdir()), [*TRAIN, "--data", "./data"]),
    "data no classes": (_folder({}, lambda d: d.mkdir()), [*TRAIN, "--data", "./data"]),
    "data train without test": (_folder({"a": 4, "b": 4}, lambda d: (d / "train").mkdir()),
                                [*TRAIN, "--data", "./data"]),
    "data class mismatch": (_folder({"a": 4, "b": 4}, lambda d: (d / "test" / "b").rename(d / "test" / "c"),
                                    split=True), [*TRAIN, "--data", "./data"]),
    "data split class of 1": (_folder({"a": 4, "b": 1}, split=True), [*TRAIN, "--data", "./data"]),
    "data symlink /dev/zero": (_folder({"b": 4}, _zeros), [*TRAIN, "--data", "./data"]),
    "data dangling, loop, escape": (_folder({"b": 4}, _links), [*TRAIN, "--data", "./data"]),
    "data text files": (_folder({"b": 4}, _text), [*TRAIN, "--data", "./data"]),
    "data broken images": (_folder({"b": 4}, _broken), [*TRAIN, "--data", "./data"]),
    "data symlinked class leaves": (_folder({"b": 4}, lambda d: (d / "a").symlink_to("/etc")),
                                    [*TRAIN, "--data", "./data"]),
    "report sqlite://": (_nothing, ["report", "--storage", "sqlite://"]),
    "report :memory:": (_nothing, ["report", "--storage", "sqlite:///:memory:"]),
    "report bad scheme": (_nothing, ["report", "--storage", "nosuchdb://x"]),
    "report missing db": (_nothing, ["report", "--storage", "sqlite:///absent.db"]),
    "report missing dir": (_nothing, ["report", "--storage", "sqlite:///nodir/absent.db"]),
    "export missing db": (_nothing, ["export", "--storage", "sqlite:///absent.db", "--out", "x.pt"]),
    "ablate missing file": (_nothing, ["ablate", "missing.toml"]),
    # issue 22: bounds checked when parsed, names of another namespace, parser errors
    "search epochs 10**20": (_space(lambda t: t), [*SEARCH, "--epochs", "99999999999999999999"]),
    "search epochs 100001": (_space(lambda t: t), [*SEARCH, "--epochs", "100001"]),
    "search rungs 10**20": (_space(lambda t: t), [*SEARCH, "--rungs", "99999999999999999999"]),
    "search rungs 1,100001": (_space(lambda t: t), [*SEARCH, "--rungs", "1,100001"]),
    "search trials 10**20": (_space(lambda t: t), [*SEARCH, "--trials", "99999999999999999999"]),
    "search seed 2**32": (_space(lambda t: t), [*SEARCH, "--seed", "4294967296"]),
    "search study ablate/": (_space(lambda t: t), [*SEARCH, "--study", "ablate/ab"]),
    "train epochs 100001": (_space(lambda t: t), [*TRAIN, "--epochs", "100001"]),
    "search jobs 10**20": (_space(lambda t: t), [*SEARCH, "--jobs", "99999999999999999999"]),
    "export retrain-epochs 10**20": (_nothing, ["export", "best", "--retrain-epochs",
                                                "99999999999999999999"]),
    "ablate seeds 2**32": (_nothing, ["ablate", "missing.toml", "--seeds", "0,4294967296"]),
    "ablate epochs 10**20": (_nothing, ["ablate", "missing.toml", "--epochs", "99999999999999999999"]),
    "parser threads 0": (_nothing, ["search", "--threads", "0"]),
    "parser unknown command": (_nothing, ["serch"]),
    "search study 1001 characters": (_space(lambda t: t), [*SEARCH, "--study", LONG]),
    "report study 1001 characters": (_nothing, ["report", "--study", LONG]),
    "delete study 1001 characters": (_nothing, ["delete", LONG]),
    "count genome 1001 characters": (_nothing, ["count", GENOME + " " * 1000]),
    "train --set 1001 characters": (_space(lambda t: t), [*TRAIN, "--set", f"teacher.model={LONG}"]),
    "train --set=1001 characters": (_space(lambda t: t), [*TRAIN, f"--set=teacher.model={LONG}"]),
    "train --set deep list": (_space(lambda t: t), [*TRAIN, "--set", f"train.lr={'[' * 490}{']' * 490}"]),
    "train seed 2**64": (_space(lambda t: t), [*TRAIN, "--seed", str(2**64)]),
    "report storage missing.db": (_nothing, ["report", "--storage", "sqlite:///missing.db"]),
    "delete storage missing.db": (_nothing, ["delete", "x", "--storage", "sqlite:///missing.db"]),
    "reproduce storage missing.db": (_nothing, ["reproduce", "x", "1", "--storage", "sqlite:///missing.db"]),
}


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, cache and default storage inside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NAS_STORAGE", raising=False)
    return tmp_path


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def _refused(root: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    before = _snapshot(root)
    try:
        code = main(argv)
    except SystemExit as stopped:           # the parser's errors
        code = stopped.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nas: error: "), err
    assert "Traceback" not in err
    assert _snapshot(root) == before, "something was written"
    return lines[0]


@pytest.mark.parametrize("name", list(SPACE_CASES))
def test_space_file(name: str, world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    SPACE_CASES[name](world)
    line = _refused(world, SPACE, capsys)
    assert "s.toml" in line


@pytest.mark.parametrize("name", [n for n in SPACE_CASES if "search" not in n])
def test_space_file_refused_by_train(name: str, world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    SPACE_CASES[name](world)
    _refused(world, TRAIN, capsys)


@pytest.mark.parametrize("genome", GENOME_CASES)
def test_genome(genome: str, world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused(world, [*COUNT, genome], capsys)


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_cli(name: str, world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup, argv = CLI_CASES[name]
    setup(world)
    _refused(world, argv, capsys)


def test_skipped_files_one_line_and_debug_list(world: Path) -> None:
    """The CLI says what it skipped in one line; --debug lists each file with its reason."""
    from argparse import Namespace
    from types import SimpleNamespace

    from nas.cli.common import _check_data
    from nas.data.dataset import load_data

    _folder({"a": 3, "b": 3}, _links)(world)
    data = load_data("./data", (8, 8))
    for debug, expected in ((False, 1), (True, 4)):
        logs: list[str] = []
        _check_data(Namespace(debug=debug), SimpleNamespace(log=logs.append), data, None)
        assert len(logs) == expected
        assert logs[0] == ("skipped 3 files: 1 dangling symlink, 1 symlink loop, "
                           "1 symlink leaves the data folder")
    assert sorted(logs[1:]) == ["  a/gone.png: dangling symlink", "  a/loop.png: symlink loop",
                                "  a/out.png: symlink leaves the data folder"]


# ----------------------------------------------------------------- real processes


@pytest.mark.parametrize("setup", [_fifos, _zeros], ids=["fifo x.png", "symlink /dev/zero"])
def test_fifo_and_device_do_not_hang(setup: Callable[[Path], None], world: Path) -> None:
    _folder({"b": 4}, setup)(world)
    (world / "s.toml").write_text(TINY)
    before = _snapshot(world)
    command = [sys.executable, "-c", "import sys; from nas.cli import main; sys.exit(main())"]
    done = subprocess.run([*command, *TRAIN, "--data", "./data"], cwd=world,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NAS_CACHE_DIR": str(world / "cache")})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"nas: error: {Path('data') / 'a'}: class 'a' has 0 image file(s); need at least 3 to split"
        " into train, validation and test"]
    assert _snapshot(world) == before


# ----------------------------------------------------------------- checkpoints and output files


def _checkpoint() -> dict:
    arch = resolve(Genome.parse(GENOME, "none"), None, shape=InputShape(3, 8, 8), classes=2)
    from dataclasses import asdict

    from nas.model.space import ModelSettings
    return {"format": 1, "kind": "nas.student", "genome": GENOME, "attention": "none",
            "model": asdict(ModelSettings()), "overrides": [], "classes": ["a", "b"],
            "input": [3, 8, 8], "mean": [0.5] * 3, "std": [0.25] * 3,
            "state_dict": Student(arch).state_dict()}


CHECKPOINT_CASES: dict[str, Callable[[dict], object]] = {
    "genome not text": lambda c: c.update(genome=42),
    "genome garbage": lambda c: c.update(genome="[2,8"),
    "genome too big for weights": lambda c: c.update(genome="[32,8192,64,1,1]"),
    "genome other widths": lambda c: c.update(genome="[2,16,1,1,0]"),
    "model unknown key": lambda c: c["model"].update(stemm=8),
    "model not a dict": lambda c: c.update(model=[1, 2]),
    "overrides garbage": lambda c: c.update(overrides=[{"nope": 1}]),
    "input two numbers": lambda c: c.update(input=[3, 8]),
    "input text": lambda c: c.update(input="3x8x8"),
    "classes a number": lambda c: c.update(classes=2),
    "state_dict a list": lambda c: c.update(state_dict=[1, 2]),
    "attention unknown": lambda c: c.update(attention="cbam"),
    # issue 22: nas.load holds a checkpoint's settings to the space file's rules
    "model divisor 0": lambda c: c["model"].update(divisor=0),
    "model se_divisor 0": lambda c: c["model"].update(se_divisor=0),
    "model stem -8": lambda c: c["model"].update(stem=-8),
    "model head 0": lambda c: c["model"].update(head=0),
    "model stem text": lambda c: c["model"].update(stem="8"),
    "model stem_stride 3": lambda c: c["model"].update(stem_stride=3),
    "model se_ratio nan": lambda c: c["model"].update(se_ratio=float("nan")),
    "model se_ratio inf": lambda c: c["model"].update(se_ratio=float("inf")),
    "model se_ratio text": lambda c: c["model"].update(se_ratio="x"),
    "model bn_eps nan": lambda c: c["model"].update(bn_eps=float("nan")),
    "model se_base unknown": lambda c: c["model"].update(se_base="output"),
    "model expand_at_t1 text": lambda c: c["model"].update(expand_at_t1="no"),
    "input 3x0x0": lambda c: c.update(input=[3, 0, 0]),
    "input -3 channels": lambda c: c.update(input=[-3, 8, 8]),
    "input 8.5 high": lambda c: c.update(input=[3, 8.5, 8]),
    "mean text": lambda c: c.update(mean=["x", 0.5, 0.5]),
    "mean two values": lambda c: c.update(mean=[0.5, 0.5]),
    "std zero": lambda c: c.update(std=[0.0, 0.2, 0.2]),
    "std nan": lambda c: c.update(std=[float("nan"), 0.2, 0.2]),
    "std missing": lambda c: c.pop("std"),
}


def test_checkpoint_round_trip_is_the_baseline(tmp_path: Path) -> None:
    path = save_checkpoint(_checkpoint(), tmp_path / "ok.pt")
    model = restore(read_checkpoint(path), str(path))
    assert model(torch.zeros(1, 3, 8, 8)).shape == (1, 2)


@pytest.mark.parametrize("name", list(CHECKPOINT_CASES))
def test_altered_checkpoint(name: str, tmp_path: Path) -> None:
    checkpoint = _checkpoint()
    CHECKPOINT_CASES[name](checkpoint)
    path = tmp_path / "altered.pt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError) as caught:
        restore(read_checkpoint(path), str(path))
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04 not a zip"], ids=["empty", "text", "zip"])
def test_unreadable_checkpoint(content: bytes, tmp_path: Path) -> None:
    (tmp_path / "c.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match="c.pt: not a nas checkpoint"):
        read_checkpoint(tmp_path / "c.pt")


def test_pickle_payload_refused(tmp_path: Path) -> None:
    torch.save({"format": 1, "kind": "nas.student", "evil": Path("/")}, tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match="p.pt: not a nas checkpoint"):
        read_checkpoint(tmp_path / "p.pt")


@pytest.mark.parametrize("target", ["outdir", "/proc/version", "nodir/x.pt"])
def test_checkpoint_out_refused(target: str, world: Path) -> None:
    _dir_named_out(world)
    before = _snapshot(world)
    with pytest.raises(CheckpointError) as caught:
        save_checkpoint(_checkpoint(), Path(target))
    assert "\n" not in str(caught.value) and _snapshot(world) == before


@pytest.mark.parametrize("target", ["outdir", "/proc/version", "nodir/x.png"])
def test_plot_out_refused(target: str, world: Path) -> None:
    from nas.study.report.summary import Summary  # noqa: F401  (the real type; the check comes first)

    _dir_named_out(world)
    before = _snapshot(world)
    with pytest.raises(ReportError) as caught:
        plot_front(_EmptySummary(), Path(target))
    assert "\n" not in str(caught.value) and _snapshot(world) == before


class _EmptySummary:
    """A study summary with no trials and no budget: enough for plot_front to reach savefig."""

    class data:  # noqa: N801
        rows: tuple = ()
        name = "empty"
        info: dict = {}
        objectives = ("accuracy", "flops", "params")

    front: tuple = ()
    limits: dict = {}


@pytest.mark.parametrize(("mean", "std", "rule"), [
    (["a", "b", "c"], [0.25] * 3, "mean must be 3 finite numbers"),
    ([float("nan")] * 3, [0.25] * 3, "mean must be 3 finite numbers"),
    ([0.5, 0.5], [0.25] * 3, "mean must be 3 finite numbers"),
    ([0.5] * 3, "x", "std must be 3 finite numbers"),
    ([0.5] * 3, [0.25, 0.0, 0.25], "std must be above 0"),
], ids=["mean text", "mean nan", "mean 2 of 3", "std text", "std 0"])
def test_normalization_rules(mean: object, std: object, rule: str) -> None:
    """A checkpoint's mean and std, per input channel (what `nas.load` and the transforms use)."""
    from nas.model.space import check_normalization

    check_normalization([0.5] * 3, [0.25] * 3, 3, "c.pt")
    with pytest.raises(NasError, match=f"^c.pt.{rule}"):
        check_normalization(mean, std, 3, "c.pt")


def test_input_shape_default_is_the_default_data() -> None:
    """InputShape() is digits' 3x32x32, as `count()`, `build_model()` and `nas count` assume."""
    from nas.model.builder import build_model
    from nas.model.complexity import count

    assert InputShape() == InputShape(3, 32, 32)
    assert build_model(GENOME).arch.input == InputShape()
    assert count(GENOME) == count(GENOME, shape=InputShape())


# ----------------------------------------------------------------- export onto a database (issue 22)


@pytest.mark.parametrize("flag", ["--out", "--onnx"])
def test_export_onto_the_study_database_is_refused(flag: str, world: Path) -> None:
    """A real `nas export --out studies.db` (the default storage): one line, exit 2, the
    database byte for byte as it was, and `nas report` still reads it."""
    from nas.store.runs import Store
    from tests.studies import add_trial, new_study

    Store("sqlite:///studies.db").close()
    add_trial(new_study("sqlite:///studies.db", "s"), GENOME, 1000, 100, val=0.5)
    before = (world / "studies.db").read_bytes()
    argv = ["export", "best", flag, "studies.db"] + (["--out", "x.pt"] if flag == "--onnx" else [])
    for extra in ([], ["--force"]):
        assert _one_line(_nas(world, *argv, *extra)) == (
            f"nas: error: studies.db: is the study's database ({Path('studies.db')}); export "
            "never replaces it, give another file name")
    assert (world / "studies.db").read_bytes() == before and not (world / "x.pt").exists()
    assert main(["report", "--json"]) == 0


# ----------------------------------------------------------------- foreign and read-only databases (issue 22)


def _foreign(path: Path, *statements: str) -> bytes:
    import sqlite3

    with sqlite3.connect(path) as connection:
        for statement in statements:
            connection.execute(statement)
    connection.close()
    return path.read_bytes()


@pytest.mark.parametrize("tables", [
    ("CREATE TABLE people (name TEXT)", "INSERT INTO people VALUES ('ada')"),
    ("CREATE TABLE alembic_version (version_num TEXT)", "INSERT INTO alembic_version VALUES ('x1')"),
], ids=["another program", "alembic_version"])
@pytest.mark.parametrize("command", [["search", "--space", "tiny.toml", "--data", "digits"],
                                     ["ablate", str(ABLATIONS / "report_genomes.toml"), "--no-train"]],
                         ids=["search", "ablate"])
def test_a_foreign_database_is_refused_before_anything_is_written(
        tables: tuple[str, ...], command: list[str], world: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    (world / "tiny.toml").write_text(TINY)
    before = _foreign(world / "other.db", *tables)
    line = _refused(world, [*command, "--storage", "sqlite:///other.db"], capsys)
    assert "another program's database" in line
    assert (world / "other.db").read_bytes() == before


def test_report_and_export_read_a_database_read_only(world: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """No -wal, -shm or journal appears, not a byte changes, and a `mode=ro` URI works."""
    import sqlite3

    from nas.store.runs import Store
    from tests.studies import add_trial, new_study

    Store("sqlite:///made.db").close()
    add_trial(new_study("sqlite:///made.db", "s"), GENOME, 1000, 100, val=0.5)
    with sqlite3.connect(world / "made.db") as made, sqlite3.connect(world / "s.db") as copy:
        made.backup(copy)           # a WAL database with no -wal file: as a finished search leaves it
    copy.close()
    before = (world / "s.db").read_bytes()
    assert main(["report", "--storage", "sqlite:///s.db", "--json"]) == 0
    assert main(["report", "--storage", "sqlite:///file:s.db?mode=ro&uri=true", "--json"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in world.iterdir() if p.name.startswith("s.db")) == ["s.db"]
    assert (world / "s.db").read_bytes() == before


def test_an_optuna_schema_of_another_version_is_one_line(world: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    _foreign(world / "o.db", "CREATE TABLE studies (study_id INTEGER)",
             "CREATE TABLE alembic_version (version_num TEXT)",
             "INSERT INTO alembic_version VALUES ('x1')")
    assert "o.db" in _refused(world, ["report", "--storage", "sqlite:///o.db"], capsys)


# ----------------------------------------------------------------- what the CLI prints (issue 22)


@pytest.mark.parametrize("raised", [
    NasError("first line\nsecond line\n" + "x" * 10_000_000), BrokenPipeError(32, "Broken pipe")],
    ids=["10 MB multi-line message", "broken pipe"])
def test_an_error_is_one_line_of_at_most_300_characters(
        raised: BaseException, world: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import nas.cli.report

    def fail(args: object) -> int:
        raise raised

    monkeypatch.setattr(nas.cli.report, "cmd_report", fail)
    line = _refused(world, ["report"], capsys)
    assert len(line) <= len("nas: error: ") + 300
    if isinstance(raised, NasError):
        assert line.startswith("nas: error: first line second line xxx") and line.endswith("...")


def test_rich_markup_in_a_study_name_is_printed_as_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    from nas.cli.console import print_fields

    print_fields({"study": "x[/]y", "other": "[bold]z[/bold]"})
    out = capsys.readouterr().out
    assert "x[/]y" in out and "[bold]z[/bold]" in out


@pytest.mark.parametrize("cache", ["afile", "/dev/null"], ids=["a file", "/dev/null"])
def test_a_cache_folder_that_is_a_file_is_one_line(cache: str, world: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (world / "afile").write_text("not a folder")
    monkeypatch.setenv("NAS_CACHE_DIR", str(world / cache) if cache == "afile" else cache)
    line = _refused(world, ["search", "--data", "digits", "--image-size", "8x8"], capsys)
    assert "cannot write the data cache" in line and "Not a directory" in line


@pytest.mark.parametrize("attrs", [({"nas": "not a dict"}, {}), ({"nas": {}}, {"flops": "x"})],
                         ids=["nas not a dict", "flops x"])
def test_tampered_study_attributes_are_one_line(attrs: tuple[dict, dict], world: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import optuna

    study = optuna.create_study(study_name="t", storage="sqlite:///t.db",
                                directions=["maximize", "minimize", "minimize"])
    for key, value in attrs[0].items():
        study.set_user_attr(key, value)
    study.add_trial(optuna.trial.create_trial(values=[0.5, 1, 2],
                                              user_attrs={"genome": GENOME, **attrs[1]}))
    assert "attributes that nas did not write" in _refused(
        world, ["report", "--storage", "sqlite:///t.db"], capsys)


def test_a_one_objective_study_is_one_line(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import optuna

    optuna.create_study(study_name="one", storage="sqlite:///o.db").set_user_attr("nas", {})
    assert "not made by `nas search`" in _refused(
        world, ["report", "--storage", "sqlite:///o.db", "--study", "one"], capsys)


# ----------------------------------------------------------------- ablation files out of bounds (issue 22)


ARM = 'name = "a"\ngenome = "[2,8,1,1,0]"\n'
ABLATION = f'name = "h"\nspace = "tiny.toml"\n\n[[arm]]\n{ARM}'

ABLATION_CASES = {
    "name 1001 characters": ABLATION.replace('name = "h"', f'name = "{LONG}"'),
    "arm name 1001 characters": ABLATION.replace('name = "a"', f'name = "{LONG}"'),
    "arm genome 1001 characters": ABLATION.replace(GENOME, GENOME + " " * 1000),
    "nested 1000 arrays": f"{ABLATION}x = {'[' * 1000}{']' * 1000}\n",
    "inline tables 500 deep": f"{ABLATION}train = {'{a = ' * 500}1{'}' * 500}\n",
    "dotted key 1000 deep": f"{ABLATION}train.{'.'.join(['k'] * 1000)} = 1\n",
    "1000 nested tables": f"{ABLATION}[{'.'.join(['t'] * 1000)}]\n",
    "epochs 100001": f"epochs = 100001\n{ABLATION}",
    "seeds 2**32": f"seeds = [4294967296]\n{ABLATION}",
    "seeds 2**64": f"seeds = [{2**64}]\n{ABLATION}",
}


@pytest.mark.parametrize("name", list(ABLATION_CASES))
def test_ablation_file(name: str, world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (world / "a.toml").write_text(ABLATION_CASES[name])
    assert "a.toml" in _refused(world, ["ablate", "a.toml", "--no-train"], capsys)


def _nas(world: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`nas ARGV` as a real process in `world`, with the default storage there."""
    command = [sys.executable, "-c", "import sys; from nas.cli import main; sys.exit(main())"]
    return subprocess.run([*command, *argv], cwd=world, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "NAS_STORAGE": ""})


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nas: error: "), done.stderr
    return lines[0]


def test_an_ablation_file_nested_too_deep_is_one_line_in_a_real_process(world: Path) -> None:
    """tomllib's RecursionError is met at the real stack depth of `nas ablate`."""
    (world / "a.toml").write_text(ABLATION_CASES["nested 1000 arrays"])
    line = _one_line(_nas(world, "ablate", "a.toml", "--no-train"))
    assert line == "nas: error: a.toml: TOML syntax error: arrays or tables nested too deep"
    assert sorted(p.name for p in world.iterdir()) == ["a.toml"]


@pytest.mark.parametrize(("argv", "line"), [
    (["search", "--threads", "0"], "--threads must be an integer from 1 to 1024, got '0'"),
    (["search", "--trials", "abc"], "--trials: invalid int value: 'abc'"),
    (["delete"], "the following arguments are required: study"),
    (["report", "--bogus"], "unrecognized arguments: --bogus"),
    (["report", "--study", LONG], "--study must be at most 1000 characters, got 1001"),
], ids=["threads 0", "trials abc", "no study", "unknown flag", "study 1001 characters"])
def test_parser_errors_are_one_line_in_a_real_process(argv: list[str], line: str, world: Path) -> None:
    assert _one_line(_nas(world, *argv)) == f"nas: error: {line}"


# ----------------------------------------------------------------- an alembic_version not Optuna's (issue 22)


ALEMBIC = ("CREATE TABLE alembic_version (version_num TEXT)",
           "INSERT INTO alembic_version VALUES ('ae1027a6acf')", "CREATE TABLE studies (id INTEGER)")


@pytest.mark.parametrize("command", [
    ["search", "--space", "tiny.toml", "--data", "digits"], ["train", GENOME, "--space", "tiny.toml"],
    ["ablate", str(ABLATIONS / "report_genomes.toml"), "--no-train"], ["report"],
    ["export", "best", "--out", "x.pt"], ["delete", "x"]], ids=lambda c: c[0])
def test_another_programs_alembic_database_is_refused_before_any_table(
        command: list[str], world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Its `studies` table is not Optuna's: no nas_ or Optuna table is created, not a byte
    changes, and the line says whose database it is."""
    (world / "tiny.toml").write_text(TINY)
    before = _foreign(world / "other.db", *ALEMBIC)
    line = _refused(world, [*command, "--storage", "sqlite:///other.db"], capsys)
    assert "another program's database (tables alembic_version, studies)" in line
    assert (world / "other.db").read_bytes() == before


def test_an_older_optuna_schema_is_refused_before_any_table(world: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    import optuna

    optuna.create_study(study_name="plain", storage="sqlite:///old.db")
    with sqlite3.connect(world / "old.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'v3.0.0.d'")
    connection.close()
    before = (world / "old.db").read_bytes()
    line = _refused(world, ["train", GENOME, "--space", "tiny.toml", "--storage", "sqlite:///old.db"],
                    capsys)
    assert "its Optuna schema is v3.0.0.d" in line and "optuna storage upgrade" in line
    assert (world / "old.db").read_bytes() == before


@pytest.mark.parametrize("command", [["train", GENOME, "--space", "tiny.toml"],
                                     ["ablate", str(ABLATIONS / "report_genomes.toml")]],
                         ids=["train", "ablate"])
def test_a_refusal_after_the_database_opened_leaves_no_new_file(
        command: list[str], world: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The data cache fails after the store made studies.db: the file goes again."""
    (world / "tiny.toml").write_text(TINY)
    (world / "afile").write_text("not a folder")
    monkeypatch.setenv("NAS_CACHE_DIR", str(world / "afile"))
    assert "cannot write the data cache" in _refused(world, [*command, "--image-size", "8x8"], capsys)


# ----------------------------------------------------------------- report racing delete (issue 22)


@pytest.mark.parametrize("argv", [["report"], ["report", "--study", "a"], ["export", "best", "--study", "a"]],
                         ids=["the list", "one study", "export"])
def test_a_study_deleted_while_report_reads_it_is_one_line(
        argv: list[str], world: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A real `nas delete` lands between report's reading of the names and of the study."""
    from nas.store.runs import Store
    from nas.study.report import summary
    from nas.study.report.delete import delete_study
    from tests.studies import add_trial, new_study

    Store("sqlite:///studies.db").close()
    for name in ("a", "b"):
        add_trial(new_study("sqlite:///studies.db", name), GENOME, 1000, 100, val=0.5)
    names = summary.nas_study_names

    def then_delete(storage: object, asked: str | None = None) -> list[str]:
        found = names(storage, asked)
        delete_study("sqlite:///studies.db", "a")
        return found

    monkeypatch.setattr(summary, "nas_study_names", then_delete)
    code = main([*argv, *(["--out", "x.pt"] if argv[0] == "export" else [])])
    err = capsys.readouterr().err
    assert code == 2 and err.splitlines() == [
        "nas: error: sqlite:///studies.db: study 'a' is gone (deleted while read)"], err
