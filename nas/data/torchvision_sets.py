"""torchvision data sets (CIFAR, MNIST, SVHN...) as uint8 tensors, downloaded once into the cache."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.data.memory import pool_bytes, require
from nas.data.splits import Pool, Progress, Split, resize
from nas.errors import DataError

TORCHVISION = {  # name -> (torchvision class, native (H, W), array layout)
    "cifar10": ("CIFAR10", (32, 32), "nhwc"),
    "cifar100": ("CIFAR100", (32, 32), "nhwc"),
    "mnist": ("MNIST", (28, 28), "nhw"),
    "fashionmnist": ("FashionMNIST", (28, 28), "nhw"),
    "svhn": ("SVHN", (32, 32), "nchw"),
}


def decode_torchvision(name: str, size: tuple[int, int], root: Path, progress: Progress | None) -> Pool:
    """Load a torchvision set (downloading into `root` when missing) into uint8 tensors."""
    import torchvision.datasets

    class_name, _, layout = TORCHVISION[name]
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
    return Pool(tuple(classes), splits[0], splits[1], hasher.hexdigest(), skipped=())


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
    require({"decoded images": pool_bytes(len(raw), size, copies=2)}, f"resizing {len(raw)} images",
            DataError)
    images = torch.from_numpy(raw)
    if layout == "nhwc":
        images = images.permute(0, 3, 1, 2)
    elif layout == "nhw":
        images = images[:, None]
    images = resize(images, size).expand(-1, 3, -1, -1).contiguous()
    return Split(images, torch.from_numpy(labels))
