"""nas.api beyond the README's blocks: the objective's budget gate and reuse, training on your own
loaders (exact shapes, bad loaders one NasError), and `nas.train` both callable and a package."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import nas
from nas import api
from nas.errors import NasError, SpaceError, TrainError
from nas.store.runs import Store
from nas.study.search.budget import Budget
from nas.study.search.objective import Objective, budget_of
from tests.training import tiny_context

GENOME_PARAMS = {"stages": 1, "stage1.t": 1, "stage1.c": 8, "stage1.s": 2, "stage1.fused": 0,
                 "attention": "eca"}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> object:
    """Digits at 8x8, the tiny space, cross-entropy only (no teacher)."""
    return tiny_context(tmp_path_factory.mktemp("api"), distill={"loss": "none"})


def test_nas_train_is_callable_and_still_the_training_package() -> None:
    import nas.train.experiment

    assert callable(nas.train) and nas.train.experiment.train_genome is not None
    assert {"search", "train", "objective", "ablate"} <= set(nas.__all__)


def test_objective_trains_rejects_over_budget_and_reuses(ctx: object) -> None:
    objective = Objective(ctx, Budget({"flops": 1.0}), epochs=1)       # every genome is over 1 FLOP
    study = optuna.create_study(directions=objective.directions)
    study.enqueue_trial(GENOME_PARAMS)
    study.optimize(objective, n_trials=1)
    rejected = study.trials[0]
    assert rejected.values[0] == 0.0 and rejected.user_attrs["outcome"] == "rejected"
    assert rejected.user_attrs["constraint"][0] > 0 and "run_id" not in rejected.user_attrs
    objective = Objective(ctx, budget_of("1M", None), epochs=1)
    study = optuna.create_study(directions=objective.directions)
    for _ in range(2):
        study.enqueue_trial(GENOME_PARAMS)
    study.optimize(objective, n_trials=2)
    first, second = study.trials
    assert [first.user_attrs["outcome"], second.user_attrs["outcome"]] == ["trained", "reused"]
    assert first.values == second.values and first.values[1:] == [first.user_attrs["flops"],
                                                                   first.user_attrs["params"]]
    run = ctx.store.get_run(first.user_attrs["run_id"])
    assert (run.val_accuracy, run.study, run.trial) == (first.values[0], study.study_name, 0)


def test_budget_text_is_refused_like_the_flag() -> None:
    assert budget_of("0.2G", "50K") == Budget({"flops": 2e8, "params": 5e4})
    with pytest.raises(SpaceError, match="budget must be a positive number"):
        budget_of("lots", None)


def loaders(classes: int = 3) -> tuple[DataLoader, DataLoader, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.randn(40, 1, 12, 12, generator=generator), torch.arange(40) % classes
    return (DataLoader(TensorDataset(images[:30], labels[:30]), batch_size=8),
            DataLoader(TensorDataset(images[30:], labels[30:]), batch_size=8), images)


def test_train_on_your_own_loaders() -> None:
    train_loader, val_loader, images = loaders()
    trained = nas.train("[1,8,1,1,0]", space="tiny.toml", epochs=2, device="cpu", seed=3,
                        train_loader=train_loader, val_loader=val_loader, test_loader=val_loader)
    assert trained.status == "ok" and trained.run is None and len(trained.history) <= 2
    assert trained.model.arch.input == nas.InputShape(1, 12, 12) and trained.model.arch.classes == 3
    assert tuple(trained.model(images[:5]).shape) == (5, 3)
    assert trained.test_accuracy == trained.val_accuracy          # the same images
    again = nas.train("[1,8,1,1,0]", space="tiny.toml", epochs=2, device="cpu", seed=3,
                      train_loader=train_loader, val_loader=val_loader)
    untimed = [[{k: v for k, v in epoch.items() if k != "seconds"} for epoch in result.history]
               for result in (trained, again)]
    assert untimed[0] == untimed[1]                                  # the same seed, the same run


def test_train_on_a_wall_clock() -> None:
    """`time=`: the schedule spreads over a quarter second (epochs only cap it); a time that
    is not a positive duration is refused before any work."""
    train_loader, val_loader, _ = loaders()
    trained = nas.train("[1,8,1,1,0]", space="tiny.toml", time="0.25s", epochs=1000, device="cpu",
                        train_loader=train_loader, val_loader=val_loader)
    assert trained.status == "ok" and 1 <= len(trained.history) < 1000
    with pytest.raises(SpaceError, match="time must be a positive duration"):
        nas.train("[1,8,1,1,0]", space="tiny.toml", time="never", device="cpu",
                  train_loader=train_loader, val_loader=val_loader)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"val_loader": None}, "train_loader and val_loader go together"),
    ({"train_loader": [torch.zeros(2, 3, 8, 8)]}, "train_loader must yield (images, labels)"),
    ({"train_loader": []}, "train_loader yielded no batches"),
])
def test_bad_loaders_are_one_error(kwargs: dict[str, object], message: str) -> None:
    train_loader, val_loader, _ = loaders()
    given = {"train_loader": train_loader, "val_loader": val_loader, **kwargs}
    with pytest.raises(TrainError, match=message.replace("(", r"\(").replace(")", r"\)")):
        nas.train("[1,8,1,1,0]", space="tiny.toml", epochs=1, device="cpu", **given)


def test_recipe_keys_and_sizes_are_checked_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(NasError, match="recipe: train.lrr is not a known key"):
        api.resolve_space("tiny.toml", recipe={"train.lrr": 1})
    with pytest.raises(SpaceError, match=r"image_size must be \(height, width\)"):
        api.image_size_of((8, 8, 3))
    assert api.image_size_of("8x12") == (8, 12) and api.image_size_of([8, 12]) == (8, 12)
    with pytest.raises(SpaceError, match="epochs must be between 1 and 100000, got 0"):
        nas.train("[1,8,1,1,0]", space="tiny.toml", epochs=0)
    with pytest.raises(SpaceError, match="trials must be between 1 and 1000000, got -1"):
        nas.search("tiny.toml", trials=-1)
    with pytest.raises(SpaceError, match="epochs must be an integer, got '3'"):
        nas.search("tiny.toml", epochs="3")  # type: ignore[arg-type]
    with pytest.raises(SpaceError, match=r"shape must be \(C, H, W\)"):
        nas.build_model("[1,8,1,1,0]", shape=(3, 16, 16, 1))


def test_search_takes_the_spaces_search_subset_and_rungs(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """As `nas search`: [search] train_per_class is the trials' subset, and [search] epochs and
    rungs their schedule, unless `epochs` or `rungs` is given."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    url = f"sqlite:///{tmp_path / 's.db'}"
    recipe = {"search.epochs": 2, "search.rungs": [1, 2], "search.train_per_class": 20}
    found = nas.search("tiny.toml", trials=2, storage=url, study="s", image_size="8x8",
                       recipe=recipe, device="cpu")
    runs = found.context.store.list_runs("s")
    assert {(r.recipe["train"]["train_per_class"], r.recipe["train"]["epochs"]) for r in runs} == {(20, 2)}
    assert all(t.user_attrs.get("rungs") for t in found.study.trials)
    found = nas.search("tiny.toml", trials=1, epochs=1, storage=url, study="t", image_size="8x8",
                       recipe=recipe, device="cpu")
    assert [t.user_attrs.get("rungs") for t in found.study.trials] == [None]


