"""nas.train.teacher: trained once and cached by fingerprint, deterministic, accuracies recorded;
torchvision teachers with a projection, weights files loaded safely or refused in one line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from nas.cli.common import teacher_text
from nas.data.dataset import load_data
from nas.data.splits import resize
from nas.errors import SpaceError, TrainError
from nas.model.recipe import TeacherConfig
from nas.model.space import Space, parse_space
from nas.store.runs import Store
from nas.train import teacher as teacher_module
from nas.train import teacher_data
from nas.train.distill import accuracy
from nas.train.experiment import Context, prepare
from nas.train.teacher import NO_TEACHER, build_teacher, fingerprint, weak_teacher
from nas.train.trunk import TrunkTeacher
from tests.conftest import make_image_folder
from tests.training import FAST_TEACHER, STUDENT, space_text, states_equal, tiny_context, write_space


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Context:
    return tiny_context(tmp_path_factory.mktemp("teacher"))


def refuse(*args: object, **kwargs: object) -> None:
    raise AssertionError("the cached teacher was trained or evaluated again")


def test_second_prepare_reuses_teacher_and_bank(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not ctx.teacher.cached
    monkeypatch.setattr(teacher_module, "train", refuse)
    monkeypatch.setattr(teacher_module, "predict", refuse)
    again = prepare(ctx.space, "digits", ctx.store, size=(8, 8), device=ctx.device,
                    cache_dir=Path(ctx.store.url.removeprefix("sqlite:///")).parent / "cache")
    assert again.teacher.cached
    assert again.teacher.fingerprint == ctx.teacher.fingerprint
    assert (again.teacher.val_accuracy, again.teacher.test_accuracy) == (
        ctx.teacher.val_accuracy, ctx.teacher.test_accuracy)
    assert states_equal(again.teacher.model.state_dict(), ctx.teacher.model.state_dict())
    assert torch.equal(again.bank.features, ctx.bank.features)
    assert torch.equal(again.bank.logits, ctx.bank.logits)


def test_a_stored_teacher_with_stored_outputs_is_built_on_first_use(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """A search worker needs only the teacher's stored outputs: no model build, no weights read."""
    built = []
    build = teacher_module.build_teacher
    monkeypatch.setattr(teacher_module, "build_teacher", lambda *a: built.append(1) or build(*a))
    again = prepare(ctx.space, "digits", ctx.store, size=(8, 8), device=ctx.device,
                    cache_dir=Path(ctx.store.url.removeprefix("sqlite:///")).parent / "cache")
    assert teacher_text(again).startswith("teacher val ")          # what `nas search` prints
    assert built == [] and again.teacher.feature_dim == ctx.teacher.feature_dim
    assert states_equal(again.teacher.model.state_dict(), ctx.teacher.model.state_dict())
    assert again.teacher.model is again.teacher.model and built == [1]


