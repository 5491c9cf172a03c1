"""Feature-distillation targets the library does not offer, measured against CE before adding one.

On bench_teacher.py's context (the pretrained Lite0 teacher, its frozen trunk's cached outputs,
the report's views and student), `feature` distillation matches the trunk's pooled output. Here
that target is replaced by:
  std       the same pooled output, standardised per channel over the views (z-scores), so
            that every channel weighs alike in the MSE;
  imagenet  the pretrained ImageNet classifier's 1000 logits of it, matched with Hinton's KL at
            [distill] temperature through a 1000-wide projector (the full function of the
            teacher: ants and bees are ImageNet classes 310 and 309);
  map       the 7x7 trunk maps, standardised per channel, matched by the student's head map
            pooled to 7x7 through a 1x1 conv (a FitNets-style spatial hint).
A variant is LOSS-TARGET (LOSS: feature or both), or a plain arm (none, feature, both). E.g.
    python bench/distill_variants.py --image-size 64x64 --epochs 16 --seeds 0 1 2 --threads 1 \\
        --variants none feature feature-std both-std feature-imagenet feature-map
The training loop is the library's; a variant swaps the teacher's bank in the context and, where
its loss or projector differs, `nas.train.experiment`'s make_loss or Projector for its runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_teacher  # noqa: E402

from nas.model.builder import Output  # noqa: E402
from nas.model.genome import Genome  # noqa: E402
from nas.model.pretrained import read_state, weights_path  # noqa: E402
from nas.model.recipe import DistillConfig  # noqa: E402
from nas.train import experiment  # noqa: E402
from nas.train.distill import LossFn, Projector, TeacherBank, hinton_kd, make_loss  # noqa: E402
from nas.train.experiment import Context, train_genome  # noqa: E402
from nas.train.teacher_data import teacher_inputs  # noqa: E402
from nas.train.trunk import trunk_maps  # noqa: E402

TARGETS = ("std", "imagenet", "map")
MAP_SIDE = 7


@dataclass(frozen=True)
class Target:
    """What the student's feature is matched to, and how."""

    bank: TeacherBank
    width: int
    kl: bool = False         # Hinton's KL on the target (logits) instead of MSE
    spatial: bool = False    # the student's head map pooled to 7x7, through a 1x1 conv


