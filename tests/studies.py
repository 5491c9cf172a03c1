"""Optuna studies written the way nas/search.py writes them, for report and export tests.

`add_trial` records a hand-made trial (no training); `add_trained` trains a genome
with nas.train.experiment and records it as a search trial would.
"""

from __future__ import annotations

import time
from typing import Any

import optuna

from nas.model.genome import Genome
from nas.train.experiment import Context, train_genome

DIRECTIONS = ["maximize", "minimize", "minimize"]
COMPLETE = ("trained", "reused", "rejected")

optuna.logging.set_verbosity(optuna.logging.WARNING)


def new_study(url: str, name: str, *, budget_flops: float | None = None,
              budget_params: float | None = None, teacher: dict[str, Any] | None = None,
              **info: Any) -> optuna.Study:
    """An empty study with the `nas` user attributes of the contract."""
    study = optuna.create_study(storage=url, study_name=name, directions=DIRECTIONS)
    study.set_user_attr("nas", {
        "space": "tiny.toml", "data": "digits", "image_size": [8, 8],
        "budget_flops": budget_flops, "budget_params": budget_params, "epochs": 1, "seed": 0,
        "classes": [str(c) for c in range(10)],
        "teacher": teacher or {"fingerprint": "f00d", "val_accuracy": 0.9, "test_accuracy": 0.875},
        **info,
    })
    return study


def constraint(flops: int, params: int, budget_flops: float | None,
               budget_params: float | None) -> list[float]:
    return [flops - budget_flops if budget_flops is not None else 0.0,
            params - budget_params if budget_params is not None else 0.0]


def add_trial(study: optuna.Study, genome: str, flops: int, params: int, *, val: float = 0.0,
              test: float | None = None, outcome: str = "trained", attention: str = "eca",
              run_id: int | None = None, seconds: float = 1.0) -> int:
    """Record one trial by hand; returns its number."""
    info = study.user_attrs["nas"]
    attrs = {"genome": genome, "attention": attention, "flops": flops, "params": params,
             "outcome": outcome, "run_id": run_id, "test_accuracy": test,
             "constraint": constraint(flops, params, info["budget_flops"], info["budget_params"]),
             "seconds": seconds}
    if outcome == "rejected":
        val = 0.0
    complete = outcome in COMPLETE
    state = optuna.trial.TrialState.COMPLETE if complete else optuna.trial.TrialState.FAIL
    trial = optuna.trial.create_trial(state=state, values=[val, flops, params] if complete else None,
                                      params={}, distributions={}, user_attrs=attrs)
    study.add_trial(trial)
    return len(study.get_trials(deepcopy=False)) - 1


def add_trained(study: optuna.Study, ctx: Context, genome: str, attention: str = "eca") -> int:
    """Train `genome` for one epoch in `ctx` and record it as a search trial."""
    number = len(study.get_trials(deepcopy=False))
    started = time.perf_counter()
    run = train_genome(ctx, Genome.parse(genome, attention), epochs=1, seed=0,
                       study=study.study_name, trial=number)
    return add_trial(study, run.genome, run.flops, run.params, val=run.val_accuracy or 0.0,
                     test=run.test_accuracy, attention=run.attention, run_id=run.id,
                     seconds=time.perf_counter() - started)
