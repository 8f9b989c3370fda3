"""The one place that reads the model part of a config."""
from __future__ import annotations

from torch import nn

from ..config import MODEL_NAMES, CfgNode, ConfigError
from .higher_hrnet import HigherHRNet, init_weights, output_channels
from .hourglass import HourglassAE
from .hrnet import StageSpec

__all__ = ["build_model", "stage_specs", "output_targets", "model_output_channels"]


def stage_specs(extra: CfgNode) -> list[StageSpec]:
    """MODEL.EXTRA.STAGE1..4 as StageSpecs."""
    return [
        StageSpec(num_modules=st.NUM_MODULES, block=st.BLOCK, num_blocks=tuple(st.NUM_BLOCKS),
                  num_channels=tuple(st.NUM_CHANNELS))
        for st in (extra[f"STAGE{i}"] for i in range(1, 5))
    ]


def output_targets(cfg: CfgNode) -> tuple[int, ...]:
    """For each network output, the index of the DATASET.OUTPUT_SIZE entry whose targets train it.

    HigherHRNet: output i -> resolution i (1/4, 1/2, ...). Hourglass: every stack -> the 1/4 targets.
    """
    _check_name(cfg)
    if cfg.MODEL.NAME == "hourglass_ae":
        return (0,) * cfg.LOSS.NUM_STAGES
    return tuple(range(cfg.LOSS.NUM_STAGES))


def _check_name(cfg: CfgNode) -> None:
    if cfg.MODEL.NAME not in MODEL_NAMES:
        raise ConfigError(f"MODEL.NAME {cfg.MODEL.NAME!r} is not a known model; available: {list(MODEL_NAMES)}")


def build_model(cfg: CfgNode) -> nn.Module:
    """The network named by MODEL.NAME, initialised for training from scratch.

    pose_higher_hrnet: the official initialisation (conv weights N(0, 0.001), see `init_weights`).
    hourglass_ae: PyTorch's default initialisation, as the Associative Embedding reference code trains it.
    Load trained weights with `higherhrnet.load_checkpoint(model, path)`.
    """
    _check_name(cfg)
    if cfg.MODEL.NAME == "hourglass_ae":
        hg = cfg.MODEL.HOURGLASS
        return HourglassAE(
            num_stacks=hg.NUM_STACKS,
            channels=tuple(hg.NUM_CHANNELS),
            num_joints=cfg.MODEL.NUM_JOINTS,
            tag_per_joint=cfg.MODEL.TAG_PER_JOINT,
            with_tags=tuple(cfg.LOSS.WITH_AE_LOSS),
            stem_channels=tuple(hg.STEM_CHANNELS),
        )
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
        head=extra.HEAD,
        head_channels=extra.HEAD_CHANNELS or None,
    )
    init_weights(model)
    return model


def model_output_channels(cfg: CfgNode) -> tuple[int, ...]:
    """Channels of each output of the config's network (heatmaps, then tags where trained with them)."""
    joints = cfg.MODEL.NUM_JOINTS
    tag_dim = joints if cfg.MODEL.TAG_PER_JOINT else 1
    return tuple(output_channels(joints, tag_dim, bool(with_tags)) for with_tags in cfg.LOSS.WITH_AE_LOSS)
