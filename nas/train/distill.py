"""Distillation losses and the training loop.

The loop trains any model that answers `model(x, return_features=True)` with (feature, logits)
(students, teachers, the projector) on fixed views of the training set,
optionally against a bank of teacher outputs computed once per view, and keeps
the weights of the epoch with the best *validation* accuracy. It knows nothing
about the terminal: progress goes to callbacks.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from nas.data.dataset import Split, normalize
from nas.model.builder import Output
from nas.model.recipe import MAX_EPOCHS, DistillConfig, TrainConfig


@dataclass(frozen=True)
class Batches:
    """Normalised tensors the loop reads from: fixed training views, labels, and means/stds."""

    images: torch.Tensor      # uint8 (N, C, H, W), or a frozen trunk's float outputs
    labels: torch.Tensor      # int64 (N,)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return model_input(self.images[index], self.mean, self.std), self.labels[index]


def model_input(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 images normalised by mean/std; float inputs (cached trunk outputs) as float32."""
    if images.dtype == torch.uint8:
        return normalize(images, tuple(mean), tuple(std))
    return images.float()


@dataclass(frozen=True)
class TeacherBank:
    """Teacher features and logits for every training view, computed once."""

    features: torch.Tensor    # (N, D)
    logits: torch.Tensor      # (N, K)


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    epochs: int
    loss: float
    val_accuracy: float
    lr: float
    seconds: float

    @property
    def perfect(self) -> bool:
        """Every validation image right: nothing better can be selected, so training stops."""
        return self.val_accuracy >= 1.0


@dataclass
class TrainResult:
    """Outcome of one training: status 'ok' or 'nan', per-epoch history, best-val weights."""

    status: str
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    val_accuracy: float | None = None
    state: dict[str, torch.Tensor] | None = None
    resume: Resume | None = None      # set when `train` stopped early at `stop_epoch`


@dataclass
class Resume:
    """Where a training stopped before the end of its schedule, to go on from there as an
    exact prefix (multi-fidelity rungs): the last epoch done, the optimizer, the shuffler."""

    epoch: int
    optimizer: torch.optim.Optimizer
    generator: torch.Generator


EpochCallback = Callable[[EpochStats], None]
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None,
                   torch.Tensor | None], torch.Tensor]


def make_loss(config: DistillConfig | None) -> LossFn:
    """The loss over (student feature, student logits, labels, teacher feature, teacher logits).

    None or loss "none": plain cross-entropy (the teacher itself, and the honest baseline)."""
    def loss(feature: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
             t_feature: torch.Tensor | None, t_logits: torch.Tensor | None) -> torch.Tensor:
        ce = F.cross_entropy(logits, labels)
        if config is None or config.loss == "none":
            return ce
        soft = torch.zeros((), device=logits.device)
        if config.loss in ("feature", "both"):
            soft = soft + F.mse_loss(feature, t_feature)
        if config.loss in ("logit", "both"):
            soft = soft + hinton_kd(logits, t_logits, config.temperature)
        return (1 - config.alpha) * soft + config.alpha * ce
    return loss


def hinton_kd(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) at temperature T, scaled by T^2 (Hinton et al., 2015)."""
    t = temperature
    return F.kl_div(F.log_softmax(logits / t, 1), F.softmax(teacher_logits / t, 1),
                    reduction="batchmean") * t * t


class Projector(nn.Module):
    """Wraps a student so its feature matches the teacher's width (training only)."""

    def __init__(self, student: nn.Module, student_dim: int, teacher_dim: int) -> None:
        super().__init__()
        self.student = student
        self.project = nn.Linear(student_dim, teacher_dim, bias=False)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> Output:
        feature, logits = self.student(x, return_features=True)
        return (self.project(feature), logits) if return_features else logits


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, mean: Sequence[float], std: Sequence[float],
            device: torch.device, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, logits) of `model` in eval mode over uint8 images, in batches."""
    model.eval()
    features, logits = [], []
    for start in range(0, len(images), batch_size):
        chunk = model_input(images[start:start + batch_size].to(device), mean, std)
        feature, logit = model(chunk, return_features=True)
        features.append(feature.float().cpu())
        logits.append(logit.float().cpu())
    return torch.cat(features), torch.cat(logits)


def accuracy(model: nn.Module, split: Split, mean: Sequence[float], std: Sequence[float],
             device: torch.device) -> float:
    """Top-1 accuracy of `model` on a split."""
    _, logits = predict(model, split.images, mean, std, device)
    return float((logits.argmax(1) == split.labels).float().mean())


def make_optimizer(params: Sequence[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, config.lr, momentum=0.9, weight_decay=config.weight_decay)
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(params, config.lr, weight_decay=config.weight_decay)


def cosine_lr(config: TrainConfig, step: float, total: int) -> float:
    """Cosine decay from lr to lr_min_ratio * lr over `total` steps (the seed report's schedule);
    a wall clock's share spent is `step` of a `total` of 1."""
    ratio = config.lr_min_ratio
    return config.lr * (ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * step / max(1, total))))


LrAt = Callable[[int], float | None]


def step_schedule(config: TrainConfig, total_steps: int, seconds: float | None,
                  started: float) -> LrAt:
    """Each step's lr: the cosine over `total_steps`, or with `seconds`, over the wall clock
    since `started` (budgeted training, Li et al. 2020), None once they are spent."""
    if seconds is None:
        return lambda step: cosine_lr(config, step, total_steps)

    def by_clock(step: int) -> float | None:
        spent = time.perf_counter() - started
        return None if spent >= seconds else cosine_lr(config, spent / seconds, 1)
    return by_clock


