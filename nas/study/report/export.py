"""Checkpoints of chosen students, ONNX export, and `nas.load`.

A checkpoint is a plain dict saved with torch.save: everything needed to rebuild
the student without the space file, the data or the database (genome, model
settings, per-stage overrides, classes, input shape, mean/std), its weights and
its provenance (metrics, teacher, study, trial, versions). `load` reads it back
with `weights_only=True`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nas._version import __version__
from nas.atomic import atomic_path
from nas.errors import CheckpointError, NasError, ReportError
from nas.model.builder import Student
from nas.model.complexity import count_arch
from nas.model.decode import decode
from nas.model.genome import Genome
from nas.model.objectives import DEFAULT_OBJECTIVES
from nas.model.space import InputShape, ModelSettings, Space, StageOverride, check_normalization
from nas.model.weights import UnreadableWeights, load_weights
from nas.store.runs import RunRecord, Store, bytes_to_state
from nas.study.pareto import TrialRow, best_row
from nas.study.report.summary import StudyData

FORMAT = 1
# How `nas.data` made the pixels the model was trained on, as timm's pretrained_cfg records it:
# RGB uint8 x * pixel_scale, then (x - mean) / std; images resized bilinear, antialiased
# (nas.data.splits.resize, nas.data.folders).
PREPROCESS = {"pixel_scale": 1 / 255, "interpolation": "bilinear", "antialias": True}
KIND = "nas.student"
REQUIRED = ("format", "kind", "genome", "attention", "model", "overrides", "state_dict", "classes",
            "input", "mean", "std")


# ----------------------------------------------------------------- choosing a trial


def best_trial(rows: Sequence[TrialRow],
               objectives: Sequence[str] = DEFAULT_OBJECTIVES) -> TrialRow:
    """`pareto.best_row` over the study's `objectives`, or an error when no trained trial fits
    the study's budget."""
    best = best_row(rows, objectives)
    if best is None:
        raise ReportError("no trained trial within the study's budget to export")
    return best


def choose_trial(data: StudyData, which: str) -> TrialRow:
    """`best` or a trial number; a trial that was never trained is an error saying why."""
    if which == "best":
        return best_trial(data.rows, data.objectives)
    if not which.isdecimal():
        raise ReportError(f"export: expected `best` or a trial number, got {which!r}")
    rows = {row.trial: row for row in data.rows}
    row = rows.get(int(which))
    if row is None:
        span = f"0 to {max(rows)}" if rows else "none"
        raise ReportError(f"study {data.name!r} has no trial {which} (trials: {span})")
    if not row.trained or row.run_id is None:
        why = {"rejected": "rejected by the budget, never trained"}.get(
            row.outcome or "", f"{row.outcome or row.state.lower()}, no trained weights")
        raise ReportError(f"study {data.name!r}: trial {row.trial} was {why}; "
                         f"export `best` or a trained trial")
    return row


def trial_run(store: Store, row: TrialRow) -> RunRecord:
    """The stored run (weights included) behind a trained or reused trial."""
    run = store.get_run(int(row.run_id or 0))
    if run.status != "ok" or run.weights is None:
        raise ReportError(f"trial {row.trial}: run {run.id} has status {run.status!r} and "
                         f"{'no' if run.weights is None else 'its'} weights; nothing to export")
    return run


def retrain(space: Space, data: StudyData, store: Store, run: RunRecord, epochs: int | None,
            device: torch.device, *, seconds: float | None = None, progress: Any = None,
            callbacks: tuple[Any, ...] = ()) -> RunRecord:
    """Train the run's genome again for `epochs` (None: the space's schedule) in the study's
    context (same data, teacher), or for `seconds` of wall clock (capped at `epochs`, if given)."""
    from nas.train.experiment import prepare, train_genome

    info = data.info
    size = tuple(info["image_size"]) if info.get("image_size") else None
    ctx = prepare(space, str(info.get("data", "digits")), store, size=size, device=device,
                  progress=progress)
    genome = Genome.parse(run.genome, run.attention)
    new = train_genome(ctx, genome, epochs=epochs, seed=run.seed, study=data.name, trial=None,
                       callbacks=callbacks, seconds=seconds)
    if new.status != "ok" or new.weights is None:
        raise ReportError(f"retraining {genome} for {new.recipe['train']['epochs']} epochs ended "
                          f"with status {new.status!r}")
    return store.get_run(int(new.id or 0))  # as stored: what a later export would read


