"""FLOPs and parameters in the report's convention, checked against independent counters.

The reference is ptflops run with custom hooks that restate thop 0.1.x's rules (written
here, not imported from `nas`): conv = out.numel * in/groups * prod(k) (bias not counted),
BatchNorm = 4 * numel with affine, AdaptiveAvgPool = out.numel * (prod(window) + 1),
Linear = in_features * out.numel, everything else 0; FLOPs = 2 x the total.
`torch.utils.flop_counter.FlopCounterMode` cross-checks the convolution and linear share.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from ptflops import get_model_complexity_info
from ptflops.pytorch_ops import MODULES_MAPPING
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas.errors import GenomeError
from nas.model.attention import ATTENTIONS
from nas.model.builder import build_model
from nas.model.complexity import Complexity, count, count_model
from nas.model.genome import Genome, StageGene
from nas.model.space import InputShape, Space, load_space

SPACES = Path(__file__).resolve().parents[2] / "nas" / "search_spaces"
REPORT = "[2,8,6,1,0] [2,16,4,1,0]"
Hook = Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]


# --- the reference: ptflops with thop 0.1.x's rules ----------------------------------------------

def _conv(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
    module.__flops__ += int(output.numel() * (module.in_channels // module.groups)
                            * math.prod(module.kernel_size))


def _batchnorm(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
    assert module.affine
    module.__flops__ += int(4 * inputs[0].numel())


def _adaptive_pool(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
    window = math.prod(i // o for i, o in zip(inputs[0].shape[2:], output.shape[2:], strict=True))
    module.__flops__ += int(output.numel() * (window + 1))


def _linear(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
    module.__flops__ += int(module.in_features * output.numel())


def _zero(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
    module.__flops__ += 0


THOP_HOOKS: dict[type[nn.Module], Hook] = {kind: _zero for kind in MODULES_MAPPING}
THOP_HOOKS.update({nn.Conv1d: _conv, nn.Conv2d: _conv, nn.BatchNorm2d: _batchnorm,
                   nn.AdaptiveAvgPool2d: _adaptive_pool, nn.Linear: _linear})


def reference(model: nn.Module, shape: InputShape) -> tuple[int, int]:
    """(FLOPs, params) of `model` by ptflops with the thop rules above."""
    macs, params = get_model_complexity_info(
        model, (shape.channels, shape.height, shape.width), as_strings=False,
        print_per_layer_stat=False, backend="pytorch", custom_modules_hooks=THOP_HOOKS,
        backend_specific_config={"count_functional": False},
    )
    assert macs is not None and params is not None
    return 2 * int(macs), int(params)


def flop_counter_total(model: nn.Module, shape: InputShape) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(1, shape.channels, shape.height, shape.width))
    return counter.get_total_flops()


def assert_all_counters_agree(genome: Genome | str, shape: InputShape, classes: int,
                              space: Space | None = None) -> Complexity:
    """The analytic count equals ptflops, the hook counter, FlopCounterMode and sum(numel)."""
    analytic = count(genome, space, shape=shape, classes=classes)
    model = build_model(genome, space, shape=shape, classes=classes)
    assert sum(p.numel() for p in model.parameters()) == analytic.params
    assert reference(model, shape) == (analytic.flops, analytic.params)
    assert count_model(model, shape) == analytic
    assert flop_counter_total(model, shape) == 2 * analytic.matmul_macs
    return analytic


# --- the report's numbers ----------------------------------------------------------------------

@pytest.mark.parametrize(("attention", "flops", "params"), [
    ("eca", 180_348_032, 10_754),
    ("se", 180_353_440, 14_330),
])
def test_report_rows_exactly(attention: str, flops: int, params: int) -> None:
    genome = Genome.parse(REPORT, attention)
    analytic = count(genome, shape=(3, 185, 160), classes=2)       # the report's photos
    assert (analytic.flops, analytic.params) == (flops, params)
    assert count(REPORT + " " + attention, shape=InputShape(3, 185, 160), classes=2) == analytic
    assert assert_all_counters_agree(genome, InputShape(3, 185, 160), 2) == analytic


@pytest.mark.parametrize("genome", [
    "[2,8,4,1,0] [2,16,6,1,0]",
    "[1,8,1,1,0] [1,16,1,1,0] [1,32,1,1,0] [1,64,1,1,0]",
    "[2,8,2,1,0] [2,16,2,2,0]",
    "[4,8,2,1,0] [4,16,2,2,0]",
    "[2,8,2,1,0] [2,16,2,1,0]",
    "[2,8,2,2,0] [2,16,2,2,0]",
])
def test_report_comparison_genomes_equal_ptflops(genome: str) -> None:
    shape = InputShape(3, 185, 160)
    analytic = count(genome + " eca", shape=shape, classes=2)
    model = build_model(genome + " eca", shape=shape, classes=2)
    assert reference(model, shape) == (analytic.flops, analytic.params)


def test_hand_computed_smallest_model() -> None:
    """[1,8,1,1,0] none at 3x4x4, 2 classes, every term written out (MACs)."""
    positions = 2 * 2                                          # after the stride-2 stem
    stem = 3 * 8 * 9 * positions + 4 * 8 * positions
    block = (8 * 8 + 8 * 9 + 8 * 8) * positions + 3 * 4 * 8 * positions   # expand, dw, project, 3 BN
    head = 8 * 128 * positions + 4 * 128 * positions
    pool, classifier = 128 * (positions + 1), 128 * 2
    params = (216 + 16) + (64 + 16 + 72 + 16 + 64 + 16) + (1024 + 256) + (256 + 2)
    result = count("[1,8,1,1,0] none", shape=InputShape(3, 4, 4), classes=2)
    assert result.flops == 2 * (stem + block + head + pool + classifier) == 18_432
    assert result.params == params == 2_018
    assert result.matmul_macs == 3 * 8 * 9 * 4 + (64 + 72 + 64) * 4 + 1024 * 4 + 256


# --- many genomes, shapes and class counts -------------------------------------------------------

GENOMES = [
    "[1,8,1,1,0] none",
    "[1,8,2,1,1] [1,16,1,1,1] eca",                       # t = 1, fused
    "[2,12,2,2,1] [3,20,2,1,0] se",                       # widths 12 -> 16, 20 -> 24, t = 3
    "[6,16,1,2,0] [4,24,2,2,1] [1,32,1,2,0] eca",         # stride 2 everywhere
    "[1,20,1,1,0] [2,12,1,1,1] se",                       # the width shrinks
    "[4,8,3,1,1] [6,48,1,2,0] [2,64,2,1,1] [1,8,1,2,0] none",
]
SHAPES = [InputShape(3, 33, 17), InputShape(1, 7, 9), InputShape(4, 15, 31), InputShape(3, 1, 1),
          InputShape(3, 64, 48)]


@pytest.mark.parametrize("genome", GENOMES)
@pytest.mark.parametrize(("shape", "classes"), list(zip(SHAPES, [2, 1, 7, 3, 1000], strict=True)),
                         ids=[str(s) for s in SHAPES])
def test_analytic_count_equals_references(genome: str, shape: InputShape, classes: int) -> None:
    assert_all_counters_agree(genome, shape, classes)


@pytest.mark.parametrize("genome", GENOMES[1:4])
def test_space_settings_are_counted(genome: str) -> None:
    """torchvision's rules (no expansion at t = 1, SE from the input, floor) and overrides."""
    settings_only = load_space(SPACES / "efficientnetv2_s.toml")
    settings_only = Space(path="x", name="x", model=settings_only.model,
                          stages=settings_only.stages[2:], attention=("se",))
    depth = len(Genome.parse(genome).stages)
    assert depth <= len(settings_only.stages)
    for attention in ("se", "eca"):
        assert_all_counters_agree(Genome.parse(genome, attention), InputShape(3, 21, 19), 5, settings_only)


