"""An Optuna objective over a space's genomes, for a study you create and drive yourself.

    obj = nas.objective("seed.toml", budget="0.2G", epochs=3)
    study = optuna.create_study(directions=obj.directions)
    study.optimize(obj, n_trials=20)

Each trial samples and counts a genome as `nas search` does (`sample_measured`), and trains it
in the shared context (data, views, teacher), storing the run. A genome over the budget is not
trained: it returns (0, FLOPs, params) with a positive constraint (`trial.set_constraint`, read
by TPE and NSGA-II), as `nas search` records it. A genome this objective judged before returns
its earlier values; a training whose loss became NaN returns NaN, which Optuna records as FAIL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import optuna

from nas.model.objectives import DEFAULT_OBJECTIVES, select
from nas.model.recipe import SearchConfig
from nas.study.search.budget import Budget, Limit, budget_from
from nas.study.search.loop import sample_measured
from nas.train.experiment import Context, train_genome

Values = tuple[float, float, float]


# The Python API's budget arguments (nas.search, nas.objective), by objective name.
ARGUMENTS = {"flops": "budget", "params": "budget_params"}


def budget_of(flops: Limit, params: Limit, objectives: Sequence[str] = DEFAULT_OBJECTIVES,
              conf: SearchConfig | None = None) -> Budget:
    """A Budget from numbers or text such as "0.2G" and "50K" (None or "" = unlimited), else
    from `conf`'s [search] budget keys; `nas search` reads its flags the same way."""
    return budget_from({"flops": flops, "params": params}, objectives, conf,
                       lambda o: ARGUMENTS.get(o.name, o.budget_key))


@dataclass
class Objective:
    """`objective(trial) -> (val accuracy, FLOPs, params)`; `directions` is what the study needs."""

    ctx: Context
    budget: Budget
    epochs: int
    seed: int = 0
    judged: dict[str, Values] = field(default_factory=dict)   # genome text -> its values

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in select(DEFAULT_OBJECTIVES)]

    @property
    def metric_names(self) -> list[str]:
        """For `study.set_metric_names` (optuna-dashboard's axis names)."""
        return [o.metric for o in select(DEFAULT_OBJECTIVES)]

    def __call__(self, trial: optuna.Trial) -> Values:
        sampled = sample_measured(self.ctx, trial, DEFAULT_OBJECTIVES, self.budget)
        genome, flops, params = sampled.genome, sampled.measured["flops"], sampled.measured["params"]
        if sampled.rejected:
            trial.set_user_attr("outcome", "rejected")
            return 0.0, float(flops), float(params)
        if str(genome) in self.judged:
            trial.set_user_attr("outcome", "reused")
            return self.judged[str(genome)]
        return self._train(trial, genome, int(flops), int(params))

    def _train(self, trial: optuna.Trial, genome: object, flops: int, params: int) -> Values:
        run = train_genome(self.ctx, genome, epochs=self.epochs, seed=self.seed,  # type: ignore[arg-type]
                           study=trial.study.study_name, trial=trial.number)
        trial.set_user_attr("run_id", run.id)
        trial.set_user_attr("test_accuracy", run.test_accuracy)
        trial.set_user_attr("outcome", "trained" if run.status == "ok" else run.status)
        if run.status != "ok" or run.val_accuracy is None:
            return float("nan"), float(flops), float(params)
        values = (run.val_accuracy, float(flops), float(params))
        self.judged[str(genome)] = values
        return values