def test_search_takes_a_space_budgets_and_rungs_as_arguments(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's `nas.search(..., budget_params=..., rungs=...)`, with a `Space` object: genomes
    over the params budget are rejected untrained, the trained ones pass the rung, and the study
    is named by its budget as `nas search --budget-params 3K` names it."""
    from nas.model.space import load_space

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    space = load_space(str(Path(nas.__file__).parent / "search_spaces" / "tiny.toml"))
    found = nas.search(space, trials=4, epochs=2, rungs=(1,), budget_params="3K", image_size="8x8",
                       storage=f"sqlite:///{tmp_path / 's.db'}", recipe={"distill.loss": "none"},
                       device="cpu")
    assert found.study.study_name == "tiny-digits-8x8-p3K"
    attrs = [t.user_attrs for t in found.study.trials]
    judged = [a for a in attrs if a["outcome"] in ("trained", "pruned")]
    assert len(judged) == 4 and all(a["params"] <= 3000 and "1" in a["rungs"] for a in judged)
    assert all(a["params"] > 3000 for a in attrs if a["outcome"] == "rejected")


def test_storage_defaults_to_the_environments_database(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The README: the API's `storage=` defaults to $NAS_STORAGE, as the commands' --storage does."""
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("NAS_STORAGE", url)
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    trained = nas.train("[1,8,1,1,0]", space="tiny.toml", epochs=1, image_size=(8, 8),
                        recipe={"distill.loss": "none"}, device="cpu")
    assert trained.run is not None
    assert [r.id for r in Store(url).list_runs()] == [trained.run.id]
    assert not (tmp_path / "studies.db").exists()