def test_a_new_database_on_the_machine_copies_the_teacher_instead_of_training_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's cache folder keeps each trained teacher: another database copies it (a
    bench or a user starting a new study pays no teacher training); an unreadable file is
    trained over."""
    first = tiny_context(tmp_path)
    kept = tmp_path / "cache" / "teachers" / f"{first.teacher.fingerprint}.pt"
    assert not first.teacher.cached and kept.is_file()
    kept.write_bytes(b"not a teacher")
    retrained = tiny_context(tmp_path, db="retrained.db")      # and written over the bad file
    assert not retrained.teacher.cached
    monkeypatch.setattr(teacher_module, "train", refuse)
    second = tiny_context(tmp_path, db="other.db")
    assert second.teacher.cached and second.teacher.fingerprint == first.teacher.fingerprint
    assert states_equal(second.teacher.model.state_dict(), first.teacher.model.state_dict())
    assert (second.teacher.val_accuracy, second.teacher.test_accuracy) == (
        first.teacher.val_accuracy, first.teacher.test_accuracy)
    assert torch.equal(second.bank.logits, first.bank.logits)
    copied = second.store.get_teacher(first.teacher.fingerprint)      # the new database holds it
    written = retrained.store.get_teacher(first.teacher.fingerprint)
    assert copied is not None and written is not None
    assert (copied.weights, copied.history, copied.spec) == (written.weights, written.history,
                                                             written.spec)


def test_accuracies_and_history_are_recorded(ctx: Context) -> None:
    record = ctx.store.get_teacher(ctx.teacher.fingerprint)
    assert record is not None
    assert record.val_accuracy == ctx.teacher.val_accuracy
    assert record.test_accuracy == ctx.teacher.test_accuracy
    assert [row["epoch"] for row in record.history] == [1, 2]
    assert record.val_accuracy == max(row["val_accuracy"] for row in record.history)
    assert record.spec["genome"] == FAST_TEACHER["genome"] and record.spec["feature_dim"] == 32
    model = ctx.teacher.model
    assert accuracy(model, ctx.data.test, ctx.data.mean, ctx.data.std, ctx.device) == record.test_accuracy
    assert accuracy(model, ctx.data.val, ctx.data.mean, ctx.data.std, ctx.device) == record.val_accuracy
    assert ctx.bank.features.shape == (len(ctx.views.labels), 32)
    assert ctx.bank.logits.shape == (len(ctx.views.labels), 10)


def test_training_is_deterministic_across_databases(ctx: Context, tmp_path: Path) -> None:
    fresh = tiny_context(tmp_path)
    assert not fresh.teacher.cached and fresh.teacher.fingerprint == ctx.teacher.fingerprint
    assert states_equal(fresh.teacher.model.state_dict(), ctx.teacher.model.state_dict())
    assert fresh.teacher.val_accuracy == ctx.teacher.val_accuracy


def test_fingerprint_follows_spec_data_split_and_recipe(ctx: Context) -> None:
    space, data, views = ctx.space, ctx.data, ctx.views
    base = fingerprint(space.teacher, space, data, views)

    def key(space: Space = space, data: object = data) -> str:
        return fingerprint(space.teacher, space, data, views)  # type: ignore[arg-type]

    def with_teacher(**changes: object) -> Space:
        return replace(space, teacher=replace(space.teacher, **changes))

    changed = [
        key(with_teacher(epochs=3)), key(with_teacher(lr=1e-3)), key(with_teacher(attention="none")),
        key(with_teacher(genome="[1,16,1,1,1]")), key(with_teacher(feature_dim=64)),
        key(replace(space, train=replace(space.train, optimizer="sgd"))),
        key(data=replace(data, fingerprint="other split")),
    ]
    assert len({base, *changed}) == len(changed) + 1
    same = [key(replace(space, train=replace(space.train, epochs=99))),
            key(replace(space, distill=replace(space.distill, loss="logit", alpha=0.9)))]
    assert same == [base, base]


def test_a_teacher_of_every_training_image_serves_every_student_subset(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`images = "all"`: trained once, on the whole training split without views, whatever the
    student's subset; each subset gets its own outputs, on its own views."""
    every = {**FAST_TEACHER, "images": "all"}
    first = tiny_context(tmp_path, teacher=every, train={"epochs": 1, "train_per_class": 20})
    monkeypatch.setattr(teacher_module, "train", refuse)
    second = tiny_context(tmp_path, teacher=every, train={"epochs": 1, "train_per_class": 40})
    assert second.teacher.cached and second.teacher.fingerprint == first.teacher.fingerprint
    assert len(first.views.labels) == 200 and len(second.views.labels) == 400
    assert second.bank.logits.shape == (400, 10)
    whole = tiny_context(tmp_path, teacher=FAST_TEACHER, train={"epochs": 1})   # the same training
    assert whole.teacher.cached and whole.teacher.fingerprint == first.teacher.fingerprint
    record = first.store.get_teacher(first.teacher.fingerprint)
    assert record is not None and record.spec["images"] == "all"


