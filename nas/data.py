"""Data sets as in-memory uint8 tensors with honest, fixed splits, cached on disk.

Sources: scikit-learn's digits, an ImageFolder directory, or a torchvision data
set. Validation is carved out of the training data before any augmentation and
test is never used for selection (the report did both wrong, see SEED.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import pickle
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from nas import augment
from nas.config import AugmentConfig, nearest
from nas.errors import DataError

Progress = Callable[[str, int, int], None]
Triple = tuple[float, float, float]

_FORMAT = 1  # bump when decoding or the cache layout changes
_TEST_FRACTION = 0.2
_TEST_SEED = 0  # fixed: the test split never depends on split_seed
_MAX_SIDE = 4096
_FOLDER_SIZE = (185, 160)  # the report's H x W
_TORCHVISION = {  # name -> (torchvision class, native (H, W), array layout)
    "cifar10": ("CIFAR10", (32, 32), "nhwc"),
    "cifar100": ("CIFAR100", (32, 32), "nhwc"),
    "mnist": ("MNIST", (28, 28), "nhw"),
    "fashionmnist": ("FashionMNIST", (28, 28), "nhw"),
    "svhn": ("SVHN", (32, 32), "nchw"),
}
NAMES = ("digits", *_TORCHVISION)
_UNREADABLE = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    Image.DecompressionBombError,
)
_BAD_CACHE = (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError)


@dataclass(frozen=True)
class Split:
    """Images and their labels; images are uint8 (N, 3, H, W), contiguous."""

    images: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class Dataset:
    """A source decoded at one size, split into train / val / test, with train statistics."""

    name: str
    classes: tuple[str, ...]
    image_size: tuple[int, int]
    train: Split
    val: Split
    test: Split
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    fingerprint: str
    skipped: int


@dataclass(frozen=True)
class Views:
    """Rows [0, N) are the originals, then one block of N rows per augmented view."""

    images: torch.Tensor
    labels: torch.Tensor
    fingerprint: str


@dataclass(frozen=True)
class _Pool:
    """A decoded source before the validation split: the unit cached on disk."""

    classes: tuple[str, ...]
    train: Split
    test: Split
    content: str
    skipped: int


@dataclass(frozen=True)
class _Folder:
    """An ImageFolder scan: class names and (file, label) lists; test None = split ourselves."""

    root: Path
    classes: tuple[str, ...]
    train: tuple[tuple[Path, int], ...]
    test: tuple[tuple[Path, int], ...] | None


# ----------------------------------------------------------------- public API


def default_image_size(source: str) -> tuple[int, int]:
    """(H, W): digits 32x32, folders the report's 185x160, torchvision sets their native size."""
    kind = _source_kind(source)
    if kind == "digits":
        return (32, 32)
    if kind == "folder":
        return _FOLDER_SIZE
    return _TORCHVISION[kind][1]


