"""The model registry: what each MODEL.NAME means, in one table (`MODELS`).

An entry holds the network's config checks (its own MODEL.<section> keys and how they must agree with LOSS.*
and DATASET.*; `config.check_cfg` runs them when a config is loaded), its output layout (stride, training
target and unused channels of every output, which `build_output_specs` turns into OutputSpecs) and its
builder. This module and `config` are the only readers of MODEL.NAME.

Adding a network: its module in models/ (a network that takes its OutputSpecs), its keys in
config/defaults.py, and one `ModelEntry` here.

Bottom-up networks (pose_higher_hrnet, hourglass_ae, hourglass_residual) see a whole image and predict heatmaps
and tags for everyone in it (`higherhrnet.inference`); a top-down network (pose_hrnet, stacked_hourglass,
`ModelEntry.top_down`) sees one person's crop of MODEL.IMAGE_SIZE and predicts that person's heatmaps
(`higherhrnet.topdown`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from torch import nn
from yacs.config import CfgNode

from ..errors import ConfigError, expect_len
from ..outputs import OutputSpec
from .ae_hourglass import AEHourglassNet
from .higher_hrnet import HEADS, HigherHRNet, init_weights
from .hourglass import ResidualHourglassNet
from .hrnet import StageSpec
from .pose_hrnet import PoseHRNet
from .stacked_hourglass import HOURGLASS_DEPTH, StackedHourglassNet

__all__ = ["ModelEntry", "OutputLayout", "MODELS", "model_entry", "build_output_specs", "build_model",
           "stage_specs", "input_size", "check_bottom_up"]


@dataclass(frozen=True)
class OutputLayout:
    """Where a network's outputs are: per output, its stride (input pixels per output pixel) and the index of
    the training-target resolution that trains it (DATASET.OUTPUT_SIZE[index]); channels after the tags that
    nothing reads (the same for every output)."""

    strides: tuple[float, ...]
    target_indices: tuple[int, ...]
    unused_channels: int = 0


def _square_input(cfg: CfgNode) -> tuple[int, int]:
    return cfg.DATASET.INPUT_SIZE, cfg.DATASET.INPUT_SIZE


@dataclass(frozen=True)
class ModelEntry:
    """One MODEL.NAME.

    check(cfg, source): ConfigError (message starting with `source`) naming the keys of any setting the
    network cannot work with. layout(cfg): its OutputLayout. build(cfg, outputs): the network, initialised
    for training from scratch. input_multiple(cfg): (n, why): DATASET.INPUT_SIZE must be a multiple of n,
    `why` ends the sentence that says so. swahr: whether it can carry SWAHR's scale-map heads (MODEL.SWAHR).
    top_down: whether it is a top-down network: one person's crop in, that person's J heatmaps out (one
    output, or one per stack of a stacked hourglass, the last read at test time; no tags), run by
    `higherhrnet.topdown`; it reads none of the bottom-up output keys (LOSS.NUM_STAGES,
    LOSS.WITH_*, TEST.WITH_*, DATASET.OUTPUT_SIZE). input_size(cfg): (width, height) of the input the network
    is built for (what `summary` measures): DATASET.INPUT_SIZE square by default.
    """

    check: Callable[[CfgNode, str], None]
    layout: Callable[[CfgNode], OutputLayout]
    build: Callable[[CfgNode, tuple[OutputSpec, ...]], nn.Module]
    input_multiple: Callable[[CfgNode], tuple[int, str]]
    swahr: bool = False
    top_down: bool = False
    input_size: Callable[[CfgNode], tuple[int, int]] = _square_input


# ---------------------------------------------------------------- pose_higher_hrnet

def stage_specs(extra: CfgNode) -> list[StageSpec]:
    """MODEL.EXTRA.STAGE1..4 as StageSpecs."""
    return [
        StageSpec(num_modules=st.NUM_MODULES, block=st.BLOCK, num_blocks=tuple(st.NUM_BLOCKS),
                  num_channels=tuple(st.NUM_CHANNELS))
        for st in (extra[f"STAGE{i}"] for i in range(1, 5))
    ]


def _check_hrnet_stages(extra: CfgNode, source: str) -> None:
    """MODEL.EXTRA.STAGE1..4 and FINAL_CONV_KERNEL, as every HRNet here reads them."""
    for i in range(1, 5):
        st = extra[f"STAGE{i}"]
        for key in ("NUM_BLOCKS", "NUM_CHANNELS"):
            expect_len(st[key], st.NUM_BRANCHES, f"MODEL.EXTRA.STAGE{i}.{key}", f"MODEL.EXTRA.STAGE{i}.NUM_BRANCHES",
                        source)
        if st.BLOCK not in ("BASIC", "BOTTLENECK"):
            raise ConfigError(f"{source}: MODEL.EXTRA.STAGE{i}.BLOCK must be BASIC or BOTTLENECK, got {st.BLOCK}")
        if st.FUSE_METHOD != "SUM":
            raise ConfigError(f"{source}: MODEL.EXTRA.STAGE{i}.FUSE_METHOD must be SUM, got {st.FUSE_METHOD}")
        if st.NUM_BRANCHES != (1 if i == 1 else i):
            raise ConfigError(f"{source}: MODEL.EXTRA.STAGE{i}.NUM_BRANCHES must be {1 if i == 1 else i}")
    if extra.FINAL_CONV_KERNEL not in (1, 3):
        raise ConfigError(f"{source}: MODEL.EXTRA.FINAL_CONV_KERNEL must be 1 or 3")


def _check_higher_hrnet(cfg: CfgNode, source: str) -> None:
    stages = cfg.LOSS.NUM_STAGES
    extra = cfg.MODEL.EXTRA
    deconvs = extra.DECONV.NUM_DECONVS
    expect_len(cfg.DATASET.OUTPUT_SIZE, stages, "DATASET.OUTPUT_SIZE", "LOSS.NUM_STAGES", source)
    if stages != deconvs + 1:
        raise ConfigError(f"{source}: LOSS.NUM_STAGES ({stages}) must be MODEL.EXTRA.DECONV.NUM_DECONVS + 1 "
                          f"({deconvs + 1}): one output at 1/4 resolution plus one per deconv module")
    for key in ("NUM_CHANNELS", "KERNEL_SIZE", "CAT_OUTPUT"):
        expect_len(extra.DECONV[key], deconvs, f"MODEL.EXTRA.DECONV.{key}", "MODEL.EXTRA.DECONV.NUM_DECONVS", source)
    for k in extra.DECONV.KERNEL_SIZE:
        if k not in (2, 3, 4):
            raise ConfigError(f"{source}: MODEL.EXTRA.DECONV.KERNEL_SIZE entries must be 2, 3 or 4, got {k}")
    _check_hrnet_stages(extra, source)
    if extra.HEAD not in HEADS:
        raise ConfigError(f"{source}: MODEL.EXTRA.HEAD must be 'hrnet_v1' (highest-resolution branch) or 'hrnet_v2' "
                          f"(all branches concatenated), got {extra.HEAD!r}")
    if extra.HEAD_CHANNELS < 0:
        raise ConfigError(f"{source}: MODEL.EXTRA.HEAD_CHANNELS must be >= 0 (0: the concatenation's width), "
                          f"got {extra.HEAD_CHANNELS}")
    if extra.HEAD_CHANNELS and extra.HEAD == "hrnet_v1":
        raise ConfigError(f"{source}: MODEL.EXTRA.HEAD_CHANNELS is the width of the hrnet_v2 head; it has no "
                          "effect with MODEL.EXTRA.HEAD hrnet_v1 (set it to 0 or use hrnet_v2)")


def _higher_hrnet_layout(cfg: CfgNode) -> OutputLayout:
    """Output i at stride 4 / 2**i, trained by target resolution i."""
    count = cfg.LOSS.NUM_STAGES
    return OutputLayout(strides=tuple(4.0 / 2 ** i for i in range(count)), target_indices=tuple(range(count)))


def _build_higher_hrnet(cfg: CfgNode, outputs: tuple[OutputSpec, ...]) -> HigherHRNet:
    """The official initialisation (conv weights N(0, 0.001), see `init_weights`)."""
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


def _higher_hrnet_input_multiple(cfg: CfgNode) -> tuple[int, str]:
    return 32, ": its lowest-resolution branch is at 1/32 and is upsampled back to 1/4 exactly"


# ---------------------------------------------------------------- pose_hrnet (top-down)

def _check_person_crop(cfg: CfgNode, source: str, multiple: int, why: str) -> None:
    """What every top-down network needs: MODEL.IMAGE_SIZE (width, height) positive multiples of `multiple`
    (`why` says why, after a colon), MODEL.HEATMAP_SIZE a quarter of it, Gaussian targets, no SWAHR heads."""
    model = cfg.MODEL
    if model.SWAHR:
        raise ConfigError(f"{source}: MODEL.SWAHR (scale-map heads) is for bottom-up HigherHRNet, not MODEL.NAME "
                          f"{model.NAME}")
    for key in ("IMAGE_SIZE", "HEATMAP_SIZE"):
        if len(model[key]) != 2:
            raise ConfigError(f"{source}: MODEL.{key} must be [width, height], got {list(model[key])}")
    width, height = model.IMAGE_SIZE
    if width <= 0 or height <= 0 or width % multiple or height % multiple:
        raise ConfigError(f"{source}: MODEL.IMAGE_SIZE (width, height) must be positive multiples of {multiple} for "
                          f"MODEL.NAME {model.NAME}: {why}; got {list(model.IMAGE_SIZE)}")
    if list(model.HEATMAP_SIZE) != [width // 4, height // 4]:
        raise ConfigError(f"{source}: MODEL.HEATMAP_SIZE must be MODEL.IMAGE_SIZE / 4 ([{width // 4}, "
                          f"{height // 4}]): {model.NAME}'s heatmaps are at 1/4 of its input; got "
                          f"{list(model.HEATMAP_SIZE)}")
    if model.TARGET_TYPE != "gaussian":
        raise ConfigError(f"{source}: MODEL.TARGET_TYPE must be 'gaussian' (the only kind of target the official "
                          f"code has), got {model.TARGET_TYPE!r}")


def _check_pose_hrnet(cfg: CfgNode, source: str) -> None:
    model = cfg.MODEL
    _check_hrnet_stages(model.EXTRA, source)
    if model.EXTRA.HEAD != "hrnet_v1" or model.EXTRA.HEAD_CHANNELS:
        raise ConfigError(f"{source}: MODEL.NAME pose_hrnet reads the highest-resolution branch only: "
                          f"MODEL.EXTRA.HEAD must be hrnet_v1 and HEAD_CHANNELS 0, got {model.EXTRA.HEAD!r} and "
                          f"{model.EXTRA.HEAD_CHANNELS}")
    _check_person_crop(cfg, source, 32, "its lowest-resolution branch is at 1/32 and is upsampled back to 1/4 "
                                        "exactly")


def _build_pose_hrnet(cfg: CfgNode, outputs: tuple[OutputSpec, ...]) -> PoseHRNet:
    """The official initialisation (conv weights N(0, 0.001), see `init_weights`)."""
    extra = cfg.MODEL.EXTRA
    if len(outputs) != 1:
        raise ConfigError(f"MODEL.NAME pose_hrnet has one output, got {len(outputs)} output specs")
    model = PoseHRNet(*stage_specs(extra), output=outputs[0], final_conv_kernel=extra.FINAL_CONV_KERNEL,
                      stem_channels=extra.STEM_INPLANES)
    init_weights(model)
    return model


def _image_size(cfg: CfgNode) -> tuple[int, int]:
    width, height = cfg.MODEL.IMAGE_SIZE
    return int(width), int(height)


# ---------------------------------------------------------------- stacked_hourglass (top-down)

def _check_stacked_hourglass(cfg: CfgNode, source: str) -> None:
    extra = cfg.MODEL.EXTRA
    for key in ("NUM_STACKS", "NUM_BLOCKS", "NUM_FEATS"):
        if extra[key] < 1:
            raise ConfigError(f"{source}: MODEL.EXTRA.{key} must be at least 1 for MODEL.NAME stacked_hourglass, "
                              f"got {extra[key]}")
    multiple = 4 * 2 ** HOURGLASS_DEPTH
    _check_person_crop(cfg, source, multiple, f"its stem takes the crop to 1/4 and every hourglass halves that "
                                              f"{HOURGLASS_DEPTH} times, then doubles it back exactly")


def _stacked_hourglass_layout(cfg: CfgNode) -> OutputLayout:
    """One output per stack (MODEL.EXTRA.NUM_STACKS), all at stride 4, all trained by the one target."""
    count = cfg.MODEL.EXTRA.NUM_STACKS
    return OutputLayout(strides=(4.0,) * count, target_indices=(0,) * count)


def _build_stacked_hourglass(cfg: CfgNode, outputs: tuple[OutputSpec, ...]) -> StackedHourglassNet:
    """PyTorch's default initialisation, as bearpaw/pytorch-pose trains its network."""
    extra = cfg.MODEL.EXTRA
    return StackedHourglassNet(outputs, num_blocks=extra.NUM_BLOCKS, num_feats=extra.NUM_FEATS,
                               stem_channels=extra.STEM_INPLANES)


