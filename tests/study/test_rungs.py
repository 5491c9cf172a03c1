"""Multi-fidelity rungs: exact prefixes (bit-equal weights), the top-third gate, pruned trials
off the front, and bad --rungs."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from nas.cli import main
from nas.cli.search import parse_rungs
from nas.model.builder import build_model
from nas.model.genome import Genome
from nas.model.space import load_space
from nas.store.runs import Store, bytes_to_state
from nas.study.pareto import feasible_front, row_from_trial
from nas.study.search.rungs import crowding, order, passes, ranks
from nas.train.distill import make_loss, train
from nas.train.experiment import Context, train_genome
from tests.training import STUDENT, TINY, states_equal, tiny_context


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Context:
    return tiny_context(tmp_path_factory.mktemp("rungs"), train={"epochs": 5, "batch_size": 64})


def fit(ctx: Context, stops: list[int]) -> tuple[dict[str, torch.Tensor], list[dict[str, float]]]:
    """Train STUDENT on a 5-epoch schedule, stopping (and resuming) at each of `stops`."""
    torch.manual_seed(0)
    model = build_model(Genome.parse(STUDENT, "eca"), ctx.space, classes=10)
    result = None
    for stop in stops:
        result = train(model, ctx.batches, ctx.data.val, ctx.space.train, epochs=5, seed=0,
                       device=ctx.device, loss_fn=make_loss(None), stop_epoch=stop, resume=result)
    assert result is not None
    return model.state_dict(), result.history


def test_a_rung_is_an_exact_prefix_of_the_schedule(ctx: Context) -> None:
    straight, history = fit(ctx, [3])
    resumed, resumed_history = fit(ctx, [1, 3])
    assert states_equal(straight, resumed)
    assert history == [{**h, "seconds": history[i]["seconds"]}
                       for i, h in enumerate(resumed_history)]
    assert len(history) == 3 and history[0]["lr"] > history[2]["lr"] > ctx.space.train.lr * 0.1


def test_train_genome_through_rungs_stores_the_same_weights(ctx: Context) -> None:
    genome = Genome.parse(STUDENT, "eca")
    plain = train_genome(ctx, genome, epochs=3, seed=1)
    seen: list[tuple[int, float]] = []
    laddered = train_genome(ctx, genome, epochs=3, seed=1, rungs=(1, 2),
                            gate=lambda rung, acc: seen.append((rung, acc)) is None)
    assert [r for r, _ in seen] == [1, 2]
    assert laddered.val_accuracy == plain.val_accuracy
    assert states_equal(bytes_to_state(ctx.store.get_run(plain.id).weights),
                        bytes_to_state(ctx.store.get_run(laddered.id).weights))
    pruned = train_genome(ctx, genome, epochs=3, seed=1, rungs=(1, 2), gate=lambda r, a: r < 2)
    assert pruned.status == "pruned" and pruned.test_accuracy is None
    assert [h["epoch"] for h in pruned.history] == [1, 2]


def test_top_third_by_non_dominated_rank() -> None:
    points = [(0.9, 10, 10), (0.8, 20, 20), (0.5, 5, 5), (0.4, 30, 30), (0.3, 40, 40),
              (0.2, 50, 50)]
    assert ranks(points) == [0, 1, 0, 2, 3, 4]
    assert [passes(i, points) for i in range(6)] == [True, False, True, False, False, False]
    assert passes(0, [(0.1, 1, 1)])                      # the first to reach a rung goes on


def test_top_third_within_one_rank_by_crowding_then_accuracy() -> None:
    # six points on one front (rank 0 all): only two go on, not all six
    points = [(0.50, 10, 60), (0.60, 20, 50), (0.70, 30, 40), (0.80, 40, 30), (0.85, 50, 20),
              (0.90, 60, 10)]
    assert ranks(points) == [0] * 6
    crowd = crowding(points, ranks(points))
    assert crowd[0] == crowd[5] == math.inf and all(0 < c < math.inf for c in crowd[1:5])
    assert order(points)[:2] == [5, 0]                   # the ends, the more accurate first
    assert [passes(i, points) for i in range(6)] == [True, False, False, False, False, True]


@pytest.mark.parametrize("text,epochs,message", [
    ("3,1", None, "--rungs must increase, got '3,1'"),
    ("1,5", 3, "--rungs 1,5: rung 5 is past the schedule of 3 epochs (--epochs)"),
    ("0,2", None, "--rungs must be epochs from 1 to 100000 such as 1,3,9, got '0,2'"),
])
def test_bad_rungs(text: str, epochs: int | None, message: str) -> None:
    with pytest.raises(Exception, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_rungs(text, epochs)


def test_bad_rungs_on_the_command_line_are_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for extra in (["--rungs", "3,1"], ["--epochs", "2", "--rungs", "1,3"]):
        assert main(["search", "--space", str(TINY), "--storage", f"sqlite:///{tmp_path}/s.db",
                     *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("nas: error: --rungs")


def test_search_with_rungs_prunes_and_keeps_pruned_trials_off_the_front(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Pruned trials are PRUNED with their rung accuracies, off the front, and `nas report`
    says how many stopped at each rung (the README)."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    db = tmp_path / "s.db"
    code = main(["search", "--space", str(TINY), "--data", "digits", "--image-size", "8x8",
                 "--storage", f"sqlite:///{db}", "--trials", "14", "--rungs", "1,2",
                 "--epochs", "3", "--seed", "0", "--quiet", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out)
    study = optuna.load_study(study_name=result["study"], storage=f"sqlite:///{db}")
    trials = study.get_trials()
    pruned = [t for t in trials if t.user_attrs.get("outcome") == "pruned"]
    assert result["pruned"] == len(pruned) > 0 and result["trained"] + result["pruned"] == 14
    assert all(t.state == TrialState.PRUNED and t.user_attrs["rungs"] for t in pruned)
    assert len(trials) > 10         # past TPE's random start-up: it samples with PRUNED trials
    front = {r.trial for r in feasible_front([row_from_trial(t) for t in trials])}
    assert front and not front & {t.number for t in pruned}
    trained = [t for t in trials if t.user_attrs.get("outcome") == "trained"]
    assert all(set(t.user_attrs["rungs"]) == {"1", "2"} for t in trained)
    stopped = Counter(max(map(int, t.user_attrs["rungs"])) for t in pruned)
    assert main(["report", "--study", result["study"], "--storage", f"sqlite:///{db}"]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("trials")]
    assert len(said) == 1 and said[0].endswith(
        "".join(f", {n} pruned at rung {r}" for r, n in sorted(stopped.items()))), said


def test_report_counts_trials_stopped_at_each_rung(tmp_path: Path) -> None:
    from nas.study.report.overview import overview
    from nas.study.report.summary import StudyData, Summary, totals

    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/r.db", study_name="r",
                                directions=["maximize", "minimize", "minimize"])
    for rungs, state in (({"1": 0.5}, TrialState.PRUNED), ({"1": 0.4}, TrialState.PRUNED),
                         ({"1": 0.6, "3": 0.7}, TrialState.PRUNED),
                         ({"1": 0.8, "3": 0.9}, TrialState.COMPLETE)):
        outcome = "trained" if state == TrialState.COMPLETE else "pruned"
        study.add_trial(optuna.trial.create_trial(
            state=state, values=[0.9, 1000, 100] if outcome == "trained" else None,
            user_attrs={"genome": f"[1,8,{len(rungs)},1,0]", "attention": "eca", "flops": 1000,
                        "params": 100, "outcome": outcome, "rungs": rungs,
                        "constraint": [0.0, 0.0]}))
    rows = [row_from_trial(t) for t in study.get_trials()]
    assert totals(rows).pruned_at == {1: 2, 3: 1}
    assert {r.trial for r in feasible_front(rows)} == {3}
    data = StudyData("r", "sqlite://", {}, tuple(rows), 0.0)
    line = overview(Summary(data, {}, (), totals(rows)))["trials"]
    assert line.endswith("1 trained, 0 reused, 0 failed, "     # no budget: nothing rejected
                         "2 pruned at rung 1, 1 pruned at rung 3")


def genome_params(stage1: dict[str, int], attention: str) -> dict[str, object]:
    """The Optuna params of a one-stage genome of the tiny space (n is fixed at 1)."""
    return {"stages": 1, **{f"stage1.{k}": v for k, v in stage1.items()}, "attention": attention}


def test_a_genome_pruned_at_a_rung_is_reused_pruned_not_trained_again(
        ctx: Context, tmp_path: Path) -> None:
    from nas.study.report.summary import totals
    from nas.study.search import rungs
    from nas.study.search.loop import SearchSettings, open_study, run_search
    from nas.study.search.processes import StudyPoller

    settings = SearchSettings(study="again", trials=2, epochs=2, rungs=(1,))
    study = open_study(ctx, settings, "digits")
    study.add_trial(optuna.trial.create_trial(       # trial 0 dominates every genome at rung 1
        state=TrialState.COMPLETE, values=[1.0, 1, 1], user_attrs={
            "genome": "[1,8,1,1,0]", "attention": "eca", "flops": 1, "params": 1,
            "outcome": "trained", "rungs": {"1": 1.0}, "constraint": [0.0, 0.0]}))
    pruned = genome_params({"t": 1, "c": 8, "s": 1, "fused": 0}, "none")
    poller = StudyPoller(ctx.store.url, "again")        # trials from here on are new
    for params in (pruned, pruned, genome_params({"t": 2, "c": 8, "s": 1, "fused": 0}, "none")):
        study.enqueue_trial(params)
    tally = run_search(ctx, settings, study)
    first, again, other = study.get_trials()[1:]
    runs = ctx.store.list_runs("again")
    assert [r.trial for r in runs] == [1, 3] and [r.status for r in runs] == ["pruned"] * 2
    assert (tally.pruned, tally.reused, tally.trained, tally.failed) == (2, 1, 0, 0)
    assert [t.user_attrs["outcome"] for t in (first, again, other)] == ["pruned", "reused", "pruned"]
    assert again.state == TrialState.PRUNED and again.user_attrs["run_id"] == runs[0].id
    assert again.user_attrs["genome"] == first.user_attrs["genome"]
    assert again.user_attrs["rungs"] == first.user_attrs["rungs"] and not again.intermediate_values
    assert len(rungs.rung_points(study, 1, other.number)[1]) == 3      # the genome ranked once
    rows = [row_from_trial(t) for t in study.get_trials()]
    assert {r.trial for r in feasible_front(rows)} == {0}
    counted = totals(rows)
    assert (counted.pruned_at, counted.reused, counted.trained) == ({1: 2}, 1, 1)
    progress = poller.poll()
    assert progress.judged == 2 and progress.outcomes["reused"] == 1 and progress.front == 1


def test_epoch_loss_summed_on_device_equals_the_per_step_float_sum(ctx: Context) -> None:
    """One host sync per epoch gives the very metrics of per-step float(loss) accumulation."""
    steps: list[tuple[float, int]] = []
    ce = make_loss(None)

    def recorded(feature: torch.Tensor, logits: torch.Tensor, *rest: torch.Tensor | None
                 ) -> torch.Tensor:
        loss = ce(feature, logits, *rest)
        steps.append((float(loss.detach()), len(logits)))
        return loss

    torch.manual_seed(0)
    model = build_model(Genome.parse(STUDENT, "eca"), ctx.space, classes=10)
    result = train(model, ctx.batches, ctx.data.val, ctx.space.train, epochs=1, seed=0,
                   device=ctx.device, loss_fn=recorded)
    total = 0.0
    for value, size in steps:
        total += value * size
    assert result.history[0]["loss"] == total / sum(size for _, size in steps)


def write_space(tmp_path: Path, search: str) -> Path:
    """tiny.toml as tmp_path/space.toml, with `search` as its [search] keys (before the rest)."""
    space = tmp_path / "space.toml"
    space.write_text(Path(TINY).read_text().replace("[search]\ntrials = 4\nepochs = 1",
                                                    f"[search]\n{search}"))
    return space


def old_study(tmp_path: Path, search: str) -> list[str]:
    """`write_space` with `search`, and the `nas search` argv of its study "old" in tmp_path/s.db."""
    space = write_space(tmp_path, search)
    return ["search", "--space", str(space), "--data", "digits", "--image-size", "8x8",
            "--quiet", "--storage", f"sqlite:///{tmp_path / 's.db'}", "--study", "old"]


def searched(tmp_path: Path, capsys: pytest.CaptureFixture[str], search: str,
             *flags: str) -> tuple[int, str, list[optuna.trial.FrozenTrial]]:
    """`nas search` on tiny.toml with `search` as its [search] keys: (exit code, stderr,
    trials)."""
    space = write_space(tmp_path, f"trials = 4\n{search}")
    db = f"sqlite:///{tmp_path / 's.db'}"
    code = main(["search", "--space", str(space), "--data", "digits", "--image-size", "8x8",
                 "--storage", db, "--quiet", "--json", "--study", f"s{len(flags)}", *flags])
    out, err = capsys.readouterr()
    if code:
        return code, err, []
    return code, err, optuna.load_study(study_name=json.loads(out)["study"], storage=db).get_trials()


def test_the_space_files_search_schedule_and_subset_are_the_defaults(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """[search] epochs, rungs and train_per_class: the trials' schedule and subset unless a flag
    replaces them; the final model (`export --retrain`) trains on [train]'s subset."""
    from nas.store.runs import Store

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    keys = "epochs = 2\nrungs = [1, 2]\ntrain_per_class = 20"
    code, _, trials = searched(tmp_path, capsys, keys)
    assert code == 0
    trained = [t for t in trials if t.user_attrs.get("outcome") == "trained"]
    assert trained and all(set(t.user_attrs["rungs"]) == {"1"} for t in trained)  # 2 ends it
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    runs = store.list_runs("s0")
    assert {(r.recipe["train"]["train_per_class"], r.recipe["train"]["epochs"]) for r in runs} == {(20, 2)}

    assert main(["search", "--space", str(tmp_path / "space.toml"), "--data", "digits",
                 "--image-size", "8x8", "--storage", f"sqlite:///{tmp_path / 's.db'}",
                 "--study", "said", "--trials", "1"]) == 0
    assert "training 1 genome, 2 epochs each on 20 images per class, pruned at rungs 1,2" in \
        capsys.readouterr().err
    code, _, trials = searched(tmp_path, capsys, keys, "--epochs", "1", "--train-per-class", "30")
    assert code == 0 and not any(t.user_attrs.get("rungs") for t in trials)   # --epochs: no rungs
    assert {(r.recipe["train"]["train_per_class"], r.recipe["train"]["epochs"])
            for r in store.list_runs("s4")} == {(30, 1)}

    out = tmp_path / "final.pt"
    assert main(["export", "best", "--study", "s0", "--storage", f"sqlite:///{tmp_path / 's.db'}",
                 "--out", str(out), "--retrain-epochs", "1"]) == 0
    err = capsys.readouterr().err.replace("\n", " ")      # the note says why its teacher differs
    assert "is made for the whole training set, the study's" in err and "20 images per class" in err
    final = torch.load(out, weights_only=False)["recipe"]["train"]
    assert final["train_per_class"] == 0 and final["epochs"] == 1        # tiny.toml's [train]: all


