"""The one table of channel attentions: name -> module factory and FLOPs/params rule.

The genome's list of names, the builder and the analytic counter all read `ATTENTIONS`;
a name that is not in it is an error everywhere, never a default. ECA: ECA-Net (Wang et
al., 2020). SE: Squeeze-and-Excitation (Hu et al., 2018). The module classes live in
`nas.model.attention_modules`, a leaf; the factories import it on call, so this table stays
free of torch and no import runs back up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Cost:
    """An attention's multiply-accumulates (all, and conv/linear only) and parameters."""

    macs: int
    matmul_macs: int
    params: int


@dataclass(frozen=True)
class Attention:
    """One channel attention: how to build it over `channels`, and what it costs there.

    `cost(channels, positions, se_width)` follows the seed report's thop rules: pooling counts
    (positions + 1) per channel, convs and linears weights x outputs, activations 0."""

    build: Callable[[int, int], nn.Module]          # (channels, se_width) -> module
    cost: Callable[[int, int, int], Cost]           # (channels, positions, se_width) -> Cost


def _pool(channels: int, positions: int) -> int:
    return channels * (positions + 1)


def _eca(channels: int, se_width: int) -> nn.Module:
    from nas.model.attention_modules import ECA

    return ECA()


def _eca_cost(channels: int, positions: int, se_width: int) -> Cost:
    conv = channels * 3                                  # Conv1d(1, 1, 3) over the channel axis
    return Cost(macs=_pool(channels, positions) + conv, matmul_macs=conv, params=3 + 1)


def _se(channels: int, se_width: int) -> nn.Module:
    from nas.model.attention_modules import SE

    return SE(channels, se_width)


def _se_cost(channels: int, positions: int, se_width: int) -> Cost:
    linears = 2 * channels * se_width                    # Linear(C -> r) and Linear(r -> C)
    return Cost(macs=_pool(channels, positions) + linears, matmul_macs=linears,
                params=linears + se_width + channels)


def _none(channels: int, se_width: int) -> nn.Module:
    from torch import nn

    return nn.Identity()


def _none_cost(channels: int, positions: int, se_width: int) -> Cost:
    return Cost(macs=0, matmul_macs=0, params=0)


ATTENTIONS: dict[str, Attention] = {
    "eca": Attention(build=_eca, cost=_eca_cost),
    "se": Attention(build=_se, cost=_se_cost),
    "none": Attention(build=_none, cost=_none_cost),
}


def is_attention(value: object) -> bool:
    """Whether a value read from a file or a caller names an attention (any value: a table or a
    list from TOML is not one, and is not hashed)."""
    return isinstance(value, str) and value in ATTENTIONS
