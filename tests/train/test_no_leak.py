"""Why distilled students validate higher than they test is not a leak: the teacher, at its own
input size, trains on exactly the student's training images (subset included), or with
`images = "all"` on every training image, and never on a validation or test image. Each file
here is one flat colour that names it, at any size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas.data.dataset import load_data
from nas.data.splits import Split
from nas.model.space import parse_space
from nas.train import teacher_data
from tests.training import space_text

CLASSES, TRAIN, TEST = 3, 10, 2


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Flat-colour PNGs: red = the file's number, green = its class (PNG: lossless)."""
    root = tmp_path_factory.mktemp("colours")
    number = 0
    for split, count in (("train", TRAIN), ("test", TEST)):
        for label in range(CLASSES):
            (root / split / f"c{label}").mkdir(parents=True)
            for i in range(count):
                pixels = np.zeros((8, 8, 3), dtype=np.uint8)
                pixels[..., 0], pixels[..., 1] = number, 80 * label
                Image.fromarray(pixels).save(root / split / f"c{label}" / f"{i}.png")
                number += 1
    return root


def ids(images: torch.Tensor) -> set[int]:
    """The file numbers of flat-colour images (the red channel's value, at any size)."""
    return {int(red) for red in images[:, 0].flatten(1).median(dim=1).values}


def test_teacher_trains_on_the_students_training_images_only(folder: Path, tmp_path: Path) -> None:
    sections = {"train": {"train_per_class": 4, "val_per_class": 3},
                "train.augment": {"views": ["hflip"]},
                "teacher": {"kind": "torchvision", "model": "resnet18", "image_size": 16}}
    space = parse_space(space_text(**sections), str(folder / "space.toml"))
    data = load_data(str(folder), (8, 8), **space.train.split_kwargs(), cache_dir=tmp_path)
    inputs = teacher_data.teacher_inputs(space, str(folder), data, cache_dir=tmp_path)
    student = {name: ids(getattr(data, name).images) for name in ("train", "val", "test")}
    teacher = {name: ids(getattr(inputs.data, name).images) for name in ("train", "val", "test")}
    assert tuple(inputs.views.images.shape[-2:]) == (16, 16)
    assert teacher == student
    assert ids(inputs.views.images) == student["train"]            # every view of every row
    assert ids(inputs.student_views.images) == student["train"]
    assert len(student["train"]) == CLASSES * 4 and len(student["val"]) == CLASSES * 3
    assert not student["train"] & student["val"] and not student["test"] & (student["train"] | student["val"])


def test_a_teacher_of_every_image_trains_on_the_whole_training_split(folder: Path,
                                                                     tmp_path: Path) -> None:
    """`images = "all"`: every training image but the student's validation ones, no views;
    it still labels exactly the student's views."""
    sections = {"train": {"train_per_class": 4, "val_per_class": 3},
                "train.augment": {"views": ["hflip"]},
                "teacher": {"kind": "torchvision", "model": "resnet18", "image_size": 16,
                            "images": "all"}}
    space = parse_space(space_text(**sections), str(folder / "space.toml"))
    data = load_data(str(folder), (8, 8), **space.train.split_kwargs(), cache_dir=tmp_path)
    inputs = teacher_data.teacher_inputs(space, str(folder), data, cache_dir=tmp_path)
    student = {name: ids(getattr(data, name).images) for name in ("train", "val", "test")}
    fit = {name: ids(getattr(inputs.fit, name).images) for name in ("train", "val", "test")}
    assert (fit["val"], fit["test"]) == (student["val"], student["test"])
    assert fit["train"] == set(range(CLASSES * TRAIN)) - student["val"] > student["train"]
    assert len(inputs.fit_views.labels) == len(fit["train"]) == CLASSES * (TRAIN - 3)
    assert ids(inputs.views.images) == student["train"] and len(inputs.views.labels) == 2 * CLASSES * 4


def test_ids_read_what_was_written(folder: Path, tmp_path: Path) -> None:
    data = load_data(str(folder), (8, 8), cache_dir=tmp_path)
    every = ids(torch.cat([data.train.images, data.val.images, data.test.images]))
    assert every == set(range(CLASSES * (TRAIN + TEST)))
    assert isinstance(data.train, Split)
