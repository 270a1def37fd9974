"""The seed's modified UNet (D3.2, section 2.2.1, Figure 7).

A contracting path of [3x3 conv -> batch norm -> ReLU] x 2 blocks with 2x2 max pooling, an expanding
path of 2x2 up-convolutions, concatenation with the matching contracting features and the same conv
blocks, and a 1x1 convolution to the classes. The network returns logits; softmax is applied only when
probabilities are wanted (the loss works on logits). Width and depth are configurable; any input size
works (odd sizes included): up-sampled features are padded to their skip connection's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvBlock(nn.Sequential):
    """[3x3 conv (no bias: batch norm follows) -> batch norm -> ReLU] x 2."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """2x2 up-convolution, concatenation with the skip features, conv block."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = ConvBlock(2 * out_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(x)
        # Odd input sizes: pooling floored the size, so the up-sampled map can be one pixel short.
        dy, dx = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """UNet with ``depth`` poolings; level ``i`` has ``base_width * 2**i`` channels."""

    def __init__(self, in_channels: int, num_classes: int, base_width: int = 64, depth: int = 4):
        super().__init__()
        if depth < 1 or base_width < 1:
            raise ValueError(f"depth and base_width must be positive, got {depth} and {base_width}")
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.in_channels, self.num_classes, self.depth = in_channels, num_classes, depth
        self.encoder = nn.ModuleList(
            [ConvBlock(in_channels, widths[0])]
            + [ConvBlock(widths[i], widths[i + 1]) for i in range(depth)]
        )
        self.pool = nn.MaxPool2d(2)
        self.decoder = nn.ModuleList([UpBlock(widths[i + 1], widths[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for block in self.decoder:
            x = block(x, skips.pop())
        return self.head(x)

    @torch.no_grad()
    def predict_proba(self, x: Tensor) -> Tensor:
        """Class probabilities (softmax over the logits)."""
        return self.forward(x).softmax(dim=1)
