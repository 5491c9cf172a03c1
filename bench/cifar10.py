"""CIFAR-10, the medium benchmark: data at scale, the teacher for 32x32 images, and distillation
against plain training, measured to within a point.

Three steps, each its own processes, so that arms run side by side on the cores:
    python bench/cifar10.py data                       # first load (decode, cache) and a cached load
    python bench/cifar10.py teacher --sizes 64 96 128  # the frozen Lite0 teacher per input size
    python bench/cifar10.py targets                    # how sure the teacher is of its training images
    python bench/cifar10.py probe --teacher-size 224   # a linear probe of the frozen trunk's outputs
    python bench/cifar10.py flip --teacher-size 128    # the teacher with mirrored test images averaged in
    python bench/cifar10.py arms --arms none logit --seeds 0 1 2 3 4 --parallel 2
    python bench/cifar10.py summary                    # paired differences to CE, 95 % intervals
    python bench/cifar10.py arm --arms logit --tag pick/ --genome "[6,24,3,2,0]" --attention se
    python bench/cifar10.py summary --baseline logit   # another student against the seed report's
    python bench/cifar10.py rank --trials ce kd --final fin   # which trials rank as the final runs
`--quick` shrinks every step (200 images per class, 3 epochs, 2 seeds) to a 15-minute check.
Every run prints one JSON line to its log under --out; `summary` reads them all.
Run by hand (not a test): the numbers go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from jsonlog import json_lines  # bench/ is the script's folder, first on sys.path

if TYPE_CHECKING:
    import torch

    from nas.data.dataset import Dataset
    from nas.model.space import Space
    from nas.study.ablation.stats import Spread
    from nas.train.distill import EpochCallback, EpochStats
    from nas.train.experiment import Context
    from nas.train.teacher_data import TeacherInputs
    from nas.train.trunk import TrunkMaps

ROOT = Path(__file__).resolve().parents[1]
CIFAR10 = ROOT.parent / "shared" / "data" / "cifar10"
GENOME = "[2,8,6,1,0] [2,16,4,1,0]"


def parse_args(argv: list[str]) -> argparse.Namespace:
    from nas.cli.common import set_arg

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", choices=("data", "teacher", "targets", "probe", "flip", "arms", "arm",
                                    "summary", "rank"))
    p.add_argument("--data", default=str(CIFAR10))
    p.add_argument("--space", default="cifar10.toml")
    p.add_argument("--out", default="/tmp/nas-cifar10", help="logs, database and cache")
    p.add_argument("--quick", action="store_true", help="200 per class, 3 epochs, 2 seeds")
    p.add_argument("--train-per-class", type=int, default=None)
    p.add_argument("--val-per-class", type=int, default=None)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128])
    p.add_argument("--teacher-size", type=int, default=None)
    p.add_argument("--arms", nargs="+", default=["none", "logit", "feature", "both"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--views", nargs="*", default=None)
    p.add_argument("--tag", default="", help="prefix of this variant's arm names")
    p.add_argument("--genome", default=GENOME, help="the student (default: the seed report's)")
    p.add_argument("--attention", default="eca", help="the student's channel attention")
    p.add_argument("--baseline", default=None,
                   help="summary: pair every arm with this arm (default: CE of the same tag)")
    p.add_argument("--trials", nargs="+", default=[],
                   help="rank: tag prefixes of the trial runs, scored by validation accuracy")
    p.add_argument("--final", default="fin",
                   help="rank: tag prefix of the final-recipe runs, scored by test accuracy, or "
                        "a JSON file of their test accuracies (bench/final_recipe.json)")
    p.add_argument("--parallel", type=int, default=2, help="arm processes at once")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", type=set_arg, action="append", default=[], metavar="KEY=VALUE",
                   help="a dotted recipe override, as `nas train --set` (e.g. teacher.train=all)")
    return p.parse_args(argv)


def space(args: argparse.Namespace, loss: str | None = None, teacher_size: int | None = None) -> Space:
    """The space file with this run's subset, schedule, teacher size and loss."""
    from nas.cli.common import with_sets
    from nas.model.space import load_space

    base = with_sets(load_space(args.space), args.set)
    quick = {"train_per_class": 200, "epochs": 3} if args.quick else {}
    train = {**quick, **{k: v for k, v in (("train_per_class", args.train_per_class),
                                          ("val_per_class", args.val_per_class),
                                          ("epochs", args.epochs)) if v is not None}}
    augment = base.train.augment if args.views is None else replace(base.train.augment,
                                                                     views=tuple(args.views))
    distill = replace(base.distill, loss=loss or base.distill.loss,
                      **{k: v for k, v in (("alpha", args.alpha), ("temperature", args.temperature))
                         if v is not None})
    teacher = replace(base.teacher, image_size=teacher_size or args.teacher_size
                      or base.teacher.image_size)
    return replace(base, train=replace(base.train, augment=augment, **train), distill=distill,
                   teacher=teacher)


