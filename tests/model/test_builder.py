"""Blocks and builder: the report's family to the letter, and torchvision's EfficientNetV2-S."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from nas.errors import GenomeError
from nas.model.attention_modules import ECA, SE
from nas.model.blocks import ConvBNAct, FusedMBConv, MBConv
from nas.model.builder import Student, build_model
from nas.model.complexity import count
from nas.model.decode import decode
from nas.model.genome import Genome, StageGene
from nas.model.space import InputShape, load_space, parse_space

SPACES = Path(__file__).resolve().parents[2] / "nas" / "search_spaces"
REPORT = "[2,8,6,1,0] [2,16,4,1,0]"


def blocks(model: Student) -> list[nn.Module]:
    return [block for stage in model.stages for block in stage]


def conv(module: nn.Module) -> nn.Conv2d:
    """The convolution of a ConvBNAct."""
    assert isinstance(module, ConvBNAct)
    layer = module[0]
    assert isinstance(layer, nn.Conv2d)
    return layer


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- the report's rows -------------------------------------------------------------------------

@pytest.mark.parametrize(("attention", "params"), [("eca", 10_754), ("se", 14_330)])
def test_report_rows_parameters_and_outputs(attention: str, params: int) -> None:
    model = build_model(Genome.parse(REPORT, attention), shape=(3, 185, 160), classes=2)   # photos
    assert n_params(model) == params
    assert all(p.requires_grad for p in model.parameters())
    images = torch.randn(2, 3, 185, 160)
    feature, logits = model.eval()(images, return_features=True)
    assert feature.shape == (2, 128) and logits.shape == (2, 2)
    assert model.feature_dim == 128
    assert torch.equal(logits, model.classifier(feature))
    assert torch.equal(model(images), logits)                   # plain forward: logits, like timm
    assert torch.equal(model.forward_head(model.forward_features(images), pre_logits=True), feature)


def test_report_model_structure() -> None:
    model = build_model(Genome.parse(REPORT, "eca"), classes=2)
    stem = conv(model.stem)
    assert (stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride) == (3, 8, (3, 3), (2, 2))
    assert isinstance(model.stem[1], nn.BatchNorm2d) and isinstance(model.stem[2], nn.SiLU)
    assert [len(stage) for stage in model.stages] == [6, 4]
    assert all(isinstance(b, MBConv) for b in blocks(model))
    first = blocks(model)[0]
    # 1x1 expand 8 -> 16, BN, SiLU; 3x3 depthwise 16, BN, SiLU; ECA; 1x1 project 16 -> 8, BN (no act)
    assert (conv(first.conv_pw).in_channels, conv(first.conv_pw).out_channels) == (8, 16)
    assert conv(first.conv_pw).kernel_size == (1, 1) and isinstance(first.conv_pw[2], nn.SiLU)
    dw = conv(first.conv_dw)
    assert (dw.in_channels, dw.out_channels, dw.groups) == (16, 16, 16)
    assert (dw.kernel_size, dw.stride, dw.padding) == ((3, 3), (1, 1), (1, 1))
    assert isinstance(first.conv_dw[2], nn.SiLU)
    assert isinstance(first.attn, ECA)
    pwl = conv(first.conv_pwl)
    assert (pwl.in_channels, pwl.out_channels, pwl.kernel_size) == (16, 8, (1, 1))
    assert isinstance(first.conv_pwl[1], nn.BatchNorm2d) and isinstance(first.conv_pwl[2], nn.Identity)
    head = conv(model.head)
    assert (head.in_channels, head.out_channels, head.kernel_size) == (16, 128, (1, 1))
    assert isinstance(model.head[2], nn.SiLU)
    assert (model.classifier.in_features, model.classifier.out_features) == (128, 2)
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


# --- the rules of SEED.md ------------------------------------------------------------------------

def test_mbconv_keeps_expansion_conv_at_t1() -> None:
    model = build_model("[1,8,1,1,0] [1,16,1,1,0]", load_space(SPACES / "seed.toml"))
    for block, (cin, hidden) in zip(blocks(model), [(8, 8), (8, 8)], strict=True):
        assert isinstance(block.conv_pw, ConvBNAct)
        assert (conv(block.conv_pw).in_channels, conv(block.conv_pw).out_channels) == (cin, hidden)
        assert conv(block.conv_dw).groups == hidden
    assert n_params(model) == count("[1,8,1,1,0] [1,16,1,1,0]").params


def test_fused_block_structure() -> None:
    model = build_model("[2,8,1,2,1] [1,16,2,1,1] se")
    first, second, third = blocks(model)
    assert all(isinstance(b, FusedMBConv) for b in (first, second, third))
    exp = conv(first.conv_exp)
    assert (exp.in_channels, exp.out_channels, exp.kernel_size, exp.stride) == (8, 16, (3, 3), (2, 2))
    assert isinstance(first.conv_exp[2], nn.SiLU)
    assert isinstance(first.attn, SE) and first.attn.fc1.in_features == 16
    assert (conv(first.conv_pwl).out_channels, conv(first.conv_pwl).kernel_size) == (8, (1, 1))
    # t = 1 in the report's family still has the 3x3 conv to `hidden` and the 1x1 projection.
    assert (conv(second.conv_exp).in_channels, conv(second.conv_exp).out_channels) == (8, 8)
    assert conv(second.conv_pwl).out_channels == 16
    assert conv(third.conv_exp).stride == (1, 1)


@pytest.mark.parametrize(("c", "built"), [(8, 8), (12, 16), (16, 16), (20, 24), (24, 24)])
def test_widths_are_make_divisible(c: int, built: int) -> None:
    model = build_model(f"[2,8,1,1,0] [2,{c},2,1,0]")
    assert [conv(b.conv_pwl).out_channels for b in blocks(model)] == [8, built, built]
    assert conv(blocks(model)[2].conv_pw).in_channels == built
    assert conv(model.head).in_channels == built


@pytest.mark.parametrize(("genome", "hidden", "width"), [
    ("[2,8,1,1,0]", 16, 8),      # 16 / 4 = 4 -> 8 (never below 8)
    ("[6,8,1,1,0]", 48, 16),     # 12 -> 16
    ("[4,8,1,1,1]", 32, 8),
    ("[1,64,1,1,0] [6,64,1,1,0]", 384, 96),
    ("[1,48,1,1,0] [3,48,1,1,0]", 144, 40),   # 36 -> 40
])
def test_se_width_rule(genome: str, hidden: int, width: int) -> None:
    block = blocks(build_model(genome + " se"))[-1]
    se = block.attn
    assert isinstance(se, SE)
    assert (se.fc1.in_features, se.fc1.out_features) == (hidden, width)
    assert (se.fc2.in_features, se.fc2.out_features) == (width, hidden)
    assert se.fc1.bias is not None and se.fc2.bias is not None
    assert isinstance(se.act, nn.SiLU) and isinstance(se.gate, nn.Sigmoid)


def test_eca_is_a_3_tap_conv1d_with_bias() -> None:
    eca = blocks(build_model("[2,8,1,1,0] eca"))[0].attn
    assert isinstance(eca, ECA)
    assert (eca.conv.in_channels, eca.conv.out_channels, eca.conv.kernel_size) == (1, 1, (3,))
    assert eca.conv.padding == (1,) and eca.conv.bias is not None
    assert n_params(eca) == 4


def test_eca_and_se_compute_what_the_papers_say() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 16, 5, 7)
    eca = ECA()
    pooled = x.mean((2, 3))                                           # (B, C)
    padded = nn.functional.pad(pooled, (1, 1))
    w, b = eca.conv.weight.view(3), eca.conv.bias
    gate = torch.sigmoid(w[0] * padded[:, :-2] + w[1] * padded[:, 1:-1] + w[2] * padded[:, 2:] + b)
    torch.testing.assert_close(eca(x), x * gate[:, :, None, None])
    se = SE(16, 8)
    hidden = nn.functional.silu(pooled @ se.fc1.weight.T + se.fc1.bias)
    gate = torch.sigmoid(hidden @ se.fc2.weight.T + se.fc2.bias)
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])


def test_attention_none_is_identity() -> None:
    model = build_model("[2,8,1,1,0] [2,16,1,1,1] none")
    assert all(isinstance(b.attn, nn.Identity) for b in blocks(model))


@pytest.mark.parametrize(("genome", "residual"), [
    ("[2,8,3,1,0]", [True, True, True]),             # 8 -> 8, stride 1
    ("[2,8,2,2,0]", [False, True]),                  # first block has stride 2
    ("[2,16,2,1,0]", [False, True]),                 # first block widens 8 -> 16
    ("[2,12,2,1,1]", [False, True]),                 # 8 -> 16 (12 rounded), fused
    ("[1,8,2,1,1] [2,8,1,2,1]", [True, True, False]),
])
def test_residual_only_when_stride_1_and_same_width(genome: str, residual: list[bool]) -> None:
    model = build_model(genome).eval()
    assert [b.residual for b in blocks(model)] == residual
    # Behaviour, not the flag: zero the projection's BN, and a block returns x (residual) or 0.
    for block, has_skip in zip(blocks(model), residual, strict=True):
        bn = block.conv_pwl[1]
        nn.init.zeros_(bn.weight)
        nn.init.zeros_(bn.bias)
        first = block.conv_pw if isinstance(block, MBConv) else block.conv_exp
        x = torch.randn(1, conv(first).in_channels, 9, 9)
        with torch.no_grad():
            y = block(x)
        if has_skip:
            torch.testing.assert_close(y, x)
        else:
            assert torch.count_nonzero(y) == 0


def test_stride_only_on_first_block_and_spatial_sizes() -> None:
    model = build_model("[2,8,2,2,0] [2,16,2,2,1]")
    strides = [(conv(b.conv_dw) if isinstance(b, MBConv) else conv(b.conv_exp)).stride for b in blocks(model)]
    assert strides == [(2, 2), (1, 1), (2, 2), (1, 1)]
    sizes = []
    handles = [stage.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[2:])))
               for stage in model.stages]
    model.eval()(torch.zeros(1, 3, 33, 17))
    for handle in handles:
        handle.remove()
    assert sizes == [(9, 5), (5, 3)]      # 33x17 -> stem 17x9 -> 9x5 -> 5x3


def test_init_follows_the_report() -> None:
    torch.manual_seed(0)
    model = build_model("[6,64,2,1,0] [6,64,1,1,1] se", classes=1000)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.weight.numel() >= 8_000]
    assert len(convs) >= 5
    for layer in convs:
        expected = math.sqrt(2.0 / (layer.out_channels * math.prod(layer.kernel_size)))
        weight = layer.weight.detach()
        assert abs(weight.std().item() / expected - 1) < 0.05, layer
        assert abs(weight.mean().item()) < 0.05 * expected
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    for linear in (m for m in model.modules() if isinstance(m, nn.Linear)):
        assert torch.all(linear.bias == 0)
    weight = model.classifier.weight.detach()           # 128 x 1000 samples
    assert abs(weight.std().item() / 0.001 - 1) < 0.02 and abs(weight.mean().item()) < 2e-5
    eca_model = build_model("[2,8,1,1,0] eca")
    assert all(torch.all(m.bias == 0) for m in eca_model.modules() if isinstance(m, nn.Conv1d))


def test_init_is_reproducible_under_a_seed() -> None:
    torch.manual_seed(3)
    a = build_model(REPORT).state_dict()
    torch.manual_seed(3)
    b = build_model(REPORT).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("genome", [
    "[1,8,1,1,0] none", "[2,12,2,2,1] [4,20,3,1,0] se", "[6,24,1,2,0] [1,32,2,2,1] [3,8,1,1,0] eca",
    "[1,8,1,1,1] [1,8,1,1,1] se", REPORT,
])
@pytest.mark.parametrize("classes", [1, 2, 10])
def test_parameter_count_equals_count(genome: str, classes: int) -> None:
    assert n_params(build_model(genome, classes=classes)) == count(genome, classes=classes).params


def test_space_settings_reach_the_model(tmp_path: Path) -> None:
    text = ("[model]\nstem = 16\nhead = 64\nkernel = 5\n[input]\nchannels = 1\nheight = 20\nwidth = 20\n"
            "[[stage]]\nt = 2\nc = 16\nn = 1\ns = 1\nfused = 0\n"
            "[[stage]]\nt = 2\nc = 24\nn = 1\ns = 2\nfused = 1\nkernel = 3\nattention = 'none'\n")
    space = parse_space(text, "custom.toml")
    model = build_model("[2,16,1,1,0] [2,24,1,2,1] se", space)
    assert conv(model.stem).in_channels == 1 and conv(model.stem).out_channels == 16
    first, second = blocks(model)
    assert conv(first.conv_dw).kernel_size == (5, 5) and isinstance(first.attn, SE)
    assert conv(second.conv_exp).kernel_size == (3, 3) and isinstance(second.attn, nn.Identity)
    assert conv(model.head).out_channels == 64 and model.feature_dim == 64
    feature, logits = model.eval()(torch.zeros(1, 1, 20, 20), return_features=True)
    assert feature.shape == (1, 64) and logits.shape == (1, 10)
    assert n_params(model) == count("[2,16,1,1,0] [2,24,1,2,1] se", space).params


def test_build_refuses_more_stages_than_the_space() -> None:
    with pytest.raises(GenomeError, match="has 5 stages, the space defines at most 4"):
        build_model(" ".join(["[1,8,1,1,0]"] * 5), load_space(SPACES / "seed.toml"))


def test_decode_records_are_plain_data() -> None:
    arch = decode(Genome.parse("[2,12,2,2,1] se"), classes=3)
    first, second = arch.blocks[0]
    assert (first.in_ch, first.out_ch, first.hidden, first.stride, first.fused) == (8, 16, 16, 2, 1)
    assert (second.in_ch, second.hidden, second.stride, second.se_width) == (16, 32, 1, 8)
    assert (first.residual, second.residual) == (False, True)
    assert (arch.stem, arch.head, arch.classes) == (8, 128, 3)


# --- torchvision's EfficientNetV2-S in our DSL ---------------------------------------------------

@pytest.fixture(scope="module")
def efficientnets() -> tuple[nn.Module, Student, Genome]:
    from torchvision.models import efficientnet_v2_s

    space = load_space(SPACES / "efficientnetv2_s.toml")
    genome = Genome(tuple(StageGene(s.t[0], s.c[0], s.n[0], s.s[0], s.fused[0]) for s in space.stages),
                    space.attention[0])
    return efficientnet_v2_s(weights=None), build_model(genome, space, classes=1000), genome


def shapes(model: nn.Module) -> list[tuple[int, ...]]:
    """Parameter shapes in registration order; torchvision's SE uses 1x1 convs where we use Linear."""
    result = []
    for name, parameter in model.named_parameters():
        shape = tuple(parameter.shape)
        if (".fc1." in name or ".fc2." in name) and name.endswith("weight") and len(shape) == 4:
            assert shape[2:] == (1, 1)
            shape = shape[:2]
        result.append(shape)
    return result