def parse_image_size(text: str) -> tuple[int, int]:
    """'185x160' -> (185, 160); a single number means a square."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", text)
    if match is None:
        raise DataError(f"image size must look like HxW (e.g. 185x160), got '{text}'")
    height = int(match.group(1))
    return _check_size((height, int(match.group(2) or height)))


def load_data(
    source: str,
    image_size: tuple[int, int] | None = None,
    *,
    val_fraction: float = 0.2,
    split_seed: int = 0,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> Dataset:
    """Decode `source` once (cached by fingerprint), then carve a stratified validation split."""
    kind = _source_kind(source)
    size = default_image_size(source) if image_size is None else _check_size(image_size)
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
    pool = _load_pool(source, kind, size, _cache_root(cache_dir), progress)
    kept, held = stratified_split(pool.train.labels, val_fraction, split_seed, pool.classes)
    train = _take(pool.train, kept)
    mean, std = channel_stats(train.images)
    return Dataset(
        name=source if kind == "folder" else kind,
        classes=pool.classes,
        image_size=size,
        train=train,
        val=_take(pool.train, held),
        test=pool.test,
        mean=mean,
        std=std,
        fingerprint=_digest({"content": pool.content, "size": size, "val": val_fraction, "seed": split_seed}),
        skipped=pool.skipped,
    )


def build_views(
    split: Split,
    config: AugmentConfig,
    *,
    seed: int = 0,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> Views:
    """The originals plus one fixed augmented copy per view, built once and cached on disk."""
    views = augment.parse_views(config)
    fingerprint = _views_fingerprint(split, config, seed)
    labels = split.labels.repeat(len(views) + 1)
    if not views:
        return Views(split.images, labels, fingerprint)
    path = _cache_root(cache_dir) / "views" / f"{fingerprint}.pt"
    blob = _read_cache(path, ("images",))
    expected = (len(views) * split.images.shape[0], *split.images.shape[1:])
    if blob is not None and tuple(blob["images"].shape) == expected:
        blocks = blob["images"]
    else:
        blocks = augment.augment_views(split.images, views, config, seed, progress)
        _write_cache(path, {"format": _FORMAT, "images": blocks})
    return Views(torch.cat([split.images, blocks]), labels, fingerprint)


def normalize(
    images: torch.Tensor, mean: tuple[float, float, float], std: tuple[float, float, float]
) -> torch.Tensor:
    """uint8 images (..., 3, H, W) -> float32 (x / 255 - mean) / std, per channel."""
    if images.dtype != torch.uint8:
        raise DataError(f"normalize expects uint8 images, got {images.dtype}")
    if min(std) <= 0:
        raise DataError(f"normalize needs std > 0, got {std}")
    m = torch.tensor(mean, dtype=torch.float32, device=images.device).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=images.device).view(3, 1, 1)
    return (images.to(torch.float32) / 255 - m) / s


def stratified_split(
    labels: torch.Tensor, fraction: float, seed: int, classes: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class hold out round(n * fraction) images (at least 1, never all): sorted (kept, held)
    indices."""
    generator = torch.Generator().manual_seed(seed)
    kept, held = [], []
    for label, name in enumerate(classes):
        index = (labels == label).nonzero().flatten()
        n = index.numel()
        if n < 2:
            raise DataError(f"class '{name}' has {n} image(s) to split; need at least 2 (one on each side)")
        n_held = min(max(1, math.floor(n * fraction + 0.5)), n - 1)
        shuffled = index[torch.randperm(n, generator=generator)]
        held.append(shuffled[:n_held])
        kept.append(shuffled[n_held:])
    return torch.cat(kept).sort().values, torch.cat(held).sort().values