def out(args: argparse.Namespace) -> Path:
    path = Path(args.out)
    path.mkdir(parents=True, exist_ok=True)
    return path


def step_data(args: argparse.Namespace) -> None:
    """Seconds for the first load of the whole folder (scan, decode, cache) and a cached one."""
    import shutil

    from nas.data.dataset import load_data

    cache = out(args) / "data-cache"
    shutil.rmtree(cache, ignore_errors=True)
    for name in ("first", "cached"):
        started = time.perf_counter()
        data = load_data(args.data, (32, 32), cache_dir=cache)
        print(json.dumps({"load": name, "seconds": round(time.perf_counter() - started, 1),
                          "train": len(data.train.labels), "val": len(data.val.labels),
                          "test": len(data.test.labels)}), flush=True)


def step_teacher(args: argparse.Namespace) -> None:
    """Per teacher size: seconds for the trunk's cache and for the head, val and test accuracy."""
    for size in args.sizes:
        print(json.dumps(teacher_row(args, size)), flush=True)


def teacher_row(args: argparse.Namespace, size: int) -> dict:
    """Time the data (and views) at the teacher's size, the trunk's cache, then the head."""
    started = time.perf_counter()
    trunk = trunk_pass(args, size)
    trunked = time.perf_counter()
    ctx = context(args, "logit", size)
    done = time.perf_counter()
    ctx.store.close()
    return {"teacher_size": size, **trunk, "trunk_s": round(trunked - started - trunk["data_s"], 1),
            "head_s": round(done - trunked, 1), "cached": ctx.teacher.cached,
            "val": ctx.teacher.val_accuracy, "test": ctx.teacher.test_accuracy,
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 1)}


def trunk_pass(args: argparse.Namespace, size: int) -> dict:
    """Load the data and views at the teacher's size (timed), then cache the frozen trunk's
    outputs; what they held is freed on return, before the head's run loads them again."""
    made = teacher_maps(args, size)
    data, inputs = made.data, made.inputs
    trunk_images = len(inputs.fit_views.labels) + len(data.val.labels) + len(data.test.labels)
    return {"teacher_train": inputs.config.train, "teacher_epochs": inputs.config.epochs,
            "teacher_lr": inputs.config.lr, "teacher_images": inputs.config.images,
            "train_images": len(inputs.fit.train.labels),
            "trunk_images": trunk_images if made.maps is not None else 0,   # a trained trunk: none
            "data_s": round(made.data_s, 1)}


@dataclass(frozen=True)
class TeacherMaps:
    """The data, the teacher's inputs at its size, the frozen trunk's outputs (None: a trained
    trunk) and the seconds the data and views took to load."""

    data: Dataset
    inputs: TeacherInputs
    maps: TrunkMaps | None
    data_s: float


def teacher_maps(args: argparse.Namespace, size: int) -> TeacherMaps:
    """The data and views at the teacher's size, then the frozen trunk's cached outputs
    (computed now if the cache lacks them)."""
    from nas.data.dataset import load_data
    from nas.train.experiment import image_size, resolve_device
    from nas.train.teacher import build_teacher, teacher_inputs
    from nas.train.trunk import trunk_maps

    sp = space(args, loss="logit", teacher_size=size)
    cache = out(args) / "cache"
    started = time.perf_counter()
    data = load_data(args.data, image_size(sp, args.data, None), **sp.train.split_kwargs(),
                     cache_dir=cache)
    inputs = teacher_inputs(sp, args.data, data, cache_dir=cache)
    data_s = time.perf_counter() - started
    maps = None
    if inputs.config.train == "head":
        model = build_teacher(inputs.config, sp, len(data.classes))
        maps = trunk_maps(model, inputs.config, inputs.fit, inputs.fit_views,
                          resolve_device("cpu", args.threads), cache)
    return TeacherMaps(data, inputs, maps, data_s)


