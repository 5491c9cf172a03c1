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
Run by hand (not a test): the numbers go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from nas.model.space import Space

ROOT = Path(__file__).resolve().parents[1]
CIFAR10 = ROOT.parent / "shared" / "data" / "cifar10"
HAND = "[2,8,6,1,0] [2,16,4,1,0]"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", choices=("sample", "train", "worker", "zerocost", "summary"))
    p.add_argument("--data", default=str(CIFAR10))
    p.add_argument("--space", default="cifar10.toml")
    p.add_argument("--out", default="/tmp/nas-fidelity", help="genomes, logs, database, cache")
    p.add_argument("--genomes", type=int, default=24)
    p.add_argument("--seed", type=int, default=0, help="the random sampler's seed")
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
    return p.parse_args(argv)


def space(args: argparse.Namespace) -> Space:
    from nas.model.space import load_space

    base = load_space(args.space)
    return replace(base, train=replace(base.train, train_per_class=args.train_per_class,
                                       epochs=args.epochs),
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
        run = train_genome(ctx, Genome.parse(item["genome"], item["attention"]), seed=0)
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
    found = []
    for log in sorted((folder or out(args)).glob("worker*.log")):
        found += [json.loads(line) for line in log.read_text().splitlines()
                  if line.startswith("{")]
    return found


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
             "summary": step_summary}
    if args.step == "train":
        step_train(args, argv)
    else:
        steps[args.step](args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