def standardized(values: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """z-scores per channel (dim 1) over `dims`."""
    values = values.float()
    mean = values.mean(dim=dims, keepdim=True)
    return (values - mean) / values.std(dim=dims, keepdim=True).clamp_min(1e-3)


def target(name: str, ctx: Context, args: argparse.Namespace) -> Target:
    pooled, logits = ctx.bank.features, ctx.bank.logits
    if name == "std":
        return Target(TeacherBank(standardized(pooled, (0,)), logits), pooled.shape[1])
    if name == "imagenet":
        state = read_state(weights_path(ctx.space.teacher.model))
        imagenet = pooled @ state["_fc.weight"].T + state["_fc.bias"]
        return Target(TeacherBank(imagenet, logits), imagenet.shape[1], kl=True)
    cache = bench_teacher.cache_dir(args)
    inputs = teacher_inputs(ctx.space, args.data, ctx.data, cache_dir=cache)
    maps = trunk_maps(ctx.teacher.model, inputs.config, inputs.data, inputs.views, ctx.device,
                      cache).views
    hint = standardized(maps, (0, 2, 3)).half().flatten(1)     # float16: 171 MB for 1,365 views
    return Target(TeacherBank(hint, logits), hint.shape[1], spatial=True)


class SpatialProjector(Projector):
    """The student's head map (before pooling), pooled to 7x7, through a 1x1 conv to the
    trunk's width, flattened as the feature (training only, like Projector)."""

    def __init__(self, student: nn.Module, student_dim: int, teacher_dim: int) -> None:
        nn.Module.__init__(self)
        self.student = student
        self.project = nn.Conv2d(student_dim, teacher_dim // MAP_SIDE ** 2, 1, bias=False)
        self.maps: torch.Tensor | None = None
        student.head.register_forward_hook(lambda module, inputs, output: setattr(self, "maps", output))

    def forward(self, x: torch.Tensor, return_features: bool = False) -> Output:
        _, logits = self.student(x, return_features=True)
        if not return_features:
            return logits
        return self.project(F.adaptive_avg_pool2d(self.maps, MAP_SIDE)).flatten(1), logits


def kl_loss(config: DistillConfig) -> LossFn:
    """`feature` or `both` with Hinton's KL on the (logit) target in place of the MSE."""
    def loss(feature: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
             t_feature: torch.Tensor | None, t_logits: torch.Tensor | None) -> torch.Tensor:
        soft = hinton_kd(feature, t_feature, config.temperature)
        if config.loss == "both":
            soft = soft + hinton_kd(logits, t_logits, config.temperature)
        return (1 - config.alpha) * soft + config.alpha * F.cross_entropy(logits, labels)
    return loss


def float_mse_loss(config: DistillConfig) -> LossFn:
    """The library's loss, with a float16 target read as float32."""
    base = make_loss(config)

    def loss(feature: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
             t_feature: torch.Tensor | None, t_logits: torch.Tensor | None) -> torch.Tensor:
        return base(feature, logits, labels, t_feature.float(), t_logits)
    return loss


@contextlib.contextmanager
def wired(spec: Target | None) -> Iterator[None]:
    """`experiment`'s loss and projector for one variant, restored afterwards."""
    saved = experiment.make_loss, experiment.Projector
    if spec is not None and spec.kl:
        experiment.make_loss = kl_loss
    if spec is not None and spec.spatial:
        experiment.make_loss, experiment.Projector = float_mse_loss, SpatialProjector
    try:
        yield
    finally:
        experiment.make_loss, experiment.Projector = saved


def variant_context(ctx: Context, loss: str, spec: Target | None) -> Context:
    ctx = bench_teacher.arm(ctx, loss)
    if spec is None:
        return ctx
    return replace(ctx, bank=spec.bank, teacher=replace(ctx.teacher, feature_dim=spec.width))


def parse_args(argv: list[str]) -> tuple[list[str], argparse.Namespace]:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--variants", nargs="+", default=["none", "feature", "feature-std"])
    known, rest = extra.parse_known_args(argv)
    for name in known.variants:
        loss, _, kind = name.partition("-")
        if loss not in bench_teacher.ARMS or (kind and (kind not in TARGETS or loss in ("none", "logit"))):
            raise SystemExit(f"--variants: {name!r} is not LOSS or LOSS-TARGET "
                             f"(LOSS feature or both; TARGET one of {', '.join(TARGETS)})")
    return known.variants, bench_teacher.parse_args(rest)


def main(argv: list[str]) -> int:
    variants, args = parse_args(argv)
    if args.summarize:
        bench_teacher.report(bench_teacher.from_logs(args.summarize, args.tag, args.epochs))
        return 0
    ctx, ready = bench_teacher.context(args)
    print(json.dumps({"teacher_val": ctx.teacher.val_accuracy, "teacher_test": ctx.teacher.test_accuracy,
                      "ready_s": round(ready, 1), "views": len(ctx.views.labels),
                      "student_input": str(ctx.shape)}), flush=True)
    specs = {kind: target(kind, ctx, args) for kind in {v.partition("-")[2] for v in variants} if kind}
    genome = Genome.parse(args.genome, args.attention)
    rows = []
    for seed in args.seeds:
        for name in variants:
            loss, _, kind = name.partition("-")
            spec = specs.get(kind)
            with wired(spec):
                run = train_genome(variant_context(ctx, loss, spec), genome, epochs=args.epochs, seed=seed)
            rows.append(bench_teacher.logged_row(args.tag + name, seed, run))
    bench_teacher.report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
