"""Renaming a state dict between a student and another library's model of the same network.

An interop module lists which of our modules is which of theirs (`Pairs`: module prefix ->
module prefix); `rename` moves every tensor under one name to the other and reshapes a Linear's
(out, in) weight to a 1x1 conv's (out, in, 1, 1) or back. Anything left over on either side
is an error naming the first such key, so a mapping that misses a layer cannot load silently.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from nas.errors import GenomeError

Pairs = list[tuple[str, str]]       # (source module prefix, target module prefix)


def flip(pairs: Pairs) -> Pairs:
    """The same correspondence read the other way."""
    return [(theirs, ours) for ours, theirs in pairs]


def rename(state: Mapping[str, torch.Tensor], pairs: Pairs,
           target: Mapping[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    """`state` under the target's names and shapes; `what` names the target in errors."""
    prefixes = dict(pairs)
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        module, _, leaf = key.rpartition(".")
        if module not in prefixes:
            raise GenomeError(f"{what}: no counterpart for weight {key!r}")
        name = f"{prefixes[module]}.{leaf}"
        if name not in target or target[name].numel() != tensor.numel():
            shape = tuple(target[name].shape) if name in target else "absent"
            raise GenomeError(f"{what}: {key} {tuple(tensor.shape)} does not fit {name} ({shape})")
        out[name] = tensor.reshape(target[name].shape)
    missing = [name for name in target if name not in out]
    if missing:
        raise GenomeError(f"{what}: nothing fills {missing[0]} ({len(missing)} weights unfilled)")
    return out