def schedule_epochs(epochs: int | None, seconds: float | None, default: int) -> int:
    """The epochs a schedule spans: `epochs` if given, else `default`; on a wall clock of
    `seconds` the epochs only cap it, so unset they are MAX_EPOCHS."""
    return epochs or (MAX_EPOCHS if seconds else default)


def train(model: nn.Module, data: Batches, val: Split, config: TrainConfig, *,
          epochs: int, seed: int, device: torch.device, loss_fn: LossFn,
          bank: TeacherBank | None = None,
          callbacks: Sequence[EpochCallback] = (), stop_epoch: int | None = None,
          resume: TrainResult | None = None, seconds: float | None = None) -> TrainResult:
    """Train `model`; select the epoch with the best validation accuracy (the first, on ties).

    The schedule spans `epochs`; `stop_epoch` stops after that epoch (the result's `resume` is
    set), and `resume=` that result goes on with the same model, so stopping and resuming gives
    bit-identical weights to one straight run. Training ends at the first epoch with perfect
    validation accuracy: no later epoch could be selected, so the rest would change nothing.

    With `seconds`, the schedule is the wall clock's (`step_schedule`): training stops at the
    first step past them, validates that last (partial) epoch, and ends; `epochs` only caps it.
    Such a run neither stops at a rung nor resumes."""
    if seconds is not None and ((stop_epoch or epochs) < epochs or resume is not None):
        raise ValueError("a wall-clock schedule neither stops at a rung nor resumes")
    clock_started = time.perf_counter()
    if resume is not None and resume.resume is not None:
        result, done = resume, resume.resume
        generator, optimizer, first = done.generator, done.optimizer, done.epoch + 1
        result.resume = None
    else:
        generator = torch.Generator().manual_seed(seed)
        optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], config)
        result, first = TrainResult(status="ok"), 1
    steps_per_epoch = math.ceil(len(data.labels) / config.batch_size)
    last = min(epochs, stop_epoch or epochs)
    lr_at = step_schedule(config, epochs * steps_per_epoch, seconds, clock_started)
    for epoch in range(first, last + 1):
        started = time.perf_counter()
        if seconds is not None and started - clock_started >= seconds:
            break
        order = torch.randperm(len(data.labels), generator=generator)
        loss = _epoch(model, data, bank, order, optimizer, config, loss_fn,
                      (epoch - 1) * steps_per_epoch, lr_at)
        if not math.isfinite(loss):
            result.status = "nan"
            break
        evaluated = model.student if isinstance(model, Projector) else model
        val_accuracy = accuracy(evaluated, val, data.mean, data.std, device)
        now = time.perf_counter()
        stats = EpochStats(epoch, _planned(epoch, epochs, seconds, now - clock_started, now - started),
                           loss, val_accuracy, optimizer.param_groups[0]["lr"], now - started)
        result.history.append({"epoch": epoch, "loss": loss, "val_accuracy": val_accuracy,
                               "lr": stats.lr, "seconds": stats.seconds})
        if result.val_accuracy is None or val_accuracy > result.val_accuracy:
            result.best_epoch, result.val_accuracy = epoch, val_accuracy
            result.state = copy.deepcopy(evaluated.state_dict())
        for callback in callbacks:
            callback(stats)
        if stats.perfect:
            return result
    if result.status == "ok" and last < epochs:
        result.resume = Resume(last, optimizer, generator)
    return result


def _epoch(model: nn.Module, data: Batches, bank: TeacherBank | None, order: torch.Tensor,
           optimizer: torch.optim.Optimizer, config: TrainConfig, loss_fn: LossFn,
           step: int, lr_at: LrAt) -> float:
    """One pass over the shuffled views (ended early where `lr_at` gives None: a wall clock
    spent); returns the mean loss (NaN if any step's was not finite).

    The loss is summed on the device (float64, the same sum as Python floats) and read once per
    epoch: a per-step `float(loss)` or `isfinite` check would stall a GPU at every step."""
    model.train()
    order = order.to(data.images.device)
    total, seen = torch.zeros((), dtype=torch.float64, device=data.images.device), 0
    for start in range(0, len(order), config.batch_size):
        index = order[start:start + config.batch_size]
        if len(index) < 2:          # BatchNorm cannot train on a single sample
            continue
        lr = lr_at(step)
        if lr is None:
            break
        images, labels = data.batch(index)
        for group in optimizer.param_groups:
            group["lr"] = lr
        feature, logits = model(images, return_features=True)
        t_feature = _rows(bank.features, index, feature.device) if bank is not None else None
        t_logits = _rows(bank.logits, index, feature.device) if bank is not None else None
        loss = loss_fn(feature, logits, labels, t_feature, t_logits)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach().double() * len(index)
        seen += len(index)
        step += 1
    return float(total) / max(1, seen)


def _planned(epoch: int, epochs: int, seconds: float | None, spent: float, last: float) -> int:
    """The schedule's epochs as progress shows them: `epochs`, or on a wall clock, this one
    plus as many more of the last one's `last` seconds as the clock has left (at most `epochs`)."""
    if seconds is None:
        return epochs
    return min(epochs, epoch + max(0, math.ceil((seconds - spent) / max(last, 1e-9))))


def _rows(table: torch.Tensor, index: torch.Tensor, device: torch.device) -> torch.Tensor:
    """table[index] on `device`, indexing where the table lives."""
    return table[index.to(table.device)].to(device)
