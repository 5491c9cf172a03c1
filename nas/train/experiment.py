"""One experiment's shared context (data, views, teacher, bank) and training one genome in it.

`prepare` does the expensive once-per-study work; `train_genome` is what a
search trial or an ablation cell calls, and stores the run with its weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from nas._version import __version__
from nas.data.dataset import Dataset, Views, load_data
from nas.data.folders import scanned_once
from nas.data.splits import Progress
from nas.errors import TrainError
from nas.model.builder import build_model
from nas.model.complexity import count
from nas.model.genome import Genome
from nas.model.space import InputShape, Space
from nas.store.runs import RunRecord, Store, state_to_bytes
from nas.train.distill import (
    Batches,
    EpochCallback,
    Projector,
    TeacherBank,
    TrainResult,
    accuracy,
    make_loss,
    schedule_epochs,
    train,
)
from nas.train.preflight import NOTHING, Plan, check_data, check_source, image_size
from nas.train.teacher import Teacher, teach

RungGate = Callable[[int, float], bool]     # (rung epoch, best val accuracy so far) -> go on


@dataclass(frozen=True)
class Context:
    """Everything trials share: the space, data, fixed views, the teacher and its outputs."""

    space: Space
    data: Dataset
    views: Views
    batches: Batches
    teacher: Teacher
    bank: TeacherBank | None     # None with [distill] loss = "none"
    store: Store
    device: torch.device

    @property
    def shape(self) -> InputShape:
        """The one input shape of every model of this context (set from the data by `prepare`)."""
        return self.space.input or self.data.shape


def resolve_device(name: str = "auto", threads: int | None = None) -> torch.device:
    """auto -> cuda when present, else cpu; asking for cuda without one is an error.

    On CPU, torch uses `threads` intra-op threads (default 1): the students are small, and
    on a busy 2-core machine two spinning OpenMP threads made steps up to 25x slower."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("device 'cuda': no CUDA device is available (use auto or cpu)")
    if name not in ("cpu", "cuda"):
        raise TrainError(f"device must be auto, cpu or cuda, got {name!r}")
    if threads is not None and threads < 1:
        raise TrainError(f"CPU threads must be at least 1, got {threads}")
    if name == "cpu":
        torch.set_num_threads(threads or 1)
    return torch.device(name)


def fitted_input(space: Space, data: Dataset) -> InputShape:
    """The data's input shape, refused when the space's `[input]` wants other channels."""
    if space.input is not None and space.input.channels != data.shape.channels:
        raise TrainError(f"{space.path}: [input] channels = {space.input.channels}, but the data "
                         f"{data.name} has {data.shape.channels}-channel images")
    return data.shape


def prepare(space: Space, source: str, store: Store, *, size: tuple[int, int] | None = None,
            device: torch.device | None = None, cache_dir: Path | None = None,
            progress: Progress | None = None,
            teacher_callbacks: tuple[EpochCallback, ...] = (),
            check: Callable[[Dataset], None] | None = None, plan: Plan = NOTHING) -> Context:
    """Load data and views, get (or train) the teacher, compute its outputs on every view.

    The preflight checks (nas.train.preflight) of what `plan` will train run before the data is
    read and once it is; then `check(data)`, before the teacher is trained, to refuse bad
    settings early."""
    device = device or resolve_device()
    with scanned_once():      # the checks, the student's data and the teacher's: one scan
        check_source(space, source, size, plan)
        data = load_data(source, image_size(space, source, size), **space.train.split_kwargs(),
                         cache_dir=cache_dir, progress=progress)
        space = space.with_input(fitted_input(space, data))
        check_data(space, source, data, plan)
        if check is not None:
            check(data)
        taught = teach(space, source, data, store, device, cache_dir=cache_dir, progress=progress,
                       callbacks=teacher_callbacks)   # loss "none": no teacher, bank None
    views, teacher, bank = taught.views, taught.teacher, taught.bank
    if teacher.spec is not None:
        space = replace(space, teacher=teacher.spec)   # resolved: no "auto" left
    if bank is not None:
        bank = TeacherBank(bank.features.to(device), bank.logits.to(device))   # read every step
    batches = Batches(views.images.to(device), views.labels.to(device), data.mean, data.std)
    return Context(space, data, views, batches, teacher, bank, store, device)


def recipe(ctx: Context, epochs: int, seconds: float | None = None) -> dict[str, Any]:
    """The run's recipe as stored; a wall-clock schedule's `seconds` beside the epochs it ran."""
    return {"train": asdict(replace(ctx.space.train, epochs=epochs)),
            "distill": asdict(ctx.space.distill), **({"seconds": seconds} if seconds else {})}


