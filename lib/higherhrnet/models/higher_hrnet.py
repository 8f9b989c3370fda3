"""HigherHRNet (Cheng et al., CVPR 2020): HRNet plus a deconvolution module for 1/2-resolution heatmaps.

Output i (i = 0 .. num_deconvs) has stride 4 / 2**i; its channels are those of its `OutputSpec` (officially:
J heatmaps and J tags at 1/4, J heatmaps at 1/2). Module names match the official checkpoints:
`final_layers`, `deconv_layers`.

head "hrnet_v1" (official): the heads see the highest-resolution branch only. head "hrnet_v2" (Sun et al.,
"High-Resolution Representations for Labeling Pixels and Regions", 2019): all four stage-4 branches, the
lower ones bilinearly upsampled to 1/4, concatenated (C + 2C + 4C + 8C = 15C channels) and mixed by a 1x1
conv + BN + ReLU (`representation_head`) before the final layers and the deconv modules.

SWAHR (outputs with `scale_channels`): a `ScaleMapHead` per output under `conv_scale_layers.<i>`, reading the
same features as `final_layers[i]`; its J maps go in front of the final layer's channels. The deconv modules
still concatenate the final layer's channels only (SWAHR's `y[:, J:]`), so every HigherHRNet weight keeps its
shape and a SWAHR checkpoint is a HigherHRNet checkpoint plus `conv_scale_layers.*`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..outputs import OutputSpec
from .hrnet import BN_MOMENTUM, BasicBlock, HRNet, StageSpec
from .scale_head import ScaleMapHead, make_scale_layers

__all__ = ["HigherHRNet", "HEADS", "make_final_layers", "make_deconv_layers", "init_weights"]

# ConvTranspose2d (padding, output_padding) that exactly doubles the size for each kernel size.
_DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}

HEADS = ("hrnet_v1", "hrnet_v2")


def make_final_layers(in_channels: int, deconv_channels: Sequence[int], output_channels: Sequence[int],
                      kernel_size: int = 1) -> nn.ModuleList:
    """One conv per output: on the backbone's 1/4 features, then on each deconv module's features."""
    widths = [in_channels, *deconv_channels]
    return nn.ModuleList(
        nn.Conv2d(c, output_channels[i], kernel_size, 1, 1 if kernel_size == 3 else 0)
        for i, c in enumerate(widths)
    )


def make_deconv_layers(in_channels: int, deconv_channels: Sequence[int], kernel_sizes: Sequence[int],
                       cat_output: Sequence[bool], num_basic_blocks: int,
                       output_channels: Sequence[int]) -> nn.ModuleList:
    """Each deconv module: [concat previous output] -> ConvTranspose2d x2 -> BN -> ReLU -> BasicBlocks."""
    modules = nn.ModuleList()
    for i, (channels, kernel) in enumerate(zip(deconv_channels, kernel_sizes)):
        if cat_output[i]:
            in_channels += output_channels[i]
        padding, output_padding = _DECONV_PADDING[kernel]
        layers = [nn.Sequential(
            nn.ConvTranspose2d(in_channels, channels, kernel, stride=2, padding=padding,
                               output_padding=output_padding, bias=False),
            nn.BatchNorm2d(channels, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
        )]
        layers += [nn.Sequential(BasicBlock(channels, channels)) for _ in range(num_basic_blocks)]
        modules.append(nn.Sequential(*layers))
        in_channels = channels
    return modules


def init_weights(model: nn.Module) -> None:
    """The official initialisation for training from scratch: conv and deconv weights N(0, 0.001),
    biases 0, BatchNorm weight 1 and bias 0; then SWAHR's scale heads get their own (last conv all zeros),
    after the model-wide pass that would overwrite it, as in SWAHR's code."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in model.modules():
        if isinstance(m, ScaleMapHead):
            m.init_weights()