def test_count_uses_the_space_input_and_checks_depth() -> None:
    tiny = load_space(SPACES / "tiny.toml")
    genome = Genome.parse("[2,16,1,1,1] [2,24,2,2,0] eca")
    assert count(genome, tiny) == count(genome, tiny, shape=InputShape(3, 16, 16))
    assert count(genome, tiny).flops < count(genome, tiny, shape=InputShape(3, 17, 16)).flops
    assert count(genome, tiny).params < count(genome).params      # tiny's head is 32 wide, not 128
    with pytest.raises(GenomeError, match="has 3 stages, the space defines at most 2"):
        count(Genome.parse("[1,8,1,1,0] [1,8,1,1,0] [1,8,1,1,0]"), tiny)


def test_count_is_analytic_even_for_huge_genomes() -> None:
    """No tensors: a genome far too big to build is counted at once."""
    huge = Genome(tuple(StageGene(32, 8192, 64, 1, 0) for _ in range(16)), "se")
    start = time.perf_counter()
    result = count(huge, shape=InputShape(3, 4096, 4096))
    assert time.perf_counter() - start < 2.0
    assert result.flops > 10**18 and result.params > 10**11


@pytest.mark.parametrize("attention", list(ATTENTIONS))
def test_every_attention_in_the_table_counts_as_built(attention: str) -> None:
    """For every entry of the one attention table, the analytic rule equals the hook count of
    the module its factory builds (MBConv and FusedMBConv, SE width from both rules)."""
    for genome in ("[2,8,2,1,0] [3,20,1,2,1]", "[1,12,1,1,1] [4,16,2,2,0]"):
        assert_all_counters_agree(Genome.parse(genome, attention), InputShape(3, 19, 23), 3)


def test_attention_costs() -> None:
    """ECA adds 4 parameters a block and SE two Linears; `none` adds nothing."""
    none, eca, se = (count(REPORT + " " + a) for a in ("none", "eca", "se"))
    assert eca.params - none.params == 10 * 4
    # 7 blocks have 16 hidden channels (SE width 8), the last 3 of stage 2 have 32 (width 8).
    assert se.params - none.params == 7 * (16 * 8 + 8 + 8 * 16 + 16) + 3 * (32 * 8 + 8 + 8 * 32 + 32)
    assert none.flops < eca.flops < se.flops


# --- hypothesis: random genomes against ptflops ----------------------------------------------------

@st.composite
def small_cases(draw: st.DrawFn) -> tuple[Genome, InputShape, int]:
    stages = draw(st.lists(st.builds(
        StageGene, t=st.sampled_from([1, 2, 3, 4, 6]), c=st.sampled_from([8, 12, 16, 20, 24, 32]),
        n=st.integers(1, 2), s=st.sampled_from([1, 2]), fused=st.sampled_from([0, 1]),
    ), min_size=1, max_size=3))
    genome = Genome(tuple(stages), draw(st.sampled_from(tuple(ATTENTIONS))))
    shape = InputShape(draw(st.integers(1, 4)), draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    return genome, shape, draw(st.integers(1, 12))


@settings(max_examples=25, deadline=None)
@given(small_cases())
def test_random_genomes_equal_references(case: tuple[Genome, InputShape, int]) -> None:
    genome, shape, classes = case
    assert_all_counters_agree(genome, shape, classes)
