"""Does distillation from the pretrained teacher beat plain training? Measured on real photos.

One context (data, the report's views, the frozen pretrained EfficientNet-Lite0 teacher and its
outputs per view) is prepared once; then the report's student is trained in every arm (CE only,
and distillation with loss feature / logit / both) on the very same views, epochs and seeds.
Prints the teacher's val/test accuracy and the time it took to be ready, then mean +- sd test
accuracy per arm and the paired difference to CE, and the same for the plateau: the mean
validation accuracy over the second half of the epochs, which no checkpoint choice moves.
Run by hand (not a test), e.g.
    python bench/bench_teacher.py --epochs 10 --seeds 0 1 2 --threads 2
or one process per arm, then `--summarize none.log feature.log logit.log both.log`.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from nas.data.dataset import parse_image_size
from nas.model.genome import Genome
from nas.model.space import load_space
from nas.store.runs import RunRecord, Store
from nas.train.experiment import Context, prepare, resolve_device, train_genome

ROOT = Path(__file__).resolve().parents[1]
HYMENOPTERA = ROOT.parent / "shared" / "data" / "hymenoptera"
ARMS = ("none", "feature", "logit", "both")
_ARM = re.compile(rf"(.*)({'|'.join(ARMS)})(-[a-z]+)?")    # an arm's name: TAG + LOSS (-TARGET)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(HYMENOPTERA))
    p.add_argument("--space", default=str(ROOT / "nas" / "search_spaces" / "photos.toml"))
    p.add_argument("--genome", default="[2,8,6,1,0] [2,16,4,1,0]")
    p.add_argument("--attention", default="eca")
    p.add_argument("--image-size", default="128x128", help="the student's input")
    p.add_argument("--teacher-size", type=int, default=0,
                   help="the teacher's input side (default: the space's rule, 224 on photos)")
    p.add_argument("--teacher-kind", default=None, choices=("genome", "lite", "torchvision"),
                   help="instead of the space's (lite: the pretrained EfficientNet-Lite0)")
    p.add_argument("--teacher-epochs", type=int, default=None)
    p.add_argument("--teacher-feature", default=None, choices=("head", "trunk"),
                   help="what `feature` distillation matches (trunk: the frozen trunk's pooled output)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--views", nargs="*", default=None,
                   help="[train.augment] views instead of the space's (e.g. add mixup views)")
    p.add_argument("--mixup-alpha", type=float, default=None)
    p.add_argument("--tag", default="", help="prefix of the arm names in the output (a variant)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--storage", default="sqlite:///bench_teacher.db")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--summarize", nargs="+", metavar="LOG", default=None,
                   help="only combine earlier runs: their JSON lines (one log per arm, say) or the "
                        "runs of --epochs stored in a SQLite database (FILE.db; arm = --tag + loss)")
    return p.parse_args(argv)


def context(args: argparse.Namespace) -> tuple[Context, float]:
    """The shared context and the seconds it took (data, views, teacher, bank)."""
    space = load_space(args.space)
    teacher = replace(space.teacher, image_size=args.teacher_size or space.teacher.image_size,
                      epochs=args.teacher_epochs or space.teacher.epochs,
                      feature=args.teacher_feature or space.teacher.feature)
    if args.teacher_kind is not None:
        teacher = replace(teacher, kind=args.teacher_kind, train="auto",
                          **({"model": "efficientnet_lite0", "weights": "pretrained"}
                             if args.teacher_kind == "lite" else {}))
    distill = replace(space.distill, loss="feature" if space.distill.loss == "none" else space.distill.loss,
                      alpha=space.distill.alpha if args.alpha is None else args.alpha,
                      temperature=space.distill.temperature if args.temperature is None else args.temperature)
    augment = space.train.augment
    augment = replace(augment, views=augment.views if args.views is None else tuple(args.views),
                      mixup_alpha=args.mixup_alpha or augment.mixup_alpha)
    space = replace(space, teacher=teacher, distill=distill,
                    train=replace(space.train, augment=augment))
    started = time.perf_counter()
    ctx = prepare(space, args.data, Store(args.storage), size=parse_image_size(args.image_size),
                  device=resolve_device("cpu", args.threads),
                  cache_dir=cache_dir(args))
    return ctx, time.perf_counter() - started


def cache_dir(args: argparse.Namespace) -> Path | None:
    return Path(args.cache_dir) if args.cache_dir else None


def arm(ctx: Context, loss: str) -> Context:
    return replace(ctx, space=replace(ctx.space, distill=replace(ctx.space.distill, loss=loss)))


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.summarize:
        report(from_logs(args.summarize, args.tag, args.epochs))
        return 0
    ctx, ready = context(args)
    t = ctx.teacher
    name = None if t.spec is None else (f"genome {t.spec.genome} {t.spec.attention}"
                                         if t.spec.kind == "genome" else t.spec.model)
    print(json.dumps({"teacher": name, "cached": t.cached,
                      "teacher_size": ctx.space.teacher.image_size, "val": t.val_accuracy,
                      "test": t.test_accuracy, "ready_s": round(ready, 1),
                      "views": len(ctx.views.labels), "student_input": str(ctx.shape),
                      "distill": asdict(ctx.space.distill)}), flush=True)
    genome = Genome.parse(args.genome, args.attention)
    rows = []
    for seed in args.seeds:
        for name in args.arms:
            run = train_genome(arm(ctx, name), genome, epochs=args.epochs, seed=seed)
            rows.append(logged_row(args.tag + name, seed, run))
    report(rows)
    return 0


def logged_row(name: str, seed: int, run: RunRecord) -> dict:
    """One run's JSON line (printed as it ends, for --summarize) and its row."""
    row = {"arm": name, "seed": seed, "val": run.val_accuracy, "test": run.test_accuracy,
           "best_epoch": run.best_epoch, "plateau_val": plateau(run.history),
           "seconds": round(run.duration_s or 0, 1)}
    print(json.dumps(row), flush=True)
    return row


