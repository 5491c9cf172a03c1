"""The `timm` teacher kind (a row of TEACHERS): timm's tiny `test_efficientnet` with a weights file
written here runs `nas teacher` then `nas train --distill` end to end; its frozen trunk keeps the
file's weights; pretrained weights load from a cache on disk and are refused in one line when
absent, without the network."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import timm
import torch

from nas.cli import main
from nas.errors import SpaceError, TrainError
from nas.model.pretrained import WeightsError
from nas.model.recipe import TeacherConfig
from nas.model.space import parse_space
from nas.model.teachers import IMAGENET, TEACHERS
from nas.store.runs import Store, bytes_to_state
from nas.train.trunk import input_stats
from tests.conftest import make_image_folder
from tests.training import STUDENT, space_text, write_space

MODEL = "test_efficientnet"          # timm's own 99K-parameter test model, 256 trunk channels
HUB_ID = "timm/test_efficientnet.r160_in1k"
TEACHER = {"kind": "timm", "model": MODEL, "image_size": 16, "epochs": 1, "batch_size": 64}


def timm_weights(path: Path, classes: int = 5, seed: int = 1) -> dict[str, torch.Tensor]:
    """A full timm classifier's state_dict (its own class count), saved to `path`."""
    torch.manual_seed(seed)
    state = timm.create_model(MODEL, num_classes=classes).state_dict()
    torch.save(state, path)
    return state


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a timm teacher touched the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("timm")
    make_image_folder(root / "photos", 3, 6, 3, "c")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NAS_CACHE_DIR", str(root / "cache"))
        yield root


def flags(root: Path) -> list[str]:
    return ["--space", str(root / "space.toml"), "--data", str(root / "photos"), "--image-size", "8x8",
            "--storage", f"sqlite:///{root / 'x.db'}", "--device", "cpu", "--quiet", "--json"]


def one_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return json.loads(capsys.readouterr().out)


def test_timm_teacher_runs_end_to_end(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`nas teacher`, then `nas train --distill both`: the student distils from the timm trunk."""
    written = timm_weights(workdir / "teacher.pt")
    write_space(workdir, teacher={**TEACHER, "weights": str(workdir / "teacher.pt")})
    assert main(["teacher", *flags(workdir)]) == 0
    teacher = one_json(capsys)
    assert teacher["kind"] == "timm" and teacher["cached"] is False
    record = Store(f"sqlite:///{workdir / 'x.db'}").get_teacher(teacher["fingerprint"])
    assert record is not None and record.spec["train"] == "head"      # a weights file: frozen
    state = bytes_to_state(record.weights)
    trunk = {key.removeprefix("trunk.net."): value for key, value in state.items()
             if key.startswith("trunk.net.")}
    kept = {key: value for key, value in written.items() if not key.startswith("classifier.")}
    assert trunk.keys() == kept.keys()
    assert all(torch.equal(trunk[key], kept[key]) for key in kept)    # the file's, untouched
    assert state["head.project.0.weight"].shape[1] == 256             # the trunk's width
    assert main(["train", STUDENT, "--distill", "both", "--epochs", "1", *flags(workdir)]) == 0
    run = one_json(capsys)
    assert run["status"] == "ok" and run["teacher"]["fingerprint"] == teacher["fingerprint"]
    assert run["teacher"]["cached"] is True


def test_stats_and_size_come_from_the_row() -> None:
    kind = TEACHERS["timm"]
    assert kind.stats is not None and kind.stats(MODEL) == IMAGENET
    assert kind.stats("tf_efficientnet_lite0") == ((0.5,) * 3, (0.5,) * 3)
    assert kind.side == 224
    config = TeacherConfig(kind="timm", model=MODEL, weights="x.pt")
    data = type("Data", (), {"mean": (0.1, 0.2, 0.3), "std": (0.4, 0.5, 0.6)})()
    assert input_stats(config, data) == IMAGENET       # type: ignore[arg-type]
    assert input_stats(TeacherConfig(kind="timm", model=MODEL), data) == (data.mean, data.std)  # type: ignore[arg-type]


def test_pretrained_weights_load_from_the_hub_cache_on_disk(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants
    from safetensors.torch import save_file

    state = timm.create_model(MODEL).state_dict()
    snapshot = tmp_path / f"models--{HUB_ID.replace('/', '--')}" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc")
    save_file(state, str(snapshot / "model.safetensors"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    trunk = TEACHERS["timm"].build_trunk(MODEL, "pretrained")
    assert trunk.width == 256
    loaded = trunk.module.state_dict()
    assert all(torch.equal(loaded[f"net.{key}"], value) for key, value in state.items()
               if not key.startswith("classifier."))
    assert TEACHERS["timm"].pretrained_file is not None
    assert TEACHERS["timm"].pretrained_file(MODEL) == snapshot / "model.safetensors"


def test_pretrained_weights_not_on_disk_are_one_line(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsError) as caught:
        TEACHERS["timm"].build_trunk(MODEL, "pretrained")
    text = str(caught.value)
    assert "\n" not in text and text.startswith(
        f"teacher.weights = 'pretrained': timm's {MODEL} weights are not on disk ({HUB_ID})")


def test_bad_names_and_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(TrainError, match=r"^teacher.model: unknown timm model 'test_efficientnot' "
                                         r"\(did you mean `test_efficientnet`"):
        TEACHERS["timm"].build_trunk("test_efficientnot", "none")
    torch.save(timm.create_model("test_resnet").state_dict(), tmp_path / "other.pt")
    with pytest.raises(TrainError) as caught:
        TEACHERS["timm"].build_trunk(MODEL, str(tmp_path / "other.pt"))
    assert f"{tmp_path / 'other.pt'} does not fit timm's {MODEL}: " in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_recipe_checks_the_kind_against_the_table() -> None:
    assert parse_space(space_text(teacher=TEACHER), "s.toml").teacher.kind == "timm"
    with pytest.raises(SpaceError, match=r"teacher.kind must be one of \['auto', 'genome', 'lite', "
                                         r"'torchvision', 'timm'\], got 'timn' \(did you mean `timm`"):
        parse_space(space_text(teacher={**TEACHER, "kind": "timn"}), "s.toml")
