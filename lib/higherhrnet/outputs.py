"""What each network output is: one frozen `OutputSpec` per output, built once from the config.

The model's heads, the loss, the dataset's target sizes, the test-time pipeline, the ONNX channel check and
the benchmarks all read these objects; `models.build_output_specs` (from the model registry's output layout)
is the only code that reads the output-related config keys (LOSS.NUM_STAGES, LOSS.WITH_* and *_FACTOR,
TEST.WITH_*, DATASET.OUTPUT_SIZE, MODEL.TAG_PER_JOINT, MODEL.SWAHR).

Channel layout of an output (N, C, H, W), in this order (S = scale_channels):
    scales    channels [0, S)            S = J with MODEL.SWAHR (one scale map per joint, SWAHR's head), else 0
    heatmaps  channels [S, S + J)        one per joint
    tags      channels [S + J, S + J + T)  T = J (a tag map per joint), 1 (one shared map) or 0 (no tags)
    unused    channels [S + J + T, C)    carried by some released networks, read by nobody
The scale maps come first because SWAHR's code concatenates them in front of the final layer's channels;
they are read by the loss only (test time drops them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .errors import ConfigError

__all__ = ["OutputSpec", "check_test_use", "target_sizes", "output_labels"]


@dataclass(frozen=True)
class OutputSpec:
    """One network output.

    index: position in the network's list of outputs. stride: input pixels per output pixel (4 for 1/4
    resolution, 2 for 1/2). target_index / target_size: which training-target resolution trains it (its
    position in the dataset's list of targets, and its side in pixels at DATASET.INPUT_SIZE; for a top-down
    network, whose input is a fixed person crop, the (width, height) of its targets, MODEL.HEATMAP_SIZE).
    num_joints: J heatmap channels. tag_channels: 0, 1 or J associative-embedding tag maps after the heatmaps.
    unused_channels: channels after the tags that nothing reads.
    scale_channels: 0, or J scale maps BEFORE the heatmaps (SWAHR, Luo et al. CVPR 2021); an output with
    them is trained with SWAHR's scale-adaptive targets and weight-adaptive heatmap loss.
    heatmap_loss_factor: weight of the heatmap loss, None when the heatmaps are not trained.
    push_loss_factor / pull_loss_factor: weights of the AE loss terms (used only when the output has tags).
    test_heatmaps / test_tags: whether test time asks to average this output's heatmaps / use its tags
    (`check_test_use` says whether it can).
    """

    index: int
    stride: float
    target_index: int
    target_size: int | tuple[int, int]
    num_joints: int
    tag_channels: int
    heatmap_loss_factor: float | None
    push_loss_factor: float
    pull_loss_factor: float
    test_heatmaps: bool
    test_tags: bool
    unused_channels: int = 0
    scale_channels: int = 0

    def __post_init__(self):
        if self.scale_channels not in (0, self.num_joints):
            raise ValueError(f"output {self.index}: scale_channels must be 0 or num_joints ({self.num_joints}), "
                             f"got {self.scale_channels}")
        if self.tag_channels not in (0, 1, self.num_joints):
            raise ValueError(f"output {self.index}: tag_channels must be 0, 1 or num_joints ({self.num_joints}), "
                             f"got {self.tag_channels}")
        if self.tag_channels and self.heatmap_loss_factor is None:
            raise ValueError(f"output {self.index}: an output with tags must train its heatmaps")

    @property
    def channels(self) -> int:
        """C, all channels of the output."""
        return self.scale_channels + self.final_channels

    @property
    def final_channels(self) -> int:
        """The channels after the scale maps (heatmaps, tags, unused): what HigherHRNet's final layer of
        this output computes and what its next deconv module concatenates (CAT_OUTPUT)."""
        return self.num_joints + self.tag_channels + self.unused_channels

    @property
    def has_scales(self) -> bool:
        return self.scale_channels > 0

    @property
    def has_tags(self) -> bool:
        return self.tag_channels > 0

    @property
    def train_heatmaps(self) -> bool:
        return self.heatmap_loss_factor is not None

    @property
    def tag_per_joint(self) -> bool:
        """True when every joint has its own tag map (they are then swapped with the joints under a flip)."""
        return self.tag_channels == self.num_joints

    def scales(self, output: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, S, H, W) scale-map channels (a view; S = 0 without scale maps)."""
        return output[:, :self.scale_channels]

    def heatmaps(self, output: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, J, H, W) heatmap channels (a view)."""
        start = self.scale_channels
        return output[:, start:start + self.num_joints]

    def tags(self, output: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, T, H, W) tag channels (a view)."""
        start = self.scale_channels + self.num_joints
        return output[:, start:start + self.tag_channels]


def target_sizes(outputs: Sequence[OutputSpec]) -> tuple[int | tuple[int, int], ...]:
    """The training-target resolutions the outputs need, by target_index: (side in pixels, ...), or (width,
    height) pairs for a top-down network."""
    sizes: dict[int, int] = {}
    for spec in outputs:
        if sizes.setdefault(spec.target_index, spec.target_size) != spec.target_size:
            raise ValueError(f"outputs disagree on the size of target {spec.target_index}")
    if sorted(sizes) != list(range(len(sizes))):
        raise ValueError(f"target indices must be 0, 1, ...; got {sorted(sizes)}")
    return tuple(sizes[i] for i in range(len(sizes)))


def output_labels(outputs: Sequence[OutputSpec]) -> tuple[str, ...]:
    """How losses, logs and TensorBoard name each output: by resolution, "1/4", "1/2", ...; where several
    outputs share a resolution (hourglass stacks), "1/4_output0", "1/4_output1", ... (the output's index)."""
    strides = [spec.stride for spec in outputs]
    return tuple(f"1/{stride:g}" + (f"_output{i}" if strides.count(stride) > 1 else "")
                 for i, stride in enumerate(strides))


def check_test_use(outputs: Sequence[OutputSpec]) -> None:
    """Raise ConfigError (naming TEST.WITH_HEATMAPS / TEST.WITH_AE) unless test time asks for trained heatmaps
    and existing tags only, and for at least one output of each."""
    for spec in outputs:
        if spec.test_heatmaps and not spec.train_heatmaps:
            raise ConfigError(f"TEST.WITH_HEATMAPS uses the heatmaps of output {spec.index}, which are not trained "
                              f"(LOSS.WITH_HEATMAPS_LOSS is False there)")
        if spec.test_tags and not spec.has_tags:
            raise ConfigError(f"TEST.WITH_AE uses the tags of output {spec.index}, which has none (tag channels exist "
                              f"only on outputs trained with LOSS.WITH_AE_LOSS)")
    if not any(s.test_heatmaps for s in outputs):
        raise ConfigError("no network output is used for heatmaps at test time: check TEST.WITH_HEATMAPS")
    if not any(s.test_tags for s in outputs):
        raise ConfigError("no network output is used for tags at test time: check TEST.WITH_AE")
