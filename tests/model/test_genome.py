"""Genomes: canonical text form, the report's notation, JSON, rounding, validation errors."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.errors import GenomeError, NasError
from nas.model.attention import ATTENTIONS
from nas.model.genome import LIMITS, MAX_STAGES, Genome, StageGene, make_divisible

REPORT = "[2,8,6,1,0] [2,16,4,1,0]"


# --- strategies -------------------------------------------------------------------------------

def stage_genes() -> st.SearchStrategy[StageGene]:
    return st.builds(
        StageGene,
        t=st.integers(1, LIMITS["t"]), c=st.integers(1, LIMITS["c"]), n=st.integers(1, LIMITS["n"]),
        s=st.sampled_from([1, 2]), fused=st.sampled_from([0, 1]),
    )


def genomes() -> st.SearchStrategy[Genome]:
    return st.builds(
        Genome,
        stages=st.lists(stage_genes(), min_size=1, max_size=MAX_STAGES).map(tuple),
        attention=st.sampled_from(tuple(ATTENTIONS)),
    )


@st.composite
def spaced_notation(draw: st.DrawFn, genome: Genome) -> str:
    """The genome written by hand: random blanks around brackets, commas and between stages."""
    blank = st.sampled_from(["", " ", "  ", "\t", "\n"])
    stages = []
    for gene in genome.stages:
        values = [str(getattr(gene, name)) for name in ("t", "c", "n", "s", "fused")]
        body = "".join(draw(blank) + v + draw(blank) + ("," if i < 4 else "") for i, v in enumerate(values))
        stages.append("[" + body + "]")
    text = "".join(draw(blank) + s for s in stages)
    return text + draw(blank) + " " + genome.attention + draw(blank)


@st.composite
def near_genome_text(draw: st.DrawFn) -> str:
    """Strings that look like genomes: brackets, commas, numbers, signs, words, junk."""
    number = st.one_of(
        st.integers(-5, 70).map(str),
        st.integers(0, 10**15).map(str),
        st.sampled_from(["", " ", "1.5", "x", "+1", "-0", "٣", "²", "1e3", "0x10", "[", "]"]),
    )
    stage = st.lists(number, min_size=0, max_size=7).map(lambda parts: "[" + ",".join(parts) + "]")
    pieces = st.lists(
        st.one_of(stage, st.sampled_from([*ATTENTIONS, "ECA", "eca2", "[", "]", ",", " ", "\n"])),
        max_size=MAX_STAGES + 3,
    )
    return draw(pieces.map(" ".join))


# --- make_divisible ---------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (8, 8), (12, 16), (20, 24), (16, 16), (24, 24), (4, 8), (1, 8), (9, 16), (27, 32), (100, 104),
])
def test_make_divisible_known_values(value: int, expected: int) -> None:
    assert make_divisible(value, 8) == expected


def mobilenet_v2_make_divisible(v: float, divisor: int) -> int:
    """The reference: `_make_divisible` of MobileNetV2's TensorFlow code, as torchvision copies it."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


@settings(max_examples=200, deadline=None)
@given(st.floats(0.5, 5000, allow_nan=False), st.sampled_from([1, 4, 8, 16]))
def test_make_divisible_matches_mobilenet_v2(value: float, divisor: int) -> None:
    rounded = make_divisible(value, divisor)
    assert rounded == mobilenet_v2_make_divisible(value, divisor)
    assert rounded % divisor == 0 and rounded >= divisor and rounded >= 0.9 * value


# --- canonical text form and parsing -----------------------------------------------------------

def test_canonical_text_form() -> None:
    genome = Genome((StageGene(2, 8, 6, 1, 0), StageGene(2, 16, 4, 1, 0)), "eca")
    assert genome.notation == REPORT
    assert str(genome) == REPORT + " eca"
    assert str(genome.stages[0]) == "[2,8,6,1,0]"
    assert Genome.parse(str(genome)) == genome


