"""Per-trial overhead of `nas search` outside training (issue: at most 2 % of a trial).

Runs a real search on the default data and settings (seed.toml, digits 32x32,
0.2G budget, 3 epochs a trial) in a temporary database, and splits each trial's
wall time into the training loop proper (`nas.train.experiment._fit`: epochs + per-epoch
validation), the one test pass of the selected weights, and everything else, the
overhead: sampling, counting, the budget gate, database writes (trial attributes,
run rows, weights), model build.

    python bench/bench_search.py [--trials 6] [--epochs 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from nas.model.space import load_space
from nas.store.runs import Store
from nas.study.search.loop import Budget, SearchSettings, open_study, run_search
from nas.train import experiment

ROOT = Path(__file__).resolve().parents[1]


def timed(function: Callable[..., Any], seconds: list[float]) -> Callable[..., Any]:
    """`function`, appending each call's wall time to `seconds`."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)
    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fit_seconds: list[float] = []
    test_seconds: list[float] = []
    experiment._fit = timed(experiment._fit, fit_seconds)
    experiment.accuracy = timed(experiment.accuracy, test_seconds)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/bench.db")
        space = load_space(ROOT / "nas" / "search_spaces" / "seed.toml")
        device = experiment.resolve_device("cpu", args.threads)
        ctx = experiment.prepare(space, "digits", store, device=device)
        settings = SearchSettings(study="bench", trials=args.trials, epochs=args.epochs,
                                  budget=Budget({"flops": 2e8}))
        study = open_study(ctx, settings, "digits")
        walls: list[float] = []
        last = [time.perf_counter()]

        def on_trial(trial: Any, tally: Any) -> None:
            now = time.perf_counter()
            walls.append(now - last[0])
            last[0] = now

        run_search(ctx, settings, study, on_trial=on_trial)
    trained = [t for t in study.trials if t.user_attrs.get("outcome") == "trained"]
    trained_walls = [walls[t.number] for t in trained]
    overheads = [w - f - t for w, f, t in zip(trained_walls, fit_seconds, test_seconds,
                                              strict=True)]
    shares = [o / w for o, w in zip(overheads, trained_walls, strict=True)]
    other = [w for i, w in enumerate(walls) if i not in {t.number for t in trained}]
    print(f"trained trials: {len(trained)}; other trials (rejected/reused): {len(other)}")
    print(f"trial wall s: median {statistics.median(trained_walls):.2f}  "
          f"(training loop {statistics.median(fit_seconds):.2f})")
    print(f"test pass s:  median {statistics.median(test_seconds):.3f}")
    print(f"overhead s:   median {statistics.median(overheads):.3f}  max {max(overheads):.3f}")
    print(f"overhead share: median {statistics.median(shares):.2%}  max {max(shares):.2%}")
    if other:
        print(f"rejected/reused trial wall: median {statistics.median(other) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