def test_images_is_in_a_recipe_only_when_it_is_not_the_default() -> None:
    """Stored studies, runs and ablation arms keep their keys: the default adds no key."""
    space = parse_space(space_text(), "tiny.toml")
    assert "images" not in space.recipe()["teacher"]
    every = replace(space, teacher=replace(space.teacher, images="all"))
    assert every.recipe()["teacher"]["images"] == "all"
    with pytest.raises(SpaceError, match=r"teacher.images must be one of \['student', 'all'\], got 'some'"):
        parse_space(space_text(teacher={"images": "some"}), "tiny.toml")


# --- torchvision teachers, on a small image folder at 16x16 ---------------------------------

@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("images"), 3, 6, 3, "c")


def torchvision_space(folder: Path, **teacher: object) -> Space:
    table = {"kind": "torchvision", "model": "resnet18", "epochs": 1, "batch_size": 8,
             "image_size": 16, **teacher}
    return parse_space(space_text(teacher=table), str(folder / "space.toml"))


def test_resnet18_teacher_trains_one_epoch_at_16x16(folder: Path, tmp_path: Path) -> None:
    space = torchvision_space(folder)
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    ctx = prepare(space, str(folder), store, size=(16, 16), device=torch.device("cpu"), cache_dir=tmp_path)
    assert isinstance(ctx.teacher.model, TrunkTeacher) and not ctx.teacher.cached
    assert ctx.space.teacher.train == "all"             # weights none: the trunk trains too
    assert ctx.teacher.feature_dim == 32 and ctx.bank.features.shape == (len(ctx.views.labels), 32)
    assert ctx.bank.logits.shape[1] == 3
    record = store.get_teacher(ctx.teacher.fingerprint)
    assert record is not None and len(record.history) == 1 and record.spec["model"] == "resnet18"


def test_weights_file_is_loaded_cached_and_its_content_keys_the_cache(folder: Path,
                                                                     tmp_path: Path) -> None:
    torch.manual_seed(5)
    source = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pt"
    torch.save({"state_dict": source.state_dict()}, path)
    space = torchvision_space(folder, weights=str(path), feature_dim=16)
    built = build_teacher(space.teacher, space, classes=3)
    assert torch.equal(built.trunk[0].weight, source.conv1.weight)
    assert torch.equal(built.trunk[-1][1].bn2.running_var, source.layer4[1].bn2.running_var)
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    first = prepare(space, str(folder), store, size=(16, 16), device=torch.device("cpu"), cache_dir=tmp_path)
    again = prepare(space, str(folder), store, size=(16, 16), device=torch.device("cpu"), cache_dir=tmp_path)
    assert not first.teacher.cached
    assert again.teacher.cached and again.teacher.feature_dim == 16
    assert states_equal(again.teacher.model.state_dict(), first.teacher.model.state_dict())
    torch.manual_seed(6)                      # other weights at the same path: a new teacher
    torch.save({"state_dict": torchvision.models.resnet18().state_dict()}, path)
    third = prepare(space, str(folder), store, size=(16, 16), device=torch.device("cpu"), cache_dir=tmp_path)
    assert not third.teacher.cached and third.teacher.fingerprint != first.teacher.fingerprint


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("weights")
    (root / "garbage.pt").write_bytes(b"not a checkpoint \x00\x01" * 8)
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), root / "mobilenet.pt")
    torch.save(nn.Linear(3, 2), root / "module.pt")             # a pickled module, not a state_dict
    torch.save([torch.zeros(2)], root / "list.pt")
    return root


@pytest.mark.parametrize(("name", "message"), [
    ("garbage.pt", "is not a state_dict file that torch.load can read with weights_only=True"),
    ("module.pt", "is not a state_dict file that torch.load can read with weights_only=True"),
    ("mobilenet.pt", "does not fit torchvision's resnet18: Error(s) in loading state_dict for ResNet"),
    ("list.pt", "does not fit torchvision's resnet18: Expected state_dict to be dict-like"),
    ("missing.pt", "teacher.weights: no such file"),
])
def test_weights_that_do_not_fit_are_one_line_errors(bad_files: Path, name: str, message: str) -> None:
    config = TeacherConfig(kind="torchvision", model="resnet18", weights=str(bad_files / name))
    with pytest.raises(TrainError) as caught:
        build_teacher(config, parse_space(space_text()), classes=2)
    text = str(caught.value)
    assert message in text and "\n" not in text and len(text) < 500


