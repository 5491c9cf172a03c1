"""Search spaces: the shipped files, sizes, extremes, Space.check, and every kind of bad input."""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.errors import GenomeError, NasError, SpaceError
from nas.model.complexity import count
from nas.model.genome import Genome, StageGene
from nas.model.recipe import AugmentConfig, DistillConfig, SearchConfig, TeacherConfig, TrainConfig
from nas.model.space import InputShape, ModelSettings, Space, load_space, parse_space

ROOT = Path(__file__).resolve().parents[2]
SPACES = ROOT / "nas" / "search_spaces"
STAGE = "[[stage]]\nt = 1\nc = 8\nn = 1\ns = 1\nfused = 0\n"


def enumerate_genomes(space: Space) -> Iterator[Genome]:
    """Every genome of `space`, by brute force over the raw choices."""
    per_stage = [
        [StageGene(*genes) for genes in itertools.product(st.t, st.c, st.n, st.s, st.fused)]
        for st in space.stages
    ]
    for depth in range(space.min_stages, len(space.stages) + 1):
        for stages in itertools.product(*per_stage[:depth]):
            for attention in space.attention:
                yield Genome(stages, attention)


def brute_extremes(space: Space) -> tuple[tuple[int, int, Genome], tuple[int, int, Genome]]:
    """(flops, params, genome) of the smallest and largest genome, ordered by FLOPs then params."""
    rows = []
    for genome in enumerate_genomes(space):
        result = count(genome, space)
        rows.append((result.flops, result.params, genome))
    key = lambda row: (row[0], row[1])  # noqa: E731
    return min(rows, key=key), max(rows, key=key)