# ---------------------------------------------------------------- stacked hourglasses (bottom-up)

def _check_stacks(cfg: CfgNode, section: str, source: str) -> None:
    """What every stacked hourglass needs: MODEL.<section>.NUM_STACKS outputs, all trained at 1/4."""
    hg = cfg.MODEL[section]
    if hg.NUM_STACKS < 1 or hg.DEPTH < 1:
        raise ConfigError(f"{source}: MODEL.{section}.NUM_STACKS and DEPTH must be >= 1, got {hg.NUM_STACKS} "
                          f"and {hg.DEPTH}")
    if cfg.LOSS.NUM_STAGES != hg.NUM_STACKS:
        raise ConfigError(f"{source}: LOSS.NUM_STAGES ({cfg.LOSS.NUM_STAGES}) must equal MODEL.{section}.NUM_STACKS "
                          f"({hg.NUM_STACKS}): one network output per stack, each with its LOSS.* and TEST.WITH_* "
                          "entries")
    quarter = cfg.DATASET.INPUT_SIZE // 4
    if list(cfg.DATASET.OUTPUT_SIZE) != [quarter]:
        raise ConfigError(f"{source}: DATASET.OUTPUT_SIZE must be [{quarter}] (INPUT_SIZE/4) for MODEL.NAME "
                          f"{cfg.MODEL.NAME}: every stack is trained against the same 1/4-resolution targets; "
                          f"got {list(cfg.DATASET.OUTPUT_SIZE)}")


