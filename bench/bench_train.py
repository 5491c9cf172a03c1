"""Time one student epoch four ways, side by side, alternating rounds to average out noise.

(a) distillation: the real `nas.train.distill.train` path, loss from the space's [distill], teacher
    outputs from the cached bank; (b) plain cross-entropy through the same path
    (`make_loss(None)`); (c) the data part alone: batch indexing + normalising the uint8 views
    (+ the bank rows), as `_epoch` does it; (d) the ceiling: bare forward + backward + step of
    the student on pre-normalised batches. (a) and (b) include the per-epoch validation pass
    and best-state copy, which are also timed on their own.

Run by hand (not a test), e.g.
    python bench/bench_train.py                      # hymenoptera at 185x160, no views
    python bench/bench_train.py --views report --rounds 3
    python bench/bench_train.py --profile            # where a distillation epoch goes
The teacher is the space's, trained once for --teacher-epochs and cached in the database
(default: bench_train.db in the nas cache folder), so a second run starts at once.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from nas.data.dataset import parse_image_size
from nas.model.builder import build_model
from nas.model.genome import Genome
from nas.model.recipe import REPORT_VIEWS, AugmentConfig
from nas.model.space import load_space
from nas.store.runs import Store
from nas.train.distill import accuracy, make_loss, make_optimizer, train
from nas.train.experiment import Context, prepare

HYMENOPTERA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera"

ROOT = Path(__file__).resolve().parents[1]
MODES = ("distill", "ce", "data", "bare")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(HYMENOPTERA))
    p.add_argument("--image-size", default="185x160")
    p.add_argument("--genome", default="[2,8,6,1,0] [2,16,4,1,0]")
    p.add_argument("--attention", default="eca")
    p.add_argument("--space", default=str(ROOT / "nas" / "search_spaces" / "seed.toml"))
    p.add_argument("--views", choices=("none", "report"), default="none",
                   help="training views: none (seed.toml's default) or the report's six")
    p.add_argument("--rounds", type=int, default=3, help="epochs of each mode, interleaved")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--teacher-epochs", type=int, default=2)
    p.add_argument("--storage", default=None)
    p.add_argument("--profile", action="store_true", help="cProfile one distillation epoch")
    return p.parse_args(argv)


def context(args: argparse.Namespace) -> Context:
    """The real shared context: data, fixed views, cached teacher and its bank."""
    space = load_space(args.space)
    views = REPORT_VIEWS if args.views == "report" else ()
    train_config = replace(space.train, batch_size=32, augment=AugmentConfig(views=views))
    space = replace(space, train=train_config,
                    teacher=replace(space.teacher, epochs=args.teacher_epochs))
    cache = Path(os.environ.get("NAS_CACHE_DIR") or Path.home() / ".cache" / "nas")
    cache.mkdir(parents=True, exist_ok=True)
    store = Store(args.storage or f"sqlite:///{cache / 'bench_train.db'}")
    started = time.perf_counter()
    ctx = prepare(space, args.data, store, size=parse_image_size(args.image_size),
                  device=torch.device("cpu"))
    print(f"prepare: {time.perf_counter() - started:.1f} s; teacher {ctx.teacher.fingerprint} "
          f"({'cached' if ctx.teacher.cached else 'trained now'}), val "
          f"{ctx.teacher.val_accuracy:.1%}; {len(ctx.batches.labels)} training images/epoch, "
          f"{len(ctx.data.val.labels)} val")
    return ctx


def timed(run: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): CPU time is less disturbed by other load."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


class Bench:
    """One model per mode, all from the same initial weights, timed one epoch at a time."""

    def __init__(self, ctx: Context, genome: Genome) -> None:
        self.ctx = ctx
        self.config = ctx.space.train
        torch.manual_seed(0)
        first = build_model(genome, ctx.space, classes=len(ctx.data.classes))
        self.models = {mode: copy.deepcopy(first) for mode in ("distill", "ce", "bare")}
        self.bare_optimizer = make_optimizer(list(self.models["bare"].parameters()), self.config)
        order = torch.randperm(len(ctx.batches.labels), generator=torch.Generator().manual_seed(0))
        self.batches = [ctx.batches.batch(order[i:i + 32]) for i in range(0, len(order), 32)]

    def distill(self, rnd: int) -> None:
        train(self.models["distill"], self.ctx.batches, self.ctx.data.val, self.config, epochs=1,
              seed=rnd, device=self.ctx.device, loss_fn=make_loss(self.ctx.space.distill),
              bank=self.ctx.bank)

    def ce(self, rnd: int) -> None:
        train(self.models["ce"], self.ctx.batches, self.ctx.data.val, self.config, epochs=1,
              seed=rnd, device=self.ctx.device, loss_fn=make_loss(None))

    def data(self, rnd: int) -> None:
        """What `_epoch` does per batch before the forward: index, normalise, bank rows."""
        order = torch.randperm(len(self.ctx.batches.labels), generator=torch.Generator().manual_seed(rnd))
        for start in range(0, len(order), self.config.batch_size):
            index = order[start:start + self.config.batch_size]
            self.ctx.batches.batch(index)
            self.ctx.bank.features[index], self.ctx.bank.logits[index]

    def bare(self, rnd: int) -> None:
        model, optimizer = self.models["bare"], self.bare_optimizer
        model.train()
        for images, labels in self.batches:
            optimizer.zero_grad(set_to_none=True)
            logits = model(images)
            F.cross_entropy(logits, labels).backward()
            optimizer.step()

    def eval_and_copy(self) -> tuple[float, float]:
        """The per-epoch extras inside (a) and (b): validation accuracy and the best-state copy."""
        model = self.models["ce"]
        return timed(lambda: (accuracy(model, self.ctx.data.val, self.ctx.data.mean, self.ctx.data.std,
                                       self.ctx.device), copy.deepcopy(model.state_dict())))


def measure(bench: Bench, rounds: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds per epoch of each mode; the order rotates each round so that drift
    in the machine's load hits every mode alike."""
    seconds: dict[str, list[tuple[float, float]]] = {mode: [] for mode in (*MODES, "eval")}
    bench.bare(0)                                  # warm-up: first-call allocations and kernels
    for rnd in range(rounds):
        order = MODES[rnd % len(MODES):] + MODES[:rnd % len(MODES)]
        for mode in order:
            seconds[mode].append(timed(lambda mode=mode, rnd=rnd: getattr(bench, mode)(rnd)))
        seconds["eval"].append(bench.eval_and_copy())
        print(f"round {rnd + 1} (wall/CPU s): "
              + ", ".join(f"{m} {seconds[m][-1][0]:.2f}/{seconds[m][-1][1]:.2f}" for m in seconds),
              flush=True)
    return seconds