def plateau(history: list[dict[str, float]]) -> float:
    """Mean validation accuracy over the second half of the epochs: a student's level once
    trained, free of the noise of picking one epoch on a small validation split."""
    late = history[len(history) // 2:]
    return statistics.mean(epoch["val_accuracy"] for epoch in late) if late else 0.0


def report(rows: list[dict]) -> None:
    """Test accuracy (of the best-validation epoch) and plateau validation accuracy, per arm."""
    print("test accuracy of the best-validation epoch:", flush=True)
    summarize(by_arm(rows, "test"))
    if all("plateau_val" in row for row in rows):
        print("plateau: mean validation accuracy over the second half of the epochs:", flush=True)
        summarize(by_arm(rows, "plateau_val"))


def from_logs(paths: list[str], tag: str = "", epochs: int = 0) -> list[dict]:
    """The per-run JSON lines of runs made in parallel processes, or their stored runs."""
    rows = []
    for path in paths:
        if path.endswith(".db"):
            rows += from_store(path, tag, epochs)
            continue
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.startswith("{") else {}
            if "arm" in row:
                rows.append(row)
    return rows


def from_store(path: str, tag: str, epochs: int) -> list[dict]:
    """Rows of the runs in a bench database that ran the whole schedule of `epochs`."""
    store = Store(f"sqlite:///{path}")
    try:
        runs = [run for run in store.list_runs()
                if run.status == "ok" and run.recipe["train"]["epochs"] == epochs == len(run.history)]
    finally:
        store.close()
    return [{"arm": tag + run.recipe["distill"]["loss"], "seed": run.seed, "test": run.test_accuracy,
             "plateau_val": plateau(run.history)} for run in runs]


def by_arm(rows: list[dict], metric: str) -> dict[str, dict[int, float]]:
    """metric per arm and seed, arms in (variant, ARMS) order."""
    results: dict[str, dict[int, float]] = {}
    for row in rows:
        results.setdefault(row["arm"], {})[row["seed"]] = row[metric] or 0.0
    return dict(sorted(results.items(), key=lambda item: _order(item[0])))


def _order(name: str) -> tuple[str, int, str]:
    tag, loss, target = _parts(name)
    return tag, ARMS.index(loss), target


def _parts(name: str) -> tuple[str, str, str]:
    """(variant tag, loss, target) of an arm's name: TAG + LOSS, or TAG + LOSS-TARGET
    (bench/distill_variants.py's)."""
    match = _ARM.fullmatch(name)
    if match is None:
        raise SystemExit(f"arm {name!r}: expected TAG + one of {', '.join(ARMS)} (+ -TARGET)")
    return match.group(1), match.group(2), match.group(3) or ""


def summarize(results: dict[str, dict[int, float]]) -> None:
    """Mean +- sd of a metric per arm, and the paired difference to CE ('none') of the
    same variant (tag), else to the untagged CE."""
    for name, by_seed in results.items():
        tag, loss, _ = _parts(name)
        base = results.get(tag + "none", results.get("none", {}))
        values = list(by_seed.values())
        line = f"{name:14s} {100 * statistics.mean(values):5.1f} +- {_sd(values):4.1f}"
        paired = [100 * (by_seed[s] - base[s]) for s in by_seed if s in base]
        if loss != "none" and paired:
            line += (f"   vs CE {statistics.mean(paired):+5.1f} +- {_sd(paired, 1):4.1f}"
                     f" (paired, n={len(paired)})")
        print(line, flush=True)


def _sd(values: list[float], scale: float = 100) -> float:
    return scale * statistics.stdev(values) if len(values) > 1 else 0.0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