def _stacks_layout(cfg: CfgNode, unused_channels: int = 0) -> OutputLayout:
    """One output per stack, all at stride 4, all trained by the 1/4 targets."""
    count = cfg.LOSS.NUM_STAGES
    return OutputLayout(strides=(4.0,) * count, target_indices=(0,) * count, unused_channels=unused_channels)


def _stacks_input_multiple(section: str) -> Callable[[CfgNode], tuple[int, str]]:
    def input_multiple(cfg: CfgNode) -> tuple[int, str]:
        depth = max(cfg.MODEL[section].DEPTH, 0)
        return 4 * 2 ** depth, (f" with MODEL.{section}.DEPTH {depth}: the network halves and doubles the "
                                f"1/4-resolution features DEPTH times")
    return input_multiple


def _check_residual_hourglass(cfg: CfgNode, source: str) -> None:
    _check_stacks(cfg, "HOURGLASS", source)
    hg = cfg.MODEL.HOURGLASS
    expect_len(hg.NUM_CHANNELS, hg.DEPTH + 1, "MODEL.HOURGLASS.NUM_CHANNELS", "MODEL.HOURGLASS.DEPTH (+ 1)", source)
    expect_len(hg.STEM_CHANNELS, 2, "MODEL.HOURGLASS.STEM_CHANNELS", "the stem (7x7 conv, residuals)", source)
    if any(c < 2 for c in [*hg.NUM_CHANNELS, *hg.STEM_CHANNELS]):
        raise ConfigError(f"{source}: MODEL.HOURGLASS.NUM_CHANNELS and STEM_CHANNELS must be >= 2 (residual blocks "
                          f"work at half width), got {list(hg.NUM_CHANNELS)} and {list(hg.STEM_CHANNELS)}")