def write(tmp_path: Path, text: str, name: str = "bad.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the shipped spaces ----------------------------------------------------------------------

def test_seed_space_is_the_report_family() -> None:
    space = load_space(SPACES / "seed.toml")
    assert space.name == "seed"
    assert space.model == ModelSettings()   # the defaults are the report's family
    assert (space.model.stem, space.model.head, space.model.divisor, space.model.expand_at_t1) == (
        8, 128, 8, True)
    assert space.attention == ("eca", "se", "none")
    assert (space.min_stages, len(space.stages)) == (1, 4)
    assert [stage.optional for stage in space.stages] == [False, True, True, True]
    for stage in space.stages:
        assert (stage.t, stage.c, stage.n, stage.s, stage.fused) == (
            (1, 2, 4, 6), (8, 16, 24, 32, 48, 64), (1, 2, 3, 4, 5, 6), (1, 2), (0, 1))
    assert space.input is None
    recipe = space.train   # the report's: Adam, lr 5e-3, batch 32, cosine down to 0.1 lr
    assert (recipe.optimizer, recipe.lr, recipe.batch_size, recipe.lr_min_ratio) == ("adam", 5e-3, 32, 0.1)
    assert space.distill == DistillConfig(loss="feature", alpha=0.5, temperature=2.0)


def test_seed_space_size() -> None:
    per_stage = 4 * 6 * 6 * 2 * 2
    expected = 3 * sum(per_stage**depth for depth in range(1, 5))
    assert load_space(SPACES / "seed.toml").size() == expected == 330_800_248_512


def test_tiny_space_size_is_a_brute_force_count() -> None:
    space = load_space(SPACES / "tiny.toml")
    distinct = {genome.rounded() for genome in enumerate_genomes(space)}
    assert space.size() == len(distinct) == 160
    assert space.input == InputShape(3, 16, 16)


def test_size_counts_channels_after_rounding(tmp_path: Path) -> None:
    text = STAGE.replace("c = 8", "c = [12, 16, 20, 24]").replace("t = 1", "t = [1, 2]")
    space = load_space(write(tmp_path, text, "round.toml"))
    distinct = {genome.rounded() for genome in enumerate_genomes(space)}
    assert space.size() == len(distinct) == 2 * 2   # 12 and 16 build 16; 20 and 24 build 24


def test_tiny_extremes_equal_brute_force() -> None:
    space = load_space(SPACES / "tiny.toml")
    smallest, largest = brute_extremes(space)
    for target, is_largest in ((smallest, False), (largest, True)):
        rows = [(count(g, space).flops, count(g, space).params, g) for g in space.extremes(is_largest)]
        best = (max if is_largest else min)(rows, key=lambda row: (row[0], row[1]))
        assert best[:2] == target[:2]


def test_extremes_try_every_depth(tmp_path: Path) -> None:
    """A stride-2 stage added makes the head cheaper than it costs: deeper can be smaller."""
    text = STAGE.replace("s = 1", "s = [1, 2]") + "\n" + STAGE.replace(
        "s = 1", "s = 2\noptional = true").replace("c = 8", "c = [8, 16]")
    space = load_space(write(tmp_path, text, "depth.toml"))
    smallest, largest = brute_extremes(space)
    assert len(smallest[2].stages) == 2   # the case the rule "fewest stages is smallest" gets wrong
    best = min((count(g, space).flops, count(g, space).params) for g in space.extremes(False))
    assert best == smallest[:2]
    best = max((count(g, space).flops, count(g, space).params) for g in space.extremes(True))
    assert best == largest[:2]


def test_seed_extremes_bound_random_genomes() -> None:
    space = load_space(SPACES / "seed.toml")
    low = min(count(g, space).flops for g in space.extremes(False))
    high = max(count(g, space).flops for g in space.extremes(True))
    assert low <= count("[1,8,1,2,0] [1,8,1,2,0] [1,8,1,2,0] [1,8,1,2,0] none", space).flops
    rng = random.Random(0)
    for _ in range(300):
        stages = tuple(
            StageGene(*(rng.choice(st.choices(name)) for name in ("t", "c", "n", "s", "fused")))
            for st in space.stages[: rng.randint(1, 4)]
        )
        flops = count(Genome(stages, rng.choice(space.attention)), space).flops
        assert low <= flops <= high


def test_efficientnetv2_space_parses() -> None:
    space = load_space(SPACES / "efficientnetv2_s.toml")
    assert (space.model.stem, space.model.head, space.model.expand_at_t1) == (24, 1280, False)
    assert (space.model.se_base, space.model.se_divisor) == ("input", 1)
    assert [stage.attention for stage in space.stages] == ["none"] * 3 + [None] * 3
    assert space.size() == 1


# --- Space.check --------------------------------------------------------------------------------

def test_check_accepts_members_and_refuses_outsiders() -> None:
    space = load_space(SPACES / "seed.toml")
    genome = Genome.parse("[2,8,6,1,0] [2,16,4,1,0]")
    assert space.check(genome) is genome
    cases = [
        ("[2,12,6,1,0]", "eca", "stage[1].c = 12 is not among the choices [8, 16, 24, 32, 48, 64]"),
        ("[2,8,6,1,0] [3,16,4,1,0]", "eca", "stage[2].t = 3 is not among the choices [1, 2, 4, 6]"),
        ("[2,8,7,1,0]", "se", "stage[1].n = 7 is not among the choices"),
        (" ".join(["[1,8,1,1,0]"] * 5), "eca", "has 5 stages, the space defines at most 4"),
    ]
    for text, attention, fragment in cases:
        with pytest.raises(GenomeError) as info:
            space.check(Genome.parse(text, attention))
        assert str(info.value).startswith(f"{space.path}: genome ")
        assert fragment in str(info.value)


def test_check_attention_and_minimum_depth() -> None:
    tiny = load_space(SPACES / "tiny.toml")
    choices = r"attention 'se' is not among the space's choices \['eca', 'none'\]"
    with pytest.raises(GenomeError, match=choices):
        tiny.check(Genome.parse("[1,8,1,1,0] se"))
    two = parse_space(STAGE + STAGE, "two.toml")
    with pytest.raises(GenomeError, match="two.toml: genome .* has 1 stages, the space requires at least 2"):
        two.check(Genome.parse("[1,8,1,1,0]"))


def test_check_not_strict_only_counts_stages() -> None:
    space = load_space(SPACES / "seed.toml")
    outsider = Genome.parse("[3,12,9,1,0] [5,20,1,2,1]")
    assert space.check(outsider, strict=False) is outsider
    with pytest.raises(GenomeError, match="defines at most 4"):
        space.check(Genome.parse(" ".join(["[1,8,1,1,0]"] * 5)), strict=False)


# --- bad space files: error type and message ---------------------------------------------------

BAD_SPACES: list[tuple[str, str, list[str]]] = [
    ("toml-syntax", "name = 'x'\n[model]\nhead = = 3\n" + STAGE,
     ["TOML syntax error", "line 3", "column"]),
    ("toml-unclosed", "x = [1, 2\n", ["TOML syntax error", "Unclosed array"]),
    ("toml-deep", "x = " + "[" * 3000 + "]" * 3000 + "\n" + STAGE, ["TOML syntax error", "nested too deep"]),
    ("top-key", "stages = 1\n" + STAGE, ["stages is not a known key", "did you mean `stage`?"]),
    ("model-key", "[model]\nhaed = 128\n" + STAGE, ["model.haed is not a known key", "`head`"]),
    ("model-key-2", "[model]\nstem_strid = 1\n" + STAGE, ["model.stem_strid", "`stem_stride`"]),
    ("stage-key", STAGE + "fuse = 1\n", ["stage[1]", "fuse is not a known key", "`fused`"]),
    ("train-key", "[train]\nepoch = 3\n" + STAGE, ["train.epoch is not a known key", "`epochs`"]),
    ("augment-key", "[train.augment]\nview = []\n" + STAGE, ["train.augment.view", "`views`"]),
    ("distill-key", "[distill]\nalfa = 0.5\n" + STAGE, ["distill.alfa", "`alpha`"]),
    ("teacher-key", "[teacher]\ngenom = 'x'\n" + STAGE, ["teacher.genom", "`genome`"]),
    ("search-key", "[search]\ntrails = 3\n" + STAGE, ["search.trails", "`trials`"]),
    ("attention-key", "[attention]\nchoice = ['eca']\n" + STAGE, ["attention: choice", "`choices`"]),
    ("far-key", "zzzzzz = 1\n" + STAGE, ["zzzzzz is not a known key"]),
    ("train-type", "[train]\nepochs = 'ten'\n" + STAGE, ["train.epochs must be int, got 'ten'"]),
    ("train-float", "[train]\nepochs = 1.5\n" + STAGE, ["train.epochs must be int, got 1.5"]),
    ("lr-type", "[train]\nlr = 'fast'\n" + STAGE, ["train.lr must be float, got 'fast'"]),
    ("lr-negative", "[train]\nlr = -1.0\n" + STAGE, ["train.lr must be >= 0, got -1.0"]),
    ("model-type", "[model]\nhead = 1.5\n" + STAGE, ["model.head must be int, got 1.5"]),
    ("model-bool", "[model]\nexpand_at_t1 = 1\n" + STAGE, ["model.expand_at_t1 must be bool, got 1"]),
    ("model-table", "model = 3\n" + STAGE, ["model must be a table, got int"]),
    ("optimizer", "[train]\noptimizer = 'adamm'\n" + STAGE,
     ["train.optimizer must be one of ['adam', 'adamw', 'sgd'], got 'adamm'"]),
    ("sampler", "[search]\nsampler = 'grid'\n" + STAGE, ["search.sampler must be one of", "'grid'"]),
    ("gene-type", STAGE.replace("t = 1", "t = '2'"), ["stage[1].t must be an integer, got '2'"]),
    ("gene-float", STAGE.replace("c = 8", "c = 8.0"), ["stage[1].c must be an integer, got 8.0"]),
    ("gene-bool", STAGE.replace("n = 1", "n = true"), ["stage[1].n must be an integer, got True"]),
    ("t-zero", STAGE.replace("t = 1", "t = [1, 0]"), ["stage[1].t must be between 1 and 32, got 0"]),
    ("c-zero", STAGE.replace("c = 8", "c = 0"), ["stage[1].c must be between 1 and 8192, got 0"]),
    ("n-zero", STAGE.replace("n = 1", "n = 0"), ["stage[1].n must be between 1 and 64, got 0"]),
    ("n-negative", STAGE.replace("n = 1", "n = -2"), ["stage[1].n", "got -2"]),
    ("s-three", STAGE.replace("s = 1", "s = [1, 3]"), ["bad.toml: stage[1].s must be 1 or 2, got 3"]),
    ("fused-two", STAGE.replace("fused = 0", "fused = 2"), ["stage[1].fused must be 0 or 1, got 2"]),
    ("empty-choices", STAGE.replace("t = 1", "t = []"), ["stage[1].t must not be an empty list"]),
    ("duplicate", STAGE.replace("c = 8", "c = [8, 16, 8]"), ["stage[1].c lists a choice twice: [8, 16, 8]"]),
    ("duplicate-bool", STAGE.replace("fused = 0", "fused = [true, 1]"),
     ["stage[1].fused lists a choice twice"]),
    ("missing-gene", STAGE.replace("fused = 0\n", ""), ["stage[1].fused is missing"]),
    ("attention-unknown", "[attention]\nchoices = ['eca', 'sse']\n" + STAGE,
     ["attention.choices: unknown attention 'sse'", "did you mean `se`?"]),
    ("attention-duplicate", "[attention]\nchoices = ['eca', 'eca']\n" + STAGE,
     ["attention.choices lists a choice twice"]),
    ("attention-empty", "[attention]\nchoices = []\n" + STAGE,
     ["attention.choices must not be an empty list"]),
    ("attention-table", "[attention]\nchoices = {}\n" + STAGE,
     ["attention.choices: unknown attention {}"]),
    ("stage-attention", STAGE + "attention = 'cbam'\n", ["stage[1].attention must be one of", "'cbam'"]),
    ("stage-attention-table", STAGE + "attention = {}\n", ["stage[1].attention must be one of", "got {}"]),
    ("stage-kernel", STAGE + "kernel = 4\n", ["stage[1].kernel must be an odd integer from 1 to 11, got 4"]),
    ("optional-type", STAGE + "optional = 1\n", ["stage[1].optional must be true or false, got 1"]),
    ("optional-first", STAGE + "optional = true\n", ["stage[1] cannot be optional"]),
    ("required-after-optional", STAGE + STAGE + "optional = true\n" + STAGE,
     ["stage[3] is required but follows an optional stage"]),
    ("no-stage", "name = 'x'\n", ["at least one [[stage]] table is required"]),
    ("stage-not-table", "stage = [3]\n", ["stage[1] must be a table, got 3"]),
    ("too-many-stages", STAGE * 17, ["at most 16 stages, got 17"]),
    ("name-type", "name = 3\n" + STAGE, ["name must be a non-empty string, got 3"]),
    ("stem-stride", "[model]\nstem_stride = 3\n" + STAGE, ["model.stem_stride must be 1 or 2, got 3"]),
    ("model-kernel", "[model]\nkernel = 2\n" + STAGE, ["model.kernel must be an odd integer", "got 2"]),
    ("se-ratio", "[model]\nse_ratio = 0\n" + STAGE, ["model.se_ratio must be in (0, 1], got 0.0"]),
    ("se-base", "[model]\nse_base = 'output'\n" + STAGE, ["model.se_base must be 'hidden' or 'input'"]),
    ("head-huge", "[model]\nhead = 1000000000\n" + STAGE, ["model.head must be between 1 and 8192"]),
    ("n-absurd", STAGE.replace("n = 1", "n = 1000000"), ["stage[1].n must be between 1 and 64, got 1000000"]),
    ("c-absurd", STAGE.replace("c = 8", "c = 1000000000"), ["stage[1].c", "got 1000000000"]),
    ("c-bignum", STAGE.replace("c = 8", "c = 99999999999999999999"), ["stage[1].c", "99999999999999999999"]),
    ("input-absurd", 'input = "3x100000x5"\n' + STAGE, ["bad.toml: input", "100000x5"]),
    ("input-text", 'input = "big"\n' + STAGE, ["bad.toml: input", "must look like 3x185x160, got 'big'"]),
    ("input-unicode", 'input = "3x²x5"\n' + STAGE, ["bad.toml: input", "'3x²x5'"]),
    ("input-table", "[input]\nheight = 100000\n" + STAGE, ["bad.toml: input", "between 1 and 4096"]),
    ("input-channels", "[input]\nchannels = 0\n" + STAGE,
     ["bad.toml: input", "channels must be between 1 and 16"]),
    ("input-key", "[input]\nhieght = 10\n" + STAGE, ["input.hieght is not a known key", "`height`"]),
    ("augment-sigma", "[train.augment]\nblur_sigma = [1.0]\n" + STAGE,
     ["train.augment.blur_sigma must have 2 items, got 1"]),
]


@pytest.mark.parametrize(("text", "fragments"), [case[1:] for case in BAD_SPACES],
                         ids=[case[0] for case in BAD_SPACES])
def test_bad_space_file(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = write(tmp_path, text)
    start = time.perf_counter()
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert time.perf_counter() - start < 0.5    # refused before anything is allocated
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match=r"nope\.toml: no such space file"):
        load_space(tmp_path / "nope.toml")
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"name = '\xff'\n")
    with pytest.raises(SpaceError, match=r"latin1\.toml: cannot read"):
        load_space(path)


