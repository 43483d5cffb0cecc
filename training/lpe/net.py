"""The LPE network: a small CNN that reads a 64×256 strip and scores every column."""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int, stride: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _line(channels: int, dilation: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(channels, channels, 5, padding=2 * dilation, dilation=dilation, bias=False),
        nn.BatchNorm1d(channels),
        nn.ReLU(inplace=True),
    )


class LocoStripNet(nn.Module):
    """Input: N×3×64×256 float in [0, 1] (BGR). Output: N×3×256 probabilities per column:
    occupancy, lower end here, upper end here."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(3, width // 2, (2, 1)),  # 32×256
            _block(width // 2, width, (2, 2)),  # 16×128
            _block(width, width, (1, 1)),
            _block(width, 2 * width, (2, 1)),  # 8×128
            _block(2 * width, 2 * width, (2, 1)),  # 4×128
        )
        self.collapse = nn.Sequential(
            nn.Conv2d(2 * width, 2 * width, (4, 1), bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
        )
        self.context = nn.Sequential(
            _line(2 * width, 1), _line(2 * width, 2), _line(2 * width, 4), _line(2 * width, 8)
        )
        self.head = nn.Sequential(
            nn.ConvTranspose1d(2 * width, width, 2, stride=2),  # back to 256 columns
            nn.ReLU(inplace=True),
            nn.Conv1d(width, 3, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Column logits."""
        f = self.collapse(self.features(x)).squeeze(2)
        f = f + self.context(f)
        return self.head(f)


class Deployable(nn.Module):
    """What is exported: uint8 NHWC BGR strips in, per-column probabilities out."""

    def __init__(self, net: LocoStripNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, strips: torch.Tensor) -> torch.Tensor:
        """Probabilities N×3×256."""
        x = strips.permute(0, 3, 1, 2).float() / 255.0
        return torch.sigmoid(self.net(x))