def test_unknown_model_suggests_the_nearest(folder: Path) -> None:
    with pytest.raises(TrainError, match=r"unknown torchvision .* 'resnet81' \(did you mean `resnet18`\?\)"):
        build_teacher(TeacherConfig(kind="torchvision", model="resnet81"), parse_space(space_text()), 2)


def test_student_views_are_the_teachers_resized_and_cached(folder: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Every search worker reads the resized views from the cache instead of resizing again."""
    table = {"kind": "torchvision", "model": "resnet18", "image_size": 16}  # the teacher: 16x16
    space = parse_space(space_text(teacher=table, **{"train.augment": {"views": ["hflip", "blur"]}}),
                        str(folder / "space.toml"))
    data = load_data(str(folder), (8, 8), cache_dir=tmp_path)
    first = teacher_data.teacher_inputs(space, str(folder), data, cache_dir=tmp_path)
    count = len(data.train.labels)
    assert tuple(first.views.images.shape[-2:]) == (16, 16) and len(first.views.labels) > count
    assert torch.equal(first.student_views.images[:count], data.train.images)
    assert torch.equal(first.student_views.images[count:],
                       resize(first.views.images[count:], (8, 8)))
    monkeypatch.setattr(teacher_data, "resize", refuse)
    again = teacher_data.teacher_inputs(space, str(folder), data, cache_dir=tmp_path)
    assert torch.equal(again.student_views.images, first.student_views.images)
    assert again.student_views.fingerprint == first.student_views.fingerprint


def test_input_too_small_for_the_trunk_is_an_error(folder: Path, tmp_path: Path) -> None:
    space = torchvision_space(folder, model="squeezenet1_1")
    data = load_data(str(folder), (16, 16), cache_dir=tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    inputs = teacher_data.teacher_inputs(space, str(folder), data, cache_dir=tmp_path)
    with pytest.raises(TrainError, match=r"squeezenet1_1 cannot take 16x16 .*larger \[teacher\] image_size"):
        teacher_module.get_teacher(inputs, space, store, torch.device("cpu"), tmp_path)


def test_train_distill_none_needs_no_teacher(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A teacher that could not even load (its weights file is missing) is never touched."""
    from nas.cli import main

    teacher = {"kind": "torchvision", "model": "resnet18", "weights": str(tmp_path / "missing.pt")}
    write_space(tmp_path, teacher=teacher)
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    argv = ["train", STUDENT, "--epochs", "1", "--space", str(tmp_path / "space.toml"), "--data",
            "digits", "--image-size", "8x8", "--storage", f"sqlite:///{tmp_path / 'x.db'}",
            "--device", "cpu"]
    assert main([*argv, "--distill", "none", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["status"] == "ok" and row["teacher"]["fingerprint"] == "none"
    assert row["teacher"]["val_accuracy"] is None
    assert main([*argv, "--distill", "none"]) == 0
    assert 'teacher not used: distill loss "none", cross-entropy only' in capsys.readouterr().out
    assert main([*argv, "--json"]) == 2                       # with a teacher: the file is missing


def test_weak_teacher_warns_in_one_line() -> None:
    strong = replace(NO_TEACHER, load=nn.Identity, val_accuracy=0.9, test_accuracy=0.9)
    assert weak_teacher(strong.val_accuracy, 0.8) is None
    warning = weak_teacher(0.7, 0.75)
    assert warning is not None and "\n" not in warning
    assert "(70.0 %) is not above the best student's (75.0 %)" in warning and 'loss = "none"' in warning
    assert weak_teacher(NO_TEACHER.val_accuracy, 0.75) is None
