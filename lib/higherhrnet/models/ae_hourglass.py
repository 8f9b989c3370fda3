"""The stacked hourglass network as released with the Associative Embedding paper (Newell, Huang and Deng,
NIPS 2017) in github.com/princeton-vl/pose-ae-train (`models/posenet.py`, `models/layers.py`): MODEL.NAME
hourglass_ae. mmpose's `HourglassAENet` has the same topology, with BatchNorm and parameter names of its own.

It differs from the paper's description (and from `hourglass.ResidualHourglassNet`): no residual blocks and,
in the released configuration, no BatchNorm. Every block is a single conv (bias included) followed by a ReLU.

    stem  (pre):            7x7/2 conv 3->64, 3x3 64->128, 2x2 max-pool, 3x3 128->128, 3x3 128->width
    per stack (features):   hourglass, then two 3x3 width->width convs
                (outs):     1x1 conv width->num_outputs, no ReLU
    between stacks:         x <- x + merge_preds(prediction) + merge_features(features), 1x1 convs, no ReLU
    hourglass level:        up1 = 3x3 f->f on x;  low1 = 3x3 f->f+increase on maxpool2x2(x);
                            low2 = the next level (or a 3x3 conv at the bottom); low3 = 3x3 back to f;
                            out = up1 + nearest-upsample-x2(low3)

`increase` widens the outermost level only: pose-ae-train's `Hourglass` builds its inner level without
passing `increase` on, so every deeper level adds its default, 128 (`inner_increase` here).

With the released settings (4 stacks, width 256, increase 128, depth 4, 68 outputs) the widths are 256,
384, 512, 640, 768 and the network has 138,893,840 parameters. Of the 68 output channels the loss and the
test code read only the first 34: channels 0-16 are the COCO heatmaps, 17-33 one tag map per joint.
Channels 34-67 are never supervised nor read at test time, but they are not dead: `merge_preds` feeds all
68 channels into the next stack, so they must be kept for the released weights to give the same outputs.

Parameter names are pose-ae-train's, so that its checkpoint files load unchanged with
`higherhrnet.load_checkpoint` (checkpoint/layouts.py removes the `model.module.` prefix of its saved Trainer).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AEHourglassNet", "HEATMAP_CHANNELS", "TAG_CHANNELS"]

# Channel ranges of every stack's output read by pose-ae-train's loss (`PoseNet.calc_loss`) and test code.
HEATMAP_CHANNELS = slice(0, 17)
TAG_CHANNELS = slice(17, 34)


class ConvBlock(nn.Module):
    """pose-ae-train's `Conv`: conv (with bias, 'same' padding), then ReLU, then BatchNorm if asked.

    The ReLU comes before the BatchNorm, as in pose-ae-train (only relevant with batch_norm=True).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 relu: bool = True, batch_norm: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=(kernel_size - 1) // 2)
        self.relu = relu
        if batch_norm:
            self.bn = nn.BatchNorm2d(out_channels)
        else:
            self.bn = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.relu:
            x = F.relu(x)
        return x if self.bn is None else self.bn(x)


