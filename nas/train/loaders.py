"""Training a student on your own DataLoaders (`nas.train(..., train_loader=, val_loader=)`).

The loaders are read once into memory, as nas's own fixed views are, and the student trains
with the same loop, schedule and best-validation selection, with cross-entropy only (a teacher's
outputs exist for nas's own views). Images are used as the loaders give them (normalise them in
your transforms); labels are class indices 0..K-1. Nothing is stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from nas.data.splits import Split
from nas.errors import TrainError
from nas.model.builder import Student, build_model
from nas.model.complexity import count
from nas.model.genome import Genome
from nas.model.space import InputShape, Space
from nas.store.runs import RunRecord
from nas.train.distill import Batches, EpochCallback, accuracy, make_loss, schedule_epochs, train

PLAIN = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))       # mean and std: images are used as given


@dataclass(frozen=True)
class Trained:
    """One trained student: `model` holds its best-validation weights (eval mode)."""

    model: Student | None
    genome: str
    attention: str
    status: str                      # ok | nan
    val_accuracy: float | None
    test_accuracy: float | None
    best_epoch: int | None
    flops: int
    params: int
    history: list[dict[str, float]] = field(default_factory=list)
    run: RunRecord | None = None     # the stored run (None when trained on your loaders)

    @classmethod
    def from_run(cls, run: RunRecord, model: Student | None) -> Trained:
        return cls(model, run.genome, run.attention, run.status, run.val_accuracy,
                   run.test_accuracy, run.best_epoch, run.flops, run.params, run.history, run)


def train_on_loaders(genome: Genome, space: Space, train_loader: Iterable[Any] | None,
                     val_loader: Iterable[Any] | None, test_loader: Iterable[Any] | None = None, *,
                     epochs: int | None, seed: int, device: torch.device,
                     callbacks: tuple[EpochCallback, ...] = (), seconds: float | None = None
                     ) -> Trained:
    """Train `genome` on the loaders' batches (for `epochs`, or on a wall clock of `seconds`
    capped at `epochs`); test once on `test_loader` when given."""
    if train_loader is None or val_loader is None:
        raise TrainError("train_loader and val_loader go together: give both, or neither and data=")
    fit, val = collect(train_loader, "train_loader"), collect(val_loader, "val_loader")
    classes = int(max(fit.labels.max(), val.labels.max())) + 1
    shape = InputShape(*fit.images.shape[1:])
    space.check(genome, strict=False)
    config = replace(space.train, epochs=schedule_epochs(epochs, seconds, space.train.epochs))
    torch.manual_seed(seed)
    model = build_model(genome, space, shape=shape, classes=classes).to(device)
    batches = Batches(fit.images.to(device), fit.labels.to(device), *PLAIN)
    result = train(model, batches, val, config, epochs=config.epochs, seed=seed, device=device,
                   loss_fn=make_loss(None), callbacks=callbacks, seconds=seconds)
    if result.state is not None:
        model.load_state_dict(result.state)
    test = (accuracy(model, collect(test_loader, "test_loader"), *PLAIN, device)
            if test_loader is not None and result.state is not None else None)
    size = count(genome, space, shape=shape, classes=classes)
    return Trained(model.eval(), genome.notation, genome.attention, result.status,
                   result.val_accuracy, test, result.best_epoch, size.flops, size.params,
                   result.history)


def collect(loader: Iterable[Any], name: str) -> Split:
    """All (images, labels) batches of a loader as one float (N, C, H, W) and int64 (N,) pair."""
    images, labels = [], []
    for batch in loader:
        if (not isinstance(batch, list | tuple) or len(batch) < 2
                or not isinstance(batch[0], torch.Tensor) or batch[0].dim() != 4):
            raise TrainError(f"{name} must yield (images, labels) with images (N, C, H, W), "
                             f"got {type(batch).__name__}")
        images.append(batch[0].float())
        labels.append(torch.as_tensor(batch[1]).long())
    if not images:
        raise TrainError(f"{name} yielded no batches")
    found = Split(torch.cat(images), torch.cat(labels))
    if found.labels.min() < 0 or len(found.labels) != len(found.images):
        raise TrainError(f"{name}: labels must be class indices 0..K-1, one per image")
    return found