def step_probe(args: argparse.Namespace) -> None:
    """A linear probe of the frozen trunk at --teacher-size: its cached outputs average-pooled
    and standardised, multinomial logistic regression (L-BFGS) per L2 weight, the weight picked
    on validation; the seed report's head (`teacher`) against this says whether the head or the
    trunk limits the teacher."""
    import torch

    size = args.teacher_size or space(args).teacher.image_size
    made = teacher_maps(args, size)
    data, inputs, maps = made.data, made.inputs, made.maps
    if maps is None:
        raise SystemExit("cifar10: probe needs a frozen trunk ([teacher] train = \"head\")")
    train, val, test = (pooled(m) for m in (maps.views, maps.val, maps.test))
    mean, sd = train.mean(0), train.std(0) + 1e-6
    splits = {"train": ((train - mean) / sd, inputs.fit_views.labels),
              "val": ((val - mean) / sd, data.val.labels), "test": ((test - mean) / sd, data.test.labels)}
    torch.set_num_threads(args.threads)
    for l2 in (1e-2, 3e-3, 1e-3, 3e-4, 1e-4):
        started = time.perf_counter()
        weight, bias = logistic_regression(*splits["train"], l2)
        row = {"teacher_size": size, "train_images": len(inputs.fit_views.labels), "l2": l2,
               **{name: round(((x @ weight + bias).argmax(1) == y).float().mean().item(), 4)
                  for name, (x, y) in splits.items()},
               "fit_s": round(time.perf_counter() - started, 1)}
        print(json.dumps(row), flush=True)


def step_flip(args: argparse.Namespace) -> None:
    """The teacher at --teacher-size (trained into the store first, as `teacher` does) on the
    validation and test images as they are, mirrored, and with the two outputs averaged (flip
    test-time augmentation): what averaging would add to its accuracy. The tool does not average."""
    from nas.train.distill import predict
    from nas.train.teacher import teacher_inputs
    from nas.train.trunk import input_stats

    size = args.teacher_size or space(args).teacher.image_size
    ctx = context(args, "logit", size)
    inputs = teacher_inputs(ctx.space, args.data, ctx.data, cache_dir=out(args) / "cache")
    started = time.perf_counter()
    mean, std = input_stats(inputs.config, inputs.data)
    row: dict = {"teacher_size": size, "stored_test": ctx.teacher.test_accuracy}
    for name, split in (("val", inputs.data.val), ("test", inputs.data.test)):
        plain, mirrored = (predict(ctx.teacher.model, images, mean, std, ctx.device)[1].softmax(1)
                           for images in (split.images, split.images.flip(-1)))
        for label, probs in (("", plain), ("_mirrored", mirrored), ("_averaged", plain + mirrored)):
            row[name + label] = round(float((probs.argmax(1) == split.labels).float().mean()), 4)
    ctx.store.close()
    print(json.dumps({**row, "seconds": round(time.perf_counter() - started, 1)}), flush=True)


