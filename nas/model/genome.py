"""Genomes: a tuple of `[t, c, n, s, fused]` stage genes plus one attention choice.

The canonical text form is the seed report's notation, `[2,8,6,1,0] [2,16,4,1,0]`,
followed by the attention when it is part of the key: `... eca`. It is what
logs, tables and database keys use. Pure Python: no torch here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from nas.errors import GenomeError
from nas.model.attention import ATTENTIONS, is_attention
from nas.model.sections import MAX_TEXT

GENES = ("t", "c", "n", "s", "fused")

# Bounds that refuse absurd genomes before anything is allocated.
LIMITS = {"t": 32, "c": 8192, "n": 64, "s": 2, "fused": 1}
MAX_STAGES = 16

_STAGE = re.compile(r"\[([^\[\]]*)\]")


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNetV2's channel rounding: nearest multiple of `divisor`, >= divisor, >= 90% of value."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def check_gene(name: str, value: object, where: str) -> int:
    """Validate one gene value (int, in range); return it as an int."""
    if isinstance(value, bool) and name == "fused":
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise GenomeError(f"{where}.{name} must be an integer, got {value!r}")
    if name == "s" and value not in (1, 2):
        raise GenomeError(f"{where}.s must be 1 or 2, got {value}")
    if name == "fused" and value not in (0, 1):
        raise GenomeError(f"{where}.fused must be 0 or 1, got {value}")
    if name in ("t", "c", "n") and not 1 <= value <= LIMITS[name]:
        raise GenomeError(f"{where}.{name} must be between 1 and {LIMITS[name]}, got {value}")
    return value


def check_attention(value: object, where: str) -> str:
    """Validate an attention name (eca, se, none)."""
    if not is_attention(value):
        raise GenomeError(f"{where} must be one of {list(ATTENTIONS)}, got {value!r}")
    return str(value)


@dataclass(frozen=True)
class StageGene:
    """One stage: expansion `t`, output channels `c`, `n` blocks, first stride `s`, `fused` block."""

    t: int
    c: int
    n: int
    s: int
    fused: int

    def __post_init__(self) -> None:
        for name in GENES:  # normalises fused=True to 1, so equal genes compare and hash equal
            object.__setattr__(self, name, check_gene(name, getattr(self, name), "stage"))

    def __str__(self) -> str:
        return f"[{self.t},{self.c},{self.n},{self.s},{self.fused}]"


@dataclass(frozen=True)
class Genome:
    """A student architecture: its stages and the model-wide channel attention."""

    stages: tuple[StageGene, ...]
    attention: str = "eca"

    def __post_init__(self) -> None:
        if not 1 <= len(self.stages) <= MAX_STAGES:
            raise GenomeError(
                f"a genome has 1 to {MAX_STAGES} stages, got {len(self.stages)}"
            )
        check_attention(self.attention, "attention")

    @property
    def notation(self) -> str:
        """The seed report's notation of the stages: `[2,8,6,1,0] [2,16,4,1,0]`."""
        return " ".join(str(stage) for stage in self.stages)

    def __str__(self) -> str:
        return f"{self.notation} {self.attention}"

    def rounded(self, divisor: int = 8) -> Genome:
        """The same genome with channels as the builder builds them (canonical key)."""
        stages = tuple(
            StageGene(g.t, make_divisible(g.c, divisor), g.n, g.s, g.fused) for g in self.stages
        )
        return Genome(stages, self.attention)

    def to_json(self) -> str:
        return json.dumps({"stages": [list(_genes(g)) for g in self.stages],
                           "attention": self.attention})

    @classmethod
    def from_json(cls, text: str) -> Genome:
        try:
            data = json.loads(text)
            return cls(tuple(StageGene(*row) for row in data["stages"]), data["attention"])
        except (ValueError, KeyError, TypeError) as error:  # JSONDecodeError is a ValueError
            raise GenomeError(f"genome JSON {text!r} is malformed: {error!r}") from None

    @classmethod
    def parse(cls, text: str, attention: str | None = None) -> Genome:
        """Parse the seed report's notation `[2,8,6,1,0] [2,16,4,1,0]`, optionally followed by an
        attention word; `attention` overrides that word. The one genome parser."""
        if not isinstance(text, str):
            raise GenomeError(f"genome must be text, got {type(text).__name__}")
        if len(text) > MAX_TEXT:
            raise GenomeError(f"genome must be at most {MAX_TEXT} characters, got {len(text)}")
        where = f"genome {text.strip()!r}"
        stages_text = _STAGE.findall(text)
        rest = _STAGE.sub(" ", text).split()
        if len(rest) > 1 or (rest and rest[0] not in ATTENTIONS):
            raise GenomeError(
                f"{where}: expected stages like [2,8,6,1,0] and at most one attention word "
                f"{list(ATTENTIONS)}, got {' '.join(rest)!r}"
            )
        if not stages_text:
            raise GenomeError(f"{where}: no stage found; write stages like [2,8,6,1,0] [2,16,4,1,0]")
        if len(stages_text) > MAX_STAGES:
            raise GenomeError(f"{where}: a genome has 1 to {MAX_STAGES} stages, got {len(stages_text)}")
        stages = tuple(_parse_stage(body, i, where) for i, body in enumerate(stages_text, 1))
        word = attention if attention is not None else (rest[0] if rest else "eca")
        return cls(stages, check_attention(word, f"{where}: attention"))


def _genes(stage: StageGene) -> tuple[int, ...]:
    return tuple(getattr(stage, name) for name in GENES)


def _parse_stage(body: str, index: int, where: str) -> StageGene:
    parts = [p.strip() for p in body.split(",")]
    if len(parts) != len(GENES):
        raise GenomeError(
            f"{where}: stage {index} [{body}] has {len(parts)} genes, expected 5 [t,c,n,s,fused]"
        )
    values = []
    for name, part in zip(GENES, parts, strict=True):
        if not re.fullmatch(r"[+-]?\d{1,12}", part):
            raise GenomeError(f"{where}: stage {index}.{name} must be an integer, got {part!r}")
        values.append(check_gene(name, int(part), f"{where}: stage {index}"))
    return StageGene(*values)
