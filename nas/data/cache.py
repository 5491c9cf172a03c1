"""The on-disk data cache: where it lives, fingerprints, atomic reads and writes, pool blobs.

Files are torch.save'd dicts of tensors, strings and ints, so they load with weights_only=True.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from nas.data.splits import Pool, Split
from nas.errors import DataError
from nas.model.recipe import AugmentConfig
from nas.model.weights import UnreadableWeights, load_weights

FORMAT = 1  # bump when decoding or the cache layout changes
POOL_KEYS = (
    "classes",
    "content",
    "skipped",
    "train_images",
    "train_labels",
    "test_images",
    "test_labels",
)


def cache_root(cache_dir: Path | None) -> Path:
    """`cache_dir`, else $NAS_CACHE_DIR, else ~/.cache/nas."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("NAS_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nas"


def digest(record: dict[str, Any]) -> str:
    """sha256 hex of a JSON record (with the cache format), the fingerprints' common form."""
    text = json.dumps({"format": FORMAT, **record}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def views_fingerprint(split: Split, config: AugmentConfig, seed: int) -> str:
    """sha256 over the split's pixels and labels, the AugmentConfig and the seed."""
    hasher = hashlib.sha256(str(tuple(split.images.shape)).encode())
    hasher.update(split.images.contiguous().numpy())
    hasher.update(split.labels.contiguous().numpy())
    config_record = dataclasses.asdict(config)
    return digest({"split": hasher.hexdigest(), "augment": config_record, "seed": seed})


def read_cache(path: Path, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """A cache file's dict, or None when absent, unreadable, of another format or incomplete; its
    tensors are mapped from the file (copy-on-write), not read into memory."""
    try:
        blob = load_weights(path, mmap=True)
    except UnreadableWeights:  # includes a missing file
        return None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        return None
    return blob if all(key in blob for key in keys) else None


def write_cache(path: Path, blob: dict[str, Any]) -> dict[str, Any]:
    """Write atomically (temp file + rename) so concurrent readers never see half a file; return
    the blob read back, mapped from the file, so the caller's copy in memory can be freed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(blob, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:    # torch's writer reports a full disk as RuntimeError
        with contextlib.suppress(OSError):      # the folder may be a file, or /dev/null
            tmp.unlink(missing_ok=True)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise DataError(f"cannot write the data cache {path.parent}: {reason} (set "
                        "NAS_CACHE_DIR to a writable folder)") from error
    return read_cache(path, tuple(blob)) or blob


def cached_images(path: Path, shape: tuple[int, ...],
                  make: Callable[[], torch.Tensor]) -> torch.Tensor:
    """The images cached at `path` when they have `shape`, else `make()`'s, cached there."""
    blob = read_cache(path, ("images",))
    if blob is not None and tuple(blob["images"].shape) == shape:
        return blob["images"]
    return write_cache(path, {"format": FORMAT, "images": make()})["images"]


def pool_to_blob(pool: Pool) -> dict[str, Any]:
    """A pool as a dict of tensors, strings and ints (loadable with weights_only=True)."""
    return {
        "format": FORMAT,
        "classes": list(pool.classes),
        "content": pool.content,
        "skipped": pool.skipped,
        "train_images": pool.train.images,
        "train_labels": pool.train.labels,
        "test_images": pool.test.images,
        "test_labels": pool.test.labels,
    }


def pool_from_blob(blob: dict[str, Any]) -> Pool:
    """Inverse of `pool_to_blob`."""
    train = Split(blob["train_images"], blob["train_labels"])
    test = Split(blob["test_images"], blob["test_labels"])
    return Pool(tuple(blob["classes"]), train, test, blob["content"], blob["skipped"])