def test_parse_report_notation_with_spaces_and_attention_word() -> None:
    expected = Genome((StageGene(2, 8, 6, 1, 0), StageGene(2, 16, 4, 1, 0)), "se")
    assert Genome.parse("[2, 8, 6, 1, 0] [2, 16, 4, 1, 0] se") == expected
    assert Genome.parse("  [2,8,6,1,0]\n[ 2 ,16, 4,1 ,0 ]  se ") == expected
    assert Genome.parse("[2,8,6,1,0][2,16,4,1,0]", "se") == expected


def test_parse_attention_default_and_override() -> None:
    assert Genome.parse(REPORT).attention == "eca"
    assert Genome.parse(REPORT + " none").attention == "none"
    assert Genome.parse(REPORT + " eca", "se").attention == "se"   # the argument wins


def test_json_round_trip_and_format() -> None:
    genome = Genome.parse(REPORT + " se")
    text = genome.to_json()
    assert json.loads(text) == {"stages": [[2, 8, 6, 1, 0], [2, 16, 4, 1, 0]], "attention": "se"}
    assert Genome.from_json(text) == genome


@pytest.mark.parametrize(("text", "fragment"), [
    ("nope", "genome JSON 'nope' is malformed"),
    ("{}", "malformed: KeyError('stages')"),
    ('{"stages": [[2,8,6,1,0]]}', "KeyError('attention')"),
    ('{"stages": [[2,8,6,1]], "attention": "eca"}', "malformed"),
    ('{"stages": 3, "attention": "eca"}', "malformed"),
    ("[1, 2]", "malformed"),
    ('{"stages": [[2,8,6,3,0]], "attention": "eca"}', "s must be 1 or 2, got 3"),
    ('{"stages": [[2,8,6,1,0]], "attention": "bogus"}', "got 'bogus'"),
])
def test_from_json_malformed_is_genome_error(text: str, fragment: str) -> None:
    with pytest.raises(GenomeError) as info:
        Genome.from_json(text)
    assert fragment in str(info.value)


def test_rounded_builds_channels_as_the_builder() -> None:
    genome = Genome.parse("[1,12,2,2,1] [3,20,1,1,0] [2,8,1,1,0] se")
    rounded = genome.rounded()
    assert rounded.notation == "[1,16,2,2,1] [3,24,1,1,0] [2,8,1,1,0]"
    assert rounded.attention == "se"
    assert rounded.rounded() == rounded
    assert Genome.parse(REPORT).rounded() == Genome.parse(REPORT)


def test_frozen_hashable_and_equality() -> None:
    a, b = Genome.parse(REPORT), Genome.parse("[2, 8, 6, 1, 0]  [2, 16, 4, 1, 0] eca")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert {a: 1}[b] == 1
    assert a != Genome.parse(REPORT + " se")
    assert a != Genome.parse("[2,8,6,1,0] [2,16,4,2,0]")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.attention = "se"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.stages[0].t = 3  # type: ignore[misc]


def test_fused_given_as_bool_is_normalised() -> None:
    assert StageGene(1, 8, 1, 1, True) == StageGene(1, 8, 1, 1, 1)   # type: ignore[arg-type]
    assert str(StageGene(1, 8, 1, 1, True)) == "[1,8,1,1,1]"          # type: ignore[arg-type]
    assert hash(StageGene(1, 8, 1, 1, False)) == hash(StageGene(1, 8, 1, 1, 0))  # type: ignore[arg-type]


# --- bad genomes: type and message ---------------------------------------------------------------

