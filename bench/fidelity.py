"""How well cheap fidelities rank genomes as the full schedule does, on CIFAR-10 (issue 21).

Genomes are drawn as the search's random sampler draws them (nas.study.search.loop.sample_genome), kept
if within the FLOPs budget (default: the hand design's FLOPs at 32x32), and each is trained once on
the full schedule. A rung at epoch k of that schedule sees exactly the best validation accuracy
up to epoch k of this run (rungs resume within one learning-rate schedule, nas/study/search/rungs.py),
so one training per genome yields every rung's score. The fidelities are compared by Spearman's
rho and Kendall's tau against the final test accuracy (the whole 10,000-image test split), next
to the no-training baselines FLOPs and params (NAS-Bench-201: Spearman 0.71-0.73).

    python bench/fidelity.py sample --genomes 24           # draw, print the budget's rejected share
    python bench/fidelity.py train --parallel 2            # one process per share of the genomes
    python bench/fidelity.py train --train-per-class 200 --out /tmp/nas-fidelity-200
    python bench/fidelity.py zerocost                      # zero-cost proxies at init, no training
    python bench/fidelity.py summary --subsets /tmp/nas-fidelity-200   # rho, tau per fidelity
    python bench/fidelity.py extrapolate --runs DIR0 DIR1   # curves and a predictor, across seeds
    python bench/fidelity.py rungsim --runs DIR0 DIR1 DIR2  # successive halving replayed on them
Run by hand (not a test): the numbers go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from jsonlog import json_lines  # bench/ is the script's folder, first on sys.path

if TYPE_CHECKING:
    import torch

    from nas.model.space import Space

ROOT = Path(__file__).resolve().parents[1]
CIFAR10 = ROOT.parent / "shared" / "data" / "cifar10"
HAND = "[2,8,6,1,0] [2,16,4,1,0]"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", choices=("sample", "train", "worker", "zerocost", "summary",
                                    "extrapolate", "rungsim"))
    p.add_argument("--data", default=str(CIFAR10))
    p.add_argument("--space", default="cifar10.toml")
    p.add_argument("--out", default="/tmp/nas-fidelity", help="genomes, logs, database, cache")
    p.add_argument("--genomes", type=int, default=24)
    p.add_argument("--seed", type=int, default=0, help="the random sampler's seed")
    p.add_argument("--run-seed", type=int, default=0, help="every training's seed")
    p.add_argument("--views", action="store_true",
                   help="keep the space's extra views (default: none, as the 2026-12-03 study ran)")
    p.add_argument("--budget-flops", type=float, default=None,
                   help="default: the hand design's FLOPs at the space's input")
    p.add_argument("--train-per-class", type=int, default=500)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--loss", default="none", help="distill loss of every run (none: no teacher)")
    p.add_argument("--rungs", type=int, nargs="+", default=[1, 3, 9])
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--subsets", nargs="*", default=[],
                   help="--out folders of the same genomes trained on smaller subsets")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", nargs="*", default=[],
                   help="extrapolate: --out folders of the same genomes trained with other --run-seed")
    p.add_argument("--from-epochs", type=int, nargs="+", default=[2, 3, 4, 6, 9],
                   help="extrapolate: the epochs a curve or the predictor sees")
    p.add_argument("--baseline", default="val@6",
                   help="extrapolate: the fidelity every other is compared with (bootstrap)")
    p.add_argument("--bootstrap", type=int, default=1000, help="extrapolate: resamples of genomes")
    p.add_argument("--policies", nargs="+", default=["6,12", "12", "3,12", "4,12", "9,12", "6,9,12"],
                   help="rungsim: rung lists (the last ends the schedule; the first is the "
                        "baseline of the differences); '+ridge' ranks at the rungs by a ridge "
                        "prediction of the final validation fitted on the genomes completed so "
                        "far (once --ridge-min have), e.g. 6,12+ridge")
    p.add_argument("--ridge-min", type=int, default=8,
                   help="rungsim: completed genomes before a '+ridge' policy predicts")
    p.add_argument("--budgets", type=float, nargs="+", default=[0.15, 0.25, 0.4],
                   help="rungsim: search budgets, as shares of training every genome fully")
    p.add_argument("--orders", type=int, default=2000, help="rungsim: random genome orders")
    return p.parse_args(argv)


def space(args: argparse.Namespace) -> Space:
    from nas.model.space import load_space

    base = load_space(args.space)
    augment = base.train.augment if args.views else replace(base.train.augment, views=())
    return replace(base, train=replace(base.train, train_per_class=args.train_per_class,
                                       epochs=args.epochs, augment=augment),
                   distill=replace(base.distill, loss=args.loss))


def out(args: argparse.Namespace) -> Path:
    path = Path(args.out)
    path.mkdir(parents=True, exist_ok=True)
    return path


def step_sample(args: argparse.Namespace) -> None:
    """Draw genomes until `--genomes` fit the budget; write them and the rejected share."""
    import optuna

    from nas.model.complexity import count
    from nas.model.genome import Genome
    from nas.study.search.loop import sample_genome

    sp = space(args)
    classes = 10
    budget = args.budget_flops or count(Genome.parse(HAND, "eca"), sp, classes=classes).flops
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.seed))
    kept, drawn, seen = [], 0, set()
    while len(kept) < args.genomes:
        genome = sample_genome(study.ask(), sp).rounded(sp.model.divisor)
        drawn += 1
        size = count(genome, sp, classes=classes)
        if size.flops <= budget and str(genome) not in seen:
            seen.add(str(genome))
            kept.append({"genome": genome.notation, "attention": genome.attention,
                         "flops": size.flops, "params": size.params})
    (out(args) / "genomes.json").write_text(json.dumps(kept, indent=1))
    print(json.dumps({"budget_flops": budget, "drawn": drawn, "kept": len(kept),
                      "rejected_share": round(1 - len(kept) / drawn, 3)}))


def step_train(args: argparse.Namespace, argv: list[str]) -> None:
    """`--parallel` worker processes, each training every `parallel`-th genome."""
    procs = []
    for worker in range(args.parallel):
        log = out(args) / f"worker{worker}.log"
        rest = [a for a in argv if a != "train"]
        procs.append(subprocess.Popen([sys.executable, __file__, "worker", *rest,
                                       "--worker", str(worker)],
                                      stdout=log.open("a"), stderr=subprocess.STDOUT))
    for proc in procs:
        proc.wait()


def step_worker(args: argparse.Namespace) -> None:
    """Train this worker's share of the genomes on the full schedule; one JSON line each."""
    from nas.model.genome import Genome
    from nas.store.runs import Store
    from nas.train.experiment import prepare, resolve_device, train_genome

    genomes = json.loads(_genomes_file(args).read_text())
    done = {row["genome"] + row["attention"] for row in rows(args)}
    store = Store(f"sqlite:///{out(args) / f'runs{args.worker}.db'}")
    ctx = prepare(space(args), args.data, store, device=resolve_device("cpu", args.threads),
                  cache_dir=out(args) / "cache")
    for item in genomes[args.worker::args.parallel]:
        if item["genome"] + item["attention"] in done:
            continue
        started = time.perf_counter()
        run = train_genome(ctx, Genome.parse(item["genome"], item["attention"]),
                           seed=args.run_seed)
        print(json.dumps({**item, "test": run.test_accuracy, "val": run.val_accuracy,
                          "val_by_epoch": [h["val_accuracy"] for h in run.history],
                          "seconds": round(time.perf_counter() - started, 1)}), flush=True)
    store.close()


