"""timm and torchvision interop: block strings, same parameter count, same logits, weights both ways."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from timm.models.efficientnet import EfficientNet
from torch import nn
from torchvision.models.efficientnet import _efficientnet_conf

from nas.errors import CheckpointError, GenomeError, SpaceError
from nas.model.builder import Student, build_model
from nas.model.genome import Genome
from nas.model.interop_timm import from_timm_model, to_timm_model
from nas.model.interop_torchvision import load_torchvision, to_torchvision_model, torchvision_spec
from nas.model.space import InputShape, load_space, parse_space
from nas.model.timm_arch import timm_spec, to_timm

SHAPE = InputShape(3, 32, 32)
TV_GENOME = "[1,16,2,1,1] [1,24,2,2,0] [4,32,2,2,0] se"
# torchvision's family: no expansion conv at t = 1 (timm's `ds` and `cn`), SE from the block input.
TORCHVISION_LIKE = """
name = "tv"
[model]
stem = 16
head = 64
expand_at_t1 = false
se_base = "input"
se_divisor = 1
[[stage]]
t = 1
c = 16
n = 2
s = 1
fused = 1
attention = "none"
[[stage]]
t = 1
c = 24
n = 2
s = 2
fused = 0
[[stage]]
t = 4
c = 32
n = 2
s = 2
fused = 0
"""


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def trained_looking(student: Student) -> Student:
    """Random BatchNorm statistics and affine weights, so a swapped or dropped layer shows."""
    generator = torch.Generator().manual_seed(1)
    for module in student.modules():
        if isinstance(module, nn.BatchNorm2d):
            for tensor, low, high in ((module.running_mean, -0.5, 0.5), (module.running_var, 0.5, 1.5),
                                      (module.weight.data, 0.5, 1.5), (module.bias.data, -0.2, 0.2)):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)
    return student.eval()


# --- timm ------------------------------------------------------------------------------------

def test_block_strings_are_timms() -> None:
    assert to_timm(Genome.parse("[2,8,6,1,0] [2,16,4,1,0] eca")) == [
        ["ir_r6_k3_s1_e2_c8_se0.25"], ["ir_r4_k3_s1_e2_c16_se0.25"]]
    # efficientnetv2_s.toml gives timm's own `_gen_efficientnetv2_s` arch_def, word for word
    space = load_space("efficientnetv2_s.toml")
    genome = Genome.parse("[1,24,2,1,1] [4,48,4,2,1] [4,64,4,2,1] [4,128,6,2,0] [6,160,9,1,0] "
                          "[6,256,15,2,0] se")
    assert to_timm(genome, space) == [
        ["cn_r2_k3_s1_c24_skip"], ["er_r4_k3_s2_e4_c48"], ["er_r4_k3_s2_e4_c64"],
        ["ir_r6_k3_s2_e4_c128_se0.25"], ["ir_r9_k3_s1_e6_c160_se0.25"], ["ir_r15_k3_s2_e6_c256_se0.25"]]


def test_a_stage_whose_first_block_has_another_se_ratio_is_two_strings() -> None:
    # SE width make_divisible(hidden / 4, 8): 8 for the first block (hidden 16), 16 after (hidden 64)
    assert to_timm(Genome.parse("[2,32,3,2,0] se")) == [
        ["ir_r1_k3_s2_e2_c32_se1.0", "ir_r2_k3_s1_e2_c32_se0.5"]]


@pytest.mark.parametrize(("genome", "space"), [
    ("[2,8,3,1,0] [3,16,2,2,0] eca", None),                     # MBConv, our ECA as timm's se_layer
    ("[1,8,2,1,1] [4,16,2,2,1] [4,24,2,2,0] se", None),         # FusedMBConv (er), timm's SE
    (TV_GENOME, "tv"),                                          # cn, ds, ir; SE from the input
    ("[2,8,2,2,1] [3,24,2,2,0] none", None),                    # no attention
])
def test_timm_round_trip(genome: str, space: str | None) -> None:
    settings = parse_space(TORCHVISION_LIKE) if space else None
    torch.manual_seed(0)
    student = trained_looking(build_model(genome, settings, shape=SHAPE, classes=10))
    model = to_timm_model(student)
    assert isinstance(model, EfficientNet) and not model.training
    assert n_params(model) == n_params(student)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(images), student(images), atol=1e-5, rtol=0)
        back = from_timm_model(model, student.arch)
        assert torch.equal(back(images), student(images))


def test_timm_create_model_builds_a_student() -> None:
    import nas.model.interop_timm  # noqa: F401  (registers nas_student)

    model = timm.create_model("nas_student", genome="[2,8,1,1,0] [2,16,1,2,1] eca", space="tiny.toml",
                              num_classes=7, drop_rate=0.1)
    student = build_model("[2,8,1,1,0] [2,16,1,2,1] eca", load_space("tiny.toml"), classes=7)
    assert isinstance(model, EfficientNet) and model.num_classes == 7
    assert n_params(model) == n_params(student)
    assert model.pretrained_cfg["input_size"] == (3, 16, 16)
    assert model.pretrained_cfg["first_conv"] == "conv_stem"
    assert model(torch.rand(1, 3, 16, 16)).shape == (1, 7)
    with pytest.raises(GenomeError, match="no pretrained weights"):
        timm.create_model("nas_student", pretrained=True, genome="[2,8,1,1,0]")


@pytest.mark.parametrize(("model", "genome", "message"), [
    ("stem_stride = 1", "[2,8,1,1,0] eca", "model.stem_stride 1: timm's EfficientNet stem always has "
     "stride 2"),
    ("divisor = 4", "[2,12,1,1,0] eca", "stage 1.c 12: timm rounds channels to multiples of 8"),
    ("expand_at_t1 = false", "[1,8,1,1,1] eca",
     "stage 1: attention eca on a FusedMBConv without expansion (t = 1) has no place"),
])
def test_what_timm_cannot_build_is_refused_naming_the_gene(model: str, genome: str, message: str) -> None:
    space = parse_space(f'name = "x"\n[model]\n{model}\n[[stage]]\nt = [1, 2]\nc = [8, 12]\nn = 1\n'
                        's = 1\nfused = [0, 1]\n')
    with pytest.raises(GenomeError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        to_timm(Genome.parse(genome), space)
    assert "\n" not in str(error.value)


def test_one_se_layer_per_timm_model() -> None:
    space = parse_space('name = "x"\n[attention]\nchoices = ["eca"]\n[[stage]]\nt = 2\nc = 8\nn = 1\n'
                        's = 1\nfused = 0\nattention = "se"\n[[stage]]\nt = 2\nc = 16\nn = 1\ns = 2\n'
                        'fused = 0\n')
    with pytest.raises(GenomeError, match="stages use eca and se; timm's EfficientNet takes one se_layer"):
        timm_spec(build_model("[2,8,1,1,0] [2,16,1,2,0] eca", space).arch)


# --- torchvision -----------------------------------------------------------------------------

def test_efficientnetv2_s_loads_torchvisions_weights_from_a_file(tmp_path: Path) -> None:
    """torchvision's EfficientNetV2-S, random init and random BN statistics, saved as a state
    dict: the student of efficientnetv2_s.toml loads it and gives its logits (no download).
    About 4 s: the issue's check, on the real 21.5 M-parameter network."""
    torch.manual_seed(0)
    reference = torchvision.models.efficientnet_v2_s()
    for module in reference.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    torch.save(reference.state_dict(), tmp_path / "v2s.pt")
    student = load_torchvision(tmp_path / "v2s.pt", "efficientnetv2_s.toml")
    assert n_params(student) == n_params(reference) == 21_458_488
    stages, last = _efficientnet_conf("efficientnet_v2_s")
    spec = torchvision_spec(student.arch)
    assert [vars(c) for c in spec.stages] == [vars(c) for c in stages] and spec.last_channel == last
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(student(images), reference.eval()(images), atol=1e-5, rtol=0)


