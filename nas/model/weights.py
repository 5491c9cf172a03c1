"""The one safe reader of saved tensors: `torch.load(weights_only=True)` onto the CPU.

Checkpoints, stored run weights, teacher files and caches all go through `load_weights`, so
a pickle payload is refused the same way everywhere. Any failure (pickle, truncated zip, EOF,
missing file) becomes `UnreadableWeights` with a one-line reason that the caller words for
its user.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from nas.errors import NasError


class UnreadableWeights(NasError):
    """Saved tensors that torch.load cannot read with weights_only=True."""


def load_weights(source: str | Path | bytes, mmap: bool = False) -> Any:
    """What `torch.save` wrote to `source` (a path or bytes), tensors on the CPU, no pickles.
    With `mmap` (a path only) the tensors are the file's pages, read when touched, not a copy in
    memory: the kernel may drop and reread them, so a cache bigger than the free memory still loads."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        return torch.load(stream, map_location="cpu", weights_only=True,
                          mmap=mmap and not isinstance(source, bytes))
    except Exception as error:  # torch raises pickle, zip, EOF, index and runtime errors alike
        if mmap:                # a file system that cannot map files, or a legacy file: read it
            return load_weights(source)
        lines = str(error).strip().splitlines()
        raise UnreadableWeights(f"{type(error).__name__}: {lines[0] if lines else ''}") from None
