"""nas.train.distill: the loss formulas by hand, the cosine schedule as the loop applies it,
best-validation selection, NaN as a status, and the training-only Projector."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from nas.data.dataset import Split
from nas.model.builder import build_model
from nas.model.recipe import DistillConfig, TrainConfig
from nas.train import distill
from nas.train.distill import (
    Batches,
    EpochStats,
    Projector,
    TeacherBank,
    cosine_lr,
    hinton_kd,
    make_loss,
    make_optimizer,
    train,
)

FEATURE = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
T_FEATURE = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
LOGITS = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
T_LOGITS = torch.tensor([[1.0, 1.0], [3.0, 0.0]])
LABELS = torch.tensor([0, 1])
CPU = torch.device("cpu")



def softmax(row: list[float]) -> list[float]:
    total = sum(math.exp(v) for v in row)
    return [math.exp(v) / total for v in row]


def hand_mse() -> float:
    return ((1 - 0) ** 2 + (2 - 2) ** 2 + (0 - 1) ** 2 + (-1 - 1) ** 2) / 4          # 1.5


def hand_ce() -> float:
    return (-math.log(softmax([2, 0])[0]) - math.log(softmax([0, 1])[1])) / 2


def hand_kd(t: float) -> float:
    """sum_k p_t (log p_t - log p_s), averaged over the batch, times T^2."""
    total = 0.0
    for student, teacher in zip(LOGITS.tolist(), T_LOGITS.tolist(), strict=True):
        p_s = softmax([v / t for v in student])
        p_t = softmax([v / t for v in teacher])
        total += sum(q * (math.log(q) - math.log(p)) for p, q in zip(p_s, p_t, strict=True))
    return total / 2 * t * t


def loss_of(config: DistillConfig | None) -> float:
    return float(make_loss(config)(FEATURE, LOGITS, LABELS, T_FEATURE, T_LOGITS))


def test_cross_entropy_only_without_config() -> None:
    assert loss_of(None) == pytest.approx(hand_ce(), rel=1e-6)


def test_loss_none_is_cross_entropy_even_without_teacher_outputs() -> None:
    loss = make_loss(DistillConfig("none", alpha=0.3))(FEATURE, LOGITS, LABELS, None, None)
    assert float(loss) == pytest.approx(hand_ce(), rel=1e-6)


def test_float_inputs_pass_through_and_uint8_images_are_normalised() -> None:
    maps = torch.randn(4, 3, 2, 2, dtype=torch.float16)
    images = torch.full((4, 3, 2, 2), 51, dtype=torch.uint8)
    labels = torch.arange(4)
    x, y = Batches(maps, labels, (0.1, 0.1, 0.1), (2.0, 2.0, 2.0)).batch(torch.tensor([2, 0]))
    assert x.dtype == torch.float32 and torch.equal(x, maps[[2, 0]].float()) and y.tolist() == [2, 0]
    x, _ = Batches(images, labels, (0.1, 0.1, 0.1), (2.0, 2.0, 2.0)).batch(torch.tensor([1]))
    assert torch.allclose(x, torch.full((1, 3, 2, 2), (0.2 - 0.1) / 2.0))


def test_feature_loss_is_the_reports() -> None:
    expected = 0.7 * hand_mse() + 0.3 * hand_ce()
    assert loss_of(DistillConfig("feature", alpha=0.3)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("t", [1.0, 2.0, 4.0])
def test_logit_loss_is_hintons(t: float) -> None:
    assert float(hinton_kd(LOGITS, T_LOGITS, t)) == pytest.approx(hand_kd(t), rel=1e-5)
    expected = 0.25 * hand_kd(t) + 0.75 * hand_ce()
    assert loss_of(DistillConfig("logit", alpha=0.75, temperature=t)) == pytest.approx(expected, rel=1e-5)


def test_both_adds_feature_and_logit_terms() -> None:
    expected = 0.5 * (hand_mse() + hand_kd(2.0)) + 0.5 * hand_ce()
    assert loss_of(DistillConfig("both")) == pytest.approx(expected, rel=1e-5)


def test_kd_of_identical_logits_is_zero() -> None:
    assert float(hinton_kd(LOGITS, LOGITS.clone(), 2.0)) == pytest.approx(0.0, abs=1e-7)


def test_recipe_defaults_are_the_reports() -> None:
    config = TrainConfig()
    assert (config.optimizer, config.lr, config.lr_min_ratio, config.batch_size) == ("adam", 5e-3, 0.1, 32)
    optimizer = make_optimizer(list(nn.Linear(2, 2).parameters()), config)
    assert type(optimizer) is torch.optim.Adam and optimizer.param_groups[0]["lr"] == 5e-3


def test_cosine_endpoints_and_midpoint() -> None:
    config = TrainConfig(lr=5e-3, lr_min_ratio=0.1)
    assert cosine_lr(config, 0, 100) == pytest.approx(5e-3, rel=1e-12)
    assert cosine_lr(config, 100, 100) == pytest.approx(5e-4, rel=1e-12)
    assert cosine_lr(config, 50, 100) == pytest.approx((5e-3 + 5e-4) / 2, rel=1e-12)
    lrs = [cosine_lr(config, step, 100) for step in range(101)]
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))


# --- the loop, on synthetic 8x8 images -------------------------------------------------------

def synthetic(n: int = 64, classes: int = 2) -> tuple[Batches, Split]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 8, 8), generator=generator, dtype=torch.uint8)
    labels = torch.arange(n) % classes
    return Batches(images, labels, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), Split(images[:16], labels[:16])


def student() -> nn.Module:
    torch.manual_seed(0)
    return build_model("[1,8,1,1,0]", classes=2)


@pytest.fixture
def step_lrs() -> Iterator[list[float]]:
    """The lr of every optimizer step taken while the fixture is active."""
    lrs: list[float] = []
    handle = register_optimizer_step_pre_hook(lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"]))
    yield lrs
    handle.remove()


def test_loop_applies_the_cosine_schedule_per_step(step_lrs: list[float]) -> None:
    data, val = synthetic()
    config = TrainConfig(batch_size=16)
    result = train(student(), data, val, config, epochs=3, seed=0, device=CPU, loss_fn=make_loss(None))
    assert len(step_lrs) == 12
    assert step_lrs[0] == pytest.approx(config.lr, rel=1e-12)
    assert step_lrs == [cosine_lr(config, k, 12) for k in range(12)]
    assert step_lrs[-1] > config.lr * config.lr_min_ratio
    assert [row["lr"] for row in result.history] == [step_lrs[3], step_lrs[7], step_lrs[11]]


class StepClock:
    """time.perf_counter for the loop: `step` seconds pass per optimizer step, none otherwise."""

    def __init__(self) -> None:
        self.now, self.step = 0.0, 1.0
        self.handle = register_optimizer_step_pre_hook(lambda *args: self.tick())

    def tick(self) -> None:
        self.now += self.step


@pytest.fixture
def step_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[StepClock]:
    clock = StepClock()
    monkeypatch.setattr(distill.time, "perf_counter", lambda: clock.now)
    yield clock
    clock.handle.remove()


@pytest.mark.parametrize("step", [1.0, 1 / 32])
def test_a_wall_clock_schedule_spreads_the_cosine_over_the_seconds(step_lrs: list[float],
                                                                    step_clock: StepClock,
                                                                    step: float) -> None:
    """10 seconds of 4-step epochs at a second a step: two whole epochs, then 2 steps of the
    third, validated and kept in the history; each step's lr is the cosine at the seconds spent
    (a clock under a second too: 10/32 s of 1/32 s steps is the same schedule)."""
    data, val = synthetic()
    config = TrainConfig(batch_size=16)
    seen: list[EpochStats] = []
    step_clock.step = step
    result = train(student(), data, val, config, epochs=100, seed=0, device=CPU,
                   loss_fn=make_loss(None), callbacks=(seen.append,), seconds=10 * step)
    assert step_lrs == pytest.approx([cosine_lr(config, k, 10) for k in range(10)], rel=1e-12)
    assert [row["epoch"] for row in result.history] == [1, 2, 3] and result.status == "ok"
    assert [stats.epochs for stats in seen] == [3, 3, 3]   # progress: what the clock has left
    assert result.resume is None and result.state is not None


def test_epochs_cap_a_wall_clock_schedule(step_lrs: list[float], step_clock: StepClock) -> None:
    data, val = synthetic()
    config = TrainConfig(batch_size=16)
    result = train(student(), data, val, config, epochs=2, seed=0, device=CPU,
                   loss_fn=make_loss(None), seconds=100)
    assert len(step_lrs) == 8 and len(result.history) == 2
    assert step_lrs == pytest.approx([cosine_lr(config, k, 100) for k in range(8)], rel=1e-12)


def test_a_wall_clock_schedule_neither_stops_at_a_rung_nor_resumes() -> None:
    data, val = synthetic()
    with pytest.raises(ValueError, match="wall-clock schedule"):
        train(student(), data, val, TrainConfig(batch_size=16), epochs=3, seed=0, device=CPU,
              loss_fn=make_loss(None), stop_epoch=1, seconds=10)


def test_best_epoch_is_chosen_on_validation_only(monkeypatch: pytest.MonkeyPatch) -> None:
    data, val = synthetic()
    scripted = iter([0.25, 0.75, 0.5, 0.5])

    def fake_accuracy(model: nn.Module, split: Split, *args: object) -> float:
        assert split is val, "training evaluated something other than the validation split"
        return next(scripted)

    monkeypatch.setattr(distill, "accuracy", fake_accuracy)
    model = student()
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def snapshot(stats: EpochStats) -> None:
        snapshots[stats.epoch] = copy.deepcopy(model.state_dict())

    result = train(model, data, val, TrainConfig(batch_size=16), epochs=4, seed=0, device=CPU,
                   loss_fn=make_loss(None), callbacks=[snapshot])
    assert (result.status, result.best_epoch, result.val_accuracy) == ("ok", 2, 0.75)
    assert [row["val_accuracy"] for row in result.history] == [0.25, 0.75, 0.5, 0.5]
    assert result.state is not None
    assert all(torch.equal(result.state[k], snapshots[2][k]) for k in snapshots[2])
    assert not all(torch.equal(result.state[k], snapshots[4][k]) for k in snapshots[4])


@pytest.mark.parametrize("stop_epoch", [None, 3])
def test_training_ends_at_the_first_perfect_validation_epoch(monkeypatch: pytest.MonkeyPatch,
                                                             stop_epoch: int | None) -> None:
    """No later epoch could be selected (ties keep the first), so none is trained; a run staged
    for a rung ends complete, with nothing to resume."""
    data, val = synthetic()
    scripted = iter([0.5, 1.0, 1.0, 1.0])
    monkeypatch.setattr(distill, "accuracy", lambda *args: next(scripted))
    model = student()
    snapshots: list[dict[str, torch.Tensor]] = []
    result = train(model, data, val, TrainConfig(batch_size=16), epochs=4, seed=0, device=CPU,
                   loss_fn=make_loss(None), stop_epoch=stop_epoch,
                   callbacks=[lambda stats: snapshots.append(copy.deepcopy(model.state_dict()))])
    assert (result.status, result.best_epoch, result.val_accuracy) == ("ok", 2, 1.0)
    assert [row["epoch"] for row in result.history] == [1, 2] and result.resume is None
    assert result.state is not None
    assert all(torch.equal(result.state[k], v) for k, v in snapshots[-1].items())


def test_nan_loss_stops_with_status_keeping_the_best_epoch() -> None:
    data, val = synthetic()
    calls = {"n": 0}
    ce = make_loss(None)

    def poisoned(*args: torch.Tensor | None) -> torch.Tensor:
        calls["n"] += 1
        loss = ce(*args)
        return loss * float("nan") if calls["n"] > 4 else loss     # epoch 2 onwards

    result = train(student(), data, val, TrainConfig(batch_size=16), epochs=3, seed=0, device=CPU,
                   loss_fn=poisoned)
    assert result.status == "nan"
    assert [row["epoch"] for row in result.history] == [1]
    assert result.best_epoch == 1 and result.state is not None
    assert calls["n"] == 8          # the epoch ends (one host sync per epoch), then stops


def test_exploding_lr_gives_nan_status_not_a_crash() -> None:
    data, val = synthetic()
    result = train(student(), data, val, TrainConfig(batch_size=16, lr=1e30), epochs=3, seed=0,
                   device=CPU, loss_fn=make_loss(None))
    assert result.status == "nan"
    assert len(result.history) < 3


def test_projector_matches_teacher_width_and_stays_out_of_the_state() -> None:
    data, val = synthetic()
    model = student()
    before = copy.deepcopy(model.state_dict())
    generator = torch.Generator().manual_seed(1)
    bank = TeacherBank(torch.randn(64, 48, generator=generator), torch.randn(64, 2, generator=generator))
    wrapped = Projector(model, model.feature_dim, 48)
    feature, logits = wrapped(data.batch(torch.arange(4))[0], return_features=True)
    assert feature.shape == (4, 48) and logits.shape == (4, 2)
    result = train(wrapped, data, val, TrainConfig(batch_size=16), epochs=1, seed=0, device=CPU,
                   loss_fn=make_loss(DistillConfig("feature")), bank=bank)
    assert result.state is not None and result.state.keys() == before.keys()
    assert not any("project" in key for key in result.state)
    assert not torch.equal(result.state["classifier.weight"], before["classifier.weight"])