def test_bn_eps_is_a_model_setting() -> None:
    space = parse_space('name = "x"\n[model]\nbn_eps = 0.001\n[[stage]]\nt = 2\nc = 8\nn = 1\ns = 1\n'
                        'fused = 0\n')
    student = build_model("[2,8,1,1,0] none", space)
    assert {m.eps for m in student.modules() if isinstance(m, nn.BatchNorm2d)} == {0.001}
    with pytest.raises(SpaceError, match=r"model.bn_eps must be in \(0, 0.1\], got 0.5"):
        parse_space('name = "x"\n[model]\nbn_eps = 0.5\n[[stage]]\nt = 2\nc = 8\nn = 1\ns = 1\nfused = 0\n')


def test_torchvision_round_trip_on_a_small_genome() -> None:
    student = trained_looking(build_model(TV_GENOME,
                                          parse_space(TORCHVISION_LIKE), shape=SHAPE, classes=10))
    model = to_torchvision_model(student)
    assert n_params(model) == n_params(student)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(images), student(images), atol=1e-5, rtol=0)
        back = load_torchvision(model.state_dict(), parse_space(TORCHVISION_LIKE),
                                TV_GENOME, shape=SHAPE)
        assert torch.equal(back(images), student(images))


@pytest.mark.parametrize(("genome", "message"), [
    ("[2,8,6,1,0] [2,16,4,1,0] eca", "stage 1: attention eca (width 0): torchvision's MBConv has SE"),
    ("[2,8,1,1,1] se", "stage 1: attention se: torchvision's FusedMBConv has no attention"),
    ("[1,8,1,1,0] se", "stage 1: t = 1 with model.expand_at_t1 = true"),
])
def test_what_torchvision_cannot_build_is_refused(genome: str, message: str) -> None:
    with pytest.raises(GenomeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        torchvision_spec(build_model(genome).arch)


def test_a_file_that_is_not_a_state_dict_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(CheckpointError, match="junk.pt: not a torchvision state dict"):
        load_torchvision(tmp_path / "junk.pt")
    torch.save({"features.0.0.weight": torch.zeros(1)}, tmp_path / "short.pt")
    with pytest.raises(GenomeError, match="does not fit stem.0.weight"):
        load_torchvision(tmp_path / "short.pt", parse_space(TORCHVISION_LIKE), TV_GENOME)


def test_block_strings_need_no_torch() -> None:
    code = ("import sys; from nas import Genome, to_timm; "
            "print(to_timm(Genome.parse('[2,8,1,1,0]')), 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[['ir_r1_k3_s1_e2_c8_se0.25']] False"