def test_input_shape_parse() -> None:
    assert InputShape.parse("3x185x160") == InputShape(3, 185, 160)
    assert InputShape.parse("33X17") == InputShape(3, 33, 17)
    assert str(InputShape.parse("1x28x28")) == "1x28x28"
    for bad in ("3x185x160x1", "185", "3x0x5", "3x-1x5", "axbxc", "3x100000x5", "17x8x8", "3x²x5",
                "3x" + "9" * 5000 + "x5"):
        with pytest.raises(SpaceError, match="input shape"):
            InputShape.parse(bad)


# --- fuzzing: nothing but SpaceError ever escapes ------------------------------------------------

def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


# Section header -> the keys the fuzzer writes there: the real ones and a few near misses.
SECTIONS: dict[str, list[str]] = {
    "[model]": [*field_names(ModelSettings), "haed"],
    "[attention]": ["choices", "choice"],
    "[input]": [*field_names(InputShape), "hieght"],
    "[train]": [*field_names(TrainConfig), "epoch"],
    "[train.augment]": [*field_names(AugmentConfig), "view"],
    "[distill]": [*field_names(DistillConfig), "alfa"],
    "[teacher]": [*field_names(TeacherConfig)],
    "[search]": [*field_names(SearchConfig), "trails"],
}
TOP = ["name", "description", "input", "stages"]   # "stages": a near miss of [[stage]]