def summary(seconds: dict[str, list[tuple[float, float]]], images: int) -> None:
    """Median wall and CPU seconds per epoch of each mode, images/s, and the two target ratios."""
    wall = {mode: statistics.median(v[0] for v in values) for mode, values in seconds.items()}
    cpu = {mode: statistics.median(v[1] for v in values) for mode, values in seconds.items()}
    print(f"\n{'mode':<36}{'wall s':>9}{'img/s':>8}{'CPU s':>9}{'img/CPU-s':>11}")
    labels = {"distill": "(a) distillation epoch (train())", "ce": "(b) cross-entropy epoch (train())",
              "data": "(c) data: index + normalise + bank", "bare": "(d) bare fwd+bwd+step (ceiling)",
              "eval": "    in (a), (b): val pass + copy"}
    for mode, label in labels.items():
        rates = [f"{images / t[mode]:.1f}" if mode != "eval" else "" for t in (wall, cpu)]
        print(f"{label:<36}{wall[mode]:9.2f}{rates[0]:>8}{cpu[mode]:9.2f}{rates[1]:>11}")
    for name, t in (("wall", wall), ("CPU", cpu)):
        print(f"{name}: distill / CE {t['distill'] / t['ce']:.3f} (target <= 1.25), data share "
              f"{t['data'] / t['distill']:.1%} (target <= 15 %), "
              f"distill / bare {t['distill'] / t['bare']:.3f}")


def profile(bench: Bench) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(bench.distill, 99)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not Path(args.data).is_dir():
        print(f"skipped: {args.data} is absent (pass --data FOLDER)")
        return 0
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    ctx = context(args)
    bench = Bench(ctx, Genome.parse(args.genome, args.attention))
    if args.profile:
        profile(bench)
        return 0
    seconds = measure(bench, args.rounds)
    summary(seconds, len(ctx.batches.labels))
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