def pooled(maps: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Float32 global averages of float16 feature maps, a chunk at a time (the maps are mapped
    from the cache, 7.5 GB at 224 on the whole split)."""
    import torch

    features = torch.empty(len(maps), maps.shape[1])
    for start in range(0, len(maps), chunk):
        features[start:start + chunk] = maps[start:start + chunk].float().mean((2, 3))
    return features


def logistic_regression(x: torch.Tensor, y: torch.Tensor, l2: float
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression, full batch, by L-BFGS: (weight, bias)."""
    import torch

    weight = torch.zeros(x.shape[1], int(y.max()) + 1, requires_grad=True)
    bias = torch.zeros(weight.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=300, history_size=20,
                            line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        opt.zero_grad()
        value = torch.nn.functional.cross_entropy(x @ weight + bias, y) + l2 * weight.square().sum()
        value.backward()
        return value

    opt.step(loss)
    return weight.detach(), bias.detach()


def step_targets(args: argparse.Namespace) -> None:
    """What the teacher's soft targets carry beyond the label, on the student's training images
    (from the cached teacher bank): its accuracy there, its mean top-1 probability at T = 1 and
    at the distillation temperature, and the mean probability it gives the label."""
    import torch

    ctx = context(args, "logit")
    logits, labels = ctx.bank.logits, ctx.views.labels
    temperature = ctx.space.distill.temperature
    row = {"teacher": ctx.teacher.spec.train, "teacher_test": ctx.teacher.test_accuracy,
           "train_accuracy": (logits.argmax(1) == labels).float().mean().item()}
    for name, t in (("t1", 1.0), (f"t{temperature:g}", temperature)):
        probs = torch.softmax(logits / t, dim=1)
        row[f"top1_{name}"] = probs.max(1).values.mean().item()
        row[f"label_{name}"] = probs.gather(1, labels[:, None]).mean().item()
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}),
          flush=True)
    ctx.store.close()


def context(args: argparse.Namespace, loss: str, teacher_size: int | None = None) -> Context:
    """The prepared context of one arm; the teacher is trained once into the shared store."""
    from nas.store.runs import Store
    from nas.train.experiment import prepare, resolve_device

    sp = space(args, loss, teacher_size)
    store = Store(f"sqlite:///{out(args) / 'runs.db'}")
    return prepare(sp, args.data, store, device=resolve_device("cpu", args.threads),
                   cache_dir=out(args) / "cache",
                   teacher_callbacks=(epoch_line(f"teacher {sp.teacher.image_size}"),))


def epoch_line(what: str) -> EpochCallback:
    """A callback that logs one plain line per epoch to stderr (not JSON: summaries skip it), so
    an hour-long step can be watched in its log."""
    def log(stats: EpochStats) -> None:
        print(f"{time.strftime('%H:%M:%S')} {what}: epoch {stats.epoch}/{stats.epochs}, val "
              f"{stats.val_accuracy:.2%}, loss {stats.loss:.4f}, {stats.seconds:.0f} s",
              file=sys.stderr, flush=True)
    return log


def step_arm(args: argparse.Namespace) -> None:
    """One arm over its seeds, in this process (the teacher comes from the shared store)."""
    from nas.model.genome import Genome
    from nas.train.experiment import train_genome

    (loss,) = args.arms
    ctx = context(args, loss)
    for seed in args.seeds:
        run = train_genome(ctx, Genome.parse(args.genome, args.attention), seed=seed,
                           callbacks=(epoch_line(f"{args.tag}{loss} seed {seed}"),))
        print(json.dumps({"arm": args.tag + loss, "genome": f"{args.genome} {args.attention}",
                          "seed": seed, "val": run.val_accuracy,
                          "test": run.test_accuracy, "best_epoch": run.best_epoch,
                          "epochs": len(run.history), "seconds": round(run.duration_s or 0, 1),
                          "s_per_epoch": round((run.duration_s or 0) / max(1, len(run.history)), 1),
                          "teacher_val": ctx.teacher.val_accuracy,
                          "teacher_test": ctx.teacher.test_accuracy}), flush=True)
    ctx.store.close()


def step_arms(args: argparse.Namespace, argv: list[str]) -> None:
    """Each arm in its own process, `--parallel` at once, after the teacher is made once here."""
    rest = [a for a in argv if a != "arms"]
    teacher_arms = [arm for arm in args.arms if arm != "none"]
    if teacher_arms:
        context(args, teacher_arms[0]).store.close()
    pending, running = list(args.arms), []
    while pending or running:
        running = [p for p in running if p.poll() is None]
        while pending and len(running) < args.parallel:
            running.append(_spawn(rest, pending.pop(0), out(args)))
        time.sleep(2)


def _spawn(rest: list[str], arm: str, folder: Path) -> subprocess.Popen:
    log = folder / f"{_tag(rest).replace('/', '-')}{arm}.log"
    argv = [sys.executable, __file__, "arm", *_without_arms(rest), "--arms", arm]
    return subprocess.Popen(argv, stdout=log.open("a"), stderr=subprocess.STDOUT)