def test_efficientnetv2_s_matches_torchvision(efficientnets: tuple[nn.Module, Student, Genome]) -> None:
    reference, ours, genome = efficientnets
    assert n_params(reference) == n_params(ours) == 21_458_488
    assert genome.notation == ("[1,24,2,1,1] [4,48,4,2,1] [4,64,4,2,1] [4,128,6,2,0] [6,160,9,1,0] "
                               "[6,256,15,2,0]")
    assert len(shapes(ours)) == len(shapes(reference)) == 452
    assert shapes(ours) == shapes(reference)
    assert [tuple(b.shape) for b in ours.buffers()] == [tuple(b.shape) for b in reference.buffers()]
    # torchvision's SE is two 1x1 Conv2d, ours two Linear: the same weights, one layer each.
    layers = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)
    assert sum(isinstance(m, layers) for m in ours.modules()) == sum(
        isinstance(m, layers) for m in reference.modules())
    space = load_space(SPACES / "efficientnetv2_s.toml")
    assert count(genome, space, classes=1000).params == 21_458_488


def test_efficientnetv2_s_counts_like_torchvision(efficientnets: tuple[nn.Module, Student, Genome]) -> None:
    from nas.model.complexity import count_model

    reference, ours, genome = efficientnets
    space = load_space(SPACES / "efficientnetv2_s.toml")
    shape = InputShape(3, 64, 48)
    analytic = count(genome, space, shape=shape, classes=1000)
    assert count_model(reference, shape) == analytic
    assert count_model(ours, shape) == analytic
    feature, logits = ours.eval()(torch.zeros(1, 3, 64, 48), return_features=True)
    assert feature.shape == (1, 1280) and logits.shape == (1, 1000)