class Merge(nn.Module):
    """A 1x1 conv without ReLU; a wrapper only so that its weights are named `conv.conv.*` as in pose-ae-train."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = ConvBlock(in_channels, out_channels, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PlainHourglass(nn.Module):
    """One hourglass level of plain convs: x (N, width, H, W) -> (N, width, H, W); H, W divisible by 2**depth.

    This level works at width + increase one pooling down; the levels below it add inner_increase each
    (pose-ae-train: increase for the outermost level, its default 128 below). batch_norm applies to up1,
    low1 and the bottom conv only: pose-ae-train never gives low3 a BatchNorm.
    """

    def __init__(self, depth: int, width: int, increase: int = 128, batch_norm: bool = False,
                 inner_increase: int = 128):
        super().__init__()
        inner = width + increase
        self.up1 = ConvBlock(width, width, batch_norm=batch_norm)
        self.low1 = ConvBlock(width, inner, batch_norm=batch_norm)
        if depth > 1:
            self.low2 = PlainHourglass(depth - 1, inner, inner_increase, batch_norm, inner_increase)
        else:
            self.low2 = ConvBlock(inner, inner, batch_norm=batch_norm)
        self.low3 = ConvBlock(inner, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2, 2))))
        return self.up1(x) + F.interpolate(low, scale_factor=2.0, mode="nearest")


class AEHourglassNet(nn.Module):
    """pose-ae-train's `PoseNet(nstack, inp_dim, oup_dim, bn, increase)`: forward(x) -> list of outputs.

    x: (N, 3, H, W) float, RGB, pixels / 255 (no mean or std; the caller normalises). H and W must be
    multiples of 4 * 2**depth (64 for the released network): the stem divides by 4 and each hourglass level
    halves with a floor max-pool and doubles back with a x2 nearest upsampling, so other sizes do not add
    up. pose-ae-train never feeds other sizes: its test code warps each image into a square whose side is
    a multiple of 64 (zero padding). It would also run with a side of 64k - 1 (the 7x7 stride-2 conv rounds
    up); that case is refused here too.

    Returns num_stacks tensors, each (N, num_outputs, H/4, W/4): output s is stack s's prediction
    (intermediate supervision; the last one is what pose-ae-train's test code reads). Channels
    HEATMAP_CHANNELS are the heatmaps, TAG_CHANNELS the tags, the rest unsupervised (see the module doc).

    Differences from pose-ae-train's `PoseNet.forward`: it takes NHWC input and permutes it itself, and
    returns `torch.stack(outputs, 1)`, one (N, nstack, C, H/4, W/4) tensor. Argument names there: nstack,
    inp_dim (width), oup_dim (num_outputs), bn (batch_norm), increase; depth is fixed to 4 there.

    num_outputs: the channels of every stack's prediction (`build_model` takes it from the output specs:
    heatmaps, tags and unused channels). increase widens the outermost hourglass level, inner_increase
    each deeper one: pose-ae-train passes its `increase` to the outermost level only and hard-codes 128
    below, which the defaults reproduce whatever increase is. Default PyTorch initialisation, as in
    pose-ae-train (its `weights_init` is never applied).
    """

    def __init__(self, num_stacks: int = 4, width: int = 256, increase: int = 128, depth: int = 4,
                 num_outputs: int = 68, batch_norm: bool = False, inner_increase: int = 128):
        super().__init__()
        if num_stacks < 1 or depth < 1:
            raise ValueError(f"num_stacks and depth must be at least 1, got {num_stacks} and {depth}")
        self.num_stacks = num_stacks
        self.depth = depth
        self.pre = nn.Sequential(
            ConvBlock(3, 64, 7, 2, batch_norm=batch_norm),
            ConvBlock(64, 128, batch_norm=batch_norm),
            nn.MaxPool2d(2, 2),
            ConvBlock(128, 128, batch_norm=batch_norm),
            ConvBlock(128, width, batch_norm=batch_norm),
        )
        # The two convs after each hourglass never have a BatchNorm in pose-ae-train, whatever `bn` says.
        self.features = nn.ModuleList(
            nn.Sequential(PlainHourglass(depth, width, increase, batch_norm, inner_increase), ConvBlock(width, width),
                          ConvBlock(width, width))
            for _ in range(num_stacks)
        )
        self.outs = nn.ModuleList(ConvBlock(width, num_outputs, 1, relu=False) for _ in range(num_stacks))
        self.merge_features = nn.ModuleList(Merge(width, width) for _ in range(num_stacks - 1))
        self.merge_preds = nn.ModuleList(Merge(num_outputs, width) for _ in range(num_stacks - 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # An ONNX export traces one example input, which is checked when it runs untraced; under the trace
        # the check would only be recorded as a constant (with a warning).
        if not torch.jit.is_tracing():
            self.check_input(x)
        x = self.pre(x)
        outputs = []
        for s in range(self.num_stacks):
            feature = self.features[s](x)
            outputs.append(self.outs[s](feature))
            if s < self.num_stacks - 1:
                x = x + self.merge_preds[s](outputs[-1]) + self.merge_features[s](feature)
        return outputs

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError unless x is (N, 3, H, W) with H and W multiples of 4 * 2**depth."""
        multiple = 4 * 2 ** self.depth
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (N, 3, H, W), got shape {tuple(x.shape)}")
        if x.shape[2] % multiple or x.shape[3] % multiple:
            raise ValueError(f"image size {tuple(x.shape[2:])} is not a multiple of {multiple} in both "
                             f"height and width; pad the image (as pose-ae-train's test code does)")