def _build_residual_hourglass(cfg: CfgNode, outputs: tuple[OutputSpec, ...]) -> ResidualHourglassNet:
    """PyTorch's default initialisation, as the Associative Embedding reference code trains its network."""
    hg = cfg.MODEL.HOURGLASS
    return ResidualHourglassNet(outputs, channels=tuple(hg.NUM_CHANNELS), stem_channels=tuple(hg.STEM_CHANNELS))


def _check_ae_hourglass(cfg: CfgNode, source: str) -> None:
    _check_stacks(cfg, "HOURGLASS_AE", source)
    hg = cfg.MODEL.HOURGLASS_AE
    if hg.WIDTH < 1 or hg.INCREASE < 0 or hg.UNUSED_CHANNELS < 0:
        raise ConfigError(f"{source}: MODEL.HOURGLASS_AE.WIDTH must be >= 1 and INCREASE and UNUSED_CHANNELS >= 0, "
                          f"got {hg.WIDTH}, {hg.INCREASE} and {hg.UNUSED_CHANNELS}")


def _build_ae_hourglass(cfg: CfgNode, outputs: tuple[OutputSpec, ...]) -> AEHourglassNet:
    """pose-ae-train's network from MODEL.HOURGLASS_AE and its output specs (one per stack, stride 4), with
    PyTorch's default initialisation as that code trains it.

    Every stack predicts the same channels (pose-ae-train's `oup_dim`), so the specs must agree on
    `channels`: heatmaps + tags + unused. ConfigError otherwise, naming the keys.
    """
    section = cfg.MODEL.HOURGLASS_AE
    widths = sorted({spec.channels for spec in outputs})
    if len(outputs) != section.NUM_STACKS or any(spec.stride != 4 for spec in outputs):
        raise ConfigError(f"MODEL.HOURGLASS_AE.NUM_STACKS is {section.NUM_STACKS}: expected as many outputs, all "
                          f"at stride 4, got strides {[spec.stride for spec in outputs]}")
    if len(widths) != 1:
        raise ConfigError(f"MODEL.NAME hourglass_ae predicts the same channels with every stack, but the outputs have "
                          f"{[spec.channels for spec in outputs]}: set LOSS.WITH_AE_LOSS alike for every stack")
    return AEHourglassNet(num_stacks=section.NUM_STACKS, width=section.WIDTH, increase=section.INCREASE,
                          depth=section.DEPTH, num_outputs=widths[0], batch_norm=section.BATCH_NORM)


