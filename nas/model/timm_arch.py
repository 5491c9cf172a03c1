"""A decoded student as timm's EfficientNet block strings (`ir_r2_k3_s2_e4_c16_se0.25`).

timm (`timm/models/_efficientnet_builder.py`, `decode_arch_def`) describes an EfficientNet as
lists of block strings, one list per stage: `ir` is our MBConv, `ds` an MBConv without
expansion, `er` (EdgeResidual) our FusedMBConv, `cn` a FusedMBConv without expansion. What the
strings cannot say (stem, head, activation, BatchNorm epsilon, which attention `se` means) are
`TimmSpec`'s fields, the keyword arguments of timm's `EfficientNet`. A student that timm cannot
build exactly is refused in one line naming the gene and why. Pure Python: no torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.errors import GenomeError
from nas.model.decode import Arch, BlockSpec, resolve
from nas.model.genome import Genome, make_divisible
from nas.model.space import Space

TIMM_DIVISOR = 8        # timm rounds every width (stem, outputs, expansion) to multiples of 8


@dataclass(frozen=True)
class TimmSpec:
    """timm's description of a student: the block strings and the rest of `EfficientNet`'s arguments."""

    arch_def: tuple[tuple[str, ...], ...]   # one tuple of block strings per stage
    stem_size: int
    num_features: int
    in_chans: int
    num_classes: int
    bn_eps: float
    attention: str          # what the strings' `se` means: eca (ours, as se_layer), se (timm's) or none

    @property
    def block_strings(self) -> list[list[str]]:
        """The arch_def as timm's `decode_arch_def` takes it: a list of lists of strings."""
        return [list(stage) for stage in self.arch_def]


def to_timm(genome: Genome, space: Space | None = None) -> list[list[str]]:
    """timm's block strings of `genome` (the arch_def of timm's `decode_arch_def`, e.g.
    `[["ir_r6_k3_s1_e2_c8"], ...]`) under `space`'s model settings (the seed family's when
    None); GenomeError, naming the gene, when timm's EfficientNet cannot build it exactly."""
    return timm_spec(resolve(genome, space)).block_strings


def timm_spec(arch: Arch) -> TimmSpec:
    """The timm description of `arch`; GenomeError when timm's EfficientNet cannot build it exactly."""
    _check_model(arch)
    strings = tuple(_stage_strings(index, stage) for index, stage in enumerate(arch.blocks, 1))
    return TimmSpec(arch_def=strings, stem_size=arch.stem, num_features=arch.head,
                    in_chans=arch.in_channels, num_classes=arch.classes, bn_eps=arch.bn_eps,
                    attention=_model_attention(arch))


def _check_model(arch: Arch) -> None:
    if arch.stem_stride != 2:
        raise GenomeError(f"model.stem_stride {arch.stem_stride}: timm's EfficientNet stem always "
                          "has stride 2")
    widths = [("model.stem", arch.stem)] + [
        (f"stage {index}.c", stage[0].out_ch) for index, stage in enumerate(arch.blocks, 1)]
    for name, width in widths:
        if make_divisible(width, TIMM_DIVISOR) != width:
            raise GenomeError(f"{name} {width}: timm rounds channels to multiples of "
                              f"{TIMM_DIVISOR}; use model.divisor = 8")


def _model_attention(arch: Arch) -> str:
    """timm takes one `se_layer` per model: the stages may mix one attention with none, no more."""
    used = sorted({spec.attention for stage in arch.blocks for spec in stage} - {"none"})
    if len(used) > 1:
        raise GenomeError(f"attention: stages use {' and '.join(used)}; timm's EfficientNet takes "
                          "one se_layer per model")
    return used[0] if used else "none"


def _stage_strings(index: int, stage: tuple[BlockSpec, ...]) -> tuple[str, ...]:
    """`r{n}` strings for the stage, split after its first block when its SE ratio differs."""
    first, rest = block_string(index, stage[0]), [block_string(index, s) for s in stage[1:]]
    if rest and rest[0] == _with_stride(first, stage[0].stride, 1):
        return (_repeat(first, len(stage)),)
    return (first, *((_repeat(rest[0], len(rest)),) if rest else ()))


def block_string(index: int, spec: BlockSpec) -> str:
    """One block as timm's `r1` block string."""
    kind, exp = _kind(index, spec)
    parts = [kind, "r1", f"k{spec.kernel}", f"s{spec.stride}"]
    parts += [f"e{exp}"] if kind in ("ir", "er") else []
    parts += [f"c{spec.out_ch}"]
    parts += [f"se{se_ratio(index, spec, exp)!r}"] if spec.attention != "none" else []
    parts += ["skip"] if kind == "cn" else []
    return "_".join(parts)


def _kind(index: int, spec: BlockSpec) -> tuple[str, int]:
    """timm's block type and the expansion its SE ratio is divided by."""
    if spec.fused and not spec.expand:
        if spec.attention != "none":
            raise GenomeError(f"stage {index}: attention {spec.attention} on a FusedMBConv without "
                              "expansion (t = 1) has no place in timm's ConvBnAct; use none")
        return "cn", 1
    if not spec.expand:
        return "ds", 1
    return ("er" if spec.fused else "ir"), spec.hidden // spec.in_ch


def se_ratio(index: int, spec: BlockSpec, exp: int) -> float:
    """The string's `se` ratio that makes timm's SqueezeExcite exactly `spec.se_width` wide:
    timm sizes it round(mid * se / exp), mid being the block's expanded width."""
    if spec.attention != "se":
        return 0.25                     # eca: the se_layer ignores the ratio; it only needs one
    ratio = spec.se_width * exp / spec.hidden
    if round(spec.hidden * (ratio / exp)) != spec.se_width:
        raise GenomeError(f"stage {index}: SE width {spec.se_width} cannot be written as timm's "
                          f"se ratio over {spec.hidden} channels")
    return ratio


def _repeat(string: str, times: int) -> str:
    return string.replace("_r1_", f"_r{times}_", 1)


def _with_stride(string: str, old: int, new: int) -> str:
    return string.replace(f"_s{old}_", f"_s{new}_", 1)
