"""nas.train.experiment.train_genome: bit-identical reruns, what is stored, best-validation weights
tested once, NaN as a stored status, and the projector kept out of the student."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nas.data import folders
from nas.data.dataset import Split
from nas.model.builder import build_model
from nas.model.complexity import count
from nas.model.genome import Genome
from nas.model.space import parse_space
from nas.store.runs import Store, bytes_to_state
from nas.train import distill, experiment
from nas.train.distill import EpochStats, accuracy
from nas.train.experiment import Context, train_genome
from tests.training import FAST_TEACHER, STUDENT, space_text, states_equal, tiny_context

GENOME = Genome.parse(STUDENT, "eca")



@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Context:
    return tiny_context(tmp_path_factory.mktemp("experiment"))


@pytest.fixture(scope="module")
def wide_ctx(tmp_path_factory: pytest.TempPathFactory) -> Context:
    """A teacher whose feature is 64 wide while the tiny space's student head is 32."""
    return tiny_context(tmp_path_factory.mktemp("wide"), teacher={**FAST_TEACHER, "feature_dim": 64})


def with_train(ctx: Context, **changes: object) -> Context:
    return replace(ctx, space=replace(ctx.space, train=replace(ctx.space.train, **changes)))


def without_timing(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_same_seed_is_bit_identical(ctx: Context) -> None:
    first = train_genome(ctx, GENOME, epochs=2, seed=7)
    second = train_genome(ctx, GENOME, epochs=2, seed=7)
    assert first.id != second.id
    assert without_timing(first.history) == without_timing(second.history)
    assert (first.val_accuracy, first.test_accuracy) == (second.val_accuracy, second.test_accuracy)
    assert first.weights == second.weights
    assert states_equal(bytes_to_state(first.weights), bytes_to_state(second.weights))
    other = train_genome(ctx, GENOME, epochs=2, seed=8)
    assert not states_equal(bytes_to_state(first.weights), bytes_to_state(other.weights))


def test_run_is_stored_with_genome_recipe_seed_history_and_weights(ctx: Context) -> None:
    run = train_genome(ctx, GENOME, epochs=3, seed=1)
    stored = ctx.store.get_run(run.id)
    size = count(GENOME, ctx.space, shape=ctx.shape, classes=10)
    assert (stored.genome, stored.attention, stored.seed, stored.status) == (STUDENT, "eca", 1, "ok")
    assert (stored.flops, stored.params) == (size.flops, size.params)
    assert stored.recipe["train"]["epochs"] == 3
    assert stored.recipe["train"]["lr"] == 5e-3 and stored.recipe["distill"]["loss"] == "feature"
    assert stored.teacher_fingerprint == ctx.teacher.fingerprint
    assert stored.data_fingerprint == ctx.data.fingerprint
    assert [row["epoch"] for row in stored.history] == [1, 2, 3]
    assert stored.val_accuracy == max(row["val_accuracy"] for row in stored.history)
    assert stored.history[stored.best_epoch - 1]["val_accuracy"] == stored.val_accuracy
    assert stored.meta["classes"] == [str(d) for d in range(10)] and stored.meta["input"] == "3x8x8"


def test_stored_weights_reproduce_the_stored_test_accuracy(ctx: Context) -> None:
    run = train_genome(ctx, GENOME, epochs=2, seed=2)
    stored = ctx.store.get_run(run.id)
    model = build_model(GENOME, ctx.space, classes=10)
    model.load_state_dict(bytes_to_state(stored.weights))
    assert accuracy(model, ctx.data.test, ctx.data.mean, ctx.data.std, ctx.device) == stored.test_accuracy
    assert accuracy(model, ctx.data.val, ctx.data.mean, ctx.data.std, ctx.device) == stored.val_accuracy


@pytest.fixture
def scripted_val(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Validation accuracy 0.2, 0.6, 0.4, 0.3 per epoch; test accuracy calls are recorded."""
    scripted = iter([0.2, 0.6, 0.4, 0.3])
    calls: list[str] = []
    real = experiment.accuracy

    def fake_val(model: torch.nn.Module, split: Split, *args: object) -> float:
        assert split is ctx.data.val, "training looked at a split other than validation"
        return next(scripted)

    def counted(model: torch.nn.Module, split: Split, *args: object) -> float:
        calls.append("test" if split is ctx.data.test else "other")
        return real(model, split, *args)

    monkeypatch.setattr(distill, "accuracy", fake_val)
    monkeypatch.setattr(experiment, "accuracy", counted)
    yield calls


def test_best_validation_epoch_is_stored_and_tested_once(ctx: Context, scripted_val: list[str]) -> None:
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    models: list[torch.nn.Module] = []
    real_build = build_model

    def spy_build(*args: object, **kwargs: object) -> torch.nn.Module:
        models.append(real_build(*args, **kwargs))
        return models[-1]

    def snapshot(stats: EpochStats) -> None:
        snapshots[stats.epoch] = copy.deepcopy(models[0].state_dict())

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("nas.train.experiment.build_model", spy_build)
        run = train_genome(ctx, GENOME, epochs=4, seed=3, callbacks=(snapshot,))
    assert (run.best_epoch, run.val_accuracy) == (2, 0.6)
    stored = bytes_to_state(ctx.store.get_run(run.id).weights)
    assert states_equal(stored, snapshots[2])
    assert not states_equal(stored, snapshots[4])
    assert scripted_val == ["test"]
    model = real_build(GENOME, ctx.space, classes=10)
    model.load_state_dict(stored)
    assert run.test_accuracy == accuracy(model, ctx.data.test, ctx.data.mean, ctx.data.std, ctx.device)


def test_exploding_lr_stores_status_nan(ctx: Context) -> None:
    run = train_genome(with_train(ctx, lr=1e30), GENOME, epochs=3, seed=0)
    stored = ctx.store.get_run(run.id)
    assert stored.status == run.status == "nan"
    assert len(stored.history) < 3


def test_nan_loss_from_epoch_two_keeps_epoch_one(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = -(-len(ctx.batches.labels) // ctx.space.train.batch_size)
    calls = {"n": 0}
    real = experiment.make_loss

    def poisoned_loss(config: object) -> distill.LossFn:
        loss = real(config)

        def inner(*args: torch.Tensor | None) -> torch.Tensor:
            calls["n"] += 1
            return loss(*args) * (float("nan") if calls["n"] > steps else 1.0)
        return inner

    monkeypatch.setattr(experiment, "make_loss", poisoned_loss)
    run = train_genome(ctx, GENOME, epochs=3, seed=0)
    stored = ctx.store.get_run(run.id)
    assert (stored.status, stored.best_epoch, len(stored.history)) == ("nan", 1, 1)
    assert stored.weights is not None and stored.test_accuracy is not None


def test_projector_trains_a_wider_teacher_but_is_not_stored(wide_ctx: Context,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert wide_ctx.teacher.feature_dim == 64 and wide_ctx.bank.features.shape[1] == 64
    built: list[distill.Projector] = []

    class Spy(distill.Projector):
        def __init__(self, student: torch.nn.Module, student_dim: int, teacher_dim: int) -> None:
            super().__init__(student, student_dim, teacher_dim)
            built.append(self)

    monkeypatch.setattr(experiment, "Projector", Spy)
    run = train_genome(wide_ctx, GENOME, epochs=1, seed=0)
    assert len(built) == 1 and built[0].project.weight.shape == (64, 32)
    state = bytes_to_state(run.weights)
    assert state.keys() == build_model(GENOME, wide_ctx.space, classes=10).state_dict().keys()
    assert not any("project" in key for key in state)
    size = count(GENOME, wide_ctx.space, shape=wide_ctx.shape, classes=10)
    assert (run.flops, run.params) == (size.flops, size.params)


def test_logit_loss_needs_no_projector(wide_ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("a projector was built for the logit loss")

    monkeypatch.setattr(experiment, "Projector", refuse)
    space = replace(wide_ctx.space, distill=replace(wide_ctx.space.distill, loss="logit"))
    run = train_genome(replace(wide_ctx, space=space), GENOME, epochs=1, seed=0)
    assert run.status == "ok" and run.recipe["distill"]["loss"] == "logit"



def test_a_setup_scans_its_image_folder_once(image_folder: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks, the student's data (8x8) and the teacher's (16x16) read one scan: on
    CIFAR-10 each scan stats 60,000 files."""
    scans = []
    scan = folders._scan
    monkeypatch.setattr(folders, "_scan", lambda root: scans.append(root) or scan(root))
    space = parse_space(space_text(teacher={**FAST_TEACHER, "image_size": 16}),
                        str(tmp_path / "space.toml"))
    ctx = experiment.prepare(space, str(image_folder), Store(f"sqlite:///{tmp_path / 'x.db'}"),
                             size=(8, 8), device=torch.device("cpu"), cache_dir=tmp_path)
    assert ctx.data.image_size == (8, 8) and ctx.views.images.shape[-1] == 8
    assert scans == [image_folder]