def toml_values(depth: int = 2) -> st.SearchStrategy[str]:
    scalar = st.one_of(
        st.integers(-2, 9).map(str),
        st.sampled_from(["16", "24", "64", "1e9", "99999999999999999999", "0.5", "-0.0", "inf", "nan"]),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.sampled_from(['"eca"', '"se"', '"none"', '"3x16x16"', '"3x²x5"', '"adam"', "true", "false",
                         '""', '"[1,8,1,1,0]"', '"hidden"', '"input"', '"blur+hflip"', '"feature"']),
    )
    if depth == 0:
        return scalar
    inner = toml_values(depth - 1)
    return st.one_of(
        scalar,
        scalar,
        st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.dictionaries(st.sampled_from(TOP), inner, max_size=2).map(
            lambda d: "{" + ", ".join(f"{k} = {v}" for k, v in d.items()) + "}"),
    )


VALID_GENES = {"t": [1, 2, 4, 6], "c": [8, 12, 16, 20, 24], "n": [1, 2, 3], "s": [1, 2], "fused": [0, 1]}


def gene_values(gene: str) -> st.SearchStrategy[str]:
    """Mostly valid gene choices, sometimes out of range, duplicated or of the wrong type."""
    valid = st.sampled_from(VALID_GENES[gene]).map(str)
    odd = st.one_of(st.integers(-1, 70).map(str), st.sampled_from(["true", '"2"', "2.0", "[]", "{}"]))
    number = st.one_of(valid, valid, valid, valid, valid, valid, odd)
    return st.one_of(
        number,
        st.lists(number, min_size=1, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(valid, min_size=1, max_size=3, unique=True).map(lambda xs: "[" + ", ".join(xs) + "]"),
    )


def top_values() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(['"x"', '"tiny"', '""', '"3x16x16"', '"3x²x5"', '"16x16"']),
                     toml_values(1))


