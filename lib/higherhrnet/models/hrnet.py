"""HRNet backbone (Sun et al., CVPR 2019) with the module names of the official implementation.

Attribute names (conv1, bn1, conv2, bn2, layer1, transition1..3, stage2..4) and the nesting inside them
follow the official code exactly, so its checkpoints (and the ImageNet HRNet weights) load by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

__all__ = ["BasicBlock", "Bottleneck", "BLOCKS", "StageSpec", "HighResolutionModule", "HRNet"]

BN_MOMENTUM = 0.1


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(channels, channels * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


BLOCKS = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}


def make_blocks(block: type, in_channels: int, channels: int, num_blocks: int, stride: int = 1) -> nn.Sequential:
    """`num_blocks` residual blocks; the first one projects the input when widths or stride differ."""
    downsample = None
    out_channels = channels * block.expansion
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
        )
    layers = [block(in_channels, channels, stride, downsample)]
    layers += [block(out_channels, channels) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class StageSpec:
    """One HRNet stage: `num_modules` HighResolutionModules over len(num_blocks) parallel branches."""

    num_modules: int
    block: str
    num_blocks: tuple[int, ...]
    num_channels: tuple[int, ...]

    @property
    def num_branches(self) -> int:
        return len(self.num_blocks)

    @property
    def out_channels(self) -> list[int]:
        return [c * BLOCKS[self.block].expansion for c in self.num_channels]


class HighResolutionModule(nn.Module):
    """Parallel residual branches followed by sum fusion across resolutions.

    Branch i runs at 1/2**i of branch 0's resolution. Fusing into branch i: higher-resolution inputs go
    through stride-2 3x3 convs, lower-resolution ones through a 1x1 conv and nearest upsampling. With
    `multi_scale_output=False` only branch 0 is fused and returned.
    """

    def __init__(self, block: type, num_blocks: Sequence[int], in_channels: Sequence[int],
                 num_channels: Sequence[int], multi_scale_output: bool = True):
        super().__init__()
        n = len(num_blocks)
        if not (len(in_channels) == len(num_channels) == n):
            raise ValueError(f"branch counts disagree: num_blocks {list(num_blocks)}, "
                             f"in_channels {list(in_channels)}, num_channels {list(num_channels)}")
        self.num_branches = n
        self.branches = nn.ModuleList(
            make_blocks(block, in_channels[i], num_channels[i], num_blocks[i]) for i in range(n)
        )
        self.out_channels = [c * block.expansion for c in num_channels]
        self.fuse_layers = self._make_fuse_layers(self.out_channels, multi_scale_output) if n > 1 else None
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _make_fuse_layers(channels: list[int], multi_scale_output: bool) -> nn.ModuleList:
        n = len(channels)
        fuse_layers = nn.ModuleList()
        for i in range(n if multi_scale_output else 1):
            row = nn.ModuleList()
            for j in range(n):
                if j > i:
                    row.append(nn.Sequential(
                        nn.Conv2d(channels[j], channels[i], 1, 1, 0, bias=False),
                        nn.BatchNorm2d(channels[i]),
                        nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                    ))
                elif j == i:
                    row.append(None)
                else:
                    steps = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        out = channels[i] if last else channels[j]
                        step = [nn.Conv2d(channels[j], out, 3, 2, 1, bias=False), nn.BatchNorm2d(out)]
                        if not last:
                            step.append(nn.ReLU(inplace=True))
                        steps.append(nn.Sequential(*step))
                    row.append(nn.Sequential(*steps))
            fuse_layers.append(row)
        return fuse_layers

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        fused = []
        for i, row in enumerate(self.fuse_layers):
            # Sum in branch order 0..n-1, as the reference does, so float results match it bit for bit.
            y = None
            for j, (layer, x) in enumerate(zip(row, xs)):
                term = x if j == i else layer(x)
                y = term if y is None else y + term
            fused.append(self.relu(y))
        return fused


def make_transition(in_channels: Sequence[int], out_channels: Sequence[int]) -> nn.ModuleList:
    """Adapt branch widths between stages and open new, lower-resolution branches from the last one."""
    layers = nn.ModuleList()
    n_in = len(in_channels)
    for i, out in enumerate(out_channels):
        if i < n_in:
            if out != in_channels[i]:
                layers.append(nn.Sequential(
                    nn.Conv2d(in_channels[i], out, 3, 1, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)
                ))
            else:
                layers.append(None)
        else:
            steps = []
            for k in range(i + 1 - n_in):
                c_in = in_channels[-1]
                c_out = out if k == i - n_in else c_in
                steps.append(nn.Sequential(
                    nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
                ))
            layers.append(nn.Sequential(*steps))
    return layers


class HRNet(nn.Module):
    """Stem (two stride-2 3x3 convs, to 1/4), layer1, then stages 2-4 joined by transitions.

    forward(x (N, 3, H, W)) -> list of branch features; branch i is (N, C_i, H/4/2**i, W/4/2**i).
    With `multi_scale_output=False` the last stage fuses and returns only branch 0 (as HigherHRNet).
    """

    def __init__(self, stage1: StageSpec, stage2: StageSpec, stage3: StageSpec, stage4: StageSpec,
                 stem_channels: int = 64, multi_scale_output: bool = False):
        super().__init__()
        if stage1.num_branches != 1 or stage1.num_modules != 1:
            raise ValueError("stage 1 (layer1) must have a single branch and a single module")
        self.conv1 = nn.Conv2d(3, stem_channels, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(stem_channels, stem_channels, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(stem_channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_blocks(BLOCKS[stage1.block], stem_channels, stage1.num_channels[0], stage1.num_blocks[0])

        channels = stage1.out_channels
        self.transition1 = make_transition(channels, stage2.out_channels)
        self.stage2, channels = self._make_stage(stage2, stage2.out_channels, True)
        self.transition2 = make_transition(channels, stage3.out_channels)
        self.stage3, channels = self._make_stage(stage3, stage3.out_channels, True)
        self.transition3 = make_transition(channels, stage4.out_channels)
        self.stage4, channels = self._make_stage(stage4, stage4.out_channels, multi_scale_output)
        self.out_channels = channels if multi_scale_output else channels[:1]

    @staticmethod
    def _make_stage(spec: StageSpec, in_channels: list[int], multi_scale_output: bool):
        modules = []
        for m in range(spec.num_modules):
            last = m == spec.num_modules - 1
            modules.append(HighResolutionModule(
                BLOCKS[spec.block], spec.num_blocks, in_channels, spec.num_channels,
                multi_scale_output=multi_scale_output or not last,
            ))
            in_channels = modules[-1].out_channels
        return nn.Sequential(*modules), in_channels

    @staticmethod
    def _transition(transition: nn.ModuleList, ys: list[torch.Tensor]) -> list[torch.Tensor]:
        # Existing branches pass through (or get re-widened); each new branch grows from the lowest one.
        return [
            (ys[i] if layer is None else layer(ys[i])) if i < len(ys) else layer(ys[-1])
            for i, layer in enumerate(transition)
        ]

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        ys = self.stage2(self._transition(self.transition1, [x]))
        ys = self.stage3(self._transition(self.transition2, ys))
        return self.stage4(self._transition(self.transition3, ys))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_features(x)
