"""A fake training for search tests: a short sleep and a stored 'ok' run instead of training;
each trained genome is appended to the file NAS_TEST_TRAINED (one line per training, O_APPEND,
so workers never mix lines). With NAS_TEST_SLOW_FIRST=N, the run's first training (whichever
worker starts it) lasts until the file holds N lines, or 60 s: a slow genome, while the other
workers go on. `tests/jobs_hook.py` installs it in `nas search --jobs` workers.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any

import torch

from nas.model.complexity import count
from nas.model.genome import Genome
from nas.store.runs import RunRecord, state_to_bytes
from nas.train.experiment import Context, recipe


def fake_train_genome(ctx: Context, genome: Genome, *, epochs: int | None = None, seed: int = 0,
                      study: str | None = None, trial: int | None = None,
                      **ignored: Any) -> RunRecord:
    """Store a 'running' run, log the genome, sleep NAS_TEST_SLEEP seconds, store it 'ok'."""
    run = start_run(ctx, genome, seed, study, trial, epochs)
    line = f"{genome.notation} {genome.attention} {os.getpid()} {time.time():.3f}\n"
    with open(os.environ["NAS_TEST_TRAINED"], "a", encoding="utf-8") as log:
        log.write(line)
    try:
        if _first():
            _wait_for_lines(int(os.environ["NAS_TEST_SLOW_FIRST"]))
        else:
            time.sleep(float(os.environ.get("NAS_TEST_SLEEP", "0.05")))
    except BaseException:               # Ctrl-C, SIGTERM: as train_genome does
        ctx.store.update_run(run.id, status="interrupted")
        raise
    return finish_run(ctx, run, torch.zeros(1))


def start_run(ctx: Context, genome: Genome, seed: int, study: str | None,
              trial: int | None, epochs: int | None = None) -> RunRecord:
    """Store the genome's run as 'running' with the context's recipe, as train_genome does
    first (a search reuses only runs of its own recipe)."""
    size = count(genome, ctx.space, shape=ctx.shape, classes=len(ctx.data.classes))
    run = RunRecord(id=None, study=study, trial=trial, genome=genome.notation,
                    attention=genome.attention, seed=seed,
                    recipe=recipe(ctx, epochs or ctx.space.train.epochs),
                    data_fingerprint=ctx.data.fingerprint, teacher_fingerprint="teacher",
                    flops=size.flops, params=size.params, status="running")
    run.id = ctx.store.add_run(run)
    return run


def finish_run(ctx: Context, run: RunRecord, weights: torch.Tensor) -> RunRecord:
    """Store the run 'ok' with `weights` and a validation accuracy derived from its params."""
    fields = {"status": "ok", "val_accuracy": (run.params % 997) / 997, "test_accuracy": 0.5,
              "weights": state_to_bytes({"w": weights}), "best_epoch": 1, "duration_s": 0.0}
    ctx.store.update_run(run.id, **fields)
    return replace(run, **fields)


def _first() -> bool:
    """With NAS_TEST_SLOW_FIRST: whether this is the run's first training (a marker, O_EXCL)."""
    if not os.environ.get("NAS_TEST_SLOW_FIRST"):
        return False
    try:
        os.close(os.open(os.environ["NAS_TEST_TRAINED"] + ".first", os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


def _wait_for_lines(count: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with open(os.environ["NAS_TEST_TRAINED"], encoding="utf-8") as log:
            if len(log.readlines()) >= count:
                return
        time.sleep(0.1)

