"""Top-down HRNet (Sun et al., CVPR 2019): the HRNet backbone's 1/4-resolution branch and one conv to J heatmaps.

The network of leoxiaobin/deep-high-resolution-net.pytorch (`PoseHighResolutionNet`, MODEL.NAME pose_hrnet):
the backbone of hrnet.py with stage 4 fusing into its highest-resolution branch only, then `final_layer`, a
conv of FINAL_CONV_KERNEL (1 or 3) with bias. It sees one person's crop (MODEL.IMAGE_SIZE, e.g. 192x256) and
predicts that person's J heatmaps at 1/4 of it; there are no tags. Module names are the official ones, so its
checkpoints load by name: the backbone's keys plus `final_layer.weight` and `final_layer.bias`.
"""
from __future__ import annotations

import torch
from torch import nn

from ..outputs import OutputSpec
from .hrnet import HRNet, StageSpec

__all__ = ["PoseHRNet"]


class PoseHRNet(HRNet):
    """forward(x (N, 3, H, W)) -> (N, J, H/4, W/4) heatmaps, one tensor as the official network returns it.

    output: the network's one OutputSpec (stride 4, J heatmaps, no tags); J = output.channels. H and W must be
    multiples of 32 for the branch resolutions to line up (192x256 and 288x384 are).
    """

    def __init__(self, stage1: StageSpec, stage2: StageSpec, stage3: StageSpec, stage4: StageSpec,
                 output: OutputSpec, final_conv_kernel: int = 1, stem_channels: int = 64):
        if output.stride != 4 or output.has_tags or output.has_scales:
            raise ValueError(f"pose_hrnet predicts J heatmaps at stride 4 and nothing else; the output spec says "
                             f"stride {output.stride:g}, {output.tag_channels} tag and {output.scale_channels} scale "
                             f"channels")
        if final_conv_kernel not in (1, 3):
            raise ValueError(f"final_conv_kernel must be 1 or 3, got {final_conv_kernel}")
        super().__init__(stage1, stage2, stage3, stage4, stem_channels=stem_channels, multi_scale_output=False)
        self.output = output
        self.final_layer = nn.Conv2d(self.out_channels[0], output.channels, kernel_size=final_conv_kernel,
                                     stride=1, padding=1 if final_conv_kernel == 3 else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.forward_features(x)[0])
