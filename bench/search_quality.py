"""Does the search earn its time? Four arms at equal wall-clock on the same data and teacher.

    python bench/search_quality.py [--data ../shared/data/hymenoptera] [--minutes 2] [--seeds 3]
                                   [--image-size 64x64] [--budget-flops 0.1G] [--out DIR]
    python bench/search_quality.py --space cifar10.toml --data ../shared/data/cifar10 \
        --image-size 32x32 --budget-flops hand [--quick]

Per seed, interleaved (a, b, c, d, then the next seed) so machine noise hits every arm alike
(`--arms` runs some of them, `--combine` matches the arms of several runs by seed, and
`bench/pair_searches.py` sets a variant of arm a run apart against another run's arm b):
  (a) the default search: TPE, `--jobs 2 --threads 1`, --rungs (default 1,3,9: a 9-epoch
      schedule), for --search-share of the arm's budget; then the user's next step, `nas export
      TRIAL --retrain-epochs N`, for the search's --retrain best feasible genomes (by validation
      accuracy; default 1) side by side, sharing two threads, for as many epochs as the rest of
      the budget holds (each genome's epoch time: a one-epoch probe of its retraining, run side
      by side just before it and charged to the arm); with more than one, the retrained genome
      with the best validation accuracy is the arm's student;
  (b) random sampling, full fidelity (3 epochs a trial), `--jobs 1 --threads 2`;
  (c) the seed report's hand design [2,8,6,1,0] [2,16,4,1,0] ECA, trained with the same recipe
      and `--threads 2` for as many epochs as the arm's budget holds (a one-epoch probe gives the
      epoch time: run before the first seed's arms, where it also makes the data caches, and
      before each later seed's arm c under that seed's load; the probe is not charged);
  (d) arm (a) warm-started with the hand design (`--enqueue`, as the bundled spaces list it;
      `--warm space`: with the space file's own `[search] enqueue` list, as a user's search is).
`--budget-flops hand` is the hand design's FLOPs at the input size (the retrained best then
competes with (c) at no more than its FLOPs). Arms (a) and (d) against (c): the paired difference
of test accuracy over seeds with its 95 % t-interval (nas.study.ablation.stats.paired).
`--quick`: 1.25 minutes per arm, 2 seeds, the searches on 200 training images per class
(`--search-per-class`), cross-entropy (`--set distill.loss=none`, unless a --set names the loss:
a teacher for the searches' subset would take arm (a)'s first seed), no augmented views (`--set
'train.augment.views=[]'`, likewise: cifar10.toml's view doubles every epoch), one probe of the
hand design for every seed, no throughput step: a check of the pipeline in under 20 minutes on
2 cores (3 seeds took 24 minutes and 2 take 16 on a machine whose hand-design epoch is 40 s),
which measures nothing.
`--clock`: arm (c) and the retraining train on the wall clock instead (`nas train --time`, `nas
export --retrain-time`: the cosine schedule spread over the seconds left, no probes charged or
planned), so the arms' time is equal by construction (the probes' plans overran or underran by
up to 10 %: epochs drift within a run); the epochs they ran are reported.
`--reference-epoch S`: --minutes are those of a machine whose hand-design probe epoch takes S
seconds; every arm's wall clock is scaled by this machine's probe over S (the same for all arms
and seeds), so a slower machine gets the compute the targets were measured with.
Per arm: mean and spread (sd) over seeds of the best feasible validation accuracy and that
genome's test accuracy (arm a: its retrained student's), the hypervolume of the feasible front
(arm a: its search's; Optuna's own
`optuna._hypervolume.compute_hypervolume` over (1 - val acc, FLOPs / budget, params / 1M) with
the reference point REFERENCE fixed below) at the end of the arm's search window (a trial
running at the timeout finishes after it and may be retrained, but is not counted: `late`), and
the time at which the arm first reached arm (b)'s final hypervolume of the same seed (and that
as a share of (b)'s own time to it, with the arm's hypervolume at a third of that time minus
(b)'s final: issue 21's ≤ 1/3-time target). Then
genomes judged per hour of the same search (TPE, rungs) run as `--jobs 2 --threads 1` and as
`--jobs 1 --threads 2`, side by side.
The JSON of the runs (`--out`) is written after every seed; `--combine A.json B.json` reports
over the seeds of several runs, so a long benchmark can run a seed or an arm at a time
(`--seeds 1 --first-seed 1`, `--arms c`, ...). `--retrain-from A.json` retrains the picks of
arm (a) or (d) runs made with `--search-share 1` (their search window alone) for the rest of
the arm's --minutes, as the arm would have, and writes A-retrained.json for `--combine`.
The teachers and the data cache are made once, before the first arm (the final recipe's by the
hand design's probe where its epoch time is read, else by `nas teacher`; then the searches'
teacher), and shared by every run; a later invocation with the same --out copies the teachers
from the cache folder into its fresh database instead of training them again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume

from nas.cli.common import Setting, set_arg
from nas.study.pareto import TrialRow, best_row, feasible_front, ranked_rows, row_from_trial, unique_genomes
from nas.study.search.processes import WORKER_CODE  # the `nas` command line in a fresh interpreter

ROOT = Path(__file__).resolve().parents[1]
HAND = "[2,8,6,1,0] [2,16,4,1,0]"
ARMS = ("a", "b", "c", "d")
# (1 - acc, FLOPs / budget, params / 1M), fixed up front; FLOPs at 1.1 so a genome exactly at the
# budget (the hand design under `--budget-flops hand`) adds volume (rounds before 2026-12-03: 1.0)
REFERENCE = np.array([1.0, 1.1, 1.0])
PARAMS_SCALE = 1e6


def nas_command(argv: list[str]) -> list[str]:
    """`nas ARGV --quiet --json` in a fresh interpreter."""
    return [sys.executable, "-c", WORKER_CODE, *argv, "--quiet", "--json"]


def launch(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """Start `nas ARGV --json` in a fresh process, its output captured."""
    return subprocess.Popen(nas_command(argv), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def answer(proc: subprocess.Popen[str], argv: list[str]) -> dict[str, Any] | None:
    """A launched command's JSON once it ends (None: it printed none); a failure says so in one
    line, with the last line of its stderr."""
    out, err = proc.communicate()
    if proc.returncode != 0:
        print(f"  ! nas {' '.join(argv[:2])} exit {proc.returncode}: "
              f"{err.strip().splitlines()[-1:] or ''}", flush=True)
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        return None


def nas(argv: list[str], env: dict[str, str]) -> tuple[dict[str, Any] | None, float]:
    """Run `nas ARGV --json` in a fresh process: (its JSON, wall seconds)."""
    started = time.perf_counter()
    result = answer(launch(argv, env), argv)
    return result, time.perf_counter() - started


def hypervolume(rows: list[TrialRow], budget: float) -> float:
    """Optuna's hypervolume of the feasible front, in the fixed normalised space."""
    points = [(1 - (r.val_accuracy or 0.0), (r.flops or 0) / budget, (r.params or 0) / PARAMS_SCALE)
              for r in feasible_front(rows)]
    inside = np.array([p for p in points if all(a < b for a, b in zip(p, REFERENCE, strict=True))])
    return float(compute_hypervolume(inside, REFERENCE)) if len(inside) else 0.0


