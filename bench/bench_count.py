"""Time counting one genome: the analytic `count` against building the model + `count_model`.

Run by hand: `python bench/bench_count.py [--samples 500] [--model-samples 30]`. Genomes
are drawn uniformly from seed.toml's choices (depth, then every gene, then attention) with
a fixed seed; the search gates each sample against a budget, so `count` must stay cheap
(target: median <= 50 ms on a 2-core machine).
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time

import torch

from nas.model.builder import build_model
from nas.model.complexity import count, count_model
from nas.model.genome import GENES, Genome, StageGene
from nas.model.space import InputShape, Space, load_space


def sample(space: Space, rng: random.Random) -> Genome:
    """One genome uniformly over depth, genes and attention."""
    depth = rng.randint(space.min_stages, len(space.stages))
    stages = tuple(StageGene(*(rng.choice(st.choices(name)) for name in GENES))
                   for st in space.stages[:depth])
    return Genome(stages, rng.choice(space.attention))


def timed(run: object) -> float:
    start = time.perf_counter()
    run()  # type: ignore[operator]
    return time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="seed.toml")
    parser.add_argument("--input", default="3x185x160")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--model-samples", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    space = load_space(args.space)
    shape = InputShape.parse(args.input)
    rng = random.Random(args.seed)
    genomes = [sample(space, rng) for _ in range(args.samples)]

    count(genomes[0], space, shape=shape)                       # warm the imports
    analytic = [timed(lambda g=g: count(g, space, shape=shape)) for g in genomes]
    mismatches = 0
    built = []
    for genome in genomes[: args.model_samples]:
        result: dict[str, object] = {}

        def run(genome: Genome = genome, result: dict[str, object] = result) -> None:
            result["hooks"] = count_model(build_model(genome, space), shape)

        built.append(timed(run))
        mismatches += result["hooks"] != count(genome, space, shape=shape)

    fast, slow = statistics.median(analytic), statistics.median(built)
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"python {platform.python_version()}, torch {torch.__version__}")
    print(f"space {args.space}, input {shape}, seed {args.seed}")
    print(f"count (analytic), {len(analytic)} genomes: median {fast * 1e3:.3f} ms, "
          f"p95 {percentile(analytic, 0.95) * 1e3:.3f} ms, max {max(analytic) * 1e3:.3f} ms")
    print(f"build_model + count_model, {len(built)} genomes: median {slow * 1e3:.1f} ms, "
          f"p95 {percentile(built, 0.95) * 1e3:.1f} ms")
    print(f"ratio (median): {slow / fast:,.0f}x; analytic == hooks on all {len(built)}: {mismatches == 0}")
    print(f"target median <= 50 ms: {'met' if fast <= 0.050 else 'MISSED'}")


if __name__ == "__main__":
    main()