# ----------------------------------------------------------------- checkpoints


def checkpoint_from_run(run: RunRecord, trial: int | None,
                        retrained_from: RunRecord | None = None) -> dict[str, Any]:
    """The self-contained checkpoint of a stored run (its meta says how to rebuild it);
    `retrained_from` is the trial's own run when `run` retrained its genome."""
    meta, recipe = json.loads(json.dumps([run.meta, run.recipe]))  # plain types for weights_only
    if run.weights is None or not meta.get("model"):
        raise CheckpointError(f"run {run.id} has no weights or no model settings to export")
    shape = InputShape.parse(meta["input"])
    return {
        "format": FORMAT, "kind": KIND, "genome": run.genome, "attention": run.attention,
        "model": meta["model"], "overrides": meta.get("overrides", []),
        "state_dict": bytes_to_state(run.weights), "classes": list(meta["classes"]),
        "input": [shape.channels, shape.height, shape.width],
        "mean": list(meta["mean"]), "std": list(meta["std"]), **PREPROCESS,
        "metrics": {"val_accuracy": run.val_accuracy, "test_accuracy": run.test_accuracy,
                    "best_epoch": run.best_epoch},
        "flops": run.flops, "params": run.params, "seed": run.seed, "recipe": recipe,
        "teacher": meta.get("teacher"), "data": meta.get("data"), "space": meta.get("space"),
        "data_fingerprint": run.data_fingerprint,          # `nas reproduce` checks the data by it
        "study": run.study, "trial": trial, "run_id": run.id,
        "retrained": None if retrained_from is None else {
            "from_run": retrained_from.id, "epochs": recipe["train"]["epochs"],
            "seconds": recipe.get("seconds"),                  # a wall-clock schedule's
            "trial_val_accuracy": retrained_from.val_accuracy,
            "trial_test_accuracy": retrained_from.test_accuracy},
        "versions": {**meta.get("versions", {}), "exported_by": __version__},
    }


def save_checkpoint(checkpoint: dict[str, Any], path: Path) -> Path:
    """torch.save the checkpoint; the directory must exist."""
    path = Path(path)
    _check_dir(path)
    try:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)
    except (OSError, RuntimeError) as error:   # torch's writer reports some as RuntimeError
        text = error.strerror if isinstance(error, OSError) else str(error).split("strerror: ")[-1]
        reason = str(text).splitlines()[0]
        raise CheckpointError(f"{path}: cannot write the checkpoint ({reason})") from None
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, loaded with weights_only=True and checked for its keys."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        checkpoint = load_weights(path)
    except UnreadableWeights as error:
        raise CheckpointError(f"{path}: not a nas checkpoint ({error})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("kind") != KIND:
        raise CheckpointError(f"{path}: not a nas checkpoint (written by `nas export`)")
    if checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {checkpoint.get('format')!r} is not "
                              f"supported (this nas reads format {FORMAT})")
    missing = [key for key in REQUIRED if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return checkpoint


def build_student(checkpoint: dict[str, Any], where: str = "checkpoint") -> Student:
    """The untrained student a checkpoint describes (genome, settings, overrides, classes);
    altered metadata, or a genome bigger than the stored weights, is a CheckpointError."""
    try:
        genome = Genome.parse(checkpoint["genome"], checkpoint["attention"])
        settings = ModelSettings(**checkpoint["model"])
        overrides = tuple(StageOverride(**o) for o in checkpoint["overrides"])
        channels, height, width = checkpoint["input"]
        check_normalization(checkpoint["mean"], checkpoint["std"], channels, "mean/std")
        arch = decode(genome, settings, overrides, shape=InputShape(channels, height, width),
                      classes=len(checkpoint["classes"]))
        stored = sum(t.numel() for t in checkpoint["state_dict"].values())
        if count_arch(arch).params > stored:     # before allocating what the weights cannot fill
            raise ValueError(f"the genome needs {count_arch(arch).params:,} weights, the file has {stored:,}")
        return Student(arch)
    except (NasError, TypeError, ValueError, KeyError, IndexError, AttributeError, RuntimeError) as error:
        raise CheckpointError(f"{where}: metadata does not describe its student: {error}") from None


def load(path: str | Path) -> Student:
    """Rebuild a saved student in eval mode; `model.checkpoint` holds its metadata."""
    return restore(read_checkpoint(path), str(path))


def restore(checkpoint: dict[str, Any], where: str = "checkpoint") -> Student:
    """The trained student of a checkpoint dict, in eval mode, metadata in `model.checkpoint`."""
    model = build_student(checkpoint, where)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{where}: weights do not fit the genome "
                              f"{checkpoint['genome']}: {str(error).splitlines()[0]}") from None
    model.checkpoint = {k: v for k, v in checkpoint.items() if k != "state_dict"}
    return model.eval()


