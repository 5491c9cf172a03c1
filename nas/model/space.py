"""Search spaces: a TOML file -> frozen dataclasses, validated with file/key/value errors.

A space says, per stage, a fixed value or a list of choices for each gene
`[t, c, n, s, fused]`, which trailing stages are optional, the model-wide
settings (stem, head, channel divisor, SE width rule, ...), the attention
choices, an optional input shape, and the recipe sections of `nas.model.recipe`.
Pure Python: no torch here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, ClassVar

from nas.errors import GenomeError, SpaceError, nearest
from nas.model.attention import ATTENTIONS, is_attention
from nas.model.genome import GENES, MAX_STAGES, Genome, StageGene, check_gene, make_divisible
from nas.model.recipe import (
    DistillConfig,
    SearchConfig,
    TeacherConfig,
    TrainConfig,
    teacher_section,
    used_recipe,
)
from nas.model.sections import check_fields, parse_section, read_toml

DEFAULT_SPACE = "seed.toml"
PHOTO_SPACE = "photos.toml"    # the default on photos: the measured recipe, not digits' (bench/RESULTS.md)
BUNDLED = "search_spaces"   # the package folder of the bundled spaces and ablation files
TOP_KEYS = ("name", "description", "model", "attention", "stage", "input",
            "train", "distill", "teacher", "search")
STAGE_KEYS = (*GENES, "optional", "kernel", "attention")
SUBSET_KEY = "train.train_per_class"   # the [train] keys that [search] sets for the trials
VIEWS_KEY = "train.augment.views"
MAX_WIDTH = 8192
MAX_SIDE = 4096


@dataclass(frozen=True)
class ModelSettings:
    """Model-wide choices; the defaults are the seed report's family. Checked when made, so that
    settings read from a checkpoint or a database are held to the space file's rules."""

    LABEL: ClassVar[str] = "model"
    stem: int = 8
    stem_stride: int = 2
    head: int = 128
    divisor: int = 8
    kernel: int = 3
    expand_at_t1: bool = True   # MBConv keeps its 1x1 expansion conv when t = 1 (report)
    se_ratio: float = 0.25
    se_base: str = "hidden"     # SE width from the block's hidden width (report) or its input (torchvision)
    se_divisor: int = 8         # SE width rounded with make_divisible(., se_divisor); 1 = floor
    bn_eps: float = 1e-5        # BatchNorm epsilon (torch's default; torchvision's EfficientNetV2 uses 1e-3)

    def __post_init__(self) -> None:
        self.check(self.LABEL)

    def check(self, where: str) -> None:
        """Types, ranges and choices of every setting (NaN is outside every range)."""
        check_fields(self, where)
        for key in ("stem", "head"):
            _check_range(where, key, getattr(self, key), 1, MAX_WIDTH)
        _check_range(where, "divisor", self.divisor, 1, 64)
        _check_range(where, "se_divisor", self.se_divisor, 1, 64)
        if self.stem_stride not in (1, 2):
            raise SpaceError(f"{where}.stem_stride must be 1 or 2, got {self.stem_stride}")
        _check_kernel(self.kernel, f"{where}.kernel")
        if not 0 < self.se_ratio <= 1:
            raise SpaceError(f"{where}.se_ratio must be in (0, 1], got {self.se_ratio}")
        if not 0 < self.bn_eps <= 0.1:
            raise SpaceError(f"{where}.bn_eps must be in (0, 0.1], got {self.bn_eps}")
        if self.se_base not in ("hidden", "input"):
            raise SpaceError(f"{where}.se_base must be 'hidden' or 'input', got {self.se_base!r}")

    def key(self) -> dict[str, Any]:
        """The settings as fingerprints hash them: bn_eps (added later) only when it is not the
        default, so teachers, ablation arms and studies keyed before it stay valid."""
        fields = asdict(self)
        if self.bn_eps == ModelSettings.bn_eps:
            del fields["bn_eps"]
        return fields


@dataclass(frozen=True)
class InputShape:
    """An input image shape, written `3x32x32` (channels x height x width); the default is the
    default data's (digits), as for `count()`, `build_model()` and `nas count`. Checked when made."""

    LABEL: ClassVar[str] = "input shape"
    channels: int = 3
    height: int = 32
    width: int = 32

    def __post_init__(self) -> None:
        check_fields(self, self.LABEL)
        check_input(self, self.LABEL)

    def __str__(self) -> str:
        return f"{self.channels}x{self.height}x{self.width}"

    @classmethod
    def parse(cls, text: str) -> InputShape:
        """Parse `CxHxW` (or `HxW`, 3 channels); SpaceError on anything else."""
        parts = text.lower().split("x")
        if len(parts) not in (2, 3) or not all(p.strip().isdecimal() and len(p.strip()) <= 9
                                               for p in parts):
            raise SpaceError(f"input shape must look like 3x185x160, got {text!r}")
        numbers = [int(p) for p in parts]
        return cls(*numbers) if len(numbers) == 3 else cls(3, *numbers)