def channel_stats(images: torch.Tensor) -> tuple[Triple, Triple]:
    """Exact per-channel mean and std in [0, 1] units; std is floored at one grey level."""
    count = images.shape[0] * images.shape[2] * images.shape[3]
    rows = max(1, 2**22 // max(1, images[0].numel()))
    total = torch.zeros(3, dtype=torch.int64)
    squares = torch.zeros(3, dtype=torch.int64)
    for chunk in images.split(rows):
        wide = chunk.to(torch.int64)
        total += wide.sum(dim=(0, 2, 3))
        squares += (wide * wide).sum(dim=(0, 2, 3))
    mean = [int(s) / count / 255 for s in total]
    var = [(int(q) * count - int(s) ** 2) / count**2 for s, q in zip(total, squares, strict=True)]
    std = [max(math.sqrt(v), 1.0) / 255 for v in var]
    return (mean[0], mean[1], mean[2]), (std[0], std[1], std[2])


# ----------------------------------------------------------------- sources


def _source_kind(source: str) -> str:
    """'digits', a torchvision name, or 'folder' for anything path-like."""
    if source.lower() in NAMES:
        return source.lower()
    if Path(source).expanduser().exists() or any(c in source for c in "/\\.~"):
        return "folder"
    raise DataError(
        f"unknown data source '{source}'{nearest(source.lower(), NAMES)}:"
        f" expected one of {', '.join(NAMES)}, or an image folder path"
    )


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    """A valid (H, W) tuple, or a DataError naming the rule."""
    if len(size) != 2 or not all(isinstance(s, int) and 0 < s <= _MAX_SIDE for s in size):
        raise DataError(f"image size must be two integers in 1..{_MAX_SIDE}, got {tuple(size)}")
    return (size[0], size[1])


def _load_pool(source: str, kind: str, size: tuple[int, int], root: Path, progress: Progress | None) -> _Pool:
    """The decoded source from the cache, or decoded now and then cached."""
    folder = _scan_folder(Path(source).expanduser()) if kind == "folder" else None
    key = _digest({"kind": kind, "size": size, "files": _folder_key(folder)})
    path = root / "data" / f"{kind}-{key}.pt"
    blob = _read_cache(path, _POOL_KEYS)
    if blob is not None:
        return _pool_from_blob(blob)
    if folder is not None:
        pool = _decode_folder(folder, size, progress)
    elif kind == "digits":
        pool = _decode_digits(size)
    else:
        pool = _decode_torchvision(kind, size, root / "torchvision", progress)
    _write_cache(path, _pool_to_blob(pool))
    return pool


def _decode_digits(size: tuple[int, int]) -> _Pool:
    """scikit-learn's 8x8 digits: 0..16 greys scaled to 0..255, resized, three channels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    grey = np.rint(bunch.images * (255 / 16)).astype(np.uint8)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    content = hashlib.sha256(b"digits" + grey.tobytes() + labels.numpy().tobytes()).hexdigest()
    images = _resize(torch.from_numpy(grey)[:, None], size).expand(-1, 3, -1, -1).contiguous()
    classes = tuple(str(c) for c in range(10))
    return _split_test(Split(images, labels), classes, content, skipped=0)


def _split_test(pool: Split, classes: tuple[str, ...], content: str, skipped: int) -> _Pool:
    """Carve the fixed stratified test split (20 %, seed 0) for sources that have none."""
    kept, held = stratified_split(pool.labels, _TEST_FRACTION, _TEST_SEED, classes)
    return _Pool(classes, _take(pool, kept), _take(pool, held), content, skipped)


def _resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of uint8 (N, C, H, W), in chunks to bound memory."""
    if tuple(images.shape[-2:]) == size:
        return images.contiguous()
    chunks = [
        v2.functional.resize(chunk, list(size), v2.InterpolationMode.BILINEAR, antialias=True)
        for chunk in images.split(4096)
    ]
    return torch.cat(chunks).contiguous()


def _take(split: Split, index: torch.Tensor) -> Split:
    """The rows `index` of a split, contiguous."""
    return Split(split.images[index].contiguous(), split.labels[index].contiguous())


# ----------------------------------------------------------------- image folders


def _scan_folder(root: Path) -> _Folder:
    """Find the classes and files of `root/{train,test}/<class>/*` or `root/<class>/*`."""
    if not root.is_dir():
        raise DataError(f"{root}: {'not a folder' if root.exists() else 'data folder not found'}")
    train_dir, test_dir = root / "train", root / "test"
    if train_dir.is_dir() != test_dir.is_dir():
        found, missing = ("train", "test") if train_dir.is_dir() else ("test", "train")
        raise DataError(f"{root}: has {found}/ but no {missing}/ folder")
    if not train_dir.is_dir():
        classes = _class_dirs(root)
        return _Folder(root, classes, _class_files(root, classes), None)
    classes, test_classes = _class_dirs(train_dir), _class_dirs(test_dir)
    if classes != test_classes:
        only_train = sorted(set(classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(classes))
        raise DataError(
            f"{root}: train and test class folders differ:"
            f" only in train {only_train}, only in test {only_test}"
        )
    return _Folder(root, classes, _class_files(train_dir, classes), _class_files(test_dir, classes))


def _class_dirs(folder: Path) -> tuple[str, ...]:
    """Sorted visible sub-folder names of `folder`: the classes, ImageFolder style."""
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(f"{folder}: no class folders (expected {folder}/<class>/<images>)")
    return tuple(names)


def _class_files(folder: Path, classes: tuple[str, ...]) -> tuple[tuple[Path, int], ...]:
    """Every visible file below each class folder, sorted, with its label."""
    files = []
    for label, name in enumerate(classes):
        found = []
        for dirpath, dirnames, filenames in os.walk(folder / name, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
        if not found:
            raise DataError(f"{folder / name}: empty class folder '{name}'")
        files += [(path, label) for path in found]
    return tuple(files)


def _folder_key(folder: _Folder | None) -> list[Any]:
    """Cheap cache key of a folder: its resolved root, relative paths, sizes and mtimes."""
    if folder is None:
        return []
    entries: list[Any] = [str(folder.root.resolve())]
    for path, _ in folder.train + (folder.test or ()):
        stat = path.stat()
        entries.append([path.relative_to(folder.root).as_posix(), stat.st_size, stat.st_mtime_ns])
    return entries


def _decode_folder(folder: _Folder, size: tuple[int, int], progress: Progress | None) -> _Pool:
    """Decode every file once, hashing relative paths + bytes; unreadable files are counted."""
    hasher = hashlib.sha256(b"folder")
    total = len(folder.train) + len(folder.test or ())
    train, bad_train = _decode_files(folder, folder.train, size, hasher, progress, 0, total)
    if folder.test is None:
        return _split_test(train, folder.classes, hasher.hexdigest(), bad_train)
    start = len(folder.train)
    test, bad_test = _decode_files(folder, folder.test, size, hasher, progress, start, total)
    return _Pool(folder.classes, train, test, hasher.hexdigest(), bad_train + bad_test)


def _decode_files(
    folder: _Folder,
    files: tuple[tuple[Path, int], ...],
    size: tuple[int, int],
    hasher: Any,
    progress: Progress | None,
    start: int,
    total: int,
) -> tuple[Split, int]:
    """Decode `files` into a Split; a class left with no readable image is a DataError."""
    arrays, labels, skipped = [], [], 0
    for done, (path, label) in enumerate(files, start + 1):
        data = _read_bytes(path)
        hasher.update(path.relative_to(folder.root).as_posix().encode() + b"\0")
        hasher.update(len(data).to_bytes(8, "little") + data)
        pixels = _decode_image(data, size) if data else None
        if pixels is None:
            skipped += 1
        else:
            arrays.append(pixels)
            labels.append(label)
        if progress is not None:
            progress("decode", done, total)
    _check_readable(files, labels, folder.classes)
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return Split(images, torch.tensor(labels, dtype=torch.int64)), skipped


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, or b'' when it vanished or cannot be read (counted as skipped)."""
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _decode_image(data: bytes, size: tuple[int, int]) -> np.ndarray | None:
    """PIL decode -> RGB -> bilinear resize to (H, W); None when the file is not a whole image."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = img.convert("RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR)
    except _UNREADABLE:
        return None
    return np.asarray(rgb)


def _check_readable(files: tuple[tuple[Path, int], ...], labels: list[int], classes: tuple[str, ...]) -> None:
    """A class whose files all failed to decode is a DataError naming its folder."""
    missing = sorted(set(range(len(classes))) - set(labels))
    if missing:
        folder = next(path.parent for path, label in files if label == missing[0])
        raise DataError(f"{folder}: none of the files of class '{classes[missing[0]]}' is readable")


# ----------------------------------------------------------------- torchvision


def _decode_torchvision(name: str, size: tuple[int, int], root: Path, progress: Progress | None) -> _Pool:
    """Load a torchvision set (downloading into `root` when missing) into uint8 tensors."""
    import torchvision.datasets

    class_name, _, layout = _TORCHVISION[name]
    factory = getattr(torchvision.datasets, class_name)
    hasher = hashlib.sha256(name.encode())
    splits = []
    for step, train in enumerate((True, False)):
        if progress is not None:
            progress(f"load {name}", step, 2)
        try:
            part = factory(str(root), **_split_arg(name, train), download=True)
        except (OSError, RuntimeError) as error:  # URLError is an OSError
            raise DataError(
                f"cannot download {name} (offline?): {error}; put the files under {root}"
            ) from error
        splits.append(_torchvision_split(part, layout, size, hasher))
    classes = getattr(part, "classes", None) or [str(c) for c in range(10)]
    return _Pool(tuple(classes), splits[0], splits[1], hasher.hexdigest(), skipped=0)


def _split_arg(name: str, train: bool) -> dict[str, Any]:
    """SVHN takes split="train"/"test"; the others take train=True/False."""
    if name == "svhn":
        return {"split": "train" if train else "test"}
    return {"train": train}


def _torchvision_split(part: Any, layout: str, size: tuple[int, int], hasher: Any) -> Split:
    """A torchvision data set's raw array -> uint8 (N, 3, H, W); the raw bytes are hashed."""
    raw = np.ascontiguousarray(np.asarray(part.data), dtype=np.uint8)
    labels = np.asarray(part.targets if hasattr(part, "targets") else part.labels, dtype=np.int64)
    hasher.update(raw.tobytes() + labels.tobytes())
    images = torch.from_numpy(raw)
    if layout == "nhwc":
        images = images.permute(0, 3, 1, 2)
    elif layout == "nhw":
        images = images[:, None]
    images = _resize(images, size).expand(-1, 3, -1, -1).contiguous()
    return Split(images, torch.from_numpy(labels))


# ----------------------------------------------------------------- cache


def _cache_root(cache_dir: Path | None) -> Path:
    """`cache_dir`, else $NAS_CACHE_DIR, else ~/.cache/nas."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("NAS_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nas"


def _digest(record: dict[str, Any]) -> str:
    """sha256 hex of a JSON record (with the cache format), the fingerprints' common form."""
    text = json.dumps({"format": _FORMAT, **record}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _views_fingerprint(split: Split, config: AugmentConfig, seed: int) -> str:
    """sha256 over the split's pixels and labels, the AugmentConfig and the seed."""
    hasher = hashlib.sha256(str(tuple(split.images.shape)).encode())
    hasher.update(split.images.contiguous().numpy())
    hasher.update(split.labels.contiguous().numpy())
    config_record = dataclasses.asdict(config)
    return _digest({"split": hasher.hexdigest(), "augment": config_record, "seed": seed})


def _read_cache(path: Path, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """A cache file's dict, or None when absent, unreadable, of another format or incomplete."""
    try:
        blob = torch.load(path, weights_only=True)
    except _BAD_CACHE:  # includes FileNotFoundError
        return None
    if not isinstance(blob, dict) or blob.get("format") != _FORMAT:
        return None
    return blob if all(key in blob for key in keys) else None


def _write_cache(path: Path, blob: dict[str, Any]) -> None:
    """Write atomically (temp file + rename) so concurrent readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(blob, tmp)
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot write the data cache {path}: {error} (set NAS_CACHE_DIR)") from error


_POOL_KEYS = (
    "classes",
    "content",
    "skipped",
    "train_images",
    "train_labels",
    "test_images",
    "test_labels",
)


def _pool_to_blob(pool: _Pool) -> dict[str, Any]:
    """A pool as a dict of tensors, strings and ints (loadable with weights_only=True)."""
    return {
        "format": _FORMAT,
        "classes": list(pool.classes),
        "content": pool.content,
        "skipped": pool.skipped,
        "train_images": pool.train.images,
        "train_labels": pool.train.labels,
        "test_images": pool.test.images,
        "test_labels": pool.test.labels,
    }


def _pool_from_blob(blob: dict[str, Any]) -> _Pool:
    """Inverse of `_pool_to_blob`."""
    train = Split(blob["train_images"], blob["train_labels"])
    test = Split(blob["test_images"], blob["test_labels"])
    return _Pool(tuple(blob["classes"]), train, test, blob["content"], blob["skipped"])