@st.composite
def near_valid_toml(draw: st.DrawFn) -> str:
    """TOML built from the real sections and keys with right, wrong and odd values.

    Rare events use a `random.Random` seeded by hypothesis: its own draws favour simple
    values, which would make every rare mistake common and hide the deep paths behind it.
    """
    rng = random.Random(draw(st.integers(0, 2**32)))
    lines = [f"{key} = {draw(top_values())}" for key in TOP if rng.random() < 0.1]
    headers = draw(st.lists(st.sampled_from(sorted(SECTIONS)), unique=True, max_size=3))
    for header in headers:
        if header == "[input]" and any(line.startswith("input =") for line in lines):
            continue
        lines.append(header)
        keys = st.sampled_from(SECTIONS[header])
        lines += [f"{k} = {v}" for k, v in draw(st.dictionaries(keys, toml_values(1), max_size=2)).items()]
    for index in range(rng.choice([0, 1, 1, 2, 2, 3, 4])):
        lines.append("[[stage]]")
        for gene in ("t", "c", "n", "s", "fused"):
            if rng.random() < 0.97:     # now and then a gene is missing
                value = draw(gene_values(gene)) if rng.random() < 0.3 else rng.choice(VALID_GENES[gene])
                lines.append(f"{gene} = {value}")
        if rng.random() < 0.3:
            optional = rng.choice(["true", "true", "false", "1"]) if index else rng.choice(["true", "false"])
            lines.append(f"optional = {optional}")
        if rng.random() < 0.1:
            key = rng.choice(["kernel", "attention", "fuse"])
            lines.append(f"{key} = {draw(toml_values(0))}")
    return "\n".join(lines) + "\n"


