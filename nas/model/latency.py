"""Measured latency: the median milliseconds per image at batch 1 on this machine's CPU.

The student is built (random weights, from a forked RNG so that training's stream is untouched),
run `WARMUP` times, then timed run by run until `REPEATS` runs and `MIN_SECONDS` have passed. The
figure is the median of the quietest block of `BLOCK` consecutive runs: another process that takes
the core (a --jobs worker training, a busy CI box) slows whole stretches of runs, and the median
of an undisturbed stretch is what the genome costs. It runs on `THREADS` CPU threads (set for the
measurement, restored after), so the figure does not depend on how many threads the search trains
with; on one thread each run is timed by the process's CPU clock, which equals the wall clock on
an idle machine but leaves out the time other processes hold the core. Repeatability is measured
by bench/bench_latency.py (bench/RESULTS.md). Backends: torch
(eager, inference mode), or ONNX Runtime on the exported graph when `onnxruntime` is installed.
`setup()` names the machine, threads and backend, which the study records and the report shows.
"""

from __future__ import annotations

import io
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas.errors import SpaceError
from nas.model.builder import build_model
from nas.model.genome import Genome
from nas.model.objectives import LATENCY_BACKENDS
from nas.model.space import InputShape, Space

THREADS = 1             # CPU threads of every measurement
WARMUP = 10             # untimed runs first (allocations, caches, lazy init)
REPEATS = 30            # timed runs at least ...
MIN_SECONDS = 0.05      # ... and at least this long in all
MAX_REPEATS = 1000      # a cap for very fast models
BLOCK = 10              # consecutive runs whose median is one candidate figure


@dataclass(frozen=True)
class Timing:
    """One measurement, in milliseconds: the figure (median of the quietest block of runs) and
    the quartiles of all runs."""

    ms: float
    low: float              # first quartile of all runs
    high: float             # third quartile of all runs
    runs: int


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def setup(backend: str = "torch", threads: int = THREADS) -> dict[str, Any]:
    """What a latency figure was measured on: machine, CPU, threads, backend and its version."""
    return {"machine": platform.node() or "?", "cpu": cpu_name(), "threads": threads,
            "backend": backend, "version": _version(backend)}


def _version(backend: str) -> str:
    if backend == "onnxruntime":
        import onnxruntime

        return str(onnxruntime.__version__)
    return str(torch.__version__)


def time_genome(genome: Genome, space: Space, shape: InputShape, classes: int,
                backend: str | None = None, threads: int = THREADS) -> Timing:
    """Build `genome`'s student (eval mode) and time it; `backend` None: the space's
    `[search] latency_backend`."""
    backend = backend or space.search.latency_backend
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(genome, space, shape=shape, classes=classes).eval()
    return time_model(model, shape, backend, threads)


def time_model(model: torch.nn.Module, shape: InputShape, backend: str = "torch",
               threads: int = THREADS) -> Timing:
    """Median milliseconds of one forward pass of a (1, C, H, W) image."""
    if backend not in LATENCY_BACKENDS:
        raise SpaceError(f"latency backend must be one of {list(LATENCY_BACKENDS)}, got {backend!r}")
    image = torch.zeros(1, shape.channels, shape.height, shape.width)
    run = _onnx_runner(model, image, threads) if backend == "onnxruntime" else _torch_runner(model,
                                                                                            image)
    with _threads(threads):
        return measure(run, time.process_time if threads == 1 else time.perf_counter)


def measure(run: Callable[[], object],
            clock: Callable[[], float] = time.perf_counter) -> Timing:
    """Warm up, then time `run` by `clock` REPEATS times and for MIN_SECONDS at least."""
    for _ in range(WARMUP):
        run()
    times: list[float] = []
    started = clock()
    while len(times) < MAX_REPEATS and (len(times) < REPEATS or clock() - started < MIN_SECONDS):
        begin = clock()
        run()
        times.append(1000 * (clock() - begin))
    low, _, high = statistics.quantiles(times, n=4)
    blocks = [statistics.median(times[i:i + BLOCK]) for i in range(0, len(times) - BLOCK + 1, BLOCK)]
    return Timing(ms=min(blocks), low=low, high=high, runs=len(times))


def _torch_runner(model: torch.nn.Module, image: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode():
            return model(image)
    return run


def _onnx_runner(model: torch.nn.Module, image: torch.Tensor, threads: int) -> Callable[[], object]:
    """The model exported to ONNX (in memory) and run by an ONNX Runtime CPU session."""
    try:
        import onnxruntime
    except ImportError:
        raise SpaceError("latency_backend onnxruntime needs the onnxruntime package") from None
    import warnings

    graph = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (image,), graph, dynamo=False, opset_version=17,
                          input_names=["images"])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = onnxruntime.InferenceSession(graph.getvalue(), options,
                                           providers=["CPUExecutionProvider"])
    feed = {"images": image.numpy()}
    return lambda: session.run(None, feed)


@contextmanager
def _threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to `count` for the block, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
