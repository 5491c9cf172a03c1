"""A search whose recipe distils nothing says so in one line, and never builds its teacher."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.cli import main
from nas.cli.common import resolve_space
from tests.conftest import make_image_folder
from tests.training import write_space


def test_search_says_its_teacher_was_not_used(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    folder = make_image_folder(tmp_path / "digits", 3, 8, 2, "d")
    missing = {"kind": "torchvision", "model": "resnet18", "weights": str(tmp_path / "missing.pt")}
    space = write_space(tmp_path, teacher=missing, distill={"loss": "none"})
    code = main(["search", "--space", str(space), "--data", str(folder), "--image-size", "8x8",
                 "--trials", "1", "--epochs", "1", "--storage", f"sqlite:///{tmp_path / 's.db'}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    text = " ".join((captured.out + captured.err).split())      # as one line, however it wrapped
    assert text.count('teacher not used: distill loss "none", cross-entropy only') == 1
    assert "teacher val" not in text


def test_photos_without_a_space_get_photos_toml_and_no_teacher(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The measured photo default (cross-entropy, photos.toml's views), not digits' recipe with a
    photo teacher; digits keep seed.toml."""
    import json

    from nas.store.runs import Store

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    folder = make_image_folder(tmp_path / "photos", 2, 6, 2, "p")
    storage = f"sqlite:///{tmp_path / 's.db'}"
    argv = ["train", "[1,8,1,1,0]", "--image-size", "16x16", "--epochs", "1", "--storage", storage,
            "--json"]
    assert main([*argv, "--data", str(folder)]) == 0
    assert json.loads(capsys.readouterr().out)["teacher"]["fingerprint"] == "none"
    store = Store(storage)
    (run,) = store.list_runs()
    store.close()
    assert Path(run.meta["space"]).name == "photos.toml"
    assert Path(resolve_space(None, "digits").path).name == "seed.toml"
    assert Path(resolve_space(None, "cifar10").path).name == "photos.toml"