def _genomes_file(args: argparse.Namespace) -> Path:
    """This --out's genomes.json, else the default --out's (a subset run trains the same ones)."""
    own = out(args) / "genomes.json"
    return own if own.is_file() else Path(parse_args(["sample"]).out) / "genomes.json"


def step_zerocost(args: argparse.Namespace) -> None:
    """Zero-cost proxies of each genome at initialisation (Abdelfattah et al., ICLR 2021; Mellor
    et al., ICML 2021), on one batch of 64 training images: written to zerocost.json."""
    import torch

    from nas.data.dataset import load_data, normalize
    from nas.model.builder import build_model
    from nas.model.genome import Genome

    torch.set_num_threads(args.threads)
    sp = space(args)
    data = load_data(args.data, (sp.input.height, sp.input.width), **sp.train.split_kwargs(),
                     cache_dir=out(args) / "cache")
    generator = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(data.train.labels), generator=generator)[:64]
    images = normalize(data.train.images[pick], data.mean, data.std)
    labels = data.train.labels[pick]
    scores = {}
    for item in json.loads(_genomes_file(args).read_text()):
        genome = Genome.parse(item["genome"], item["attention"])
        torch.manual_seed(0)
        model = build_model(genome, sp, classes=len(data.classes))
        scores[item["genome"] + item["attention"]] = {
            "grad_norm": _grad_norm(model, images, labels), "naswot": _naswot(model, images),
            "synflow": _synflow(model, images.shape[1:])}
    (out(args) / "zerocost.json").write_text(json.dumps(scores, indent=1))
    print(json.dumps({"genomes": len(scores)}))