@dataclass(frozen=True)
class Curve:
    """A search arm's trials, read at the end of its window."""

    points: list[tuple[float, float]]   # (seconds since the arm started, hypervolume) per trial
    rows: list[TrialRow]                # every completed trial, those after the window too
    judged: int                         # genomes trained or pruned within the window
    late: int                           # trials completed after the window (not counted)


def study_curve(url: str, name: str, started: datetime, budget: float, window: float) -> Curve:
    """The hypervolume after each trial completed within `window` seconds of the arm's start.
    Trials running at the search's timeout finish after it (and the search's clock starts after
    its set-up): they may still be retrained, but every arm is read at the same wall clock."""
    trials = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    done = sorted((t for t in trials if t.datetime_complete), key=lambda t: t.datetime_complete)
    points, rows, judged = [], [], 0
    for trial in done:
        rows.append(row_from_trial(trial))
        at = (trial.datetime_complete - started).total_seconds()
        if at <= window:
            points.append((at, hypervolume(rows, budget)))
            judged += trial.user_attrs.get("outcome") in ("trained", "pruned")
    return Curve(points, rows, judged, late=len(done) - len(points))


def best_of(rows: list[TrialRow]) -> tuple[float | None, float | None]:
    """(best feasible val accuracy, that genome's test accuracy), `nas export best`'s pick:
    selection on validation only."""
    best = best_row(rows)
    return (None, None) if best is None else (best.val_accuracy, best.test_accuracy)


