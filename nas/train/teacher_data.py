"""What the teacher reads: its resolved spec, its input size, and views shared with the student.

The teacher sees the same augmented draw of every image as the student, at its own size:
the views are drawn once at the teacher's size, and the student's augmented blocks are those
very images resized (its originals are the student-size decode, like its val and test).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from nas.data.cache import cache_root, cached_images, digest
from nas.data.dataset import NAMES, Dataset, Views, build_views, default_image_size, load_data
from nas.data.splits import Progress, resize
from nas.model.recipe import TeacherConfig, TrainConfig, fit_recipe
from nas.model.space import Space
from nas.model.teachers import TEACHERS

PHOTO_TEACHER = {"kind": "lite", "model": "efficientnet_lite0", "weights": "pretrained",
                 "feature": "trunk"}     # the trunk feature: every gain over CE (bench/RESULTS.md)


@dataclass(frozen=True)
class TeacherInputs:
    """The resolved teacher spec, the data at its size, the student's views at that size (what
    the teacher labels) and at the student's, and what the teacher trains on: `data` and `views`,
    or with `images = "all"` every image of the training split, without views."""

    config: TeacherConfig
    data: Dataset
    views: Views
    student_views: Views
    fit: Dataset
    fit_views: Views


def is_photo(source: str) -> bool:
    """Photo data: an image folder or a torchvision set (everything but the embedded digits)."""
    return source.lower() != "digits"


def resolve(config: TeacherConfig, source: str) -> TeacherConfig:
    """kind 'auto' -> the pretrained Lite0 on photos (its trunk's feature distilled), the genome
    teacher on digits;
    train 'auto' -> 'head' (frozen trunk) for pretrained trunks, else 'all'."""
    if config.kind == "auto":
        config = replace(config, **PHOTO_TEACHER) if is_photo(source) else replace(config, kind="genome")
    if config.train == "auto":
        frozen = TEACHERS[config.kind].has_trunk and config.weights != "none"
        config = replace(config, train="head" if frozen else "all")
    return config


def teacher_size(config: TeacherConfig, source: str, student: tuple[int, int]) -> tuple[int, int]:
    """`image_size`, else the kind's default side (224 for pretrained trunks; genome teachers: the
    student's size), capped at the source's native size: upsampling adds no information, only
    pixels to train on (digits: 32x32)."""
    if config.image_size:
        return (config.image_size, config.image_size)
    default = TEACHERS[config.kind].side
    side = student if default is None else (default, default)
    if source.lower() in NAMES:   # digits and torchvision sets have a native size
        native = default_image_size(source)
        return (min(side[0], native[0]), min(side[1], native[1]))
    return side


def teacher_inputs(space: Space, source: str, data: Dataset, *, cache_dir: Path | None = None,
                   progress: Progress | None = None) -> TeacherInputs:
    """Resolve the teacher, load the data at its size and draw the views there, once."""
    config = resolve(space.teacher, source)
    size = teacher_size(config, source, data.image_size)

    def at_size(train: TrainConfig) -> tuple[Dataset, Views]:
        own = data if size == data.image_size and train == space.train else load_data(
            source, size, **train.split_kwargs(), cache_dir=cache_dir, progress=progress)
        return own, build_views(own.train, train.augment, seed=train.split_seed,
                                cache_dir=cache_dir, progress=progress)

    own, views = at_size(space.train)
    shared = views if own is data else student_views(data, views, cache_dir)
    fit = fit_recipe(space.train, config)
    fit_data, fit_views = (own, views) if fit == space.train else at_size(fit)
    return TeacherInputs(config, own, views, shared, fit_data, fit_views)


def student_views(data: Dataset, teacher_views: Views, cache_dir: Path | None = None) -> Views:
    """The student's originals, then the teacher's augmented blocks resized to the student's
    size; the resized blocks are cached on disk beside the views (every search worker reads
    them)."""
    count = len(data.train.labels)
    fingerprint = digest({"teacher_views": teacher_views.fingerprint, "data": data.fingerprint})
    blocks = cached_images(cache_root(cache_dir) / "views" / f"{fingerprint}.pt",
                           (len(teacher_views.labels) - count, 3, *data.image_size),
                           lambda: resize(teacher_views.images[count:], data.image_size))
    return Views(torch.cat([data.train.images, blocks]), teacher_views.labels, fingerprint)