def check_input(shape: InputShape, where: str) -> InputShape:
    """Refuse empty or absurd input shapes (every InputShape is checked so when made)."""
    if not 1 <= shape.channels <= 16:
        raise SpaceError(f"{where}: channels must be between 1 and 16, got {shape.channels}")
    for side in (shape.height, shape.width):
        if not 1 <= side <= MAX_SIDE:
            raise SpaceError(f"{where}: height and width must be between 1 and {MAX_SIDE}, "
                             f"got {shape.height}x{shape.width}")
    return shape


def check_normalization(mean: Any, std: Any, channels: int, where: str) -> None:
    """Per-channel normalisation (a checkpoint's `mean` and `std`): one finite number per input
    channel each, every std above 0, so that `(x - mean) / std` is defined."""
    for key, values in (("mean", mean), ("std", std)):
        numbers = isinstance(values, list | tuple) and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)
        if not numbers or len(values) != channels:
            raise SpaceError(f"{where}.{key} must be {channels} finite numbers (one per input "
                             f"channel), got {str(values)[:60]}")
    if not all(value > 0 for value in std):
        raise SpaceError(f"{where}.std must be above 0 for every channel, got {list(std)}")


@dataclass(frozen=True)
class StageOverride:
    """Per-stage settings that replace the model-wide ones (None: keep the model's)."""

    kernel: int | None = None
    attention: str | None = None


@dataclass(frozen=True)
class StageSpace:
    """The choices of one stage; `kernel` and `attention` override the model-wide ones."""

    t: tuple[int, ...]
    c: tuple[int, ...]
    n: tuple[int, ...]
    s: tuple[int, ...]
    fused: tuple[int, ...]
    optional: bool = False
    kernel: int | None = None
    attention: str | None = None

    @property
    def override(self) -> StageOverride:
        return StageOverride(self.kernel, self.attention)

    def choices(self, gene: str) -> tuple[int, ...]:
        return getattr(self, gene)

    def size(self, divisor: int) -> int:
        """Distinct stage genes, counting channel choices after rounding."""
        widths = {make_divisible(c, divisor) for c in self.c}
        return len(self.t) * len(widths) * len(self.n) * len(self.s) * len(self.fused)


@dataclass(frozen=True)
class Space:
    """A validated search space."""

    path: str
    name: str
    model: ModelSettings
    stages: tuple[StageSpace, ...]
    attention: tuple[str, ...]
    input: InputShape | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    search: SearchConfig = field(default_factory=SearchConfig)

    @property
    def overrides(self) -> tuple[StageOverride, ...]:
        return tuple(stage.override for stage in self.stages)

    def for_trials(self, chosen: Collection[str] = ()) -> Space:
        """This space as a search's trials train: on `[search] train_per_class` images per class
        and `[search] views` when the file sets them (a final model, `nas export --retrain`, keeps
        `[train]`'s), unless the user's own overrides (`chosen`, dotted keys: `--set`, a recipe)
        name the `[train]` key: what the user asks for beats the file's trial settings."""
        train, per_class, views = self.train, self.search.train_per_class, self.search.views
        if per_class and SUBSET_KEY not in chosen:
            train = replace(train, train_per_class=per_class)
        if views is not None and VIEWS_KEY not in chosen:
            train = replace(train, augment=replace(train.augment, views=views))
        return self if train == self.train else replace(self, train=train)

    def recipe(self) -> dict[str, Any]:
        """The train, distill and teacher sections as training reads them (`used_recipe`)."""
        return used_recipe({"train": asdict(self.train), "distill": asdict(self.distill),
                            "teacher": teacher_section(self.teacher)})

    @property
    def min_stages(self) -> int:
        return sum(1 for stage in self.stages if not stage.optional)

    def size(self) -> int:
        """The number of distinct genomes (after channel rounding) the space describes."""
        total, product = 0, 1
        for index, stage in enumerate(self.stages, 1):
            product *= stage.size(self.model.divisor)
            if index >= self.min_stages:
                total += product
        return total * len(self.attention)

    def extremes(self, largest: bool) -> list[Genome]:
        """Candidates for the smallest (or largest) genome; at a fixed depth FLOPs are monotone
        in t, c, n and 1/s, so only the depth, `fused` and attention need trying (not the
        depth alone: a stride-2 stage added can make the head cheaper than it costs)."""
        pick = max if largest else min
        genomes = []
        for depth in range(self.min_stages, len(self.stages) + 1):
            stages = self.stages[:depth]
            fused_options = itertools.product(*(stage.fused for stage in stages))
            for fused, attention in itertools.product(list(fused_options), self.attention):
                genes = tuple(
                    StageGene(pick(st.t), pick(st.c), pick(st.n),
                              min(st.s) if largest else max(st.s), f)
                    for st, f in zip(stages, fused, strict=True)
                )
                genomes.append(Genome(genes, attention))
        return genomes

    def check(self, genome: Genome, strict: bool = True, where: str | None = None) -> Genome:
        """Check that `genome` fits this space; `strict` also checks every gene's choices.
        `where` opens the error (default: the space file and the genome)."""
        where = where or f"{self.path}: genome {genome.notation}"
        if len(genome.stages) > len(self.stages):
            raise GenomeError(f"{where} has {len(genome.stages)} stages, "
                              f"the space defines at most {len(self.stages)}")
        if not strict:
            return genome
        if len(genome.stages) < self.min_stages:
            raise GenomeError(f"{where} has {len(genome.stages)} stages, "
                              f"the space requires at least {self.min_stages}")
        if genome.attention not in self.attention:
            raise GenomeError(f"{where}: attention {genome.attention!r} is not among "
                              f"the space's choices {list(self.attention)}")
        for index, (gene, stage) in enumerate(zip(genome.stages, self.stages, strict=False), 1):
            for name in GENES:
                if getattr(gene, name) not in stage.choices(name):
                    raise GenomeError(f"{where}: stage[{index}].{name} = {getattr(gene, name)} "
                                      f"is not among the choices {list(stage.choices(name))}")
        return genome

    def with_input(self, shape: InputShape | None) -> Space:
        return self if shape is None else replace(self, input=shape)


