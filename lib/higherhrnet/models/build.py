"""The one place that reads the model part of a config."""
from __future__ import annotations

from torch import nn

from ..config import CfgNode, ConfigError
from .higher_hrnet import HigherHRNet, init_weights, output_channels
from .hrnet import StageSpec

__all__ = ["build_model", "stage_specs", "model_output_channels"]


def stage_specs(extra: CfgNode) -> list[StageSpec]:
    """MODEL.EXTRA.STAGE1..4 as StageSpecs."""
    return [
        StageSpec(num_modules=st.NUM_MODULES, block=st.BLOCK, num_blocks=tuple(st.NUM_BLOCKS),
                  num_channels=tuple(st.NUM_CHANNELS))
        for st in (extra[f"STAGE{i}"] for i in range(1, 5))
    ]


def build_model(cfg: CfgNode) -> nn.Module:
    """The network named by MODEL.NAME, initialised as the official code does for training.

    Load trained weights with `higherhrnet.load_checkpoint(model, path)`.
    """
    name = cfg.MODEL.NAME
    if name != "pose_higher_hrnet":
        raise ConfigError(f"MODEL.NAME {name!r} is not a known model; available: ['pose_higher_hrnet']")
    extra = cfg.MODEL.EXTRA
    deconv = extra.DECONV
    model = HigherHRNet(
        *stage_specs(extra),
        num_joints=cfg.MODEL.NUM_JOINTS,
        tag_per_joint=cfg.MODEL.TAG_PER_JOINT,
        with_tags=tuple(cfg.LOSS.WITH_AE_LOSS),
        deconv_channels=tuple(deconv.NUM_CHANNELS),
        deconv_kernel_sizes=tuple(deconv.KERNEL_SIZE),
        cat_output=tuple(deconv.CAT_OUTPUT),
        num_basic_blocks=deconv.NUM_BASIC_BLOCKS,
        final_conv_kernel=extra.FINAL_CONV_KERNEL,
        stem_channels=extra.STEM_INPLANES,
    )
    init_weights(model)
    return model


def model_output_channels(cfg: CfgNode) -> tuple[int, ...]:
    """Channels of each output of the config's network (heatmaps, then tags where trained with them)."""
    joints = cfg.MODEL.NUM_JOINTS
    tag_dim = joints if cfg.MODEL.TAG_PER_JOINT else 1
    return tuple(output_channels(joints, tag_dim, bool(with_tags)) for with_tags in cfg.LOSS.WITH_AE_LOSS)