def _grad_norm(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The summed L2 norm of the cross-entropy gradient of every weight."""
    import torch

    model.train()
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(images), labels).backward()
    return float(sum(p.grad.norm() for p in model.parameters() if p.grad is not None))


def _naswot(model: torch.nn.Module, images: torch.Tensor) -> float:
    """log|K| of the images' binary activation codes (the sign of every SiLU's input)."""
    import torch

    codes: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, x, _y: codes.append((x[0] > 0).flatten(1).float()))
             for m in model.modules() if isinstance(m, torch.nn.SiLU)]
    model.eval()
    with torch.no_grad():
        model(images)
    for hook in hooks:
        hook.remove()
    c = torch.cat(codes, dim=1).double()
    kernel = c @ c.T + (1 - c) @ (1 - c).T
    return float(torch.linalg.slogdet(kernel).logabsdet)


def _synflow(model: torch.nn.Module, shape: torch.Size) -> float:
    """SynFlow: sum |theta * dR/dtheta| with every weight made positive and an all-ones input."""
    import torch

    model = model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.zero_grad()
    model(torch.ones(1, *shape, dtype=torch.float64)).sum().backward()
    return float(sum((p * p.grad).abs().sum().item() for p in model.parameters() if p.grad is not None))


def rows(args: argparse.Namespace, folder: Path | None = None) -> list[dict]:
    """The trained genomes' rows in the workers' logs of `folder` (default --out)."""
    return json_lines(folder or out(args), "worker*.log")


def step_summary(args: argparse.Namespace) -> None:
    """Rho and tau of each fidelity against the final test accuracy."""
    from nas.study.search.fidelity import rank_correlation

    trained = rows(args)
    full = {r["genome"] + r["attention"]: r["test"] for r in trained}
    fidelities = {"flops": {k: r["flops"] for k, r in _keyed(trained)},
                  "params": {k: r["params"] for k, r in _keyed(trained)}}
    for rung in args.rungs:
        fidelities[f"val@{rung}"] = {k: max(r["val_by_epoch"][:rung]) for k, r in _keyed(trained)}
    fidelities["val@full"] = {k: r["val"] for k, r in _keyed(trained)}
    zerocost = out(args) / "zerocost.json"
    if zerocost.is_file():
        proxies = json.loads(zerocost.read_text())
        for name in ("grad_norm", "naswot", "synflow"):
            fidelities[name] = {k: v[name] for k, v in proxies.items()}
        fidelities["vote"] = _vote([fidelities[n] for n in ("grad_norm", "naswot", "synflow")])
    for folder in map(Path, args.subsets):
        smaller = rows(args, folder)
        fidelities[f"val@full:{folder.name}"] = {k: r["val"] for k, r in _keyed(smaller)}
        fidelities[f"test:{folder.name}"] = {k: r["test"] for k, r in _keyed(smaller)}
    for name, scores in fidelities.items():
        corr = rank_correlation(scores, full)
        print(json.dumps({"fidelity": name, "genomes": corr.genomes,
                          "spearman": round(corr.spearman, 3), "kendall": round(corr.kendall, 3)}))
    hours = sum(r["seconds"] for r in trained) / 3600
    tests = sorted(r["test"] for r in trained)
    print(json.dumps({"trained": len(trained), "cpu_hours": round(hours, 2),
                      "test_min": tests[0], "test_max": tests[-1]}))


def step_extrapolate(args: argparse.Namespace) -> None:
    """Early-epoch fidelities of one seed's runs against another seed's final test accuracy.

    Pairing a fidelity of seed i with the target of seed j != i keeps one run's noise out of
    both sides, so every fidelity, the full schedule's validation included, is measured against
    the genome's quality rather than its luck; the rows average over the ordered pairs. The
    intervals resample the genomes (percentile bootstrap), the difference to --baseline paired."""
    import numpy as np

    from nas.study.search.fidelity import rank_correlation

    runs, keys = _seed_runs(args)
    pairs = [(i, j) for i in range(len(runs)) for j in range(len(runs)) if i != j]
    scores = [_early_fidelities(run, args.from_epochs, args.epochs) for run in runs]
    targets = [[run[k]["test"] for k in keys] for run in runs]
    names = list(scores[0])
    # (fidelity, pair, resample): Spearman over genomes resampled with replacement, the same
    # resamples for every fidelity, so a difference of two fidelities has a paired interval
    draws = np.random.default_rng(0).integers(0, len(keys), size=(args.bootstrap, len(keys)))
    rho = {name: np.array([[_spearman([scores[i][name][keys[d]] for d in draw],
                                      [targets[j][d] for d in draw]) for draw in draws]
                           for i, j in pairs]).mean(axis=0) for name in names}
    for name in names:
        corr = [rank_correlation(scores[i][name], dict(zip(keys, targets[j], strict=True)))
                for i, j in pairs]
        diff = rho[name] - rho[args.baseline]
        print(json.dumps({
            "fidelity": name, "pairs": len(pairs), "genomes": len(keys),
            "spearman": round(float(np.mean([c.spearman for c in corr])), 3),
            "kendall": round(float(np.mean([c.kendall for c in corr])), 3),
            "spearman_95": [round(float(q), 3) for q in np.nanpercentile(rho[name], (2.5, 97.5))],
            f"minus_{args.baseline}_95": [round(float(q), 3)
                                          for q in np.nanpercentile(diff, (2.5, 97.5))]}))


def step_rungsim(args: argparse.Namespace) -> None:
    """Successive halving replayed on the recorded curves: genomes arrive in random order at
    one worker, each trains to a rung, meets the search's own gate there
    (nas.study.search.rungs.passes: the top third by non-dominated rank over accuracy so far,
    FLOPs and params, among the genomes that reached that rung) and goes on or stops; the search
    ends when the budget (seconds of the recorded epochs) runs out, the genome in training then
    not counted. Its pick, the best final validation, is worth its mean test accuracy over the
    other seeds' runs. Per policy and budget: that worth (mean over orders, then over seeds, with
    a paired t-interval against the first policy over seeds) and the genomes judged."""
    import numpy as np

    from nas.study.ablation.stats import paired

    runs, keys = _seed_runs(args)
    policies = [_policy(text, args.ridge_min) for text in args.policies]
    rng = np.random.default_rng(0)
    orders = [rng.permutation(len(keys)) for _ in range(args.orders)]
    tests = np.array([[run[k]["test"] for k in keys] for run in runs]).mean(axis=0)
    print(json.dumps({"genomes": len(keys), "seeds": len(runs), "best_test": round(100 * tests.max(), 2),
                      "mean_test": round(100 * tests.mean(), 2)}))
    truths = [{k: float(np.mean([r[k]["test"] for j, r in enumerate(runs) if j != s]))
               for k in keys} for s in range(len(runs))]    # each seed's: the others' mean test
    for share in args.budgets:
        worth: dict[Policy, list[float]] = {p: [] for p in policies}
        judged: dict[Policy, list[float]] = {p: [] for p in policies}
        for run, truth in zip(runs, truths, strict=True):
            budget = share * sum(run[k]["seconds"] for k in keys)
            for policy in policies:
                picks = [_halving(run, [keys[i] for i in order], policy, budget)
                         for order in orders]
                worth[policy].append(float(np.mean([truth[p.pick] for p in picks if p.pick])))
                judged[policy].append(float(np.mean([p.judged for p in picks])))
        base = policies[0]
        for policy in policies:
            diff = (paired(dict(enumerate(worth[base])), dict(enumerate(worth[policy])))
                    if policy != base else None)
            print(json.dumps({"budget_share": share, "policy": policy.text,
                              "pick_test": round(100 * float(np.mean(worth[policy])), 2),
                              "judged": round(float(np.mean(judged[policy])), 1),
                              f"minus_{base.text}": None if diff is None else
                              [round(100 * diff.mean, 2), round(100 * diff.low, 2),
                               round(100 * diff.high, 2)]}))


def _seed_runs(args: argparse.Namespace) -> tuple[list[dict[str, dict]], list[str]]:
    """The --runs folders' rows by genome, one dict per seed, and the genomes all of them have."""
    runs = [dict(_keyed(rows(args, Path(folder)))) for folder in args.runs]
    return runs, sorted(set.intersection(*(set(run) for run in runs)))


