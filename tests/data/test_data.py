"""nas.data.dataset and nas.data.augment: sources, honest splits, fingerprints, caches, fixed views."""

from __future__ import annotations

import io
import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets
from PIL import Image

import nas.data.augment
import nas.data.dataset
import nas.data.folders
import nas.data.memory
from nas.data.dataset import (
    Split,
    build_views,
    default_image_size,
    load_data,
    normalize,
    parse_image_size,
    stratified_split,
)
from nas.data.splits import skipped_summary
from nas.errors import DataError, TrainError
from nas.model.recipe import AUGMENT_OPS, AugmentConfig
from tests.conftest import digit_images, write_class

HYMENOPTERA = Path(__file__).resolve().parents[3] / "shared" / "data" / "hymenoptera"
DIGIT_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def _small_split(size: int, n: int = 16) -> Split:
    """`n` real digit images (two classes) resized to size x size."""
    pixels = np.stack(digit_images(3, n // 2) + digit_images(8, n - n // 2))
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    images = nas.data.dataset._resize(images, (size, size))
    return Split(images, torch.tensor([0] * (n // 2) + [1] * (n - n // 2)))


# ----------------------------------------------------------------- names and sizes


def test_parse_image_size() -> None:
    assert parse_image_size("185x160") == (185, 160)
    assert parse_image_size(" 8 X 9 ") == (8, 9)
    assert parse_image_size("32") == (32, 32)
    for bad in ("abc", "0x5", "5000x10", "", "3x", "-3x4"):
        with pytest.raises(DataError, match="image size"):
            parse_image_size(bad)


def test_default_image_size() -> None:
    assert default_image_size("digits") == (32, 32)
    assert default_image_size("CIFAR10") == (32, 32)
    assert default_image_size("mnist") == (28, 28)
    assert default_image_size("svhn") == (32, 32)
    assert default_image_size("/somewhere/photos") == (185, 160)


def test_unknown_source_suggests_nearest(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown data source 'cifar1' \(did you mean `cifar10`"):
        load_data("cifar1", cache_dir=tmp_path)
    with pytest.raises(DataError, match="digits, cifar10, cifar100, mnist, fashionmnist, svhn"):
        default_image_size("imagenet")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"val_fraction must be in \(0, 1\), got 1.0"):
        load_data("digits", (8, 8), val_fraction=1.0, cache_dir=tmp_path)
    with pytest.raises(DataError, match=r"two integers in 1..4096, got \(0, 5\)"):
        load_data("digits", (0, 5), cache_dir=tmp_path)


# ----------------------------------------------------------------- splits


def test_stratified_split_bookkeeping() -> None:
    labels = torch.tensor([0] * 10 + [1] * 7 + [2] * 2)[torch.randperm(19)]
    kept, held = stratified_split(labels, 0.2, 5, ("a", "b", "c"))
    assert set(kept.tolist()).isdisjoint(held.tolist())
    assert sorted(kept.tolist() + held.tolist()) == list(range(19))
    assert torch.bincount(labels[held]).tolist() == [2, 1, 1]  # round(2), round(1.4), at least 1
    assert torch.equal(stratified_split(labels, 0.2, 5, ("a", "b", "c"))[1], held)
    others = [stratified_split(labels, 0.2, s, ("a", "b", "c"))[1] for s in range(6, 10)]
    assert any(not torch.equal(o, held) for o in others)


def test_stratified_split_needs_two_per_class() -> None:
    with pytest.raises(DataError, match="class 'b' has 1 image"):
        stratified_split(torch.tensor([0, 0, 1]), 0.2, 0, ("a", "b"))


def test_digits_exact_splits(tmp_path: Path) -> None:
    data = load_data("digits", (8, 8), cache_dir=tmp_path)
    assert data.name == "digits" and data.classes == tuple("0123456789")
    test_counts = [_round_half_up(0.2 * n) for n in DIGIT_COUNTS]
    pool_counts = [n - t for n, t in zip(DIGIT_COUNTS, test_counts, strict=True)]
    val_counts = [_round_half_up(0.2 * n) for n in pool_counts]
    assert len(data.test.labels) == sum(test_counts) == 359
    assert torch.bincount(data.test.labels).tolist() == test_counts
    assert torch.bincount(data.val.labels).tolist() == val_counts
    assert len(data.train.labels) + len(data.val.labels) == 1438
    for split in (data.train, data.val, data.test):
        assert split.images.dtype == torch.uint8 and split.images.is_contiguous()
        assert split.images.shape[1:] == (3, 8, 8) and split.labels.dtype == torch.int64
        assert torch.equal(split.images[:, 0], split.images[:, 2])
    assert data.train.images.max() == 255  # 16 -> 255


def test_test_split_ignores_split_seed(tmp_path: Path) -> None:
    a = load_data("digits", (8, 8), split_seed=0, cache_dir=tmp_path)
    b = load_data("digits", (8, 8), split_seed=1, cache_dir=tmp_path)
    assert torch.equal(a.test.images, b.test.images)
    assert not torch.equal(a.val.images, b.val.images)
    assert a.fingerprint != b.fingerprint


def test_digits_fingerprint(tmp_path: Path) -> None:
    base = load_data("digits", (8, 8), cache_dir=tmp_path / "a").fingerprint
    assert load_data("digits", (8, 8), cache_dir=tmp_path / "b").fingerprint == base
    assert load_data("digits", (16, 8), cache_dir=tmp_path / "a").fingerprint != base
    assert load_data("digits", (8, 8), val_fraction=0.3, cache_dir=tmp_path).fingerprint != base


def test_digits_resized_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_data("digits", cache_dir=tmp_path)
    assert first.image_size == (32, 32) and first.train.images.shape[2:] == (32, 32)

    def fail(size: tuple[int, int]) -> None:
        raise RuntimeError("decoded again")

    monkeypatch.setattr(nas.data.dataset, "_decode_digits", fail)
    second = load_data("digits", cache_dir=tmp_path)
    assert torch.equal(first.train.images, second.train.images)
    assert second.fingerprint == first.fingerprint
    with pytest.raises(RuntimeError, match="decoded again"):  # another size is another key
        load_data("digits", (16, 16), cache_dir=tmp_path)


def test_cache_is_mapped_from_its_file_not_copied_into_memory(tmp_path: Path) -> None:
    from nas.data.cache import FORMAT, read_cache, write_cache

    path = tmp_path / "blob.pt"
    written = write_cache(path, {"format": FORMAT, "images": torch.arange(4096, dtype=torch.uint8)})
    assert str(path) in Path("/proc/self/maps").read_text()     # returned read back, mapped
    assert int(written["images"][5]) == 5
    blob = read_cache(path, ("images",))
    assert blob is not None and int(blob["images"][5]) == 5
    blob["images"][5] = 99                                       # copy-on-write: the file keeps 5
    again = read_cache(path, ("images",))
    assert again is not None and int(again["images"][5]) == 5
    legacy = tmp_path / "legacy.pt"         # torch's old format cannot be mapped: it is read
    torch.save({"format": FORMAT, "images": torch.arange(3)}, legacy, _use_new_zipfile_serialization=False)
    blob = read_cache(legacy, ("images",))
    assert blob is not None and blob["images"].tolist() == [0, 1, 2]


def test_statistics_and_normalize(tmp_path: Path) -> None:
    data = load_data("digits", (8, 8), cache_dir=tmp_path)
    x = data.train.images.to(torch.float64) / 255
    expected_mean = x.mean(dim=(0, 2, 3))
    expected_std = x.std(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(torch.tensor(data.mean, dtype=torch.float64), expected_mean)
    assert torch.allclose(torch.tensor(data.std, dtype=torch.float64), expected_std)
    out = normalize(data.train.images, data.mean, data.std)
    assert out.dtype == torch.float32
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(out.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    edge = normalize(
        torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2).expand(3, 1, 2),
        (0.5, 0.5, 0.5),
        (0.5, 0.5, 0.5),
    )
    assert edge.flatten().tolist() == [-1.0, 1.0] * 3
    with pytest.raises(DataError, match="uint8"):
        normalize(out, data.mean, data.std)


# ----------------------------------------------------------------- image folders


def test_image_folder(image_folder: Path, tmp_path: Path) -> None:
    data = load_data(str(image_folder), (8, 8), cache_dir=tmp_path / "cache")
    assert data.name == str(image_folder) and data.classes == ("c0", "c1", "c2")
    assert torch.bincount(data.train.labels).tolist() == [5, 5, 5]  # 6 - round(1.2)
    assert torch.bincount(data.val.labels).tolist() == [1, 1, 1]
    assert data.test.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert data.skipped == ()
    # PNG is lossless and 8x8 -> 8x8 is no resize: test files 000.png / 002.png are bit-exact.
    source = digit_images(0, 3, start=6)
    assert torch.equal(data.test.images[0], torch.from_numpy(source[0]).permute(2, 0, 1))
    assert torch.equal(data.test.images[2], torch.from_numpy(source[2]).permute(2, 0, 1))
    jpeg_error = (data.test.images[1].int() - torch.from_numpy(source[1]).permute(2, 0, 1)).abs()
    assert jpeg_error.float().mean() < 20  # a real JPEG decode, close to the source


def test_default_folder_size(image_folder: Path, tmp_path: Path) -> None:
    data = load_data(str(image_folder), cache_dir=tmp_path / "cache")
    assert data.image_size == (185, 160) and data.train.images.shape[1:] == (3, 185, 160)


def test_unreadable_files_are_skipped_and_counted(image_folder: Path, tmp_path: Path) -> None:
    clean = load_data(str(image_folder), (8, 8), cache_dir=tmp_path / "clean")
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "JPEG")
    truncated = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    with Image.open(io.BytesIO(truncated)) as img, pytest.raises(OSError, match="truncated"):
        img.load()  # the header is whole: only decoding the pixels fails
    (image_folder / "train" / "c1" / "truncated.jpg").write_bytes(truncated)
    (image_folder / "test" / "c2" / "notes.jpg").write_text("not an image\n")
    calls: list[tuple[str, int, int]] = []
    data = load_data(
        str(image_folder), (8, 8), cache_dir=tmp_path / "cache", progress=lambda *a: calls.append(a)
    )
    assert sorted(data.skipped) == [("test/c2/notes.jpg", "not a readable image"),
                                    ("train/c1/truncated.jpg", "not a readable image")]
    assert len(data.train.labels) + len(data.val.labels) == 18 and len(data.test.labels) == 9
    assert calls[-1] == ("decode", 29, 29) and len(calls) == 29
    assert torch.equal(data.test.images, clean.test.images)          # the readable ones, in order
    assert data.test.images.untyped_storage().nbytes() == data.test.images.numel()   # rows kept only


def test_single_folder_is_split_with_fixed_seed(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    write_class(root / "a", 0, 10)
    write_class(root / "b", 1, 5)
    a = load_data(str(root), (8, 8), split_seed=0, cache_dir=tmp_path / "cache")
    b = load_data(str(root), (8, 8), split_seed=3, cache_dir=tmp_path / "cache")
    assert torch.bincount(a.test.labels).tolist() == [2, 1]
    assert torch.bincount(a.val.labels).tolist() == [2, 1]  # round(0.2 * 8), max(1, round(0.8))
    assert torch.bincount(a.train.labels).tolist() == [6, 3]
    assert torch.equal(a.test.images, b.test.images)


def test_folder_cache_hit(image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_data(str(image_folder), (8, 8), cache_dir=tmp_path / "cache")

    def fail(data: bytes, size: tuple[int, int]) -> None:
        raise RuntimeError("decoded again")

    monkeypatch.setattr(nas.data.folders, "decode_image", fail)
    second = load_data(str(image_folder), (8, 8), cache_dir=tmp_path / "cache")
    assert second.fingerprint == first.fingerprint
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(first, name).images, getattr(second, name).images)
        assert torch.equal(getattr(first, name).labels, getattr(second, name).labels)


def test_corrupt_cache_is_rebuilt(image_folder: Path, tmp_path: Path) -> None:
    first = load_data(str(image_folder), (8, 8), cache_dir=tmp_path)
    (cached,) = (tmp_path / "data").glob("*.pt")
    cached.write_bytes(b"garbage")
    again = load_data(str(image_folder), (8, 8), cache_dir=tmp_path)
    assert torch.equal(first.train.images, again.train.images)


def test_folder_fingerprint_follows_content(image_folder: Path, tmp_path: Path) -> None:
    before = load_data(str(image_folder), (8, 8), cache_dir=tmp_path).fingerprint
    assert load_data(str(image_folder), (8, 8), cache_dir=tmp_path / "other").fingerprint == before
    target = image_folder / "train" / "c0" / "000.png"
    stat = target.stat()
    Image.fromarray(digit_images(5, 1)[0]).save(target)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = load_data(str(image_folder), (8, 8), cache_dir=tmp_path)
    assert after.fingerprint != before
    assert load_data(str(image_folder), (8, 8), split_seed=1, cache_dir=tmp_path).fingerprint != (
        after.fingerprint
    )


def test_folder_errors(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="nope: data folder not found"):
        load_data(str(tmp_path / "nope"), cache_dir=cache)
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="bare: no class folders"):
        load_data(str(tmp_path / "bare"), cache_dir=cache)
    write_class(tmp_path / "half" / "train" / "a", 0, 3)
    with pytest.raises(DataError, match="has train/ but no test/ folder"):
        load_data(str(tmp_path / "half"), cache_dir=cache)


def test_empty_class_folder(image_folder: Path, tmp_path: Path) -> None:
    (image_folder / "train" / "c3").mkdir()
    (image_folder / "test" / "c3").mkdir()
    with pytest.raises(DataError, match="class 'c3' has 0 image file"):
        load_data(str(image_folder), cache_dir=tmp_path)


def test_class_without_readable_image(image_folder: Path, tmp_path: Path) -> None:
    for path in (image_folder / "test" / "c1").iterdir():
        path.write_bytes(b"broken")
    with pytest.raises(DataError, match=r"test/c1: none of the files of class 'c1' is readable"):
        load_data(str(image_folder), (8, 8), cache_dir=tmp_path)


def test_train_test_class_mismatch(image_folder: Path, tmp_path: Path) -> None:
    (image_folder / "test" / "c2").rename(image_folder / "test" / "c9")
    with pytest.raises(DataError, match=r"only in train \['c2'\], only in test \['c9'\]"):
        load_data(str(image_folder), cache_dir=tmp_path)


def test_too_few_training_images(tmp_path: Path) -> None:
    write_class(tmp_path / "f" / "train" / "a", 0, 4)
    write_class(tmp_path / "f" / "train" / "b", 1, 1)
    write_class(tmp_path / "f" / "test" / "a", 0, 1)
    write_class(tmp_path / "f" / "test" / "b", 1, 1)
    with pytest.raises(DataError, match="class 'b' has 1 image"):
        load_data(str(tmp_path / "f"), (8, 8), cache_dir=tmp_path / "cache")


@pytest.mark.skipif(not HYMENOPTERA.is_dir(), reason="reference folder absent")
def test_hymenoptera_reference(tmp_path: Path) -> None:
    data = load_data(str(HYMENOPTERA), (24, 20), cache_dir=tmp_path)
    assert data.classes == ("ants", "bees") and data.skipped == ()
    assert len(data.train.labels) + len(data.val.labels) == 243 and len(data.test.labels) == 153


# ----------------------------------------------------------------- torchvision


class _FakeSet:
    """Stands in for a torchvision data set: records its arguments, never downloads."""

    calls: list[dict[str, object]] = []

    def __init__(self, root: str, download: bool, **split: object) -> None:
        _FakeSet.calls.append({"root": root, "download": download, **split})
        n = 40 if split.get("train", split.get("split") == "train") else 20
        rng = np.random.default_rng(n)
        self.raw = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        self.target_list = [i % 10 for i in range(n)]


class _FakeCifar(_FakeSet):
    def __init__(self, root: str, train: bool, download: bool) -> None:
        super().__init__(root, download, train=train)
        self.data = self.raw.transpose(0, 2, 3, 1)  # NHWC, as CIFAR stores it
        self.targets = self.target_list
        self.classes = [f"k{i}" for i in range(10)]


class _FakeMnist(_FakeSet):
    def __init__(self, root: str, train: bool, download: bool) -> None:
        super().__init__(root, download, train=train)
        self.data = torch.from_numpy(self.raw[:, 0, :28, :28].copy())
        self.targets = torch.tensor(self.target_list)
        self.classes = [f"{i} - digit" for i in range(10)]


class _FakeSvhn(_FakeSet):
    def __init__(self, root: str, split: str, download: bool) -> None:
        super().__init__(root, download, split=split)
        self.data = self.raw
        self.labels = np.array(self.target_list)


def test_torchvision_layouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _FakeSet.calls.clear()
    for name, fake in (("CIFAR10", _FakeCifar), ("MNIST", _FakeMnist), ("SVHN", _FakeSvhn)):
        monkeypatch.setattr(torchvision.datasets, name, fake)
    cifar = load_data("cifar10", cache_dir=tmp_path)
    assert cifar.classes[0] == "k0" and len(cifar.test.labels) == 20
    assert torch.equal(cifar.test.images[0], torch.from_numpy(_FakeCifar(".", False, True).raw[0]))
    assert _FakeSet.calls[0] == {"root": str(tmp_path / "torchvision"), "download": True, "train": True}
    mnist = load_data("mnist", cache_dir=tmp_path)
    assert mnist.image_size == (28, 28) and mnist.test.images.shape == (20, 3, 28, 28)
    assert torch.equal(mnist.test.images[:, 0], mnist.test.images[:, 1])
    svhn = load_data("svhn", (16, 16), cache_dir=tmp_path)
    assert svhn.classes == tuple("0123456789") and svhn.test.images.shape == (20, 3, 16, 16)
    assert len(svhn.train.labels) + len(svhn.val.labels) == 40
    assert len({cifar.fingerprint, mnist.fingerprint, svhn.fingerprint}) == 3


def test_torchvision_offline_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    root = tmp_path / "torchvision"
    with pytest.raises(DataError) as error:
        load_data("cifar10", cache_dir=tmp_path)
    assert str(error.value) == (
        f"cannot download cifar10 (offline?): <urlopen error no network>; put the files under {root}"
    )


def test_torchvision_runtime_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", broken)
    with pytest.raises(DataError, match=r"cannot download fashionmnist \(offline\?\): Error down"):
        load_data("fashionmnist", cache_dir=tmp_path)


# ----------------------------------------------------------------- views


def test_views_layout_and_determinism(tmp_path: Path) -> None:
    split = _small_split(8)
    config = AugmentConfig(views=("hflip", "randaugment"))
    views = build_views(split, config, seed=0, cache_dir=tmp_path / "a")
    assert views.images.shape == (48, 3, 8, 8) and views.images.dtype == torch.uint8
    assert torch.equal(views.images[:16], split.images)
    assert torch.equal(views.labels, split.labels.repeat(3))
    again = build_views(split, config, seed=0, cache_dir=tmp_path / "b")
    assert torch.equal(again.images, views.images) and again.fingerprint == views.fingerprint
    other = build_views(split, config, seed=1, cache_dir=tmp_path / "a")
    assert not torch.equal(other.images[16:], views.images[16:])
    assert other.fingerprint != views.fingerprint


def test_views_leave_caller_rng_alone(tmp_path: Path) -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    build_views(_small_split(8), AugmentConfig(views=("color_jitter",)), cache_dir=tmp_path)
    assert torch.equal(torch.get_rng_state(), state)


def test_views_cache_hit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    split = _small_split(8)
    config = AugmentConfig(views=("blur+hflip",))
    first = build_views(split, config, cache_dir=tmp_path)

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("augmented again")

    monkeypatch.setattr(nas.data.augment, "augment_views", fail)
    assert torch.equal(build_views(split, config, cache_dir=tmp_path).images, first.images)
    with pytest.raises(RuntimeError, match="augmented again"):  # another config, another key
        build_views(split, AugmentConfig(views=("blur+hflip",), blur_kernel=3), cache_dir=tmp_path)


def test_repeated_view_draws_again(tmp_path: Path) -> None:
    views = build_views(_small_split(8), AugmentConfig(views=("randaugment",) * 2), cache_dir=tmp_path)
    assert not torch.equal(views.images[16:32], views.images[32:48])


def test_no_views_is_the_split(tmp_path: Path) -> None:
    split = _small_split(8)
    views = build_views(split, AugmentConfig(), cache_dir=tmp_path)
    assert torch.equal(views.images, split.images) and not any(tmp_path.iterdir())


def test_unknown_op_names_view_and_nearest(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"augment view 'blur\+hflp': unknown op 'hflp' \(did you"):
        build_views(_small_split(8), AugmentConfig(views=("blur+hflp",)), cache_dir=tmp_path)


def test_bad_augment_settings(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"blur_sigma must satisfy 0 < low <= high, got \(2.0, 1.0\)"):
        build_views(_small_split(8), AugmentConfig(views=("blur",), blur_sigma=(2.0, 1.0)))


@pytest.mark.parametrize("size", [8, 32])
@pytest.mark.parametrize("op", AUGMENT_OPS)
def test_each_op_on_tiny_and_small_images(op: str, size: int, tmp_path: Path) -> None:
    split = _small_split(size)
    config = AugmentConfig(views=(op,), blur_kernel=15)  # kernel clamped to the image
    block = build_views(split, config, cache_dir=tmp_path).images[16:]
    assert block.shape == split.images.shape and block.dtype == torch.uint8
    changed = [not torch.equal(a, b) for a, b in zip(block, split.images, strict=True)]
    assert any(changed)
    if op == "hflip":
        flipped = split.images.flip(-1)
        for out, orig, flip in zip(block, split.images, flipped, strict=True):
            assert torch.equal(out, orig) or torch.equal(out, flip)
        assert not all(changed)  # p = 0.5, drawn per image


def test_mixup_blends_each_image_with_a_partner_and_keeps_the_larger_weight(tmp_path: Path) -> None:
    dark, light = torch.zeros(8, 3, 4, 4, dtype=torch.uint8), torch.full((8, 3, 4, 4), 200, dtype=torch.uint8)
    split = Split(torch.cat([dark, light]), torch.tensor([0] * 8 + [1] * 8))
    views = build_views(split, AugmentConfig(views=("mixup",)), cache_dir=tmp_path)
    block, labels = views.images[16:], views.labels[16:]
    assert torch.equal(labels, split.labels)             # each blend keeps its own label
    assert block[:8].max() <= 100 and block[8:].min() >= 100   # own weight >= 0.5
    assert ((block > 0) & (block < 200)).any()           # some images really are blends
    again = build_views(split, AugmentConfig(views=("mixup",)), cache_dir=tmp_path / "other")
    assert torch.equal(again.images, views.images)       # a pure function of the seed


def test_mixup_runs_after_the_views_per_image_ops(tmp_path: Path) -> None:
    split = _small_split(8)
    plain = build_views(split, AugmentConfig(views=("mixup",)), cache_dir=tmp_path).images[16:]
    flipped = build_views(split, AugmentConfig(views=("hflip+mixup",)), cache_dir=tmp_path).images[16:]
    assert not torch.equal(plain, flipped)


def test_bad_mixup_alpha() -> None:
    with pytest.raises(DataError, match=r"mixup_alpha must be > 0, got 0.0"):
        build_views(_small_split(8), AugmentConfig(views=("mixup",), mixup_alpha=0.0))


# ----------------------------------------------------------------- hostile folders


def _hostile_folder(root: Path, outside: Path) -> Path:
    """Two classes of 4 real images each, plus every kind of entry that must not be read."""
    write_class(root / "a", 0, 4)
    write_class(root / "b", 1, 4)
    Image.fromarray(digit_images(2, 1)[0]).save(outside / "elsewhere.png")
    os.mkfifo(root / "a" / "x.png")
    (root / "a" / "zero.png").symlink_to("/dev/zero")
    (root / "a" / "gone.png").symlink_to(root / "a" / "missing.png")
    (root / "a" / "loop.png").symlink_to(root / "a" / "loop.png")
    (root / "b" / "escape.png").symlink_to(outside / "elsewhere.png")
    (root / "b" / "inside.png").symlink_to(root / "b" / "000.png")
    (root / "b" / "sub").symlink_to(root / "b", target_is_directory=True)
    (root / "b" / "empty.png").write_bytes(b"")
    (root / "b" / "README.txt").write_text("notes")
    (root / "b" / ".hidden.png").write_text("ignored without a word")
    return root


def test_hostile_entries_are_skipped_with_reasons(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = _hostile_folder(tmp_path / "hostile", outside)
    data = load_data(str(root), (8, 8), cache_dir=tmp_path / "cache")
    assert dict(data.skipped) == {
        "a/gone.png": "dangling symlink",
        "a/loop.png": "symlink loop",
        "a/x.png": "not a regular file",
        "a/zero.png": "symlink leaves the data folder",
        "b/README.txt": "suffix '.txt' is not an image suffix",
        "b/empty.png": "empty file",
        "b/escape.png": "symlink leaves the data folder",
        "b/sub": "symlinked folder (not followed)",
    }
    assert len(data.train.labels) + len(data.val.labels) + len(data.test.labels) == 9  # + inside.png
    assert skipped_summary(data.skipped) == (
        "skipped 8 files: 2 symlink leaves the data folder, 1 dangling symlink, 1 symlink loop, "
        "1 not a regular file, 1 symlinked folder (not followed), 1 suffix '.txt' is not an image "
        "suffix, 1 empty file")
    again = load_data(str(root), (8, 8), cache_dir=tmp_path / "cache")  # from the cache: same skips
    assert again.skipped == data.skipped and again.fingerprint == data.fingerprint


def test_read_file_refuses_what_the_scan_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fifo = tmp_path / "late.png"
    os.mkfifo(fifo)  # swapped in after a scan: non-blocking open + fstat, so no hang
    assert nas.data.folders.read_file(fifo) == (b"", "not a regular file")
    assert nas.data.folders.read_file(Path("/dev/zero")) == (b"", "not a regular file")
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 2048)
    monkeypatch.setattr(nas.data.folders, "MAX_FILE_BYTES", 1024)
    assert nas.data.folders.read_file(big) == (b"", "larger than 0 MiB")
    assert nas.data.folders.refusal(big, tmp_path) == "larger than 0 MiB"


def test_decompression_bomb_is_a_skip(image_folder: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image_folder / "train" / "c0" / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 600)  # 8x8 images pass, 32x32 is a "bomb"
    data = load_data(str(image_folder), (8, 8), cache_dir=tmp_path)
    assert data.skipped == (("train/c0/bomb.png", "more pixels than Pillow's limit of 600"),)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # over twice the limit: Pillow's error
    pixels, reason = nas.data.folders.decode_image((image_folder / "train" / "c0" / "bomb.png")
                                                   .read_bytes(), (8, 8))
    assert pixels is None and reason == "more pixels than Pillow's limit of 400"


def test_sixteen_bit_greys_are_scaled_not_clipped() -> None:
    ramp = (np.arange(256, dtype=np.uint32) * 257).astype(np.uint16).reshape(16, 16)  # 0..65535
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")
    with Image.open(io.BytesIO(buffer.getvalue())) as img:
        assert img.mode in ("I;16", "I")
    pixels, reason = nas.data.folders.decode_image(buffer.getvalue(), (16, 16))
    assert reason is None and pixels is not None
    assert pixels[:, :, 0].flatten().tolist() == list(range(256))  # x*257 -> x exactly
    assert np.array_equal(pixels[:, :, 0], pixels[:, :, 2])


def test_one_class_is_refused(tmp_path: Path) -> None:
    write_class(tmp_path / "one" / "only", 0, 6)
    with pytest.raises(DataError, match=r"one: only one class folder \('only'\); .* at least 2"):
        load_data(str(tmp_path / "one"), (8, 8), cache_dir=tmp_path / "cache")
    (tmp_path / "one" / "notes").symlink_to(tmp_path, target_is_directory=True)  # leaves: no class
    with pytest.raises(DataError, match="only one class folder"):
        load_data(str(tmp_path / "one"), (8, 8), cache_dir=tmp_path / "cache")


def test_small_class_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_class(tmp_path / "flat" / "a", 0, 5)
    write_class(tmp_path / "flat" / "b", 1, 2)
    monkeypatch.setattr(nas.data.folders, "decode_image", lambda *a: pytest.fail("decoded"))
    with pytest.raises(DataError, match=r"flat/b: class 'b' has 2 image file\(s\); need at least 3 to "
                                        "split into train, validation and test"):
        load_data(str(tmp_path / "flat"), (8, 8), cache_dir=tmp_path / "cache")


# ----------------------------------------------------------------- memory


def test_memory_refused_before_decoding(image_folder: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nas.data.memory, "available_bytes", lambda: 10_000)
    monkeypatch.setattr(nas.data.folders, "decode_image", lambda *a: pytest.fail("decoded"))
    # 27 images x 3 x 32 x 32, decoded into one tensor
    with pytest.raises(DataError, match=r"decoding .*folder needs about 0 MiB of memory, but only 0 MiB"):
        load_data(str(image_folder), (32, 32), cache_dir=tmp_path)
    assert nas.data.memory.pool_bytes(27, (32, 32)) == 27 * 3 * 32 * 32
    with pytest.raises(DataError, match="decoding digits needs about 168.5 GiB"):
        load_data("digits", (4096, 4096), cache_dir=tmp_path)


def test_memory_of_training(monkeypatch: pytest.MonkeyPatch) -> None:
    from nas.data.memory import activation_elements, check_training, training_bytes
    from nas.model.decode import resolve
    from nas.model.genome import Genome
    from nas.model.space import InputShape, load_space

    space = load_space("tiny.toml")
    arch = resolve("[1,8,1,1,0]", space, shape=InputShape(3, 16, 16), classes=2)
    # stem 8 at 8x8 (x3); an MBConv (this space expands at t=1): expand 8 and depthwise 8 (x3 each),
    # project 8 (x2); head 32 (x3)
    assert activation_elements(arch) == 3 * 8 * 64 + (2 * 3 * 8 * 64 + 2 * 8 * 64) + 3 * 32 * 64
    assert training_bytes(arch, 100, 4) == 100 * 16 + 2 * activation_elements(arch) * 4 * 4
    check_training(space, (), rows=100, shape=InputShape(3, 16, 16), classes=2)
    huge = Genome.parse("[32,8192,64,1,1]")
    with pytest.raises(TrainError, match=r"training on 100 images of 3x16x16 needs about [\d,.]+ GiB of "
                                         r"memory \(the biggest model at the batch size: .*available"):
        check_training(space, (huge,), rows=100, shape=InputShape(3, 16, 16), classes=2)
    monkeypatch.setattr(nas.data.memory, "available_bytes", lambda: 2**20)
    teacher = Genome.parse(space.teacher.genome, space.teacher.attention)     # the caller's choice
    with pytest.raises(TrainError, match="needs about"):
        check_training(space, (), rows=100, shape=InputShape(3, 16, 16), classes=2, teacher=teacher)


def test_a_folder_is_scanned_once_within_scanned_once(image_folder: Path) -> None:
    first = nas.data.folders.scan_folder(image_folder)
    write_class(image_folder / "train" / "c0", 0, 7)          # a seventh image in c0
    with nas.data.folders.scanned_once():
        inside = nas.data.folders.scan_folder(image_folder)
        (image_folder / "train" / "c1" / "000.png").unlink()
        with nas.data.folders.scanned_once():                 # nested: the same scans
            assert nas.data.folders.scan_folder(image_folder) is inside
    after = nas.data.folders.scan_folder(image_folder)         # outside: read again
    assert (first.count, inside.count, after.count) == (27, 28, 27)


def test_folder_key_is_every_file_stat(image_folder: Path) -> None:
    """The scan's stamps give the key each file's stat gave before them (caches stay valid)."""
    scan = nas.data.folders.scan_folder(image_folder)
    files = [path for path, _ in scan.train + (scan.test or ())]
    assert nas.data.folders.folder_key(scan) == [str(image_folder.resolve())] + [
        [path.relative_to(image_folder).as_posix(), path.stat().st_size, path.stat().st_mtime_ns]
        for path in files]
