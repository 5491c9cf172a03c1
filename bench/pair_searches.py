"""Two variants of one search arm, paired by seed, against random sampling's runs.

    python bench/pair_searches.py --base BASE.json... --variant VARIANT.json... --target B.json...

Reads the JSON files `bench/search_quality.py --out` writes: arm `--arm` (default a) of the
`--base` and `--variant` runs and arm b of the `--target` runs, each run keyed by its seed (a
file's "seeds" list, in the order its arms ran them). Per seed: each variant's hypervolume at
the end of its window, its genomes judged, and the time it first reached arm (b)'s final
hypervolume of that seed, as seconds and as a share of (b)'s own time to it (issue 21's
measure), with its hypervolume at a third of that time minus (b)'s final. Then the variant's
hypervolume minus the base's, paired over the seeds both have, with its 95 % t-interval
(nas.study.ablation.stats.paired). This is how a change to the search (its rungs, its sampler)
run with `search_quality.py --arms a` is set against the same seeds' arm (b) run apart
(`search_quality.py --combine` reports over one run of each arm a seed).
"""

from __future__ import annotations

import argparse
from typing import Any

from search_quality import against_random, reached, runs_by_seed

from nas.study.ablation.stats import paired


def reach(run: dict[str, Any], target: dict[str, Any] | None) -> str:
    """search_quality's against_random: when `run` first reached the target run's final
    hypervolume, as seconds and as a share of the target's own time to it, and `run`'s
    hypervolume at a third of that time minus the target's final."""
    return "(no arm b)" if target is None else against_random(run, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", nargs="+", required=True, metavar="JSON")
    parser.add_argument("--variant", nargs="+", required=True, metavar="JSON")
    parser.add_argument("--target", nargs="*", default=[], metavar="JSON", help="arm b's runs")
    parser.add_argument("--arm", default="a", help="the arm both variants ran (default a)")
    args = parser.parse_args()
    base = runs_by_seed(args.base, "--base", (args.arm,))[args.arm]
    variant = runs_by_seed(args.variant, "--variant", (args.arm,))[args.arm]
    targets = runs_by_seed(args.target, "--target", ("b",))["b"]
    print("seed | b's final HV (its time) | base HV | judged | reached | variant HV | judged | reached")
    for seed in sorted(set(base) | set(variant)):
        target = targets.get(seed)
        own = reached(target["curve"], target["hv"]) if target else None
        b = "-" if target is None else f"{target['hv']:.4f}" + (f" ({own:.0f} s)" if own else "")
        cells = [f"{r['hv']:.4f} | {r['judged']} | {reach(r, target)}" if r else "- | - | -"
                 for r in (base.get(seed), variant.get(seed))]
        print(f"{seed} | {b} | {cells[0]} | {cells[1]}")
    diff = paired({s: r["hv"] for s, r in base.items()}, {s: r["hv"] for s, r in variant.items()})
    if diff.n < 2:
        print(f"variant - base, hypervolume: needs 2 paired seeds, got {diff.n}")
        return
    verdict = "resolved" if diff.resolved else "not resolved"
    print(f"variant - base, hypervolume: {diff.mean:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}], "
          f"n={diff.n}, {verdict}")


if __name__ == "__main__":
    main()