@pytest.mark.parametrize("flag,epochs,judged_at", [
    (("--rungs", "1,2"), 2, {"1"}),         # the schedule ends at the last rung, judged at 1
    (("--epochs", "3"), 3, set()),          # the file's rungs [1, 3] would fit, but go
], ids=["rungs", "epochs"])
def test_rungs_or_epochs_alone_replace_the_files_schedule(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        flag: tuple[str, str], epochs: int, judged_at: set[str]) -> None:
    """The README: `--rungs` or `--epochs` alone replaces both of [search]'s epochs = 4 and
    rungs = [1, 3]; one learning-rate schedule spans the trial, so a trained trial's last epoch
    ends at the cosine's floor (0.1 lr), where epoch 2 of the file's 4 would be near 0.55 lr."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    code, err, trials = searched(tmp_path, capsys, "epochs = 4\nrungs = [1, 3]", *flag)
    assert code == 0, err
    study = optuna.load_study(study_name="s2", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert study.user_attrs["nas"]["epochs"] == epochs
    judged = [t for t in trials if t.user_attrs["outcome"] in ("trained", "pruned")]
    assert judged and all(set(t.user_attrs.get("rungs") or ()) == judged_at for t in judged)
    runs = Store(f"sqlite:///{tmp_path / 's.db'}").list_runs("s2")
    assert {r.recipe["train"]["epochs"] for r in runs} == {epochs}
    lr = load_space(str(TINY)).train.lr
    trained = [r for r in runs if r.status == "ok"]
    assert trained and all(len(r.history) == epochs and r.history[-1]["lr"] < 0.11 * lr
                           for r in trained), [r.history for r in trained]


def test_a_subset_asked_for_beats_the_files_search_subset(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One rule on `nas search` and in `nas.search()`: `train.train_per_class` set by the user
    (--set, a recipe) beats the file's [search] train_per_class, and `search.train_per_class`
    set over the file is the trials' subset (it was ignored on the command line)."""
    import nas
    from nas.store.runs import Store

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    keys = "epochs = 1\ntrain_per_class = 20"
    for flags, per_class in ((("--set", "train.train_per_class=30"), 30),
                             (("--set", "search.train_per_class=40", "--trials", "1"), 40)):
        code, err, _ = searched(tmp_path, capsys, keys, *flags)
        assert code == 0, err
        runs = store.list_runs(f"s{len(flags)}")
        assert runs and {r.recipe["train"]["train_per_class"] for r in runs} == {per_class}
    recipe = {"search.epochs": 1, "search.train_per_class": 20, "train.train_per_class": 30}
    found = nas.search("tiny.toml", trials=1, storage=store.url, study="api", image_size="8x8",
                       recipe=recipe, device="cpu")
    assert {r.recipe["train"]["train_per_class"] for r in found.context.store.list_runs("api")} == {30}