def search_arm(args: argparse.Namespace, env: dict[str, str], name: str, seed: int,
               extra: list[str], seconds: float) -> dict[str, Any]:
    """One search arm for `seconds` of wall clock (no trial starts after it)."""
    started = datetime.now()
    summary, wall = nas(["search", *common(args, search=True), "--study", name, "--seed", str(seed),
                         "--trials", "100000", "--timeout", f"{seconds:.0f}s", *extra], env)
    if summary is None:
        return {"val": None, "test": None, "hv": 0.0, "curve": [], "wall": wall, "judged": 0,
                "rejected": None, "sampled": None, "rows": []}
    curve = study_curve(args.url, name, started, args.budget, seconds)
    val, test = best_of(curve.rows)
    return {"val": val, "test": test, "hv": curve.points[-1][1] if curve.points else 0.0,
            "curve": curve.points, "late": curve.late, "wall": wall, "judged": curve.judged,
            "rejected": (summary or {}).get("rejected"), "sampled": (summary or {}).get("sampled"),
            "rows": curve.rows}


def default_arm(args: argparse.Namespace, env: dict[str, str], seed: int, seconds: float,
                warm: bool = False) -> dict[str, Any]:
    """Arm (a), or (d) with `warm`: the search for its share of the budget, cold or warm-started
    (with the hand design, or with `--warm space` the space file's list), then its best genomes
    retrained for the rest (none with --search-share 1)."""
    share = seconds * args.search_share
    name = f"{'d' if warm else 'a'}-{seed}"
    start = ([] if args.warm == "space" else ["--enqueue", HAND]) if warm else ["--no-enqueue"]
    run = search_arm(args, env, name, seed,
                     ["--jobs", "2", "--threads", "1", "--rungs", args.rungs, *start], share)
    if args.search_share >= 1 or not run["rows"]:
        return run
    return with_retraining(args, env, name, run, run["rows"], seconds)


def with_retraining(args: argparse.Namespace, env: dict[str, str], name: str,
                    run: dict[str, Any], rows: list[TrialRow], seconds: float) -> dict[str, Any]:
    """The search arm's `run` (its trials `rows`) with its best genomes retrained for what its
    search left of the arm's `seconds`: its student's val and test are the retrained ones."""
    final = retrain(args, env, name, rows, max(0.0, seconds - run["wall"]))
    print(f"  retrained: {final['retrained']}", flush=True)
    if final["best"] is not None:
        run.update(val=final["best"]["val"], test=final["best"]["test"])
    run.update(search_wall=run["wall"], wall=run["wall"] + final["retrain_wall"],
               retrained=final["retrained"])
    return run


def retrain_later(args: argparse.Namespace, env: dict[str, str], paths: list[str]) -> None:
    """`--retrain-from`: search windows of arms (a) and (d) run with --search-share 1, each
    retrained as the arm would have for the rest of --minutes (from its database beside the
    JSON); the runs are written beside each file as NAME-retrained.json, for --combine."""
    for path in paths:
        kept = read_runs(path, "--retrain-from")
        args.url = f"sqlite:///{Path(path).with_suffix('.db')}"
        for arm in ("a", "d"):
            for seed, run in zip(kept.get("seeds", []), kept.get(arm, []), strict=False):
                if "retrained" in run:
                    fail(f"--retrain-from {path}: arm {arm} of seed {seed} is retrained already")
                name = f"{arm}-{seed}"
                rows = study_curve(args.url, name, datetime.now(), args.budget, 0).rows
                with_retraining(args, env, name, run, rows, args.minutes * 60)
        saved = Path(path).with_name(f"{Path(path).stem}-retrained.json")
        write_whole(kept, saved)
        print(f"retrained runs: {saved}", flush=True)


