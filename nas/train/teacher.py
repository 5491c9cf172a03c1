"""The fixed teacher: built from its `[teacher]` spec, trained once, cached by fingerprint.

A teacher is either a (bigger) genome of our own family or a torchvision
classification trunk followed, as in the report, by a 3x3 conv to the feature
width, global pooling and an MLP classifier. Its outputs on every fixed
training view are computed once and cached too, so distillation costs about
what plain training costs.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from nas.data.dataset import Dataset, Views
from nas.errors import TrainError
from nas.model.blocks import ConvBNAct
from nas.model.builder import Student
from nas.model.decode import decode
from nas.model.genome import Genome
from nas.model.recipe import TeacherConfig, nearest
from nas.model.space import Space
from nas.store.runs import Store, TeacherRecord, bytes_to_state, state_to_bytes
from nas.train.distill import Batches, EpochCallback, TeacherBank, accuracy, make_loss, predict, train

FORMAT = 1


@dataclass(frozen=True)
class Teacher:
    """A trained, frozen teacher and what is known about it."""

    model: nn.Module
    fingerprint: str
    feature_dim: int
    val_accuracy: float
    test_accuracy: float
    cached: bool


class TorchvisionTeacher(nn.Module):
    """torchvision trunk -> 3x3 conv to `feature_dim` -> pool (the feature) -> MLP classifier."""

    def __init__(self, name: str, classes: int, feature_dim: int, weights: str) -> None:
        super().__init__()
        self.trunk = _trunk(_torchvision_model(name, weights))
        with torch.no_grad():
            width = self.trunk.eval()(torch.zeros(1, 3, 64, 64)).shape[1]
        self.project = ConvBNAct(width, feature_dim, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.SiLU(),
                                        nn.Dropout(0.2), nn.Linear(feature_dim, classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.pool(self.project(self.trunk(x))).flatten(1)
        return feature, self.classifier(feature)


def _torchvision_model(name: str, weights: str) -> nn.Module:
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if name not in names:
        raise TrainError(f"teacher.model: unknown torchvision classification model {name!r}"
                         f"{nearest(name, names)}")
    if weights != "pretrained":
        model = torchvision.models.get_model(name, weights=None)
        return _load_weights(model, Path(weights), name) if weights != "none" else model
    try:
        return torchvision.models.get_model(name, weights="DEFAULT")
    except Exception as error:  # urllib/SSL/OS errors differ by platform
        raise TrainError(f"teacher.weights = 'pretrained': cannot get torchvision's {name} weights "
                         f"(offline?): {error}; download them once online or pass a weights "
                         f"file") from None


def _load_weights(model: nn.Module, path: Path, name: str) -> nn.Module:
    """Load a state dict saved from the same torchvision model (weights_only)."""
    if not path.is_file():
        raise TrainError(f"teacher.weights: no such file {str(path)!r}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle, zip, EOF, index and runtime errors alike
        raise TrainError(f"teacher.weights: {path} is not a state_dict file that torch.load can "
                         f"read with weights_only=True ({type(error).__name__})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError, AttributeError) as error:
        first = str(error).strip().splitlines()
        raise TrainError(f"teacher.weights: {path} does not fit torchvision's {name}: "
                         f"{' '.join(line.strip() for line in first[:3])[:300]}") from None
    return model


def _trunk(model: nn.Module) -> nn.Module:
    """The convolutional feature extractor of a torchvision classifier."""
    if isinstance(getattr(model, "features", None), nn.Module):
        return model.features
    children = dict(model.named_children())
    if "avgpool" in children and "fc" in children:
        return nn.Sequential(*(m for n, m in children.items() if n not in ("avgpool", "fc")))
    raise TrainError(f"teacher.model: {type(model).__name__} has no convolutional trunk we "
                     f"know how to use (features, or layers before avgpool/fc)")


def feature_dim(config: TeacherConfig, space: Space) -> int:
    return config.feature_dim or space.model.head


def build_teacher(config: TeacherConfig, space: Space, classes: int) -> nn.Module:
    """An untrained teacher as its spec describes it."""
    width = feature_dim(config, space)
    if config.kind == "torchvision":
        return TorchvisionTeacher(config.model, classes, width, config.weights)
    genome = Genome.parse(config.genome, config.attention)
    return Student(decode(genome, replace(space.model, head=width), classes=classes))


def fingerprint(config: TeacherConfig, space: Space, data: Dataset, views: Views) -> str:
    """Key of a trained teacher: its spec, the data and split, the views and the recipe."""
    recipe = {
        "format": FORMAT, "teacher": asdict(config), "feature_dim": feature_dim(config, space),
        "model": asdict(space.model) if config.kind == "genome" else None,
        "data": data.fingerprint, "views": views.fingerprint, "classes": len(data.classes),
        "train": asdict(replace(space.train, epochs=config.epochs, lr=config.lr,
                                batch_size=config.batch_size)),
        "weights_file": _file_digest(config.weights),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _file_digest(weights: str) -> str | None:
    """Content hash of a weights file, so replacing the file retrains the teacher."""
    path = Path(weights)
    if weights in ("none", "pretrained") or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def get_teacher(space: Space, data: Dataset, views: Views, store: Store, device: torch.device,
                callbacks: tuple[EpochCallback, ...] = ()) -> Teacher:
    """The cached teacher for this spec and data, or train it now and cache it."""
    config = space.teacher
    key = fingerprint(config, space, data, views)
    record = store.get_teacher(key)
    if record is not None:  # the stored weights replace any initial ones: no file, no network
        model = build_teacher(replace(config, weights="none"), space, len(data.classes))
        model.load_state_dict(bytes_to_state(record.weights))
        return Teacher(model.to(device).eval(), key, feature_dim(config, space),
                       record.val_accuracy, record.test_accuracy, cached=True)
    torch.manual_seed(0)  # the same spec and data give the same teacher on every machine run
    model = build_teacher(config, space, len(data.classes))
    if config.kind == "torchvision":
        _check_input(model, config.model, data.image_size)
    recipe = replace(space.train, lr=config.lr, batch_size=config.batch_size)
    batches = Batches(views.images.to(device), views.labels.to(device), data.mean, data.std)
    result = train(model.to(device), batches, data.val, recipe, epochs=config.epochs, seed=0,
                   device=device, loss_fn=make_loss(None), callbacks=callbacks)
    if result.state is None:
        raise TrainError(f"teacher {config.kind} training stopped: loss became NaN at epoch 1")
    model.load_state_dict(result.state)
    test = accuracy(model, data.test, data.mean, data.std, device)
    store.put_teacher(TeacherRecord(key, {**asdict(config), "feature_dim": feature_dim(config, space)},
                                    result.val_accuracy or 0.0, test,
                                    state_to_bytes(result.state), result.history))
    return Teacher(model.eval(), key, feature_dim(config, space), result.val_accuracy or 0.0, test,
                   cached=False)


def _check_input(model: nn.Module, name: str, size: tuple[int, int]) -> None:
    """Refuse an input size a torchvision trunk cannot take (its pools shrink it to nothing)."""
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(2, 3, *size))
    except RuntimeError as error:
        raise TrainError(f"teacher.model: {name} cannot take {size[0]}x{size[1]} inputs "
                         f"({str(error).strip().splitlines()[0][:200]}); use a larger --image-size "
                         f"or another model") from None


def teacher_bank(teacher: Teacher, views: Views, data: Dataset, store: Store,
                 device: torch.device) -> TeacherBank:
    """Teacher features and logits for every training view, cached in the store."""
    key = f"bank:{teacher.fingerprint}:{views.fingerprint}"
    blob = store.get_blob(key)
    if blob is not None:
        saved = torch.load(io.BytesIO(blob), weights_only=True)
        if saved["features"].shape[0] == len(views.labels):
            return TeacherBank(saved["features"], saved["logits"])
    features, logits = predict(teacher.model, views.images, data.mean, data.std, device)
    buffer = io.BytesIO()
    torch.save({"features": features, "logits": logits}, buffer)
    store.put_blob(key, buffer.getvalue())
    return TeacherBank(features, logits)