def bundled_file(path: str | Path) -> Traversable | None:
    """The bundled file a relative name such as `seed.toml`, `ablations/se_vs_eca.toml` or
    `search_spaces/seed.toml` stands for (a copy inside the package, found with importlib.resources),
    or None when there is none."""
    parts = Path(path).parts
    if not parts or Path(path).is_absolute() or ".." in parts:
        return None
    if parts[0] == BUNDLED:
        parts = parts[1:]
    found = resources.files("nas").joinpath(BUNDLED, *parts) if parts else None
    return found if found is not None and found.is_file() else None


def locate(path: str | Path, kind: str = "space") -> tuple[str, Path | Traversable]:
    """A file the user named (an existing path wins) or else the bundled file of that name,
    with the label errors use; SpaceError naming both places when neither exists."""
    if Path(path).is_file():
        return str(path), Path(path)
    found = bundled_file(path)
    if found is None:
        names = ", ".join(bundled_names()) or "none"
        raise SpaceError(f"{path}: no such {kind} file here, nor bundled with nas ({names})")
    return str(path), found


def bundled_names() -> list[str]:
    """The bundled files' names, e.g. `seed.toml`, `ablations/se_vs_eca.toml`."""
    root = resources.files("nas").joinpath(BUNDLED)
    if not root.is_dir():
        return []
    names = [e.name for e in root.iterdir() if e.name.endswith(".toml")]
    names += [f"{e.name}/{f.name}" for e in root.iterdir() if e.is_dir()
              for f in e.iterdir() if f.name.endswith(".toml")]
    return sorted(names)


def load_space(path: str | Path = DEFAULT_SPACE) -> Space:
    """Read and validate a space file: a path, or the name of a bundled space (`seed.toml`)."""
    where, found = locate(path)
    try:
        text = found.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpaceError(f"{where}: cannot read: {error}") from None
    return parse_space(text, where)


def parse_space(text: str, where: str = "<space>") -> Space:
    """Parse space TOML text; every mistake is one SpaceError naming file, key and rule."""
    data = read_toml(text, where)
    check_keys(data, TOP_KEYS, where)
    stages = data.get("stage")
    if not isinstance(stages, list) or not stages:
        raise SpaceError(f"{where}: at least one [[stage]] table is required")
    if len(stages) > MAX_STAGES:
        raise SpaceError(f"{where}: at most {MAX_STAGES} stages, got {len(stages)}")
    name = data.get("name", Path(where).stem)
    if not isinstance(name, str) or not name:
        raise SpaceError(f"{where}: name must be a non-empty string, got {name!r}")
    space = Space(
        path=where,
        name=name,
        model=parse_section(ModelSettings, data.get("model", {}), f"{where}: model"),
        stages=_parse_stages(stages, where),
        attention=_parse_attention(data.get("attention", {}), f"{where}: attention"),
        input=_parse_input(data["input"], f"{where}: input") if "input" in data else None,
        train=parse_section(TrainConfig, data.get("train", {}), f"{where}: train"),
        distill=parse_section(DistillConfig, data.get("distill", {}), f"{where}: distill"),
        teacher=parse_section(TeacherConfig, data.get("teacher", {}), f"{where}: teacher"),
        search=parse_section(SearchConfig, data.get("search", {}), f"{where}: search"),
    )
    _check_enqueued(space)
    return space