def train_genome(ctx: Context, genome: Genome, *, epochs: int | None = None, seed: int = 0,
                 study: str | None = None, trial: int | None = None,
                 callbacks: tuple[EpochCallback, ...] = (), rungs: Sequence[int] = (),
                 gate: RungGate | None = None, seconds: float | None = None) -> RunRecord:
    """Distil one student from the teacher, test the best-validation weights once, store the run.

    With `rungs` (epochs within the one schedule of `epochs`), `gate(rung, best val so far)` is
    asked at each rung; False stops the training there: status 'pruned', never tested.
    With `seconds`, the schedule is the wall clock's (`nas.train.distill.train`), capped at
    `epochs` (`schedule_epochs`); the stored recipe gives the epochs it ran and the seconds."""
    epochs = schedule_epochs(epochs, seconds, ctx.space.train.epochs)
    genome = genome.rounded(ctx.space.model.divisor)
    size = count(genome, ctx.space, shape=ctx.shape, classes=len(ctx.data.classes))
    run = RunRecord(id=None, study=study, trial=trial, genome=genome.notation,
                    attention=genome.attention, seed=seed, recipe=recipe(ctx, epochs, seconds),
                    data_fingerprint=ctx.data.fingerprint,
                    teacher_fingerprint=ctx.teacher.fingerprint, flops=size.flops,
                    params=size.params, status="running", meta=run_meta(ctx))
    run.id = ctx.store.add_run(run)
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = build_model(genome, ctx.space, classes=len(ctx.data.classes)).to(ctx.device)
    try:
        result = _fit(ctx, model, epochs, seed, callbacks, rungs, gate, seconds)
    except BaseException:
        ctx.store.update_run(run.id, status="interrupted", duration_s=time.perf_counter() - started)
        raise
    test = None
    if result.state is not None and result.status != "pruned":     # pruned: never tested
        model.load_state_dict(result.state)
        test = accuracy(model, ctx.data.test, ctx.data.mean, ctx.data.std, ctx.device)
    fields = {"status": result.status, "val_accuracy": result.val_accuracy,
              "test_accuracy": test, "best_epoch": result.best_epoch, "history": result.history,
              "weights": state_to_bytes(result.state) if result.state is not None else None,
              "duration_s": time.perf_counter() - started,
              **({"recipe": recipe(ctx, len(result.history), seconds)} if seconds else {})}
    ctx.store.update_run(run.id, **fields)
    return replace(run, **fields)


def _fit(ctx: Context, model: torch.nn.Module, epochs: int, seed: int,
         callbacks: tuple[EpochCallback, ...], rungs: Sequence[int] = (),
         gate: RungGate | None = None, seconds: float | None = None) -> TrainResult:
    """Train through the rungs (each a stop, asked at the gate, then a resume), then to the end
    (of `epochs`, or of the wall clock's `seconds`)."""
    student_dim = model.feature_dim
    wrapped = model
    if ctx.space.distill.loss in ("feature", "both") and ctx.teacher.feature_dim != student_dim:
        wrapped = Projector(model, student_dim, ctx.teacher.feature_dim).to(ctx.device)
    result = None
    for stop in [*(r for r in rungs if r < epochs), epochs]:
        result = train(wrapped, ctx.batches, ctx.data.val, ctx.space.train, epochs=epochs,
                       seed=seed, device=ctx.device, loss_fn=make_loss(ctx.space.distill),
                       bank=ctx.bank, callbacks=callbacks, stop_epoch=stop, resume=result,
                       seconds=seconds)
        if result.status != "ok" or result.resume is None:
            break
        if gate is not None and not gate(stop, result.val_accuracy or 0.0):
            result.status, result.resume = "pruned", None
            break
    return result


def run_meta(ctx: Context) -> dict[str, Any]:
    """What export needs to rebuild and feed the model without the space file or the data."""
    return {
        "classes": list(ctx.data.classes), "input": str(ctx.shape),
        "mean": list(ctx.data.mean), "std": list(ctx.data.std), "data": ctx.data.name,
        "space": ctx.space.path, "model": asdict(ctx.space.model),
        "overrides": [asdict(o) for o in ctx.space.overrides],
        "teacher": {"fingerprint": ctx.teacher.fingerprint,
                    "val_accuracy": ctx.teacher.val_accuracy,
                    "test_accuracy": ctx.teacher.test_accuracy},
        "versions": {"nas": __version__, "torch": str(torch.__version__)},
    }