@dataclass(frozen=True)
class Policy:
    """A replayed search's rungs, and whether its gate ranks by a ridge prediction of the final
    validation (fitted on the genomes completed so far, once `ridge_min` have) instead of the
    best validation so far."""

    text: str
    rungs: tuple[int, ...]
    ridge_min: int | None


def _policy(text: str, ridge_min: int) -> Policy:
    rungs, _, score = text.partition("+")
    if score not in ("", "ridge"):
        raise SystemExit(f"fidelity: --policies {text}: the score after '+' must be ridge")
    return Policy(text, tuple(int(r) for r in rungs.split(",")), ridge_min if score else None)


@dataclass(frozen=True)
class Halving:
    """One replayed search: its pick (None: nothing completed) and the genomes it judged."""

    pick: str | None
    judged: int


def _halving(run: dict[str, dict], order: list[str], policy: Policy, budget: float) -> Halving:
    from nas.study.search.rungs import passes

    rungs = policy.rungs
    spent, judged, best = 0.0, 0, (-1.0, None)
    reached: dict[int, list[str]] = {r: [] for r in rungs[:-1]}
    completed: list[str] = []
    for genome in order:
        row = run[genome]
        per_epoch, curve, epoch = row["seconds"] / len(row["val_by_epoch"]), row["val_by_epoch"], 0
        for rung in rungs:
            spent += per_epoch * (rung - epoch)
            epoch = rung
            if spent > budget:
                return Halving(best[1], judged)
            if rung == rungs[-1]:
                best = max(best, (max(curve), genome))
                completed.append(genome)
                break
            reached[rung].append(genome)
            score = _rung_score(run, rung, completed, policy.ridge_min)
            points = [(score(g), run[g]["flops"], run[g]["params"]) for g in reached[rung]]
            if not passes(len(points) - 1, points):
                break
        judged += 1
    return Halving(best[1], judged)