class HigherHRNet(HRNet):
    """forward(x (N, 3, H, W)) -> list of outputs, output i (N, C_i, H/4*2**i, W/4*2**i).

    outputs: one OutputSpec per output (num_deconvs + 1, strides 4, 2, ...); C_i = outputs[i].channels. With
    scale channels (SWAHR; all outputs or none), output i is [scale maps | final_layers[i]'s channels].
    H and W should be multiples of 32 for the branch resolutions to line up (inference pads to
    multiples of 64).
    head: "hrnet_v1" or "hrnet_v2" (see the module docstring); head_channels: the hrnet_v2 head's
    width, None for the concatenation's (the sum of stage4's branch widths).
    """

    def __init__(self, stage1: StageSpec, stage2: StageSpec, stage3: StageSpec, stage4: StageSpec,
                 outputs: Sequence[OutputSpec], deconv_channels: Sequence[int] = (32,), deconv_kernel_sizes: Sequence[int] = (4,),
                 cat_output: Sequence[bool] = (True,), num_basic_blocks: int = 4, final_conv_kernel: int = 1,
                 stem_channels: int = 64, head: str = "hrnet_v1", head_channels: int | None = None):
        if head not in HEADS:
            raise ValueError(f"head must be one of {list(HEADS)}, got {head!r}")
        super().__init__(stage1, stage2, stage3, stage4, stem_channels=stem_channels,
                         multi_scale_output=head == "hrnet_v2")
        n = len(deconv_channels)
        if not (len(deconv_kernel_sizes) == len(cat_output) == n and len(outputs) == n + 1):
            raise ValueError(f"{n} deconv modules need {n} kernel sizes and cat flags and {n + 1} outputs; got "
                             f"{list(deconv_kernel_sizes)}, {list(cat_output)} and {len(outputs)} outputs")
        strides = [spec.stride for spec in outputs]
        if strides != [4.0 / 2 ** i for i in range(n + 1)]:
            raise ValueError(f"HigherHRNet's outputs have strides 4, 2, 1, ...; the output specs say {strides}")
        self.outputs = tuple(outputs)
        self.cat_output = tuple(bool(c) for c in cat_output)
        self.head = head
        features = self.out_channels[0]
        if head == "hrnet_v2":
            concatenated = sum(self.out_channels)
            features = head_channels or concatenated
            self.representation_head = nn.Sequential(
                nn.Conv2d(concatenated, features, kernel_size=1, bias=False),
                nn.BatchNorm2d(features, momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True),
            )
        channels = [spec.final_channels for spec in outputs]
        self.final_layers = make_final_layers(features, deconv_channels, channels, final_conv_kernel)
        self.deconv_layers = make_deconv_layers(features, deconv_channels, deconv_kernel_sizes, self.cat_output,
                                                num_basic_blocks, channels)
        with_scales = [spec.has_scales for spec in outputs]
        if any(with_scales) and not all(with_scales):
            raise ValueError(f"SWAHR's scale maps go on every output or on none; the output specs put them on "
                             f"outputs {[i for i, w in enumerate(with_scales) if w]} only")
        # Registered last, as in SWAHR's model: its state_dict is HigherHRNet's, in order, then conv_scale_layers.*
        self.conv_scale_layers = make_scale_layers([features, *deconv_channels], outputs[0].num_joints) \
            if all(with_scales) else None

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """The 1/4-resolution features the heads see: (N, C_head, H/4, W/4)."""
        branches = self.forward_features(x)
        if self.head == "hrnet_v1":
            return branches[0]
        size = branches[0].shape[2:]
        upsampled = [branches[0]] + [F.interpolate(b, size=size, mode="bilinear", align_corners=False)
                                     for b in branches[1:]]
        return self.representation_head(torch.cat(upsampled, 1))

    def _with_scales(self, index: int, features: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Output `index`: the final layer's maps y, behind the scale maps of the same features (SWAHR)."""
        if self.conv_scale_layers is None:
            return y
        return torch.cat((self.conv_scale_layers[index](features), y), 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.representation(x)
        y = self.final_layers[0](features)
        outputs = [self._with_scales(0, features, y)]
        for i, deconv in enumerate(self.deconv_layers):
            if self.cat_output[i]:
                features = torch.cat((features, y), 1)
            features = deconv(features)
            y = self.final_layers[i + 1](features)
            outputs.append(self._with_scales(i + 1, features, y))
        return outputs
