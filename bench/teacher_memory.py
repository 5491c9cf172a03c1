"""Peak memory of the frozen-trunk teacher's pipeline, before and after its memory fixes.

A trunk teacher decodes the data at its own size, runs the frozen trunk over every training view
and val and test, caches those outputs, then trains the head on them. Two fixes bound its peak:
`run_trunk` writes into one tensor allocated up front (it used to keep a list of batches and then
join them, holding every output twice), and the caches are mapped from their files (pages the
kernel can drop), not read into anonymous memory. Each variant runs in its own process, twice: the
first pass computes the trunk outputs into a fresh trunk cache, the second reads them back. A
thread samples the process's resident memory (/proc/self/status) every 20 ms and reports the peak
of the anonymous part (what the kernel cannot drop: what the OOM killer counts) and of the whole.
Memory does not depend on the machine's load, so the variants run one after the other.
Run by hand (not a test), e.g.
    python bench/teacher_memory.py --size 96 --train-per-class 1000
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CIFAR10 = ROOT.parent / "shared" / "data" / "cifar10"
VARIANTS = ("before", "after")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(CIFAR10))
    p.add_argument("--space", default="cifar10.toml")
    p.add_argument("--size", type=int, default=96, help="the teacher's input side")
    p.add_argument("--train-per-class", type=int, default=1000, help="0: the whole training split")
    p.add_argument("--out", default="/tmp/nas-teacher-memory", help="the caches")
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    return p.parse_args(argv)


class Peak(threading.Thread):
    """The highest RssAnon and VmRSS of this process, sampled every 20 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.anon = self.rss = 0

    def run(self) -> None:
        while True:
            fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
            self.anon = max(self.anon, int(fields["RssAnon"].split()[0]) * 1024)
            self.rss = max(self.rss, int(fields["VmRSS"].split()[0]) * 1024)
            time.sleep(0.02)


def before() -> None:
    """The pipeline as it was: outputs joined from a list, caches read into memory."""
    import torch

    from nas.data import cache
    from nas.data.dataset import normalize
    from nas.model.weights import load_weights
    from nas.train import trunk

    @torch.no_grad()
    def run_trunk(model: torch.nn.Module, images: torch.Tensor, mean: tuple, std: tuple,
                  device: torch.device, batch_size: int = 64) -> torch.Tensor:
        model.eval()
        out = [model(normalize(images[start:start + batch_size].to(device), mean, std)).half().cpu()
               for start in range(0, len(images), batch_size)]
        return torch.cat(out) if out else torch.zeros(0)

    trunk.run_trunk = run_trunk
    cache.load_weights = lambda source, mmap=False: load_weights(source)


def child(args: argparse.Namespace) -> dict:
    """Load the data and views at the teacher's size, then the trunk outputs (computed or cached),
    then the head's training inputs, as nas.train.teacher does."""
    from dataclasses import replace

    from nas.data.dataset import load_data
    from nas.model.space import load_space
    from nas.train.experiment import image_size, resolve_device
    from nas.train.teacher import build_teacher, teacher_inputs
    from nas.train.trunk import trunk_maps

    if args.child == "before":
        before()
    peak = Peak()
    peak.start()
    base = load_space(args.space)
    space = replace(base, teacher=replace(base.teacher, image_size=args.size),
                    train=replace(base.train, train_per_class=args.train_per_class))
    cache = Path(args.out) / "cache"
    started = time.perf_counter()
    data = load_data(args.data, image_size(space, args.data, None), **space.train.split_kwargs(),
                     cache_dir=cache)
    inputs = teacher_inputs(space, args.data, data, cache_dir=cache)
    model = build_teacher(inputs.config, space, len(data.classes))
    maps = trunk_maps(model, inputs.config, inputs.data, inputs.views, resolve_device("cpu", 2), cache)
    touched = float(maps.views.float().sum() + maps.val.float().sum() + maps.test.float().sum())
    time.sleep(0.1)
    return {"images": len(maps.views) + len(maps.val) + len(maps.test),
            "maps_gib": round(sum(m.numel() * 2 for m in (maps.views, maps.val, maps.test)) / 2**30, 2),
            "peak_anon_gib": round(peak.anon / 2**30, 2), "peak_rss_gib": round(peak.rss / 2**30, 2),
            "seconds": round(time.perf_counter() - started, 1), "checksum": touched}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args)), flush=True)
        return 0
    trunk_cache = Path(args.out) / "cache" / "trunk"
    for variant in VARIANTS:
        shutil.rmtree(trunk_cache, ignore_errors=True)
        for step in ("trunk pass", "cached"):
            done = subprocess.run([sys.executable, __file__, *argv, "--child", variant],
                                  capture_output=True, text=True, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps({"variant": variant, "step": step, "size": args.size,
                              "train_per_class": args.train_per_class, **row}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
