"""A search trial's student on CPU, three ways side by side: eager, channels-last, torch.compile.

Run by hand (not a test), from the repository root:

    python bench/bench_step.py --threads 1                  # 3 genomes, 3 epochs each (~7 min, busy 2 cores)
    python bench/bench_step.py --threads 1 --only small --epochs 2    # a quick look

Digits at 48x48 (the README's main job), seed.toml's recipe (Adam, batch 32, cosine lr) and
its distillation loss ('feature': MSE to the teacher's pooled feature + CE), through the real
`nas.train.distill.train` path, one epoch per call, stopped and resumed at every epoch as
rungs do. The teacher bank comes from an *untrained* teacher of seed.toml's teacher genome:
the loss path and shapes of a real trial, without the minutes of training a teacher.
Genomes: the 10th-percentile and the median FLOPs of --samples genomes drawn uniformly from
the space, and the largest of them under --budget. Per genome, the variants start from the
same initial weights and seed and take turns epoch by epoch (the order rotates each epoch),
so machine noise hits all alike:
  eager          what `nas` does now;
  channels_last  model and every input batch `.to(memory_format=torch.channels_last)`;
  compile        `torch.compile(model)`: its first epoch holds the compilation (train, the
                 ragged last batch, the eval pass); compile time = first epoch - steady epoch.
Steady = median of epochs 2..N. The val accuracies of every epoch are printed to check that a
variant leaves the selected model's metrics unchanged.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from bench_count import sample  # one genome uniformly over depth, genes and attention
from torch import nn

from nas.data.dataset import Dataset, load_data, parse_image_size
from nas.model.builder import Output, build_model
from nas.model.complexity import count
from nas.model.genome import Genome
from nas.model.space import Space, load_space
from nas.train.distill import (
    Batches,
    Projector,
    TeacherBank,
    TrainResult,
    make_loss,
    predict,
    train,
)
from nas.units import parse_quantity

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("eager", "channels_last", "compile")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default=str(ROOT / "nas" / "search_spaces" / "seed.toml"))
    p.add_argument("--image-size", default="48x48")
    p.add_argument("--epochs", type=int, default=3, help="epochs per variant (a trial's 3)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--budget", default="0.2G", help="FLOPs budget of the largest genome")
    p.add_argument("--only", choices=("small", "mid", "large"), action="append",
                   help="run these genomes only (repeatable)")
    return p.parse_args(argv)


class ChannelsLast(nn.Module):
    """A student whose weights and inputs are channels-last (NHWC in memory)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> Output:
        return self.model(x.to(memory_format=torch.channels_last), return_features=return_features)


@dataclass(frozen=True)
class Setup:
    """What every trial shares: the space, the data, the training batches, the teacher bank."""

    space: Space
    data: Dataset
    batches: Batches
    bank: TeacherBank
    teacher_dim: int


@dataclass
class Runs:
    """Per variant: the model, wall seconds of each epoch, and the training result so far."""

    models: dict[str, nn.Module]
    seconds: dict[str, list[float]] = field(default_factory=dict)
    results: dict[str, TrainResult | None] = field(default_factory=dict)