@st.composite
def mutated_shipped_space(draw: st.DrawFn) -> str:
    """A shipped space file with a few characters replaced, deleted or inserted."""
    text = draw(st.sampled_from([(SPACES / name).read_text() for name in
                                 ("seed.toml", "tiny.toml", "efficientnetv2_s.toml")]))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["delete", "insert", "replace"]))
        char = draw(st.sampled_from(list("0123456789[]{}=,.\"'x-\n #") + ["true", "fused", "optional"]))
        if edit == "delete":
            text = text[:at] + text[at + 1:]
        elif edit == "insert":
            text = text[:at] + char + text[at:]
        else:
            text = text[:at] + char + text[at + 1:]
    return text


def assert_only_space_errors(text: str) -> None:
    try:
        space = parse_space(text, "fuzz.toml")
    except NasError as error:
        assert isinstance(error, SpaceError)
        assert str(error).startswith("fuzz.toml")
        assert "\n" not in str(error)
    else:   # a valid space: its summary must work too
        assert space.size() >= 1 and space.min_stages >= 1
        for genome in space.extremes(largest=False)[:3]:
            assert space.check(genome) is genome
            assert count(genome, space).flops > 0


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_fuzz_arbitrary_text(text: str) -> None:
    assert_only_space_errors(text)


@settings(max_examples=120, deadline=None)
@given(near_valid_toml())
def test_fuzz_near_valid_toml(text: str) -> None:
    assert_only_space_errors(text)


@settings(max_examples=150, deadline=None)
@given(mutated_shipped_space())
def test_fuzz_mutated_shipped_spaces(text: str) -> None:
    assert_only_space_errors(text)


def test_every_shipped_space_loads() -> None:
    from nas.model.space import load_space as load

    root = Path(__file__).resolve().parents[2] / "nas" / "search_spaces"
    names = {load(path).name for path in sorted(root.glob("*.toml"))}
    assert {"seed", "tiny", "efficientnetv2_s", "photos"} <= names