def retrain(args: argparse.Namespace, env: dict[str, str], name: str, rows: list[TrialRow],
            seconds: float) -> dict[str, Any]:
    """The user's next step after a search, `nas export TRIAL --retrain-epochs N`, for the
    search's `--retrain` best feasible genomes side by side (sharing the arms' two threads) over
    `seconds`, probe included; the one with the best validation accuracy is the arm's student
    (selection on validation only)."""
    ranked = [r for r in ranked_rows(unique_genomes(rows)) if r.run_id is not None][:args.retrain]
    threads = max(1, 2 // args.retrain)
    started = time.perf_counter()
    per_epoch = ([None] * len(ranked) if args.clock else
                 probe_seconds(args, env, [(r.genome, r.attention) for r in ranked], threads))
    left = seconds - (time.perf_counter() - started)
    procs = []
    for row, epoch_s in zip(ranked, per_epoch, strict=True):
        epochs = max(1, int(left // epoch_s)) if epoch_s else None
        schedule = ["--retrain-epochs", str(epochs)] if epochs else ["--retrain-time", f"{left:.1f}s"]
        argv = ["export", str(row.trial), "--study", name, "--storage", args.url, *schedule,
                "--out", str(Path(args.out) / f"{name}-{row.trial}.pt"),
                "--device", "cpu", "--threads", str(threads)]
        procs.append((row, epoch_s, argv, launch(argv, env)))
    trained = []
    for row, epoch_s, argv, proc in procs:
        exported = answer(proc, argv) or {}
        metrics = exported.get("metrics")
        if metrics is None:
            continue
        trained.append({"genome": f"{row.genome} {row.attention}",
                        "epochs": (exported.get("retrained") or {}).get("epochs"),
                        "epoch_s": epoch_s, "flops": row.flops,
                        "search_val": row.val_accuracy,
                        "val": metrics.get("val_accuracy"), "test": metrics.get("test_accuracy")})
    best = max(trained, key=lambda t: (t["val"] or 0.0, -(t["flops"] or 0)), default=None)
    return {"retrained": trained, "best": best, "retrain_wall": time.perf_counter() - started}


def hand_arm(args: argparse.Namespace, env: dict[str, str], seed: int, epochs: int,
             seconds: float) -> dict[str, Any]:
    """The hand design trained for `epochs` (as many as the budget holds), or with --clock for
    the arm's `seconds` of wall clock."""
    schedule = ["--time", f"{seconds:.1f}s"] if args.clock else ["--epochs", str(epochs)]
    row, wall = nas(["train", HAND, "--attention", "eca", *common(args, study=False),
                     *schedule, "--seed", str(seed), "--threads", "2"], env)
    row = row or {}
    fake = TrialRow(0, "COMPLETE", "trained", HAND, "eca", row.get("flops"), row.get("params"),
                    row.get("val_accuracy"), row.get("test_accuracy"), None, (0.0, 0.0), wall)
    fits = (row.get("flops") or 0) <= args.budget
    hv = hypervolume([fake], args.budget) if fits and row.get("val_accuracy") is not None else 0.0
    return {"val": row.get("val_accuracy"), "test": row.get("test_accuracy"), "hv": hv,
            "curve": [(wall, hv)], "wall": wall, "judged": 1, "epochs": row.get("epochs")}


def hand_epochs(seconds: float, per_epoch: float) -> int:
    """Epochs of the hand design that fit in `seconds`, from its probe's `per_epoch` seconds
    (the probe is not charged to arm c)."""
    epochs = max(1, int(seconds // per_epoch))
    print(f"probe: hand design 1 epoch in {per_epoch:.1f} s -> {epochs} epochs for arm c",
          flush=True)
    return epochs


def hand_probe(args: argparse.Namespace, env: dict[str, str], seed: int) -> float:
    """One epoch of the hand design as arm c trains it: its seconds (with a warning when other
    work already keeps the cores busy: the probe sets arm c's epochs, and with
    --reference-epoch every arm's minutes)."""
    busy = busy_share()
    if busy is not None and busy > 0.25:
        print(f"search_quality: warning: the cores were {busy:.0%} busy before the probe; other "
              "work slows it (two threads beside two busy ones: up to 10x) and every budget "
              "taken from it", file=sys.stderr, flush=True)
    return probe_seconds(args, env, [(HAND, "eca")], threads=2, seed=seed)[0]


def prepare(args: argparse.Namespace, env: dict[str, str]) -> float | None:
    """Before any arm, so that no arm's first seed pays for them: the final recipe's data caches
    and teacher (what arm c and the retraining read), then the searches' teacher. The hand
    design's one-epoch probe makes the former where something reads its epoch time
    (--reference-epoch, or arm c's epochs without --clock): its seconds, else None."""
    if args.reference_epoch or ("c" in args.arms and not args.clock):
        per_epoch = hand_probe(args, env, args.first_seed)
    else:
        per_epoch = None
        if "c" in args.arms or (args.search_share < 1 and set(args.arms) & {"a", "d"}):
            make_teacher(args, env, "the final recipe's", common(args, study=False))
    if set(args.arms) & {"a", "b", "d"}:
        searches_teacher(args, env)
    return per_epoch


def searches_teacher(args: argparse.Namespace, env: dict[str, str]) -> None:
    """Make the teacher of the searches' subset and views. The subset and views are the trials'
    (`Space.for_trials`), unless a flag or --set names them."""
    from nas.cli.common import with_sets
    from nas.model.space import VIEWS_KEY, load_space

    chosen = set_keys(args)
    trials = with_sets(load_space(args.space), settings(args)).for_trials(chosen).train
    flags = common(args, study=False, search=True)
    if "--train-per-class" not in flags:
        flags += ["--train-per-class", str(trials.train_per_class)]
    if VIEWS_KEY not in chosen:
        flags += ["--set", f"{VIEWS_KEY}={json.dumps(list(trials.augment.views))}"]
    make_teacher(args, env, "the searches'", flags)


def make_teacher(args: argparse.Namespace, env: dict[str, str], which: str,
                 flags: list[str]) -> None:
    """`nas teacher` with `flags` (trained, or copied from the cache folder); none where the
    recipe, with --set, says distill.loss = "none"."""
    from nas.cli.common import with_sets
    from nas.model.space import load_space

    if with_sets(load_space(args.space), settings(args)).distill.loss == "none":
        return
    made, wall = nas(["teacher", *flags, "--threads", "2"], env)
    print(f"{which} teacher: test {(made or {}).get('test_accuracy')}, {wall:.0f} s", flush=True)


def settings(args: argparse.Namespace) -> list[Setting]:
    """The --set overrides as `nas --set` reads them (`distill.loss = none` names the same key
    as `distill.loss=none`)."""
    return [set_arg(setting) for setting in args.set]


def set_keys(args: argparse.Namespace) -> set[str]:
    """The keys that --set names."""
    return {setting.key for setting in settings(args)}


def busy_share(seconds: float = 1.0) -> float | None:
    """The share of all cores' time spent busy over `seconds` (Linux's /proc/stat; None
    elsewhere)."""
    def times() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]       # all, idle + iowait
    try:
        total, idle = times()
        time.sleep(seconds)
        total2, idle2 = times()
    except (OSError, ValueError, IndexError):
        return None
    return 1 - (idle2 - idle) / max(1, total2 - total)


def arm_seconds(args: argparse.Namespace, per_epoch: float | None) -> float:
    """Every arm's wall clock: --minutes, or with --reference-epoch, the minutes a machine whose
    hand-design epoch takes that long would spend, scaled by this machine's probe."""
    if not args.reference_epoch or per_epoch is None:
        return args.minutes * 60
    minutes = args.minutes * per_epoch / args.reference_epoch
    print(f"--reference-epoch {args.reference_epoch:g} s: this machine's {per_epoch:.1f} s "
          f"-> {minutes:.1f} min per arm", flush=True)
    return minutes * 60


def probe_seconds(args: argparse.Namespace, env: dict[str, str], genomes: list[tuple[str, str]],
                  threads: int, seed: int = 0) -> list[float]:
    """One epoch of each (genome, attention) with the final recipe (`nas train`: the space's
    subset and views, as `export --retrain` trains), side by side as their training will run:
    each one's epoch seconds. A tiny network's epoch does not scale with images and threads as
    its search epoch would suggest (a 1.6 M-FLOPs genome: 3.1 s planned from its search, 4.8 s
    run), so each is timed on the real thing."""
    argvs = [["train", genome, "--attention", attention, *common(args, study=False),
              "--epochs", "1", "--seed", str(seed), "--threads", str(threads)]
             for genome, attention in genomes]
    procs = [launch(argv, env) for argv in argvs]
    return [epoch_seconds(args.url, (answer(proc, argv) or {}).get("run_id"))
            for argv, proc in zip(argvs, procs, strict=True)]


def epoch_seconds(url: str, run_id: int | None) -> float:
    """A probe's epoch time (its last epoch), from its stored history."""
    from nas.store.runs import Store

    if run_id is None:
        return 60.0
    history = Store(url).get_run(run_id).history or []
    return float(history[-1]["seconds"]) if history else 60.0


def common(args: argparse.Namespace, study: bool = True, search: bool = False) -> list[str]:
    """The flags every arm's command shares: space, data, size, storage, subset, --set, and a
    study's budget; `search`: the search arms' subset (--search-per-class)."""
    flags = ["--space", args.space, "--data", args.data, "--image-size", args.image_size,
             "--storage", args.url]
    per_class = (args.search_per_class if search else None) or args.train_per_class
    if per_class:
        flags += ["--train-per-class", str(per_class)]
    for setting in args.set:
        flags += ["--set", setting]
    return flags + (["--budget-flops", f"{args.budget:.0f}"] if study else [])


def hand_flops(args: argparse.Namespace) -> float:
    """The hand design's FLOPs at --image-size in --space, with the data's class count."""
    from nas.data.folders import scan_folder
    from nas.model.complexity import count
    from nas.model.genome import Genome
    from nas.model.space import InputShape, load_space

    height, width = (int(v) for v in args.image_size.split("x"))
    space = load_space(args.space)
    shape = InputShape(3, height, width)       # RGB: the folders this bench reads
    return count(Genome.parse(HAND, "eca"), space, shape=shape,
                 classes=len(scan_folder(Path(args.data)).classes)).flops


def reached(curve: list[tuple[float, float]], target: float) -> float | None:
    """Seconds at which the curve first reached `target` (None: never)."""
    return next((s for s, hv in curve if hv >= target - 1e-12), None)


def hypervolume_at(curve: list[tuple[float, float]], seconds: float) -> float:
    """The curve's hypervolume after `seconds` (0 before its first trial)."""
    return max((hv for s, hv in curve if s <= seconds), default=0.0)


def against_random(run: dict[str, Any], random: dict[str, Any]) -> str:
    """The ≤ 1/3-time target for one seed: when `run` first reached arm (b)'s final
    hypervolume, in seconds and as a share of (b)'s own time to it, and `run`'s hypervolume at
    a third of that time minus (b)'s final."""
    at = reached(run["curve"], random["hv"])
    seconds = "never" if at is None else f"{at:.0f} s"
    own = reached(random["curve"], random["hv"])
    if not own:
        return seconds
    share = "never" if at is None else f"{at / own:.2f}"
    return f"{seconds}, {share} ({hypervolume_at(run['curve'], own / 3) - random['hv']:+.4f})"


def spread(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "-"
    sd = statistics.stdev(got) if len(got) > 1 else 0.0
    return f"{statistics.mean(got):.4f} ± {sd:.4f} (n={len(got)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "hymenoptera"))
    parser.add_argument("--minutes", type=float, default=10.0, help="wall clock per arm and seed")
    parser.add_argument("--reference-epoch", type=float, default=None, metavar="SECONDS",
                        help="--minutes as spent by a machine whose hand-design probe epoch takes "
                             "SECONDS: every arm's wall clock is scaled by this machine's probe "
                             "(10.4 for the 18-minute table of bench/RESULTS.md)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from here up")
    parser.add_argument("--space", default="seed.toml")
    parser.add_argument("--image-size", default="64x64")
    parser.add_argument("--budget-flops", default="0.1G", help="or 'hand': the hand design's FLOPs")
    parser.add_argument("--train-per-class", type=int, default=None, help="the subset, every arm")
    parser.add_argument("--search-per-class", type=int, default=None,
                        help="the search arms' (a, b, d) trials only; arm c keeps --train-per-class "
                             "(else the space's subset), the retraining the space's subset")
    parser.add_argument("--random-epochs", type=int, default=3,
                        help="arm b's epochs per trial (its full fidelity)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a recipe override for every nas command of every arm, e.g. "
                             "distill.loss=none (export --retrain keeps the study's)")
    parser.add_argument("--quick", action="store_true",
                        help="1.25 min per arm, 2 seeds, searches on 200 per class, "
                             "distill.loss=none, no views, one hand-design probe, no throughput step")
    parser.add_argument("--search-share", type=float, default=2 / 3,
                        help="arm a's share of the budget for the search; the rest retrains its "
                             "best genomes (1: search only)")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS),
                        help="run only these arms (default all; the times to reach arm b's "
                             "hypervolume need b in the same run, the paired differences c)")
    parser.add_argument("--rungs", default="1,3,9",
                        help="arm a's rungs (its schedule ends at the last one)")
    parser.add_argument("--warm", choices=("hand", "space"), default="hand",
                        help="arm d's warm start: the hand design (issue 21's arm), or the space "
                             "file's `[search] enqueue` list")
    parser.add_argument("--retrain", type=int, default=1,
                        help="how many of arm a's best genomes the rest of its budget retrains "
                             "(more than one: the best by validation is kept)")
    parser.add_argument("--clock", action="store_true",
                        help="arm c and the retraining train on the wall clock (`nas train --time`, "
                             "`nas export --retrain-time`): equal time by construction, where "
                             "one-epoch probes plan epochs that overrun or underrun")
    parser.add_argument("--throughput-minutes", type=float, default=None,
                        help="per side of the --jobs/--threads comparison (default --minutes; 0 skips it)")
    parser.add_argument("--throughput-only", action="store_true",
                        help="skip the three arms; only the --jobs/--threads comparison")
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "nas-search-quality"),
                        help="databases, data cache and the JSON of the runs")
    parser.add_argument("--combine", nargs="+", metavar="JSON", default=None,
                        help="report over the seeds of earlier runs' JSON files (a long "
                             "benchmark run a seed or an arm at a time), each arm matched by "
                             "seed; trains nothing")
    parser.add_argument("--retrain-from", nargs="+", metavar="JSON", default=None,
                        help="retrain the picks of earlier arm a or d runs made with "
                             "--search-share 1 for the rest of --minutes (the whole arm's), as "
                             "the arm would have; the same flags and --out as those runs")
    args = parser.parse_args()
    if args.reference_epoch is not None and args.reference_epoch <= 0:
        fail(f"--reference-epoch must be a positive number of seconds, got {args.reference_epoch:g}")
    if args.combine:
        report(combined(args.combine))
        return
    if args.quick:
        args.minutes, args.seeds, args.throughput_minutes = 1.25, 2, 0
        args.search_per_class = args.search_per_class or 200
        named = set_keys(args)
        for key, value in (("distill.loss", "none"), ("train.augment.views", "[]")):
            if key not in named:
                args.set.append(f"{key}={value}")
    from nas.units import parse_quantity

    args.budget = (hand_flops(args) if args.budget_flops == "hand"
                   else parse_quantity(args.budget_flops, "--budget-flops"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    args.url = f"sqlite:///{out / f'quality-{stamp}.db'}"
    env = {**os.environ, "NAS_CACHE_DIR": str(out / "cache")}
    if args.retrain_from:
        retrain_later(args, env, args.retrain_from)
        return
    print(f"data {args.data} at {args.image_size}, budget {args.budget:.0f} FLOPs, "
          f"{args.minutes:g} min per arm, {args.seeds} seeds from {args.first_seed}, "
          f"cores {os.cpu_count()}, no GPU used (CPU only)", flush=True)
    if args.throughput_only:
        throughput(args, env, (args.throughput_minutes or args.minutes) * 60)
        return
    per_epoch = prepare(args, env)
    seconds = arm_seconds(args, per_epoch)
    epochs = 0 if per_epoch is None or args.clock else hand_epochs(seconds, per_epoch)
    arms = {
        "a": lambda seed: default_arm(args, env, seed, seconds),
        "b": lambda seed: search_arm(args, env, f"b-{seed}", seed,
                                     ["--jobs", "1", "--threads", "2", "--sampler", "random",
                                      "--epochs", str(args.random_epochs), "--no-enqueue"],
                                     seconds),
        "c": lambda seed: hand_arm(args, env, seed, epochs, seconds),
        "d": lambda seed: default_arm(args, env, seed, seconds, warm=True),
    }
    results: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS if arm in args.arms}
    saved = out / f"quality-{stamp}.json"
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for arm in results:
            if arm == "c" and seed != args.first_seed and not (args.quick or args.clock):
                epochs = hand_epochs(seconds, hand_probe(args, env, seed))    # under its load
            results[arm].append(arms[arm](seed))
        print(f"seed {seed}: " + "; ".join(
            f"{k}: val {r[-1]['val']}, test {r[-1]['test']}, hv {r[-1]['hv']:.4f}, "
            f"judged {r[-1]['judged']}, {r[-1].get('late', 0)} after the window, "
            f"wall {r[-1]['wall']:.0f} s" for k, r in results.items()),
            flush=True)
        save(results, seed, saved)    # every whole seed, so a killed run keeps what it did
    report(results)
    if args.throughput_minutes != 0:
        throughput(args, env, (args.throughput_minutes or args.minutes) * 60)


def save(results: dict[str, list[dict[str, Any]]], seed: int, path: Path) -> None:
    """The arms' results so far (without their trial rows) and their seeds, as JSON, written
    whole through a temporary file."""
    count = len(next(iter(results.values())))
    kept = {arm: [{k: v for k, v in r.items() if k != "rows"} for r in runs]
            for arm, runs in results.items()}
    kept["seeds"] = list(range(seed - count + 1, seed + 1))
    write_whole(kept, path)


def write_whole(kept: dict[str, Any], path: Path) -> None:
    """`kept` as JSON at `path`, written whole through a temporary file (a killed run leaves
    the file as it was)."""
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(kept, indent=1, default=str))
    partial.replace(path)


def fail(message: str) -> NoReturn:
    """Bad input: one line on stderr, named by the script run, exit 2."""
    print(f"{Path(sys.argv[0]).stem}: {message}", file=sys.stderr)
    sys.exit(2)


def read_runs(path: str, flag: str) -> dict[str, Any]:
    """One JSON file that `--out` holds (each arm's runs and their "seeds"), given by `flag`;
    a file that cannot be read fails in one line."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        fail(f"{flag} {path}: {error}")


def runs_by_seed(paths: list[str], flag: str, arms: tuple[str, ...] = ARMS
                 ) -> dict[str, dict[int, dict[str, Any]]]:
    """The runs of `arms` in the JSON files given by `flag` (each read once), by arm and seed (a
    file's "seeds" list, in the order its arms ran them); an arm's seed in two files is
    refused."""
    found: dict[str, dict[int, dict[str, Any]]] = {arm: {} for arm in arms}
    origin: dict[tuple[str, int], str] = {}
    for path in paths:
        kept = read_runs(path, flag)
        for arm, runs in found.items():
            for seed, run in zip(kept.get("seeds", []), kept.get(arm, []), strict=False):
                if seed in runs:
                    fail(f"{flag}: arm {arm} of seed {seed} is in both {origin[arm, seed]} and "
                         f"{path}")
                runs[seed], origin[arm, seed] = run, path
    return found


def combined(paths: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The arms' results of several runs' JSON, matched seed by seed, so a long benchmark can
    run a seed or an arm at a time; an arm's seed in two files is refused, and so are arms that
    ran different seeds (the report pairs them by seed)."""
    by_arm = runs_by_seed(paths, "--combine")
    seeds = {arm: sorted(runs) for arm, runs in by_arm.items() if runs}
    if len({tuple(s) for s in seeds.values()}) > 1:
        fail("--combine: the arms ran different seeds (" +
             "; ".join(f"{arm}: {', '.join(map(str, s))}" for arm, s in seeds.items()) + ")")
    print(f"seeds {next(iter(seeds.values()), [])} from {len(paths)} files", flush=True)
    return {arm: [runs[seed] for seed in sorted(runs)] for arm, runs in by_arm.items()}


def report(results: dict[str, list[dict[str, Any]]]) -> None:
    """Mean ± sd per arm, and when each arm first reached arm (b)'s final hypervolume."""
    randoms = results.get("b", [])
    print("\narm | best feasible val | its test | hypervolume | reached b's final HV at, share of "
          "b's time to it (HV at a third of that minus b's final) | genomes judged")
    for arm, runs in results.items():
        if not runs:
            continue
        shown = ("; ".join(against_random(r, b) for r, b in zip(runs, randoms, strict=True))
                 if randoms else "(no arm b)")
        print(f"{arm} | {spread([r['val'] for r in runs])} | {spread([r['test'] for r in runs])} | "
              f"{spread([r['hv'] for r in runs])} | {shown} | "
              f"{spread([float(r['judged']) for r in runs])}", flush=True)
    for arm in ("a", "d"):
        if results.get(arm) and results.get("c"):
            print(f"{arm} - c, test accuracy: {versus_hand(results, arm)}", flush=True)
    rejected = [r for r in results.get("a", []) + results.get("b", []) if r.get("sampled")]
    if rejected:
        share = sum(r["rejected"] for r in rejected) / sum(r["sampled"] for r in rejected)
        print(f"budget rejected {share:.1%} of the genomes the searches sampled", flush=True)


def versus_hand(results: dict[str, list[dict[str, Any]]], arm: str) -> str:
    """The arm's test accuracy minus the hand design's, paired by seed, with its 95 % interval."""
    from nas.study.ablation.stats import paired

    pairs = [(a["test"], c["test"]) for a, c in zip(results[arm], results["c"], strict=True)
             if a["test"] is not None and c["test"] is not None]
    if len(pairs) < 2:
        return f"needs 2 seeds with both test accuracies, got {len(pairs)}"
    diff = paired(dict(enumerate(c for _, c in pairs)), dict(enumerate(a for a, _ in pairs)))
    verdict = "resolved" if diff.resolved else "not resolved"
    return (f"{100 * diff.mean:+.2f} points [{100 * diff.low:+.2f}, {100 * diff.high:+.2f}], "
            f"n={diff.n}, {verdict}")


def throughput(args: argparse.Namespace, env: dict[str, str], seconds: float) -> None:
    """Genomes judged per hour, the same search as --jobs 2 --threads 1 and --jobs 1 --threads 2."""
    rates = {}
    for label, extra in (("--jobs 2 --threads 1", ["--jobs", "2", "--threads", "1"]),
                         ("--jobs 1 --threads 2", ["--jobs", "1", "--threads", "2"])):
        run = search_arm(args, env, f"t{label.replace(' ', '')}", 7,
                         [*extra, "--rungs", "1,3"], seconds)
        if run["wall"] <= 0 or run["sampled"] is None:
            print(f"throughput {label}: the search failed (see above)", flush=True)
            return
        rates[label] = run["judged"] / run["wall"] * 3600
        print(f"throughput {label}: {run['judged']} genomes judged in {run['wall']:.0f} s = "
              f"{rates[label]:.0f} per hour", flush=True)
    low = rates["--jobs 1 --threads 2"]
    if low:
        print(f"ratio jobs2/threads1 over jobs1/threads2: "
              f"{rates['--jobs 2 --threads 1'] / low:.2f}", flush=True)


if __name__ == "__main__":
    main()