def pick_genomes(setup: Setup, samples: int, budget: float, seed: int) -> dict[str, tuple[Genome, int]]:
    """small (10th percentile of FLOPs), mid (median), large (the largest under the budget)."""
    rng = random.Random(seed)
    sized = []
    for _ in range(samples):
        genome = sample(setup.space, rng).rounded(setup.space.model.divisor)
        flops = count(genome, setup.space, shape=setup.data.shape, classes=len(setup.data.classes)).flops
        sized.append((flops, genome.notation + " " + genome.attention, genome))
    sized.sort(key=lambda row: row[:2])
    fitting = [row for row in sized if row[0] <= budget]
    chosen = {"small": sized[len(sized) // 10], "mid": sized[len(sized) // 2], "large": fitting[-1]}
    return {label: (genome, flops) for label, (flops, _, genome) in chosen.items()}


def make_setup(args: argparse.Namespace) -> Setup:
    """Digits at the image size, its training batches and an untrained teacher's bank."""
    space = load_space(args.space)
    data = load_data("digits", parse_image_size(args.image_size), val_fraction=space.train.val_fraction,
                     split_seed=space.train.split_seed)
    space = space.with_input(data.shape)
    torch.manual_seed(args.seed)
    teacher = build_model(Genome.parse(space.teacher.genome, space.teacher.attention), space,
                          classes=len(data.classes))
    features, logits = predict(teacher, data.train.images, data.mean, data.std, torch.device("cpu"))
    batches = Batches(data.train.images, data.train.labels, data.mean, data.std)
    return Setup(space, data, batches, TeacherBank(features, logits), teacher.feature_dim)


def make_runs(setup: Setup, genome: Genome, seed: int) -> Runs:
    """One copy of the same initial student per variant (the trial's `manual_seed` + build)."""
    torch.manual_seed(seed)
    student = build_model(genome, setup.space, classes=len(setup.data.classes))
    first: nn.Module = student
    if setup.teacher_dim != student.feature_dim:        # as `_fit` wraps it
        first = Projector(student, student.feature_dim, setup.teacher_dim)
    models = {"eager": copy.deepcopy(first), "channels_last": ChannelsLast(copy.deepcopy(first)),
              "compile": torch.compile(copy.deepcopy(first))}
    return Runs(models, {v: [] for v in VARIANTS}, {v: None for v in VARIANTS})


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def one_epoch(setup: Setup, runs: Runs, variant: str, epoch: int, epochs: int, seed: int) -> None:
    """Epoch `epoch` of the variant's trial: `train` stopped there and resumed from the last stop."""
    def step() -> None:
        runs.results[variant] = train(
            runs.models[variant], setup.batches, setup.data.val, setup.space.train, epochs=epochs,
            seed=seed, device=torch.device("cpu"), loss_fn=make_loss(setup.space.distill),
            bank=setup.bank, stop_epoch=epoch, resume=runs.results[variant])
    runs.seconds[variant].append(timed(step))


def run_genome(setup: Setup, genome: Genome, epochs: int, seed: int) -> Runs:
    """All variants' trials, interleaved epoch by epoch; the order rotates each epoch."""
    runs = make_runs(setup, genome, seed)
    for epoch in range(1, epochs + 1):
        shift = (epoch - 1) % len(VARIANTS)
        for variant in VARIANTS[shift:] + VARIANTS[:shift]:
            one_epoch(setup, runs, variant, epoch, epochs, seed)
        print(f"  epoch {epoch}: " + ", ".join(
            f"{v} {runs.seconds[v][-1]:.2f} s val {runs.results[v].history[-1]['val_accuracy']:.4f}"
            for v in VARIANTS), flush=True)
    return runs


def steady(seconds: list[float]) -> float:
    return statistics.median(seconds[1:] or seconds)


def payback(compile_s: float, eager: float, compiled: float) -> str:
    """Epochs of steady saving that repay the compile time ('never' when it saves nothing)."""
    saving = eager - compiled
    return f"{compile_s / saving:.1f}" if saving > 0 else "never"


def table_rows(label: str, genome: Genome, flops: int, runs: Runs) -> list[str]:
    """Markdown rows: first and steady epoch, ratio to eager, compile time and payback, val."""
    eager = steady(runs.seconds["eager"])
    rows = []
    for variant in VARIANTS:
        seconds, result = runs.seconds[variant], runs.results[variant]
        now = steady(seconds)
        extra = ("", "")
        if variant == "compile":
            compile_s = seconds[0] - now
            extra = (f"{compile_s:.1f}", payback(compile_s, eager, now))
        vals = " / ".join(f"{h['val_accuracy']:.4f}" for h in result.history)
        name = f"{label} `{genome.notation}` {genome.attention}, {flops / 1e6:.1f} M"
        rows.append(f"| {name} | {variant} | {seconds[0]:.2f} | {now:.2f} | {now / eager:.3f} | "
                    f"{extra[0]} | {extra[1]} | {vals} | {result.val_accuracy:.4f} @ {result.best_epoch} |")
    return rows


def metric_check(runs: Runs, images: int) -> str:
    """Whether channels-last and compile select the same val accuracy as eager, and by how much."""
    base = runs.results["eager"]
    parts = []
    for variant in VARIANTS[1:]:
        other = runs.results[variant]
        diffs = [abs(a["val_accuracy"] - b["val_accuracy"])
                 for a, b in zip(base.history, other.history, strict=True)]
        losses = [abs(a["loss"] - b["loss"]) for a, b in zip(base.history, other.history, strict=True)]
        same = other.val_accuracy == base.val_accuracy and other.best_epoch == base.best_epoch
        parts.append(f"{variant}: selected val {'EQUAL' if same else 'DIFFERENT'} "
                     f"({other.val_accuracy:.4f} @ {other.best_epoch} vs {base.val_accuracy:.4f} @ "
                     f"{base.best_epoch}), max |d val| over epochs {max(diffs):.4f} "
                     f"({round(max(diffs) * images)} of {images} images), max |d loss| {max(losses):.2e}")
    return "; ".join(parts)


def warm_compiler() -> float:
    """Seconds of the one-time, per-process start of dynamo/inductor (a toy conv net, fwd + bwd)."""
    toy = torch.compile(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.SiLU()))
    return timed(lambda: toy(torch.randn(2, 3, 8, 8)).sum().backward())


def configure(threads: int) -> None:
    """1 torch thread (nas's default), 1 compile thread, and an empty inductor cache: every
    genome a search meets is new, so no compile may be served from an earlier run's cache."""
    torch.set_num_threads(threads)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_step_inductor_")
    torch._inductor.config.compile_threads = 1


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    configure(args.threads)
    load = os.getloadavg()
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    setup = make_setup(args)
    print(f"digits {setup.data.image_size}: {len(setup.batches.labels)} training images an epoch, "
          f"{len(setup.data.val.labels)} val; loss {setup.space.distill.loss!r}")
    print(f"compiler warm-up (once per process): {warm_compiler():.1f} s")
    rows = []
    for label, (genome, flops) in pick_genomes(setup, args.samples, parse_quantity(args.budget, "--budget"),
                                                 args.seed).items():
        if args.only and label not in args.only:
            continue
        print(f"{label}: {genome.notation} {genome.attention}, {flops / 1e6:.1f} MFLOPs", flush=True)
        runs = run_genome(setup, genome, args.epochs, args.seed)
        print("  " + metric_check(runs, len(setup.data.val.labels)), flush=True)
        rows += table_rows(label, genome, flops, runs)
    print("\n| genome | variant | first epoch s | steady s/epoch | ratio to eager | compile s "
          "| payback epochs | val per epoch | selected val @ epoch |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