# ---------------------------------------------------------------- the table

MODELS: dict[str, ModelEntry] = {
    # HigherHRNet (MODEL.EXTRA); SWAHR adds its scale heads to it.
    "pose_higher_hrnet": ModelEntry(check=_check_higher_hrnet, layout=_higher_hrnet_layout, build=_build_higher_hrnet,
                                    input_multiple=_higher_hrnet_input_multiple, swahr=True),
    # The Associative Embedding paper's released network (MODEL.HOURGLASS_AE), pose-ae-train's layout: its
    # outputs carry UNUSED_CHANNELS channels after the tags.
    "hourglass_ae": ModelEntry(check=_check_ae_hourglass,
                               layout=lambda cfg: _stacks_layout(cfg, cfg.MODEL.HOURGLASS_AE.UNUSED_CHANNELS),
                               build=_build_ae_hourglass, input_multiple=_stacks_input_multiple("HOURGLASS_AE")),
    # Stacked hourglasses of pre-activation residual blocks (MODEL.HOURGLASS).
    "hourglass_residual": ModelEntry(check=_check_residual_hourglass, layout=_stacks_layout,
                                     build=_build_residual_hourglass, input_multiple=_stacks_input_multiple("HOURGLASS")),
    # Top-down HRNet (MODEL.EXTRA, MODEL.IMAGE_SIZE / HEATMAP_SIZE): one output of J heatmaps at 1/4 of the
    # person crop. DATASET.INPUT_SIZE is not read, so it needs no particular multiple.
    "pose_hrnet": ModelEntry(check=_check_pose_hrnet,
                             layout=lambda cfg: OutputLayout(strides=(4.0,), target_indices=(0,)),
                             build=_build_pose_hrnet, input_multiple=lambda cfg: (1, ""), top_down=True,
                             input_size=_image_size),
    # bearpaw/pytorch-pose's stacked hourglass (MODEL.EXTRA.NUM_STACKS, NUM_BLOCKS, NUM_FEATS, STEM_INPLANES,
    # MODEL.IMAGE_SIZE / HEATMAP_SIZE): one output of J heatmaps per stack at 1/4 of the person crop, all
    # trained against the same targets, the last one read at test time.
    "stacked_hourglass": ModelEntry(check=_check_stacked_hourglass, layout=_stacked_hourglass_layout,
                                    build=_build_stacked_hourglass, input_multiple=lambda cfg: (1, ""),
                                    top_down=True, input_size=_image_size),
}


