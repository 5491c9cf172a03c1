"""The stratified training subset (`train_per_class`) and the validation size (`val_per_class`):
exact counts, a fixed seed, nesting, fingerprints, one-line refusals, and cache reuse."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import nas.data.folders
from nas.cli import main
from nas.data.dataset import load_data
from nas.errors import DataError, SpaceError
from nas.model.recipe import TrainConfig
from nas.store.runs import Store
from tests.conftest import make_image_folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three classes (digits 0-2), 12 training and 2 test images each."""
    return make_image_folder(tmp_path / "folder", 3, 12, 2, "c")


def _rows(split: object) -> set[bytes]:
    return {image.numpy().tobytes() for image in split.images}      # type: ignore[attr-defined]


def test_subset_counts_are_stratified_and_test_is_whole(folder: Path, tmp_path: Path) -> None:
    data = load_data(str(folder), (8, 8), train_per_class=4, val_per_class=3, cache_dir=tmp_path)
    assert torch.bincount(data.train.labels).tolist() == [4, 4, 4]
    assert torch.bincount(data.val.labels).tolist() == [3, 3, 3]
    assert torch.bincount(data.test.labels).tolist() == [2, 2, 2]
    assert not _rows(data.train) & _rows(data.val)


def test_subset_has_a_fixed_seed_and_nests(folder: Path, tmp_path: Path) -> None:
    small = load_data(str(folder), (8, 8), train_per_class=3, val_per_class=2, cache_dir=tmp_path)
    again = load_data(str(folder), (8, 8), train_per_class=3, val_per_class=2, cache_dir=tmp_path)
    large = load_data(str(folder), (8, 8), train_per_class=6, val_per_class=2, cache_dir=tmp_path)
    other = load_data(str(folder), (8, 8), train_per_class=3, val_per_class=2, split_seed=1,
                      cache_dir=tmp_path)
    assert torch.equal(small.train.images, again.train.images)
    assert _rows(small.train) < _rows(large.train)               # a smaller subset is a prefix
    assert torch.equal(small.val.images, large.val.images)        # validation never depends on N
    assert _rows(small.train) != _rows(other.train)


def test_whole_set_keeps_its_split_and_fingerprint(folder: Path, tmp_path: Path) -> None:
    default = load_data(str(folder), (8, 8), cache_dir=tmp_path)
    zero = load_data(str(folder), (8, 8), train_per_class=0, val_per_class=0, cache_dir=tmp_path)
    assert zero.fingerprint == default.fingerprint
    assert torch.equal(zero.train.images, default.train.images)
    assert torch.bincount(default.val.labels).tolist() == [2, 2, 2]     # round(0.2 * 12)


def test_fingerprint_changes_with_the_subset(folder: Path, tmp_path: Path) -> None:
    prints = {load_data(str(folder), (8, 8), train_per_class=n, val_per_class=v,
                        cache_dir=tmp_path).fingerprint
              for n, v in ((0, 0), (3, 0), (4, 0), (3, 2))}
    assert len(prints) == 4


def test_subset_reuses_the_decoded_cache(folder: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    load_data(str(folder), (8, 8), cache_dir=tmp_path)

    def fail(data: bytes, size: tuple[int, int]) -> None:
        raise RuntimeError("decoded again")

    monkeypatch.setattr(nas.data.folders, "decode_image", fail)
    data = load_data(str(folder), (8, 8), train_per_class=5, cache_dir=tmp_path)
    assert len(data.train.labels) == 15


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"train_per_class": 11}, "train_per_class 11 is more than class 'c0' holds: 12 images, 2 held"
                              " for validation, at most 10 to train on"),
    ({"val_per_class": 12}, "class 'c0' has 12 image(s): too few to hold 12 for validation"),
    ({"train_per_class": 1}, "train_per_class must be 0 (all) or at least 2"),
])
def test_bad_subsets_are_refused(folder: Path, tmp_path: Path, kwargs: dict[str, int],
                                 message: str) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_data(str(folder), (8, 8), cache_dir=tmp_path, **kwargs)


def test_space_keys_are_checked() -> None:
    TrainConfig(train_per_class=2, val_per_class=1).check("[train]")
    with pytest.raises(SpaceError, match=r"\[train\].train_per_class must be 0 \(all\) or between 2"):
        TrainConfig(train_per_class=1).check("[train]")
    with pytest.raises(SpaceError, match=r"\[train\].val_per_class must be between 0"):
        TrainConfig(val_per_class=-1).check("[train]")


@pytest.mark.parametrize(("flags", "message"), [
    (["--train-per-class", "11"], "nas: error: train_per_class 11 is more than class 'c0' holds"),
    (["--train-per-class", "1"], "nas: error: --train-per-class/--val-per-class: [train]"
                                 ".train_per_class must be 0 (all) or between 2"),
    (["--val-per-class", "12"], "nas: error: class 'c0' has 12 image(s): too few to hold 12"),
])
def test_cli_refuses_bad_subsets_in_one_line(folder: Path, tmp_path: Path, flags: list[str],
                                             message: str, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    assert main(_train(folder, tmp_path, "--quiet", *flags)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and len(err.splitlines()) == 1
    assert not (tmp_path / "s.db").exists()


def test_cli_trains_on_the_subset(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    assert main(_train(folder, tmp_path, "--json", "--train-per-class", "4", "--val-per-class", "2")) == 0
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    (run,) = store.list_runs()
    store.close()
    assert run.recipe["train"]["train_per_class"] == 4
    assert run.recipe["train"]["val_per_class"] == 2


def _train(folder: Path, tmp_path: Path, *flags: str) -> list[str]:
    return ["train", "[1,8,1,1,0]", "--data", str(folder), "--image-size", "8x8", "--distill", "none",
            "--epochs", "1", "--storage", f"sqlite:///{tmp_path / 's.db'}", *flags]


def test_default_study_name_names_the_subset() -> None:
    from dataclasses import replace

    from nas.model.space import load_space
    from nas.study.search.loop import Budget, default_study_name

    space = load_space("tiny.toml")
    subset = replace(space, train=replace(space.train, train_per_class=50))
    assert default_study_name(space, "data/cifar10", (32, 32), Budget()) == "tiny-cifar10-32x32-nobudget"
    assert default_study_name(subset, "data/cifar10", (32, 32), Budget()) == "tiny-cifar10-n50-32x32-nobudget"
