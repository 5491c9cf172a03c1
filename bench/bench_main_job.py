"""The README's main job against the search as it was before issue 9, side by side.

Three variants: `old`, the old README's main job on the old code (`nas search --budget-flops
0.2G`: digits at 32x32, one process, 3 epochs a trial); `old-same-job`, the old code on the new
main job's data size and budget (48x48, 0.2G: one process, 3 epochs a trial, no rungs); and
`new`, the README's main job now. Each variant runs as a user meets it: a fresh directory, a
cold data cache, no teacher yet, the `nas` command line in a new interpreter. The variants
take turns (old, old-same-job, new, old, ...) so machine noise hits all alike. Genomes
judged = trained + pruned at a rung (genomes whose accuracy was measured; reused and
budget-rejected samples cost no training and do not count).
Run by hand (not a test), e.g.

    python bench/bench_main_job.py --repeats 2

The old code is `git archive`d from `--old-ref` (default: the last commit before issue 9) into a
temporary folder and run from there with the same Python and packages.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import optuna

from nas.study.search.processes import WORKER_CODE  # the `nas` command line in a fresh interpreter

ROOT = Path(__file__).resolve().parents[1]
OLD_REF = "55edef6"
OLD_ARGS = "--budget-flops 0.2G"
SAME_JOB_ARGS = "--budget-flops 0.2G --image-size 48x48"
NEW_ARGS = "--budget-flops 0.2G --image-size 48x48 --jobs 2 --rungs 1,3"


@dataclass(frozen=True)
class Variant:
    name: str
    code: Path          # the folder holding the `nas` package
    args: list[str]


@dataclass(frozen=True)
class Outcome:
    variant: str
    seconds: float
    outcomes: Counter[str]

    @property
    def judged(self) -> int:
        return self.outcomes["trained"] + self.outcomes["pruned"]

    @property
    def per_hour(self) -> float:
        return 3600 * self.judged / self.seconds


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old-ref", default=OLD_REF, help="git ref of the search before issue 9")
    p.add_argument("--old-args", default=OLD_ARGS, help="the old README's main job flags")
    p.add_argument("--same-job-args", default=SAME_JOB_ARGS,
                   help="the new main job's flags that the old code understands")
    p.add_argument("--new-args", default=NEW_ARGS, help="the README's main job flags")
    p.add_argument("--repeats", type=int, default=2)
    return p.parse_args(argv)


def export_old(ref: str, into: Path) -> None:
    """The tree of `ref` in `into`, as `git archive` gives it."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)


def run_variant(variant: Variant, scratch: Path) -> Outcome:
    """One cold run in a fresh directory; the outcome of every trial in its database."""
    work = Path(tempfile.mkdtemp(prefix=f"{variant.name}-", dir=scratch))
    env = {**os.environ, "PYTHONPATH": str(variant.code), "NAS_CACHE_DIR": str(work / "cache")}
    command = [sys.executable, "-c", WORKER_CODE, "search", *variant.args,
               "--storage", f"sqlite:///{work / 'studies.db'}"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{variant.name} failed ({done.returncode}): {done.stderr[-2000:]}")
    return Outcome(variant.name, seconds, trial_outcomes(work / "studies.db"))


def trial_outcomes(database: Path) -> Counter[str]:
    url = f"sqlite:///{database}"
    counts: Counter[str] = Counter()
    for summary in optuna.get_all_study_summaries(url):
        study = optuna.load_study(study_name=summary.study_name, storage=url)
        counts.update(t.user_attrs.get("outcome", "failed") for t in study.get_trials(deepcopy=False))
    return counts


def show(rows: list[Outcome]) -> None:
    print("| variant | wall (s) | trained | pruned | reused | rejected | judged | judged per hour |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        o = r.outcomes
        print(f"| {r.variant} | {r.seconds:.0f} | {o['trained']} | {o['pruned']} | {o['reused']} | "
              f"{o['rejected']} | {r.judged} | {r.per_hour:.0f} |")
    new = [r.per_hour for r in rows if r.variant == "new"]
    for name in ("old", "old-same-job"):
        base = [r.per_hour for r in rows if r.variant == name]
        ratios = [n / o for o, n in zip(base, new, strict=False)]
        print(f"\nratio new/{name} of genomes judged per hour, per repeat: "
              f"{', '.join(f'{x:.2f}' for x in ratios)}; mean {statistics.mean(ratios):.2f}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="nas-main-job-") as scratch:
        old_code = Path(scratch) / "old"
        old_code.mkdir()
        export_old(args.old_ref, old_code)
        old_space = ["--space", str(old_code / "search_spaces" / "seed.toml")]
        variants = (Variant("old", old_code, [*shlex.split(args.old_args), *old_space]),
                    Variant("old-same-job", old_code, [*shlex.split(args.same_job_args), *old_space]),
                    Variant("new", ROOT, shlex.split(args.new_args)))
        rows = []
        for repeat in range(args.repeats):
            for variant in variants:
                rows.append(run_variant(variant, Path(scratch)))
                r = rows[-1]
                print(f"repeat {repeat}: {r.variant} {r.seconds:.0f} s, {r.judged} judged, "
                      f"{dict(r.outcomes)}", flush=True)
        show(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
