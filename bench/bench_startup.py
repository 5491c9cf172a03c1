"""How long `nas search` takes to start its first trial, for two code trees side by side.

A search on a large image folder pays its setup (scan, cached data, views, teacher) in the
parent and again in each worker before any genome trains; the search benchmark's clock, and
a user's, starts before it. This runs the same short search (`--trials 2 --epochs 1
--no-enqueue`, a fresh study each time, in a copy of --storage so the teacher is reused and
nothing is added to it) from each tree in turn, alternating, and reports seconds from the
command's start to its first trial's start (read from the study) and to its exit, after one
untimed run that brings the cached files into memory.

    python bench/bench_startup.py --trees OLD_TREE NEW_TREE --data ../shared/data/cifar10 \
        --space cifar10.toml --budget-flops 6.21M --storage /path/runs.db [--jobs 2] [--repeats 3]

Each tree is a source checkout (on PYTHONPATH, each command run from an empty folder, so the
tree's code is the code that runs); NAS_CACHE_DIR is passed through, so
the decoded data and views are cached and shared by both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from nas.study.search.processes import WORKER_CODE  # the `nas` command line in a fresh interpreter


def one_run(tree: Path, args: argparse.Namespace, url: str, study: str) -> dict[str, float]:
    """Seconds to the first trial's start and to the exit of one search from `tree`."""
    command = [sys.executable, "-c", WORKER_CODE, "search", "--space", args.space, "--data", args.data,
               "--budget-flops", args.budget_flops, "--jobs", str(args.jobs), "--trials", "2",
               "--epochs", "1", "--no-enqueue", "--storage", url, "--study", study, "--quiet",
               "--json"]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    started = time.time()      # run from an empty folder: `python -c` puts the cwd first on sys.path
    subprocess.run(command, env=env, cwd=args.scratch, check=True, capture_output=True)
    ended = time.time()
    trials = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    first = min(t.datetime_start.timestamp() for t in trials if t.datetime_start is not None)
    return {"first_trial_s": round(first - started, 1), "exit_s": round(ended - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", nargs=2, type=Path, required=True, metavar=("OLD", "NEW"))
    parser.add_argument("--data", required=True)
    parser.add_argument("--space", default="cifar10.toml")
    parser.add_argument("--budget-flops", default="6.21M")
    parser.add_argument("--storage", type=Path, required=True, help="a SQLite file holding the teacher")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    args.trees = [tree.resolve() for tree in args.trees]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as scratch:
        args.scratch = scratch
        copy = Path(scratch) / "startup.db"
        shutil.copyfile(args.storage, copy)
        url = f"sqlite:///{copy}"
        one_run(args.trees[0], args, url, "startup-warm")   # untimed: files into the page cache
        times: dict[str, list[dict[str, float]]] = {str(tree): [] for tree in args.trees}
        for repeat in range(args.repeats):
            for index, tree in enumerate(args.trees):
                row = one_run(tree, args, url, f"startup-{repeat}-{index}")
                times[str(tree)].append(row)
                print(json.dumps({"tree": str(tree), "repeat": repeat, **row}), flush=True)
    old, new = (times[str(tree)] for tree in args.trees)
    for key in ("first_trial_s", "exit_s"):
        ratios = [n[key] / o[key] for o, n in zip(old, new, strict=True)]
        print(json.dumps({"measure": key, "old_median": statistics.median(r[key] for r in old),
                          "new_median": statistics.median(r[key] for r in new),
                          "new_over_old": [round(r, 3) for r in ratios]}), flush=True)


if __name__ == "__main__":
    main()
