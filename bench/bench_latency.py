"""Repeatability of measured latency: one genome timed many times in one process.

Run by hand: `python bench/bench_latency.py [--space seed.toml] [--size 32x32] [--repeats 20]
[--backend torch]`. Each repeat is one `time_genome` measurement as the search makes it (build,
warm-up, median over >= 30 runs and >= 50 ms, on `latency.THREADS` threads); the claim is that
repeats of one genome in one process vary by less than 10 % (max/min of the medians), so a
study's latency figures and budgets mean the same thing trial after trial. Prints the machine,
the threads and the spread for the smallest, a middle and the largest genome of the space.
"""

from __future__ import annotations

import argparse
import statistics
import time

from nas.model import latency
from nas.model.genome import Genome
from nas.model.space import InputShape, Space, load_space


def genomes(space: Space) -> list[tuple[str, Genome]]:
    """The space's smallest and largest genome, and one in between (the largest cut to half its
    stages)."""
    small, large = space.extremes(False)[0], max(space.extremes(True), key=lambda g: len(g.stages))
    middle = Genome(large.stages[: max(space.min_stages, len(large.stages) // 2)], large.attention)
    return [("smallest", small), ("middle", middle), ("largest", large)]


def spread(space: Space, genome: Genome, shape: InputShape, repeats: int,
           backend: str) -> dict[str, float]:
    """`repeats` measurements of one genome: median of the medians, and (max - min) / min."""
    figures, started = [], time.perf_counter()
    for _ in range(repeats):
        figures.append(latency.time_genome(genome, space, shape, 10, backend=backend).ms)
    return {"median_ms": statistics.median(figures), "min_ms": min(figures),
            "max_ms": max(figures), "spread": (max(figures) - min(figures)) / min(figures),
            "seconds": time.perf_counter() - started}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="seed.toml")
    p.add_argument("--size", default="32x32", help="input HxW")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"))
    args = p.parse_args()
    space, shape = load_space(args.space), InputShape.parse(args.size)
    setup = latency.setup(args.backend)
    print(f"{setup['cpu']} ({setup['machine']}), {setup['threads']} thread(s), {setup['backend']} "
          f"{setup['version']}; {args.space} at {shape}, {args.repeats} measurements each")
    print(f"{'genome':<9} {'median ms':>10} {'min ms':>9} {'max ms':>9} {'spread':>7} {'s':>6}  notation")
    for label, genome in genomes(space):
        row = spread(space, genome, shape, args.repeats, args.backend)
        print(f"{label:<9} {row['median_ms']:>10.3f} {row['min_ms']:>9.3f} {row['max_ms']:>9.3f} "
              f"{100 * row['spread']:>6.1f}% {row['seconds']:>6.1f}  {genome}")


if __name__ == "__main__":
    main()
