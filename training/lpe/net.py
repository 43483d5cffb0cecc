"""The LPE network: a small CNN that reads a 64×256 strip with its validity mask and scale, and
scores every column."""

from __future__ import annotations

import torch
from torch import nn

# Metres per strip column at the example depot's cameras: the scale input is log(m/col ÷ this).
REFERENCE_METRES_PER_COLUMN = 0.055


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
    """Inputs: strips N×3×64×256 in [0, 1] (BGR), valid N×1×64×256 (1 where the cell lies inside the
    image), scale N×1 (log of metres per column over the reference). Output: N×3×256 logits per
    column: occupancy, lower end here, upper end here."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(4, width // 2, (2, 1)),  # 32×256
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
        # Each column's share of valid cells and the strip's scale join the features along the track,
        # where a view's end and a locomotive's length in columns are decided.
        self.geometry = nn.Sequential(
            nn.Conv1d(2 * width + 2, 2 * width, 1, bias=False),
            nn.BatchNorm1d(2 * width),
            nn.ReLU(inplace=True),
        )
        # Dilations up to 16 see about 250 columns: a whole 37 m locomotive in the widest views.
        self.context = nn.Sequential(*(_line(2 * width, d) for d in (1, 2, 4, 8, 16)))
        self.head = nn.Sequential(
            nn.ConvTranspose1d(2 * width, width, 2, stride=2),  # back to 256 columns
            nn.ReLU(inplace=True),
            nn.Conv1d(width, 3, 3, padding=1),
        )

    def forward(self, x: torch.Tensor, valid: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Column logits."""
        f = self.collapse(self.features(torch.cat([x, valid], dim=1))).squeeze(2)
        columns = nn.functional.avg_pool1d(valid.mean(dim=2), 2)
        f = self.geometry(torch.cat([f, columns, scale[:, :, None].expand(-1, -1, f.shape[2])], dim=1))
        f = f + self.context(f)
        return self.head(f)


def scale_input(metres_per_column: torch.Tensor) -> torch.Tensor:
    """The network's scale input from metres per column (N×1)."""
    return torch.log(metres_per_column / REFERENCE_METRES_PER_COLUMN)


class Deployable(nn.Module):
    """What is exported: uint8 NHWC BGR strips, their u8 validity masks and metres per column in,
    per-column probabilities out."""

    def __init__(self, net: LocoStripNet) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, strips: torch.Tensor, valid: torch.Tensor, metres_per_column: torch.Tensor
    ) -> torch.Tensor:
        """Probabilities N×3×256."""
        x = strips.permute(0, 3, 1, 2).float() / 255.0
        return torch.sigmoid(self.net(x, valid[:, None].float(), scale_input(metres_per_column)))