def _tag(argv: list[str]) -> str:
    return argv[argv.index("--tag") + 1] if "--tag" in argv else ""


def _without_arms(argv: list[str]) -> list[str]:
    """argv without `--arms A B ...` (each spawned process gets one arm)."""
    if "--arms" not in argv:
        return argv
    start = argv.index("--arms")
    end = start + 1
    while end < len(argv) and not argv[end].startswith("--"):
        end += 1
    return argv[:start] + argv[end:]


def step_rank(args: argparse.Namespace) -> None:
    """Spearman and Kendall of each trial kind (`--trials`: tag prefixes, their runs' validation
    accuracy) and of FLOPs against the final recipe (`--final`: test accuracy), per genome over
    its seeds' mean, for the genomes both ran."""
    from statistics import mean

    from nas.model.complexity import count
    from nas.model.genome import Genome
    from nas.study.search.fidelity import rank_correlation

    rows = json_lines(out(args))

    def scores(prefix: str, key: str) -> dict[str, float]:
        by_genome: dict[str, list[float]] = {}
        for row in rows:
            if row.get("arm", "").startswith(prefix):
                by_genome.setdefault(row["genome"], []).append(row[key])
        return {genome: mean(values) for genome, values in by_genome.items()}

    final = (json.loads(Path(args.final).read_text())["test"] if args.final.endswith(".json")
             else scores(args.final, "test"))
    sp = space(args, "logit")
    fidelities = {prefix: scores(prefix, "val") for prefix in args.trials}
    fidelities["flops"] = {g: count(Genome.parse(*g.rsplit(" ", 1)), sp, classes=10).flops
                           for g in final}
    for name, trial in fidelities.items():
        corr = rank_correlation(trial, final)
        print(json.dumps({"fidelity": name, "genomes": corr.genomes,
                          "spearman": round(corr.spearman, 3), "kendall": round(corr.kendall, 3),
                          "spearman_p": None if math.isnan(corr.spearman_p)
                          else round(corr.spearman_p, 4)}), flush=True)


def step_summary(args: argparse.Namespace) -> None:
    """Mean +- sd test accuracy per arm; paired difference to CE with its 95 % interval."""
    from nas.study.ablation.stats import paired, spread

    arms: dict[str, dict[int, dict]] = {}
    for row in json_lines(out(args)):
        if "arm" in row:
            arms.setdefault(row["arm"], {})[row["seed"]] = row
    for name, by_seed in sorted(arms.items()):
        tests = {seed: row["test"] for seed, row in by_seed.items()}
        gaps = {seed: row["val"] - row["test"] for seed, row in by_seed.items()}
        tag = name[: len(name) - len(name.split("/")[-1])] if "/" in name else ""
        base = arms.get(args.baseline or tag + "none") or arms.get("none", {})
        line = {"arm": name, "n": len(tests), "test": _pct(spread(list(tests.values()))),
                "val_minus_test": _pct(spread(list(gaps.values()))),
                "s_per_epoch": round(sum(r["s_per_epoch"] for r in by_seed.values()) / len(by_seed), 1)}
        diff = paired({s: r["test"] for s, r in base.items()}, tests)
        if base is not by_seed and diff.low is not None:
            line["vs_" + (args.baseline or "ce")] = (
                f"{100 * diff.mean:+.2f} [{100 * diff.low:+.2f}, {100 * diff.high:+.2f}]"
                f" n={diff.n}{'' if diff.resolved else ' not resolved'}")
        print(json.dumps(line), flush=True)


def _pct(s: Spread) -> str:
    return f"{100 * s.mean:.2f} +- {100 * s.sd:.2f}"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.quick and args.seeds == [0, 1, 2, 3, 4]:
        args.seeds = [0, 1]
    steps = {"data": step_data, "teacher": step_teacher, "targets": step_targets,
             "probe": step_probe, "flip": step_flip, "arm": step_arm, "summary": step_summary,
             "rank": step_rank}
    if args.step == "arms":
        step_arms(args, argv)
    else:
        steps[args.step](args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
