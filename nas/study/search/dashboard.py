"""What Optuna's own tools read: objective names and per-epoch learning curves.

optuna-dashboard and `optuna.visualization` label objectives by the study's metric names and
draw learning curves from intermediate values; `nas.study.search.loop` calls these two functions.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import optuna

from nas.model.objectives import DEFAULT_OBJECTIVES, Objective, select


def name_metrics(study: optuna.Study,
                 objectives: Sequence[Objective] = select(DEFAULT_OBJECTIVES)) -> None:
    """Declare the objective names (their metrics: val_accuracy, flops, params, latency_ms); a
    study made before names existed gets them when next opened."""
    names = [o.metric for o in objectives]
    if study.metric_names != names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)


def report_curve(study: optuna.Study, trial: optuna.trial.Trial, run: Any) -> None:
    """Each epoch's validation accuracy as the trial's intermediate value at that epoch.

    `Trial.report` refuses multi-objective studies, so the values go through the storage's
    `set_trial_intermediate_value`, which is what `report` itself calls."""
    history = getattr(run, "history", None) or []
    for row in history:
        if "epoch" in row and row.get("val_accuracy") is not None:
            study._storage.set_trial_intermediate_value(
                trial._trial_id, int(row["epoch"]), float(row["val_accuracy"]))
