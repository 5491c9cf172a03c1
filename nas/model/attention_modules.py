"""The torch modules of the channel attentions the ATTENTIONS table builds (nas.model.attention).

ECA: ECA-Net (Wang et al., 2020). SE: Squeeze-and-Excitation (Hu et al., 2018). A leaf that
imports torch and nothing of nas, so the table's factories can import it on call without a loop.
"""

from __future__ import annotations

import torch
from torch import nn


class ECA(nn.Module):
    """Efficient channel attention: pool, 1-D conv (kernel 3, bias) across channels, sigmoid."""

    def __init__(self, kernel: int = 3) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel, padding=kernel // 2, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(x).flatten(1).unsqueeze(1)             # (B, 1, C)
        y = self.gate(self.conv(y)).transpose(1, 2).unsqueeze(-1)  # (B, C, 1, 1)
        return x * y


class SE(nn.Module):
    """Squeeze-and-excitation: pool, Linear(C -> r), SiLU, Linear(r -> C), sigmoid."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(channels, width)
        self.act = nn.SiLU()
        self.fc2 = nn.Linear(width, channels)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gate(self.fc2(self.act(self.fc1(self.pool(x).flatten(1)))))
        return x * y[:, :, None, None]