def _check_enqueued(space: Space) -> None:
    """Every genome of `[search] enqueue` must fit the space (its budget is checked by `nas
    search`, which knows the input size)."""
    for index, genome in enumerate(space.search.enqueued(f"{space.path}: search")):
        text = space.search.enqueue[index]
        try:
            space.check(genome, where=f"{space.path}: search.enqueue[{index}] {text!r}")
        except GenomeError as error:
            raise SpaceError(str(error)) from None


def check_keys(table: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    """Every key of `table` must be known; an unknown one names the nearest valid key."""
    for key in table:
        if key not in known:
            raise SpaceError(f"{where}: {key} is not a known key{nearest(key, known)}")


def _check_range(where: str, key: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise SpaceError(f"{where}.{key} must be between {low} and {high}, got {value}")


def _check_kernel(kernel: Any, where: str) -> int:
    if not isinstance(kernel, int) or isinstance(kernel, bool) or kernel not in (1, 3, 5, 7, 9, 11):
        raise SpaceError(f"{where} must be an odd integer from 1 to 11, got {kernel!r}")
    return kernel


def _parse_attention(table: Any, where: str) -> tuple[str, ...]:
    if not isinstance(table, dict):
        raise SpaceError(f"{where} must be a table with `choices`, got {table!r}")
    check_keys(table, ("choices",), where)
    choices = _as_list(table.get("choices", ["eca"]), f"{where}.choices")
    for value in choices:
        if not is_attention(value):
            raise SpaceError(f"{where}.choices: unknown attention {value!r}"
                             f"{nearest(str(value), ATTENTIONS)}; valid: {list(ATTENTIONS)}")
    return tuple(choices)


def _parse_input(table: Any, where: str) -> InputShape:
    if isinstance(table, str):
        try:
            return InputShape.parse(table)
        except SpaceError as error:
            raise SpaceError(f"{where}: {error}") from None
    return parse_section(InputShape, table, where)


def _parse_stages(tables: list[Any], where: str) -> tuple[StageSpace, ...]:
    stages = []
    for index, table in enumerate(tables, 1):
        stage = _parse_stage(table, f"{where}: stage[{index}]")
        if stages and stages[-1].optional and not stage.optional:
            raise SpaceError(f"{where}: stage[{index}] is required but follows an optional "
                             f"stage; optional stages must come last")
        stages.append(stage)
    if stages[0].optional:
        raise SpaceError(f"{where}: stage[1] cannot be optional; a genome has at least one stage")
    return tuple(stages)


def _parse_stage(table: Any, where: str) -> StageSpace:
    if not isinstance(table, dict):
        raise SpaceError(f"{where} must be a table, got {table!r}")
    check_keys(table, STAGE_KEYS, where)
    genes = {}
    for name in GENES:
        if name not in table:
            raise SpaceError(f"{where}.{name} is missing (a value or a list of choices)")
        genes[name] = _gene_choices(name, table[name], where)
    optional = table.get("optional", False)
    if not isinstance(optional, bool):
        raise SpaceError(f"{where}.optional must be true or false, got {optional!r}")
    kernel = _check_kernel(table["kernel"], f"{where}.kernel") if "kernel" in table else None
    attention = table.get("attention")
    if attention is not None and not is_attention(attention):
        raise SpaceError(f"{where}.attention must be one of {list(ATTENTIONS)}, got {attention!r}")
    return StageSpace(**genes, optional=optional, kernel=kernel, attention=attention)


def _gene_choices(name: str, raw: Any, where: str) -> tuple[int, ...]:
    values = _as_list(raw, f"{where}.{name}")
    try:
        checked = tuple(check_gene(name, value, where) for value in values)
    except GenomeError as error:
        raise SpaceError(str(error)) from None
    if len(set(checked)) != len(checked):
        raise SpaceError(f"{where}.{name} lists a choice twice: {values!r}")
    return checked


def _as_list(raw: Any, where: str) -> list[Any]:
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise SpaceError(f"{where} must not be an empty list")
    if len(set(map(repr, values))) != len(values):
        raise SpaceError(f"{where} lists a choice twice: {values!r}")
    return values


def default_space(source: str) -> str:
    """The bundled space a command uses without --space: seed.toml on the embedded digits,
    photos.toml on photos (an image folder or a torchvision set)."""
    return DEFAULT_SPACE if source.lower() == "digits" else PHOTO_SPACE