@pytest.mark.parametrize(("text", "fragments"), [
    ("[0,8,6,1,0]", ["stage 1.t", "between 1 and 32", "got 0"]),
    ("[2,0,6,1,0]", ["stage 1.c", "between 1 and 8192", "got 0"]),
    ("[2,8,0,1,0]", ["stage 1.n", "between 1 and 64", "got 0"]),
    ("[2,8,-1,1,0]", ["stage 1.n", "got -1"]),
    ("[2,8,6,1,0] [2,16,4,3,0]", ["stage 2.s must be 1 or 2, got 3"]),
    ("[2,8,6,1,2]", ["stage 1.fused must be 0 or 1, got 2"]),
    ("[2,8,6,1]", ["stage 1 [2,8,6,1] has 4 genes, expected 5 [t,c,n,s,fused]"]),
    ("[2,8,6,1,0,1]", ["has 6 genes"]),
    ("[2,8.5,6,1,0]", ["stage 1.c must be an integer, got '8.5'"]),
    ("[2,x,6,1,0]", ["stage 1.c must be an integer, got 'x'"]),
    ("[2,8,1000000,1,0]", ["stage 1.n", "got 1000000"]),
    ("[2,1000000000,1,1,0]", ["stage 1.c", "got 1000000000"]),
    ("[2,8,6,1,0] eca2", ["at most one attention word", "'eca2'"]),
    ("[2,8,6,1,0] se eca", ["at most one attention word", "'se eca'"]),
    ("eca", ["no stage found"]),
    ("", ["no stage found"]),
    ("[2,8,6,1,0", ["'[2,8,6,1,0'"]),
    (" ".join(["[1,8,1,1,0]"] * (MAX_STAGES + 1)), [f"1 to {MAX_STAGES} stages, got {MAX_STAGES + 1}"]),
])
def test_bad_genome_text(text: str, fragments: list[str]) -> None:
    with pytest.raises(GenomeError) as info:
        Genome.parse(text)
    message = str(info.value)
    assert message.startswith("genome ")
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_unknown_attention() -> None:
    with pytest.raises(GenomeError, match=r"attention must be one of \['eca', 'se', 'none'\], got 'cbam'"):
        Genome.parse(REPORT, "cbam")
    with pytest.raises(GenomeError, match="got 'SE'"):
        Genome(Genome.parse(REPORT).stages, "SE")


def test_direct_construction_is_validated() -> None:
    with pytest.raises(GenomeError, match=r"stage\.s must be 1 or 2, got 3"):
        StageGene(1, 8, 1, 3, 0)
    with pytest.raises(GenomeError, match=r"stage\.t must be an integer, got True"):
        StageGene(True, 8, 1, 1, 0)  # type: ignore[arg-type]
    with pytest.raises(GenomeError, match="stage.c must be an integer, got '8'"):
        StageGene(1, "8", 1, 1, 0)  # type: ignore[arg-type]
    with pytest.raises(GenomeError, match="1 to 16 stages, got 0"):
        Genome(())


def test_absurd_genomes_refused_quickly() -> None:
    start = time.perf_counter()
    for text in ("[1,8,1000000,1,0]", "[1,1000000000,1,1,0]", "[100000,8,1,1,0]", "[1,8,999999999999,1,0]"):
        with pytest.raises(GenomeError):
            Genome.parse(text)
    assert time.perf_counter() - start < 0.1


def test_genome_text_longer_than_1000_characters_is_refused() -> None:
    with pytest.raises(GenomeError, match="at most 1000 characters, got 1203"):
        Genome.parse("[1,8,1,1,0] " * 100 + "eca")


# --- property tests --------------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(genomes())
def test_valid_genomes_round_trip(genome: Genome) -> None:
    assert Genome.parse(str(genome)) == genome
    assert Genome.parse(genome.notation, genome.attention) == genome
    assert Genome.from_json(genome.to_json()) == genome
    assert str(Genome.parse(str(genome))) == str(genome)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_hand_written_spacing_parses_to_the_same_genome(data: st.DataObject) -> None:
    genome = data.draw(genomes())
    assert Genome.parse(data.draw(spaced_notation(genome))) == genome


@settings(max_examples=250, deadline=None)
@given(st.one_of(st.text(), near_genome_text()))
def test_parse_genome_raises_only_genome_errors(text: str) -> None:
    try:
        genome = Genome.parse(text)
    except NasError as error:
        assert isinstance(error, GenomeError)
        assert str(error)
    else:
        assert Genome.parse(str(genome)) == genome
