"""Shared test fixtures. Data: small real images written with PIL, never a download."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# pytest-xdist's workers get COLUMNS=80 and LINES=24, which `nas` rightly reads as a terminal's
# width; the tests check what a file or a pipe gets (whole lines), as in a plain `pytest` run.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread() -> None:
    """Train and count on one thread, as `nas` does by default: on a busy 2-core machine two
    spinning OpenMP threads made some tests 10x slower."""
    import torch

    torch.set_num_threads(1)


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return np.rint(bunch.images * (255 / 16)).astype(np.uint8), bunch.target


def digit_images(digit: int, count: int, start: int = 0) -> list[np.ndarray]:
    """Images `start .. start+count` of `digit` from scikit-learn's digits, as 8x8x3 uint8."""
    grey, target = _digits()
    chosen = grey[target == digit][start : start + count]
    return [np.repeat(g[:, :, None], 3, axis=2) for g in chosen]


def write_class(folder: Path, digit: int, count: int, start: int = 0) -> None:
    """Write `count` digit images into `folder`, alternating lossless PNG and JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, pixels in enumerate(digit_images(digit, count, start)):
        suffix = "png" if i % 2 == 0 else "jpg"
        Image.fromarray(pixels).save(folder / f"{i:03d}.{suffix}")


def make_image_folder(root: Path, classes: int, train: int, test: int, prefix: str) -> Path:
    """A real ImageFolder of digits 0..classes-1: `train` and `test` images per class."""
    for digit in range(classes):
        write_class(root / "train" / f"{prefix}{digit}", digit, train)
        write_class(root / "test" / f"{prefix}{digit}", digit, test, start=train)
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A real ImageFolder: classes c0 c1 c2 (digits 0-2), 6 train and 3 test images each."""
    return make_image_folder(tmp_path / "folder", 3, 6, 3, "c")