# ----------------------------------------------------------------- ONNX


def export_onnx(model: Student, path: Path, checkpoint: dict[str, Any]) -> Path:
    """ONNX graph: input `images` (float NCHW, normalised, dynamic batch) -> `feature`, `logits`."""
    path = Path(path)
    require_onnx(path)
    channels, height, width = checkpoint["input"]
    example = torch.zeros(1, channels, height, width)
    try:
        with warnings.catch_warnings(), atomic_path(path) as tmp:   # a kill leaves the old file whole
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            _export(model, example, tmp, path)
            _annotate(tmp, checkpoint)
    except OSError as error:
        raise CheckpointError(f"{path}: cannot write the ONNX file ({error.strerror or error})") from None
    return path


def _export(model: Student, example: torch.Tensor, tmp: Path, path: Path) -> None:
    """torch.onnx.export to `tmp`; the exporter's many error types -> CheckpointError on `path`."""
    batch = {0: "batch"}
    try:
        torch.onnx.export(_LogitsFirst(model).eval(), (example,), str(tmp), dynamo=False,
                          opset_version=17, input_names=["images"],
                          output_names=["logits", "features"],
                          dynamic_axes={"images": batch, "logits": batch, "features": batch})
    except Exception as error:  # exporter failures come as many types
        raise CheckpointError(f"{path}: ONNX export failed: {str(error).splitlines()[0]}") from None


class _LogitsFirst(torch.nn.Module):
    """The ONNX graph's outputs: `logits` first, as deployed classifiers give them, then `features`."""

    def __init__(self, student: Student) -> None:
        super().__init__()
        self.student = student

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature, logits = self.student(images, return_features=True)
        return logits, feature


def require_onnx(path: Path) -> None:
    """Refuse an ONNX export that would fail (no onnx package, no directory) before anything is written."""
    _check_dir(Path(path))
    try:
        import onnx  # noqa: F401  (the exporter and _annotate need it)
    except ImportError:
        raise CheckpointError("--onnx needs the onnx package: pip install 'nas-distill[onnx]'") from None


def _annotate(path: Path, checkpoint: dict[str, Any]) -> None:
    """Store classes, mean/std and the genome as ONNX metadata, for whoever deploys it."""
    import onnx

    graph = onnx.load(str(path))
    for key in ("genome", "attention", "classes", "mean", "std", "input", *PREPROCESS):
        entry = graph.metadata_props.add()
        entry.key, entry.value = f"nas.{key}", json.dumps(checkpoint[key])
    onnx.save(graph, str(path))


def _check_dir(path: Path) -> None:
    """Refuse to write into a directory that does not exist."""
    parent = path.expanduser().absolute().parent
    if not parent.is_dir():
        raise CheckpointError(f"{path}: directory {parent} does not exist")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory; give a file name")