def model_entry(name: str, source: str = "config") -> ModelEntry:
    """The registry entry of MODEL.NAME `name`; ConfigError listing the known names otherwise."""
    if name not in MODELS:
        raise ConfigError(f"{source}: MODEL.NAME {name!r} is not a known model; available: {list(MODELS)}")
    return MODELS[name]


def input_size(cfg: CfgNode) -> tuple[int, int]:
    """(width, height) of the input the config's network is built for: DATASET.INPUT_SIZE square for the
    bottom-up networks, MODEL.IMAGE_SIZE (the person crop) for the top-down ones."""
    return model_entry(cfg.MODEL.NAME).input_size(cfg)


def check_bottom_up(cfg: CfgNode, what: str) -> None:
    """ConfigError when MODEL.NAME is a top-down network: `what` (e.g. "the bottom-up test pipeline") needs a
    network that finds everyone in an image with heatmaps and tags."""
    if model_entry(cfg.MODEL.NAME).top_down:
        raise ConfigError(f"MODEL.NAME {cfg.MODEL.NAME} is a top-down network (one person's crop in, that person's "
                          f"heatmaps out, no tags): {what} runs bottom-up networks only; higherhrnet.topdown runs it "
                          f"on person boxes at test time (docs/topdown.md)")


def _top_down_outputs(cfg: CfgNode, layout: OutputLayout) -> tuple[OutputSpec, ...]:
    """A top-down network's outputs: J heatmaps each, all trained (weight 1, their losses summed) against the
    same plain Gaussian targets of MODEL.HEATMAP_SIZE (width, height); the last output is the one read at test
    time (`topdown` takes a network's last output, as the official validate functions do); no tags, no scale
    maps."""
    size = tuple(int(v) for v in cfg.MODEL.HEATMAP_SIZE)
    last = len(layout.strides) - 1
    return tuple(OutputSpec(index=i, stride=stride, target_index=target, target_size=size,
                            num_joints=cfg.MODEL.NUM_JOINTS, tag_channels=0, heatmap_loss_factor=1.0,
                            push_loss_factor=0.0, pull_loss_factor=0.0, test_heatmaps=i == last, test_tags=False,
                            unused_channels=layout.unused_channels)
                 for i, (stride, target) in enumerate(zip(layout.strides, layout.target_indices)))