def _rung_score(run: dict[str, dict], rung: int, completed: list[str],
                ridge_min: int | None) -> Callable[[str], float]:
    """A genome's score at `rung`: its best validation so far, or with `ridge_min` completed
    genomes, a ridge prediction of its final validation from its curve to the rung, ln FLOPs
    and ln params, fitted on those genomes (standardised inputs, weight 3: closed form, not
    RidgeCV, which the thousands of gates of a replay cannot afford)."""
    import numpy as np

    if ridge_min is None or len(completed) < ridge_min:
        return lambda g: max(run[g]["val_by_epoch"][:rung])

    def inputs(g: str) -> list[float]:
        r = run[g]
        return [*r["val_by_epoch"][:rung], np.log(r["flops"]), np.log(r["params"])]
    x = np.array([inputs(g) for g in completed])
    y = np.array([max(run[g]["val_by_epoch"]) for g in completed])
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / scale
    weights = np.linalg.solve(z.T @ z + 3.0 * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return lambda g: float((np.array(inputs(g)) - mean) / scale @ weights + y.mean())


def _spearman(x: list[float], y: list[float]) -> float:
    from scipy import stats

    return float(stats.spearmanr(x, y).statistic)


def _early_fidelities(run: dict[str, dict], from_epochs: list[int],
                      epochs: int) -> dict[str, dict[str, float]]:
    """Per-genome scores: FLOPs, the full schedule's val and test (the test: how well one seed
    ranks as another does, the ceiling), the rung at each epoch, and from the first k epochs a
    log-linear and a pow3 extrapolation to `epochs` and a leave-one-out ridge predictor."""
    fidelities = {"flops": {k: r["flops"] for k, r in run.items()},
                  "val@full": {k: r["val"] for k, r in run.items()},
                  "test@full": {k: r["test"] for k, r in run.items()}}
    for k in from_epochs:
        curves = {g: r["val_by_epoch"][:k] for g, r in run.items()}
        fidelities[f"val@{k}"] = {g: max(c) for g, c in curves.items()}
        fidelities[f"loglin@{k}"] = {g: _loglin(c, epochs) for g, c in curves.items()}
        if k >= 3:
            fidelities[f"pow3@{k}"] = {g: _pow3(c, epochs) for g, c in curves.items()}
        fidelities[f"ridge@{k}"] = _ridge_loo(run, k)
    return fidelities


def _loglin(curve: list[float], epoch: int) -> float:
    """Least squares of val = a + b ln(epoch) over the curve, read at `epoch`."""
    import numpy as np

    slope, intercept = np.polyfit(np.log(np.arange(1, len(curve) + 1)), curve, 1)
    return float(intercept + slope * np.log(epoch))


def _pow3(curve: list[float], epoch: int) -> float:
    """val = c - a epoch^-alpha (Domhan et al., IJCAI 2015), fitted, read at `epoch`; the
    log-linear fit where it does not converge."""
    import warnings

    import numpy as np
    from scipy.optimize import OptimizeWarning, curve_fit

    x = np.arange(1, len(curve) + 1, dtype=float)
    try:
        with warnings.catch_warnings():    # three points fit exactly: no covariance, no matter
            warnings.simplefilter("ignore", OptimizeWarning)
            (c, a, alpha), _ = curve_fit(lambda e, c, a, alpha: c - a * e ** -alpha, x, curve,
                                         p0=(max(curve) + 0.05, 0.1, 0.5),
                                         bounds=((0, 0, 0.01), (1, 1, 5)), maxfev=5000)
    except RuntimeError:
        return _loglin(curve, epoch)
    return float(c - a * epoch ** -alpha)


def _ridge_loo(run: dict[str, dict], k: int) -> dict[str, float]:
    """Each genome's final validation predicted by ridge regression fitted on the others' runs
    (the study's own completed trials): inputs the first k epochs' validation, ln FLOPs and
    ln params."""
    import numpy as np
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    keys = list(run)
    x = np.array([[*run[g]["val_by_epoch"][:k], np.log(run[g]["flops"]), np.log(run[g]["params"])]
                  for g in keys])
    y = np.array([run[g]["val"] for g in keys])
    scores = {}
    for i, g in enumerate(keys):
        rest = np.arange(len(keys)) != i
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
        scores[g] = float(model.fit(x[rest], y[rest]).predict(x[i:i + 1])[0])
    return scores


def _vote(scores: list[dict[str, float]]) -> dict[str, float]:
    """The sum of each genome's ranks under several proxies (Abdelfattah et al.'s vote)."""
    from scipy.stats import rankdata

    keys = list(scores[0])
    ranks = [rankdata([score[k] for k in keys]) for score in scores]
    return {k: float(sum(r[i] for r in ranks)) for i, k in enumerate(keys)}


def _keyed(trained: list[dict]) -> list[tuple[str, dict]]:
    return [(r["genome"] + r["attention"], r) for r in trained]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    steps = {"sample": step_sample, "worker": step_worker, "zerocost": step_zerocost,
             "summary": step_summary, "extrapolate": step_extrapolate, "rungsim": step_rungsim}
    if args.step == "train":
        step_train(args, argv)
    else:
        steps[args.step](args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
