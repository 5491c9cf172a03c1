"""Decode a genome and the space's model settings into plain block records.

The builder turns these records into modules; nothing here imports torch, so
the records can be inspected, printed and tested on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.errors import SpaceError
from nas.model.genome import Genome, make_divisible
from nas.model.space import InputShape, ModelSettings, Space, StageOverride, check_input

# The one default input and class count of `build_model`, `count` and `nas count`/`nas space`:
# the default data's (digits, upsampled to 32x32, 10 classes), unless a space has an [input].
DEFAULT_INPUT = InputShape(3, 32, 32)
DEFAULT_CLASSES = 10
ShapeLike = InputShape | tuple[int, int, int] | tuple[int, int] | str


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv / FusedMBConv block, fully resolved."""

    in_ch: int
    out_ch: int
    hidden: int
    stride: int
    kernel: int
    fused: int
    expand: bool          # False: no expansion conv (torchvision's rule when t = 1)
    attention: str        # eca | se | none
    se_width: int         # SE bottleneck width (0 unless attention == "se")

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_ch == self.out_ch


@dataclass(frozen=True)
class Arch:
    """A whole student for one input shape: stem, blocks, head, classifier."""

    input: InputShape
    stem: int
    stem_stride: int
    blocks: tuple[tuple[BlockSpec, ...], ...]   # grouped by stage
    head: int
    classes: int
    bn_eps: float = 1e-5    # every BatchNorm's epsilon

    @property
    def in_channels(self) -> int:
        return self.input.channels


def resolve(genome: Genome | str, space: Space | None = None, *, shape: ShapeLike | None = None,
            classes: int = DEFAULT_CLASSES) -> Arch:
    """The one path from (genome, space, input shape, classes) to an `Arch`, used by the builder,
    the counter, export and the teacher. The input is `shape` (an InputShape, (C, H, W), (H, W)
    or "3x32x32"), else the space's `[input]`, else DEFAULT_INPUT; a genome deeper than the
    space is an error."""
    if isinstance(genome, str):
        genome = Genome.parse(genome)
    if space is not None:
        space.check(genome, strict=False)
    shape = as_shape(shape) or (space.input if space is not None and space.input else DEFAULT_INPUT)
    return decode(genome, space.model if space else None, space.overrides if space else (),
                  shape=shape, classes=classes)


def as_shape(shape: ShapeLike | None) -> InputShape | None:
    """An input shape given as InputShape, (C, H, W), (H, W) (3 channels) or text; SpaceError
    on anything else."""
    if shape is None or isinstance(shape, InputShape):
        return shape
    if isinstance(shape, str):
        return InputShape.parse(shape)
    if (not isinstance(shape, tuple | list) or len(shape) not in (2, 3)
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in shape)):
        raise SpaceError(f"shape must be (C, H, W), (H, W) or an InputShape, got {shape!r}")
    values = tuple(shape) if len(shape) == 3 else (3, *shape)
    return check_input(InputShape(*values), "shape")


def se_width(in_ch: int, hidden: int, settings: ModelSettings) -> int:
    """SE bottleneck width: the report rounds hidden/4 to multiples of 8; torchvision floors in/4."""
    base = hidden if settings.se_base == "hidden" else in_ch
    if settings.se_divisor == 1:
        return max(1, int(base * settings.se_ratio))
    return make_divisible(base * settings.se_ratio, settings.se_divisor)


def decode(
    genome: Genome,
    settings: ModelSettings | None = None,
    overrides: tuple[StageOverride, ...] = (),
    *,
    shape: InputShape | None = None,
    classes: int = DEFAULT_CLASSES,
) -> Arch:
    """Resolve widths, strides, kernels and attention of every block of `genome`."""
    settings = settings or ModelSettings()
    in_ch = make_divisible(settings.stem, settings.divisor)
    groups = []
    for index, gene in enumerate(genome.stages):
        override = overrides[index] if index < len(overrides) else StageOverride()
        kernel = override.kernel or settings.kernel
        attention = override.attention or genome.attention
        out_ch = make_divisible(gene.c, settings.divisor)
        blocks = []
        for position in range(gene.n):
            hidden = round(in_ch * gene.t)
            blocks.append(BlockSpec(
                in_ch=in_ch, out_ch=out_ch, hidden=hidden,
                stride=gene.s if position == 0 else 1, kernel=kernel, fused=gene.fused,
                expand=settings.expand_at_t1 or gene.t != 1, attention=attention,
                se_width=se_width(in_ch, hidden, settings) if attention == "se" else 0,
            ))
            in_ch = out_ch
        groups.append(tuple(blocks))
    return Arch(input=shape or DEFAULT_INPUT, stem=make_divisible(settings.stem, settings.divisor),
                stem_stride=settings.stem_stride, blocks=tuple(groups),
                head=settings.head, classes=classes, bn_eps=settings.bn_eps)
