"""Hostile data folders (issue 22): symlinks that would read the same images under a second
label, names that are not UTF-8, and files a decoder fails on in a way of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas.data import folders
from nas.data.folders import decode_folder, decode_image, scan_folder
from nas.data.splits import skipped_summary
from tests.conftest import write_class


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Two classes of 4 digit images each, in one folder to be split."""
    for digit in (0, 1):
        write_class(tmp_path / "data" / f"class_{digit}", digit, 4)
    return tmp_path / "data"


def test_a_class_folder_linked_to_another_class_is_refused(root: Path) -> None:
    os.symlink(root / "class_0", root / "class_c")
    os.symlink(root, root / "class_r")
    scan = scan_folder(root)
    assert scan.classes == ("class_0", "class_1") and scan.count == 8
    reason = "symlink to the data folder or to another class folder"
    assert sorted(scan.skipped) == [("class_c", reason), ("class_r", reason)]
    assert skipped_summary(scan.skipped) == f"skipped 2 files: 2 {reason}"


def test_a_file_linked_into_another_class_is_refused(root: Path) -> None:
    os.symlink(root / "class_0" / "000.png", root / "class_1" / "zzz.png")
    scan = scan_folder(root)
    assert scan.count == 8
    assert scan.skipped == (("class_1/zzz.png", "symlink into another class folder"),)


def test_a_name_that_is_not_utf8_is_skipped(root: Path) -> None:
    raw = os.fsencode(root / "class_0") + b"/bad\xff.png"
    Image.new("RGB", (8, 8)).save(raw.decode("utf-8", "surrogateescape"), format="PNG")
    os.mkdir(os.fsencode(root) + b"/class_\xfe")
    scan = scan_folder(root)
    assert scan.classes == ("class_0", "class_1") and scan.count == 8
    assert sorted(reason for _, reason in scan.skipped) == ["name is not UTF-8"] * 2
    pool = decode_folder(scan, (8, 8), None)            # the names hash without an error
    assert len(pool.train.labels) + len(pool.test.labels) == 8


def test_any_decoder_error_skips_that_image(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A decoder's own exception (as BLP, DDS or Spider raise on odd files) skips the file."""
    real = folders.to_rgb

    def broken(img: Image.Image) -> Image.Image:
        if img.size == (3, 3):
            raise TypeError("a plugin's bug")
        return real(img)

    monkeypatch.setattr(folders, "to_rgb", broken)
    Image.new("RGB", (3, 3)).save(root / "class_1" / "odd.png")
    assert decode_image((root / "class_1" / "odd.png").read_bytes(), (8, 8)) == (
        None, "not a readable image (TypeError)")
    pool = decode_folder(scan_folder(root), (8, 8), None)
    assert pool.skipped == (("class_1/odd.png", "not a readable image (TypeError)"),)


def test_libtiff_warnings_are_not_printed(tmp_path: Path) -> None:
    """libtiff writes `Using code not yet in table` on stderr itself for a corrupt LZW strip;
    the image is skipped and nothing is printed."""
    path = tmp_path / "x.tif"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).save(path, compression="tiff_lzw")
    data = bytearray(path.read_bytes())
    data[500:540] = b"\xff" * 40
    path.write_bytes(bytes(data))
    code = ("from pathlib import Path; from nas.data.folders import decode_image; "
            f"print(decode_image(Path({str(path)!r}).read_bytes(), (4, 4))[1])")
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "not a readable image" and done.stderr == ""
