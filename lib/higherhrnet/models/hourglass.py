"""A residual-block stacked hourglass network with associative embedding (MODEL.NAME hourglass_residual): the
hourglass built from the residual modules the stacked hourglass papers describe, with the widths of the
Associative Embedding paper (Newell et al., "Associative Embedding: End-to-End Learning for Joint Detection and
Grouping", NIPS 2017). It is not the network that paper released, which has plain convolutions and no
BatchNorm: that one is `ae_hourglass.AEHourglassNet` (MODEL.NAME hourglass_ae).

A stem takes the image to 1/4 resolution; then `num_stacks` hourglasses run one after the other at 1/4.
Each hourglass pools down `depth` times (max-pool) and comes back up (nearest upsampling), with a residual
skip branch at every resolution and wider features deeper down (the AE paper: 256, 384, 512, 640, 768).
Every stack predicts J heatmaps followed by the tag maps with a 1x1 conv; all but the last stack add
1x1-conv projections of their features and of their predictions to their input, which becomes the next
stack's input. Every stack's prediction is an output, so each can be supervised (intermediate supervision).

Residual blocks are pre-activation bottlenecks (BN-ReLU-conv 1x1, 3x3, 1x1 at half the output width, a 1x1
conv on the skip when widths differ), as in the stacked hourglass papers. Convolutions have no bias except
the prediction convs: every other conv output reaches a BatchNorm before any ReLU, so a bias would only
shift what the BatchNorm removes.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..outputs import OutputSpec
from .hrnet import BN_MOMENTUM, conv3x3

__all__ = ["Residual", "Hourglass", "ResidualHourglassNet"]


class Residual(nn.Module):
    """Pre-activation bottleneck: x (N, in_channels, H, W) -> (N, out_channels, H, W)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 2
        self.bn1 = nn.BatchNorm2d(in_channels, momentum=BN_MOMENTUM)
        self.conv1 = nn.Conv2d(in_channels, mid, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(mid, mid)
        self.bn3 = nn.BatchNorm2d(mid, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(mid, out_channels, kernel_size=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.skip = (nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
                     if in_channels != out_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.skip is None else self.skip(x)
        # The first ReLU must not act in place: x is still needed for the identity.
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + identity


class Hourglass(nn.Module):
    """One hourglass: x (N, channels[0], H, W) -> (N, channels[0], H, W).

    channels[d] is the width at depth d (after d poolings); the recursion goes len(channels) - 1 poolings
    deep. Any H and W work: pooling rounds up and upsampling returns to the skip branch's exact size.
    """

    def __init__(self, channels: Sequence[int]):
        super().__init__()
        if len(channels) < 2:
            raise ValueError(f"a hourglass needs widths for at least two resolutions, got {list(channels)}")
        outer, inner = channels[0], channels[1]
        self.skip = Residual(outer, outer)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)
        self.down = Residual(outer, inner)
        self.inner = Hourglass(channels[1:]) if len(channels) > 2 else Residual(inner, inner)
        self.up = Residual(inner, outer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.up(self.inner(self.down(self.pool(x))))
        return self.skip(x) + F.interpolate(low, size=x.shape[2:], mode="nearest")


class ResidualHourglassNet(nn.Module):
    """forward(x (N, 3, H, W)) -> list of one output per stack, each (N, C_s, ceil(H/4), ceil(W/4)).

    outputs: one OutputSpec per stack (stride 4); C_s = outputs[s].channels. channels: hourglass widths
    from 1/4 down, len(channels) - 1 poolings deep. stem_channels: widths of the stem's 7x7 conv and of
    its residual blocks before the last one.
    """

    def __init__(self, outputs: Sequence[OutputSpec], channels: Sequence[int] = (256, 384, 512, 640, 768),
                 stem_channels: Sequence[int] = (64, 128)):
        super().__init__()
        num_stacks = len(outputs)
        if num_stacks < 1 or any(spec.stride != 4 for spec in outputs):
            raise ValueError(f"a stacked hourglass needs one output per stack, all at stride 4; got strides "
                             f"{[spec.stride for spec in outputs]}")
        if len(stem_channels) != 2:
            raise ValueError(f"stem_channels must be (conv width, residual width), got {list(stem_channels)}")
        self.outputs = tuple(outputs)
        width = channels[0]
        conv_width, res_width = stem_channels
        self.stem = nn.Sequential(
            nn.Conv2d(3, conv_width, kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(conv_width, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
            Residual(conv_width, res_width),
            nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True),
            Residual(res_width, res_width),
            Residual(res_width, width),
        )
        out_widths = [spec.channels for spec in outputs]
        self.hourglasses = nn.ModuleList(Hourglass(channels) for _ in range(num_stacks))
        self.features = nn.ModuleList(
            nn.Sequential(
                Residual(width, width),
                nn.Conv2d(width, width, kernel_size=1, bias=False),
                nn.BatchNorm2d(width, momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True),
            )
            for _ in range(num_stacks)
        )
        self.predictions = nn.ModuleList(nn.Conv2d(width, c, kernel_size=1) for c in out_widths)
        self.merge_features = nn.ModuleList(
            nn.Conv2d(width, width, kernel_size=1, bias=False) for _ in range(num_stacks - 1))
        self.merge_predictions = nn.ModuleList(
            nn.Conv2d(c, width, kernel_size=1, bias=False) for c in out_widths[:-1])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for s, (hourglass, features, predict) in enumerate(zip(self.hourglasses, self.features, self.predictions)):
            feature = features(hourglass(x))
            outputs.append(predict(feature))
            if s < len(self.merge_features):
                x = x + self.merge_features[s](feature) + self.merge_predictions[s](outputs[-1])
        return outputs
