"""SWAHR's scale-map head (Luo et al., CVPR 2021; code greatlog/SWAHR-HumanPose).

One head per network output, reading the same features as that output's final layer (output 0: the
1/4-resolution representation; output i >= 1: deconv module i - 1). Its J maps go in FRONT of the final
layer's channels: [scale maps J | heatmaps J | tags]. The deconv modules keep concatenating only the final
layer's channels (heatmaps and tags), so their weights keep HigherHRNet's shapes.

Parameter names match the reference's state_dict under `conv_scale_layers.<i>`:
    0.weight (J, C, 1, 1), 0.bias (J,)                 1x1 conv C -> J
    1.weight, 1.bias, 1.running_mean, 1.running_var (J,), 1.num_batches_tracked ()   BatchNorm2d(J)
    (2 is the ReLU, without parameters)
    3.weight (J, 1, k, k), 3.bias (J,)                 depthwise k x k conv, k = 9
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["ScaleMapHead", "make_scale_layers"]


class ScaleMapHead(nn.Sequential):
    """forward(features (N, C, H, W)) -> scale maps (N, J, H, W), same resolution.

    1x1 conv (bias) -> BatchNorm2d (PyTorch defaults: momentum 0.1, eps 1e-5) -> ReLU -> depthwise
    kernel_size x kernel_size conv (groups = J, 'same' padding, bias). Built with SWAHR's initialisation
    (`init_weights`): the last conv is all zeros, so a fresh head outputs exactly 0, the value that leaves
    the Gaussian targets unchanged.
    """

    def __init__(self, in_channels: int, num_joints: int, kernel_size: int = 9):
        if kernel_size % 2 != 1:
            raise ValueError(f"the depthwise kernel size must be odd to keep the resolution, got {kernel_size}")
        super().__init__(
            nn.Conv2d(in_channels, num_joints, 1, 1, 0),
            nn.BatchNorm2d(num_joints),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_joints, num_joints, kernel_size, 1, kernel_size // 2, groups=num_joints),
        )
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """SWAHR's initialisation for training: 1x1 conv weights N(0, 0.001) and bias 0, BatchNorm weight 1
        and bias 0 (the HigherHRNet scheme), then the depthwise conv's weight and bias 0. A model-wide
        HigherHRNet init (`init_weights` in higher_hrnet.py) overwrites the zeros: call this after it."""
        first, norm, _, last = self
        nn.init.normal_(first.weight, std=0.001)
        nn.init.zeros_(first.bias)
        nn.init.ones_(norm.weight)
        nn.init.zeros_(norm.bias)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)


def make_scale_layers(in_channels: Sequence[int], num_joints: int, kernel_size: int = 9) -> nn.ModuleList:
    """One ScaleMapHead per network output (the reference's `conv_scale_layers`).

    in_channels: the width of the features each output's final layer reads, e.g. for HigherHRNet-W32
    (STAGE4.NUM_CHANNELS[0], *DECONV.NUM_CHANNELS) = (32, 32).
    """
    if len(in_channels) == 0:
        raise ValueError("need the input width of at least one output")
    return nn.ModuleList(ScaleMapHead(c, num_joints, kernel_size) for c in in_channels)
