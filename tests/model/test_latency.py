"""Measured latency: a median over timed runs at batch 1, on a fixed thread count, leaving the
training's random stream and thread count as they were."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from nas.model import latency
from nas.model.space import InputShape, load_space


def test_timing_is_a_median_on_fixed_threads_and_leaves_rng_and_threads_alone() -> None:
    space, shape = load_space("tiny.toml"), InputShape(3, 8, 8)
    genome = space.extremes(False)[0]
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    threads = torch.get_num_threads()
    timing = latency.time_genome(genome, space, shape, 4, backend="torch")
    assert torch.equal(torch.rand(3), expected)              # the RNG was forked, not consumed
    assert torch.get_num_threads() == threads
    assert timing.runs >= latency.REPEATS and 0 < timing.ms <= timing.high and timing.low > 0
    setup = latency.setup("torch")
    assert setup["threads"] == latency.THREADS and setup["backend"] == "torch" and setup["cpu"]


def test_the_median_ignores_a_slow_run() -> None:
    import time

    runs = iter(range(10_000))
    timing = latency.measure(lambda: time.sleep(0.2) if next(runs) == latency.WARMUP else None)
    assert timing.ms < 5 and timing.runs >= latency.REPEATS


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="no onnxruntime")
def test_onnxruntime_times_the_exported_graph() -> None:
    space, shape = load_space("tiny.toml"), InputShape(3, 8, 8)
    timing = latency.time_genome(space.extremes(False)[0], space, shape, 4, backend="onnxruntime")
    assert timing.ms > 0 and latency.setup("onnxruntime")["backend"] == "onnxruntime"