def build_output_specs(cfg: CfgNode) -> tuple[OutputSpec, ...]:
    """The outputs of the config's network (MODEL.NAME), one OutputSpec each: the entry's layout plus the
    output-related keys (LOSS.NUM_STAGES, LOSS.WITH_* and *_FACTOR, TEST.WITH_*, DATASET.OUTPUT_SIZE,
    MODEL.TAG_PER_JOINT, MODEL.SWAHR), which nothing else reads.

    MODEL.SWAHR: J scale maps in front of every output, trained or not, as SWAHR's code builds them.
    A top-down network (pose_hrnet, stacked_hourglass) reads none of those keys: each of its outputs (pose_hrnet
    has one, stacked_hourglass one per stack) holds J heatmaps, trained against MODEL.HEATMAP_SIZE targets
    (`target_size` is that (width, height)).
    Raises ConfigError naming the keys when the per-output settings contradict each other.
    """
    entry = model_entry(cfg.MODEL.NAME)
    if entry.top_down:
        return _top_down_outputs(cfg, entry.layout(cfg))
    loss, test = cfg.LOSS, cfg.TEST
    # One entry per network output in every per-output list (the official configs' convention: LOSS.NUM_STAGES
    # counts the outputs).
    for key in ("WITH_HEATMAPS_LOSS", "HEATMAPS_LOSS_FACTOR", "WITH_AE_LOSS", "PUSH_LOSS_FACTOR",
                "PULL_LOSS_FACTOR"):
        expect_len(loss[key], loss.NUM_STAGES, f"LOSS.{key}", "LOSS.NUM_STAGES", None)
    for key in ("WITH_HEATMAPS", "WITH_AE"):
        expect_len(test[key], loss.NUM_STAGES, f"TEST.{key}", "LOSS.NUM_STAGES", None)
    joints = cfg.MODEL.NUM_JOINTS
    tag_dim = joints if cfg.MODEL.TAG_PER_JOINT else 1
    layout = entry.layout(cfg)
    sizes = list(cfg.DATASET.OUTPUT_SIZE)
    scale_dim = joints if cfg.MODEL.SWAHR else 0
    if scale_dim and not entry.swahr:
        swahr_models = [name for name, e in MODELS.items() if e.swahr]
        raise ConfigError(f"MODEL.SWAHR (scale-map heads) exists for MODEL.NAME {', '.join(swahr_models)} only, "
                          f"got {cfg.MODEL.NAME!r}")
    specs = []
    for i, (stride, target) in enumerate(zip(layout.strides, layout.target_indices)):
        heat, tags = bool(loss.WITH_HEATMAPS_LOSS[i]), bool(loss.WITH_AE_LOSS[i])
        if tags and not heat:
            raise ConfigError(f"output {i} is trained with tags (LOSS.WITH_AE_LOSS) but not with heatmaps "
                              f"(LOSS.WITH_HEATMAPS_LOSS): tags are read at the joints' heatmap peaks, so an output "
                              f"with tags must train its heatmaps")
        specs.append(OutputSpec(
            index=i, stride=stride, target_index=target, target_size=sizes[target],
            num_joints=joints, tag_channels=tag_dim if tags else 0,
            heatmap_loss_factor=float(loss.HEATMAPS_LOSS_FACTOR[i]) if heat else None,
            push_loss_factor=float(loss.PUSH_LOSS_FACTOR[i]), pull_loss_factor=float(loss.PULL_LOSS_FACTOR[i]),
            test_heatmaps=bool(test.WITH_HEATMAPS[i]), test_tags=bool(test.WITH_AE[i]),
            unused_channels=layout.unused_channels, scale_channels=scale_dim,
        ))
    return tuple(specs)


def build_model(cfg: CfgNode, outputs: Sequence[OutputSpec] | None = None) -> nn.Module:
    """The network named by MODEL.NAME, initialised for training from scratch (as its entry's builder says).

    outputs: the network's output specs (default: `build_output_specs(cfg)`). Load trained weights with
    `higherhrnet.load_checkpoint(model, path)`.
    """
    entry = model_entry(cfg.MODEL.NAME)
    outputs = build_output_specs(cfg) if outputs is None else tuple(outputs)
    return entry.build(cfg, outputs)
