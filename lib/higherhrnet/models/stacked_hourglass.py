"""The stacked hourglass network of bearpaw/pytorch-pose (MODEL.NAME stacked_hourglass), a top-down network.

pose/models/hourglass.py of bearpaw/pytorch-pose (Newell et al., "Stacked Hourglass Networks for Human Pose
Estimation", ECCV 2016, as that code writes it), built here so that its released MPII checkpoints load by name
and give the same outputs:

- pre-activation bottlenecks (`Bottleneck`: BN-ReLU-conv 1x1, 3x3, 1x1, every conv with a bias, output width
  2 x `planes`; a 1x1 conv with bias on the skip where the width changes);
- a stem to 1/4 of the input: a 7x7 stride-2 conv with bias of `stem_channels` (64), BN, ReLU, a bottleneck
  of stem_channels planes (layer1, 2 x stem_channels out), a 2x2 max-pool, a bottleneck of 2 x stem_channels
  planes (layer2, 4 x stem_channels out) and one of `num_feats` planes (layer3): 2 x num_feats channels;
- per stack, an `Hourglass` of depth 4 at 2 x num_feats channels everywhere (bearpaw's hg[i][0..3]: at every
  level a skip branch hg[level][0], a max-pooled branch hg[level][1] and, after the level below, hg[level][2]
  before a nearest x2 upsampling; the innermost level runs hg[0][3] in place of a deeper level), then `res`
  (num_blocks bottlenecks), `fc` (1x1 conv with bias, BN, ReLU) and `score` (1x1 conv to the J heatmaps);
  all but the last stack add `fc_` (1x1 conv of the features) and `score_` (1x1 conv of the heatmaps) to
  their input, which becomes the next stack's input.

Every stack's heatmaps are an output (the official training supervises them all; the official test reads the
last). Parameter and buffer names are the official ones, in the official order, so a released state_dict loads
strictly once the "module." of nn.DataParallel is removed (checkpoint/layouts.py). Modules are also created in
the official order, so that for a given torch seed the default initialisation (bearpaw uses PyTorch's defaults)
draws the same weights. The widths default to the released models' (num_feats 128, stem 64); bearpaw's
--features flag is parsed but never reaches its network.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..outputs import OutputSpec

__all__ = ["HOURGLASS_DEPTH", "Bottleneck", "residual_blocks", "Hourglass", "StackedHourglassNet"]

# Poolings per hourglass, fixed in the official network (HourglassNet builds every Hourglass with depth 4).
HOURGLASS_DEPTH = 4


class Bottleneck(nn.Module):
    """Pre-activation bottleneck: x (N, in_channels, H, W) -> (N, 2 planes, H, W).

    downsample: the skip's 1x1 conv where in_channels != 2 planes (None: identity). It is built by the caller,
    before the block, as the official code builds it (the order in which random initial weights are drawn).
    """

    expansion = 2

    def __init__(self, in_channels: int, planes: int, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=1, bias=True)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=True)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The in-place ReLUs act on BatchNorm outputs, never on x, which the skip still needs.
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        residual = x if self.downsample is None else self.downsample(x)
        return out + residual


def residual_blocks(in_channels: int, planes: int, num_blocks: int) -> nn.Sequential:
    """num_blocks bottlenecks of `planes` (the official `_make_residual`): the first takes in_channels, with a
    1x1 conv (with bias) on its skip when in_channels != 2 planes; the others take and give 2 planes."""
    width = planes * Bottleneck.expansion
    downsample = None
    if in_channels != width:
        downsample = nn.Sequential(nn.Conv2d(in_channels, width, kernel_size=1, bias=True))
    blocks = [Bottleneck(in_channels, planes, downsample)]
    blocks += [Bottleneck(width, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*blocks)


class Hourglass(nn.Module):
    """One hourglass: x (N, 2 planes, H, W) -> (N, 2 planes, H, W); H and W multiples of 2**depth.

    hg[level] holds the residual stacks of one resolution, level depth - 1 the outermost (full resolution) and
    0 the innermost: [0] the skip branch, [1] after the 2x2 max-pool, [2] after the level below (or, at level
    0, after [3]), whose result is upsampled x2 (nearest) and added to the skip branch.
    """

    def __init__(self, planes: int, num_blocks: int, depth: int = HOURGLASS_DEPTH):
        super().__init__()
        width = planes * Bottleneck.expansion
        self.depth = depth
        self.hg = nn.ModuleList(
            nn.ModuleList(residual_blocks(width, planes, num_blocks) for _ in range(4 if level == 0 else 3))
            for level in range(depth))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        branches = self.hg[level]
        skip = branches[0](x)
        low = branches[1](F.max_pool2d(x, 2, stride=2))
        low = self._level(level - 1, low) if level > 0 else branches[3](low)
        low = branches[2](low)
        return skip + F.interpolate(low, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._level(self.depth - 1, x)


class StackedHourglassNet(nn.Module):
    """forward(x (N, 3, H, W)) -> list of the stacks' heatmaps, one (N, J, H/4, W/4) tensor per stack, the last
    stack's last (as the official HourglassNet returns them). H and W: multiples of 64 (the stem's 1/4, then
    4 poolings that the upsampling must undo exactly), 256 x 256 for the released models.

    outputs: one OutputSpec per stack (stride 4, J heatmaps, no tags, no scale maps); J = outputs[0].channels.
    num_blocks: bottlenecks per residual stack (bearpaw's --blocks). num_feats: the hourglasses' bottleneck
    width (their features have 2 x num_feats channels). stem_channels: the stem conv's width (its bottlenecks
    then give 2 and 4 x stem_channels).
    """

    def __init__(self, outputs: Sequence[OutputSpec], num_blocks: int = 1, num_feats: int = 128,
                 stem_channels: int = 64):
        super().__init__()
        outputs = tuple(outputs)
        widths = {spec.channels for spec in outputs}
        if not outputs or any(spec.stride != 4 or spec.has_tags or spec.has_scales for spec in outputs) \
                or len(widths) != 1:
            raise ValueError(f"a stacked hourglass has one output per stack, each J heatmaps at stride 4 and "
                             f"nothing else; the output specs say strides {[spec.stride for spec in outputs]}, "
                             f"channels {[spec.channels for spec in outputs]}, tag channels "
                             f"{[spec.tag_channels for spec in outputs]}, scale channels "
                             f"{[spec.scale_channels for spec in outputs]}")
        if min(num_blocks, num_feats, stem_channels) < 1:
            raise ValueError(f"num_blocks, num_feats and stem_channels must be >= 1, got {num_blocks}, {num_feats} "
                             f"and {stem_channels}")
        self.outputs = outputs
        num_stacks, joints = len(outputs), widths.pop()
        width = num_feats * Bottleneck.expansion

        self.conv1 = nn.Conv2d(3, stem_channels, kernel_size=7, stride=2, padding=3, bias=True)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        # One ReLU module, shared by the stem and every `fc`, as in the official network.
        self.relu = nn.ReLU(inplace=True)
        # The official _make_residual calls pass the running width as `planes` to layer2, hence its doubling.
        self.layer1 = residual_blocks(stem_channels, stem_channels, 1)
        self.layer2 = residual_blocks(2 * stem_channels, 2 * stem_channels, 1)
        self.layer3 = residual_blocks(4 * stem_channels, num_feats, 1)
        self.maxpool = nn.MaxPool2d(2, stride=2)

        # Built stack by stack, in the official order (see the module docstring); registered below by kind.
        hg, res, fc, score, fc_, score_ = [], [], [], [], [], []
        for i in range(num_stacks):
            hg.append(Hourglass(num_feats, num_blocks))
            res.append(residual_blocks(width, num_feats, num_blocks))
            fc.append(nn.Sequential(nn.Conv2d(width, width, kernel_size=1, bias=True), nn.BatchNorm2d(width),
                                    self.relu))
            score.append(nn.Conv2d(width, joints, kernel_size=1, bias=True))
            if i < num_stacks - 1:
                fc_.append(nn.Conv2d(width, width, kernel_size=1, bias=True))
                score_.append(nn.Conv2d(joints, width, kernel_size=1, bias=True))
        self.hg = nn.ModuleList(hg)
        self.res = nn.ModuleList(res)
        self.fc = nn.ModuleList(fc)
        self.score = nn.ModuleList(score)
        self.fc_ = nn.ModuleList(fc_)
        self.score_ = nn.ModuleList(score_)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.maxpool(self.layer1(x))))
        heatmaps = []
        for i in range(len(self.hg)):
            features = self.fc[i](self.res[i](self.hg[i](x)))
            heatmaps.append(self.score[i](features))
            if i < len(self.fc_):
                x = x + self.fc_[i](features) + self.score_[i](heatmaps[-1])
        return heatmaps
