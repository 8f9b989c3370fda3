"""The one place that reads the model part of a config."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from ..config import MODEL_NAMES, CfgNode, ConfigError
from ..outputs import OutputSpec, build_output_specs
from .ae_hourglass import AEHourglassNet
from .higher_hrnet import HigherHRNet, init_weights
from .hourglass import ResidualHourglassNet
from .hrnet import StageSpec

__all__ = ["build_model", "build_ae_hourglass", "stage_specs"]


def stage_specs(extra: CfgNode) -> list[StageSpec]:
    """MODEL.EXTRA.STAGE1..4 as StageSpecs."""
    return [
        StageSpec(num_modules=st.NUM_MODULES, block=st.BLOCK, num_blocks=tuple(st.NUM_BLOCKS),
                  num_channels=tuple(st.NUM_CHANNELS))
        for st in (extra[f"STAGE{i}"] for i in range(1, 5))
    ]


def _check_name(cfg: CfgNode) -> None:
    if cfg.MODEL.NAME not in MODEL_NAMES:
        raise ConfigError(f"MODEL.NAME {cfg.MODEL.NAME!r} is not a known model; available: {list(MODEL_NAMES)}")


def build_model(cfg: CfgNode, outputs: Sequence[OutputSpec] | None = None) -> nn.Module:
    """The network named by MODEL.NAME, initialised for training from scratch.

    outputs: the network's output specs (default: `build_output_specs(cfg)`).

    pose_higher_hrnet: the official initialisation (conv weights N(0, 0.001), see `init_weights`).
    hourglass_ae, hourglass_residual: PyTorch's default initialisation, as the Associative Embedding reference
    code trains its network. Load trained weights with `higherhrnet.load_checkpoint(model, path)`.
    """
    _check_name(cfg)
    outputs = build_output_specs(cfg) if outputs is None else tuple(outputs)
    if cfg.MODEL.NAME == "hourglass_ae":
        return build_ae_hourglass(cfg.MODEL.HOURGLASS_AE, outputs)
    if cfg.MODEL.NAME == "hourglass_residual":
        hg = cfg.MODEL.HOURGLASS
        return ResidualHourglassNet(outputs, channels=tuple(hg.NUM_CHANNELS), stem_channels=tuple(hg.STEM_CHANNELS))
    extra = cfg.MODEL.EXTRA
    deconv = extra.DECONV
    model = HigherHRNet(
        *stage_specs(extra),
        outputs=outputs,
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


def build_ae_hourglass(section: CfgNode, outputs: Sequence[OutputSpec]) -> AEHourglassNet:
    """pose-ae-train's network from MODEL.HOURGLASS_AE and its output specs (one per stack, stride 4).

    Every stack predicts the same channels (pose-ae-train's `oup_dim`), so the specs must agree on
    `channels`: heatmaps + tags + unused. ConfigError otherwise, naming the keys.
    """
    widths = sorted({spec.channels for spec in outputs})
    if len(outputs) != section.NUM_STACKS or any(spec.stride != 4 for spec in outputs):
        raise ConfigError(f"MODEL.HOURGLASS_AE.NUM_STACKS is {section.NUM_STACKS}: expected as many outputs, all "
                          f"at stride 4, got strides {[spec.stride for spec in outputs]}")
    if len(widths) != 1:
        raise ConfigError(f"MODEL.NAME hourglass_ae predicts the same channels with every stack, but the outputs have "
                          f"{[spec.channels for spec in outputs]}: set LOSS.WITH_AE_LOSS alike for every stack")
    return AEHourglassNet(num_stacks=section.NUM_STACKS, width=section.WIDTH, increase=section.INCREASE,
                          depth=section.DEPTH, num_outputs=widths[0], batch_norm=section.BATCH_NORM)