@pytest.mark.parametrize("keys,message", [
    ("epochs = 2\nrungs = [2, 1]", "space.toml: search.rungs must be increasing epochs from 1 to "
                                   "search.epochs (2), got [2, 1]"),
    ("epochs = 2\nrungs = [1, 3]", "space.toml: search.rungs must be increasing epochs from 1 to "
                                   "search.epochs (2), got [1, 3]"),
    ("epochs = 2\ntrain_per_class = 1", "space.toml: search.train_per_class must be 0 "
                                        "(train.train_per_class) or between 2 and 1000000000, got 1"),
    ('epochs = 2\nviews = ["hflip+flip"]', "space.toml: search.views: view 'hflip+flip': unknown op 'flip'"),
])
def test_bad_search_keys_are_one_line_and_exit_2(tmp_path: Path, keys: str, message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = searched(tmp_path, capsys, keys)
    assert code == 2 and err.count("\n") == 1 and message in err


def test_a_study_made_before_the_files_trial_views_changed_continues_with_set(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A space file whose [search] views changed (as cifar10.toml's did) refuses its old study in
    one line naming the key; `--set 'search.views=[]'` continues it."""
    argv = old_study(tmp_path, 'trials = 1\nepochs = 1\nviews = ["hflip"]')
    assert main([*argv, "--set", "search.views=[]"]) == 0
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and 'train.augment.views [] -> ["hflip"]' in err, err
    assert main([*argv, "--set", "search.views=[]", "--trials", "2"]) == 0


def test_a_study_made_before_the_files_trial_subset_changed_continues_with_set(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A space file whose [search] trials moved to [train]'s images and a shorter schedule (as
    cifar10.toml's did on 2026-12-06) refuses its old study in one line naming the subset; the
    old keys given with --set, --epochs and --rungs continue it."""
    argv = old_study(tmp_path, "trials = 1\nepochs = 2\nrungs = [1, 2]\ntrain_per_class = 20")
    assert main(argv) == 0
    write_space(tmp_path, "trials = 1\nepochs = 1\nrungs = [1]")       # the file changes
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "train.train_per_class" in err, err
    old = ["--set", "search.train_per_class=20", "--epochs", "2", "--rungs", "1,2", "--trials", "2"]
    assert main([*argv, *old]) == 0, capsys.readouterr().err


def test_cifar10_toml_searches_as_the_fidelity_study_chose() -> None:
    """The README's CIFAR-10 search: trials are the final recipe's first 3 epochs (its 1,000 per
    class, its mixup view, so its teacher), rungs 1 and 3, as the rank study of 22 genomes chose;
    the final model (`export --retrain`) trains the same images for 30 epochs. The trials until
    2026-12-06 (200 per class) come back with --set, and the teacher's note then names both
    subsets; the results table keeps the recipe it was measured on."""
    from nas.cli.common import Setting, with_sets
    from nas.cli.report import _teacher_note
    from nas.model.space import load_space
    from nas.study.ablation.file import load_ablation
    from nas.study.search.identity import fingerprint, searched_recipe

    space = load_space("cifar10.toml")
    assert space.search.schedule(None, ()) == (3, (1, 3))
    assert space.for_trials() is space                  # the final recipe's images and teacher
    final = searched_recipe(space, fingerprint(space.for_trials())).train
    assert (final.train_per_class, final.augment.views, final.epochs) == (1000, ("hflip+mixup",), 30)
    old = with_sets(space, [Setting("search.train_per_class", 200)])     # the trials until 2026-12-06
    assert old.for_trials().train.train_per_class == 200
    assert old.for_trials({"train.train_per_class"}).train.train_per_class == 1000
    before = with_sets(space, [Setting("search.views", [])])     # the file until 2026-12-04
    assert before.for_trials().train.augment.views == ()
    assert before.for_trials({"train.augment.views"}).train.augment.views == ("hflip+mixup",)
    asked = with_sets(space, [Setting("train.augment.views", ["hflip"])])
    searched = fingerprint(asked.for_trials({"train.augment.views"}))
    final = searched_recipe(space, searched, {"train.augment.views": ["hflip"]}).train
    assert final.augment.views == ("hflip",)           # a view the user --set is the final model's
    for sets in ({"search.views": []}, None):   # trials without the view: --set, or the old file
        final = searched_recipe(space, fingerprint(before.for_trials()), sets).train
        assert final.augment.views == ("hflip+mixup",)     # the final model keeps [train]'s
    assert (space.distill.loss, space.distill.temperature, space.distill.alpha) == ("logit", 2.0, 0.5)
    teacher = space.teacher      # the README's default: frozen Lite0 at 96 on the student's subset
    assert (teacher.kind, teacher.model, teacher.train, teacher.images, teacher.image_size) == (
        "lite", "efficientnet_lite0", "head", "student", 96)
    assert (space.train.train_per_class, space.train.val_per_class) == (1000, 100)
    assert _teacher_note("a", "b", space, fingerprint(old.for_trials())) == (
        "note: the final model's teacher (a) is made for 1,000 images per class and the views "
        "hflip+mixup, the study's (b) for its trials' 200 images per class and the views "
        "hflip+mixup")
    table = load_ablation("ablations/cifar10_results.toml")
    assert {(arm.space.train.epochs, arm.space.train.augment.views)
            for group in table.groups for arm in group.arms} == {(15, ())}


def test_a_study_continued_with_other_epochs_and_rungs_trains_no_genome_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The README: `--epochs` and `--rungs` may change between runs of a study, and continuing it
    with other rungs does not revisit its pruned (or trained) genomes: they are reused."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    db = tmp_path / "s.db"

    def search(*schedule: str) -> list[optuna.trial.FrozenTrial]:
        code = main(["search", "--space", str(TINY), "--data", "digits", "--image-size", "8x8",
                     "--storage", f"sqlite:///{db}", "--study", "x", "--seed", "0", "--quiet",
                     "--json", *schedule])
        assert code == 0, capsys.readouterr().err
        capsys.readouterr()
        return optuna.load_study(study_name="x", storage=f"sqlite:///{db}").get_trials()

    def key(trial: optuna.trial.FrozenTrial) -> tuple[str, str]:
        return trial.user_attrs["genome"], trial.user_attrs["attention"]

    first = search("--trials", "10", "--epochs", "3", "--rungs", "1,2")
    judged = {key(t) for t in first if t.user_attrs.get("outcome") in ("trained", "pruned")}
    assert any(t.user_attrs.get("outcome") == "pruned" for t in first)
    later = search("--trials", "6", "--epochs", "2", "--rungs", "1")[len(first):]
    trained = {key(t) for t in later if t.user_attrs["outcome"] in ("trained", "pruned")}
    assert len(trained) == 6 and not trained & judged         # none of the first run's again
    assert {key(t) for t in later if t.user_attrs["outcome"] == "reused"} & judged
