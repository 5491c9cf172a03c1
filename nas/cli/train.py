"""`nas teacher` and `nas train`: the fixed teacher, one distilled student."""

from __future__ import annotations

import argparse
from dataclasses import replace

from nas.cli.common import (
    Setting,
    data_flags,
    emit_json,
    open_context,
    parsed,
    resolve_space,
    teacher_fields,
    teacher_text,
    with_subset,
)
from nas.errors import SpaceError
from nas.model.attention import ATTENTIONS
from nas.model.genome import Genome
from nas.model.recipe import CHOICES, MAX_EPOCHS
from nas.model.space import Space
from nas.model.teachers import TEACHERS
from nas.units import count_text, parse_duration, percent


def cmd_teacher(args: argparse.Namespace) -> int:
    """Train the space's teacher once (or find it in the cache) and show its accuracy."""
    from nas.cli.console import ProgressView, print_fields
    from nas.train.teacher import best_student_val, weak_teacher

    with ProgressView(args.quiet or args.json) as view:
        ctx = open_context(args, view)
    row = {**teacher_fields(ctx), "data": ctx.data.name, "input": str(ctx.shape),
           "storage": ctx.store.url}
    if args.json:
        emit_json(row)
        return 0
    spec = ctx.space.teacher
    print_fields({
        "teacher": spec.model if TEACHERS[spec.kind].has_trunk else f"{spec.genome} {spec.attention}",
        "fingerprint": ctx.teacher.fingerprint + ("  (cached)" if ctx.teacher.cached else ""),
        "data": f"{ctx.data.name}, {len(ctx.data.classes)} classes, input {ctx.shape}",
        "val accuracy": percent(ctx.teacher.val_accuracy),
        "test accuracy": percent(ctx.teacher.test_accuracy),
    })
    warning = weak_teacher(ctx.teacher.val_accuracy, best_student_val(ctx.store, ctx.teacher))
    if warning is not None:
        print(warning)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Distil one student from the (cached) teacher and report its accuracy."""
    from rich.text import Text

    from nas import api
    from nas.cli.console import ProgressView, print_fields
    from nas.train.teacher import weak_teacher

    genome = Genome.parse(args.genome, args.attention)
    if args.epochs is not None and not 1 <= args.epochs <= MAX_EPOCHS:
        raise SpaceError(f"--epochs must be between 1 and {MAX_EPOCHS}, got {str(args.epochs)[:30]}")
    seconds = parsed(args.time, "--time", parse_duration)
    args.set = [*(args.set or []), *shorthands(args)]
    with ProgressView(args.quiet or args.json) as view:
        ctx = open_context(args, view, space=with_subset(_with_distill(args), args),
                           genomes=(genome,))
        run = api.train(genome, epochs=args.epochs, time=seconds, seed=args.seed, ctx=ctx,
                        callbacks=(view.epochs(genome.notation),)).run
    row = {"genome": run.genome, "attention": run.attention, "flops": run.flops,
           "params": run.params, "val_accuracy": run.val_accuracy,
           "test_accuracy": run.test_accuracy, "seed": run.seed, "status": run.status,
           "best_epoch": run.best_epoch, "epochs": run.recipe["train"]["epochs"], "run_id": run.id,
           "input": str(ctx.shape), "data": ctx.data.name, "teacher": teacher_fields(ctx),
           "seconds": run.duration_s}
    if args.json:
        emit_json(row)
        return 0 if run.status == "ok" else 1
    print_fields({
        "genome": f"{run.genome} {run.attention}",
        "status": run.status if run.status == "ok" else Text(f"{run.status}: loss became NaN", "red"),
        "FLOPs": count_text(run.flops, exact=True), "params": count_text(run.params, exact=True),
        "val accuracy": percent(run.val_accuracy) + f"  (best epoch {run.best_epoch})",
        "test accuracy": percent(run.test_accuracy),
        "teacher": teacher_text(ctx),
        "stored": f"run {run.id} in {ctx.store.url}",
    })
    warning = weak_teacher(ctx.teacher.val_accuracy, run.val_accuracy)
    if warning is not None:
        print(warning)
    return 0 if run.status == "ok" else 1


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("teacher", help="train (or reuse) the space's teacher")
    data_flags(p)
    p.set_defaults(func=cmd_teacher)
    p = commands.add_parser("train", help="distil one student from the teacher")
    p.add_argument("genome", help='e.g. "[2,8,6,1,0] [2,16,4,1,0]"')
    p.add_argument("--attention", choices=tuple(ATTENTIONS), default=None,
                   help="channel attention (default: the genome's attention word, else eca)")
    p.add_argument("--epochs", type=int, default=None, help="default: the space's [train] epochs")
    p.add_argument("--time", default=None, metavar="DURATION",
                   help="train for this wall clock (18m, 90s, 4m30s), the cosine schedule spread over "
                        "it: equal time for every design, not equal epochs (--epochs: a cap)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the student's initial weights, data order and augmentation")
    p.add_argument("--distill", choices=CHOICES["DistillConfig.loss"], default=None,
                   help="override [distill] loss; none: cross-entropy only, no teacher at all")
    p.add_argument("--lr", type=float, default=None, help="--set train.lr=LR (default: the space's)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="--set train.batch_size=N (default: the space's)")
    data_flags(p)
    p.set_defaults(func=cmd_train)


SHORTHANDS = {"lr": "train.lr", "batch_size": "train.batch_size"}     # flag dest -> recipe key


def shorthands(args: argparse.Namespace) -> list[Setting]:
    """--lr and --batch-size as the --set overrides they stand for, laid over any --set."""
    return [Setting(key, value, "--" + dest.replace("_", "-")) for dest, key in SHORTHANDS.items()
            if (value := getattr(args, dest, None)) is not None]


def _with_distill(args: argparse.Namespace) -> Space:
    """The space of --space, with [distill] loss replaced by --distill when given."""
    space = resolve_space(args.space, args.data)
    if args.distill is None:
        return space
    return replace(space, distill=replace(space.distill, loss=args.distill))
