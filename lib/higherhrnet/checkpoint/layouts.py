"""The layouts of model weights inside checkpoints, and the conversion to ours (= the official code's keys).

Accepted layouts of model weights:
- a bare state dict (official `pose_higher_hrnet_w32_512.pth`);
- a dict holding it under "state_dict" or "model" (our training checkpoints, many other tools);
- keys prefixed with "module." (saved from DataParallel / DistributedDataParallel);
- the official FP16 layout: keys prefixed with "1." (the network wrapped for half precision), conv
  tensors in float16. Floating tensors are converted to the model's dtype;
- mmpose 0.x HigherHRNet and top-down HRNet checkpoints (keys under "backbone." and "keypoint_head."),
  converted on load;
- pose-ae-train's (the Associative Embedding paper's code, MODEL.NAME hourglass_ae) files as it writes them:
  {"state_dict": ..., "optimizer": ..., "epoch": ...} with keys prefixed "model.module." (its train.py saves
  the state of a `Trainer` that holds the network as `model`, a DataParallel, hence `module.`);
- bearpaw/pytorch-pose's (MODEL.NAME stacked_hourglass: its released MPII models, and every checkpoint.pth.tar
  and model_best.pth.tar its example/main.py writes): {"epoch", "arch", "state_dict", "best_acc", "optimizer"}
  with keys prefixed "module." (its network is wrapped in nn.DataParallel). Files written by PyTorch before 0.4.1
  (the released ones date from 2017) have no BatchNorm num_batches_tracked counters, which `load_checkpoint`
  does not require; io.read_checkpoint reads the Python 2 integers of their optimiser state.

How the mmpose 0.x layout was worked out. mmpose's `AssociativeEmbedding` (earlier `BottomUp`) holds the network as two
attributes, `backbone` (mmpose/models/backbones/hrnet.py: `HRNet`) and `keypoint_head`
(mmpose/models/heads/ae_higher_resolution_head.py: `AEHigherResolutionHead`); its loss modules hold no
tensors. Reading how those modules nest: the stem norms are built by mmcv's `build_norm_layer(BN,
postfix=i)`, which names them `bn1`, `bn2` (as do the `Bottleneck` / `BasicBlock` of
mmpose/models/backbones/resnet.py), and `layer1`, `transition1..3`, `stage2..4` (`HRModule.branches`,
`.fuse_layers`) and the head's `final_layers` / `deconv_layers` are built with the same nn.Sequential /
nn.ModuleList nesting, the same `None` slots and the same stage-4 single-output last module as the
official code. So an mmpose key is the official key behind `backbone.` or `keypoint_head.`, with equal
shapes, and nothing else. tests/test_checkpoint_mmpose.py checks this: it enumerates mmpose's names and shapes from that
description of mmpose's modules, converts them, and compares with the official key lists and shapes in
tests/assets/spec/higher_hrnet_w32_512.json and higher_hrnet_w48_640.json.
Tensors only one side has: none for HigherHRNet. Our hrnet_v2 `representation_head` and SWAHR's
`conv_scale_layers` have no mmpose counterpart: `to_mmpose_state_dict` refuses them by name.

mmpose's top-down HRNet (`TopDown`, configs/body/2d_kpt_sview_rgb_img/topdown_heatmap/coco/hrnet_w32_coco_256x192.py
and its W48 / 384x288 siblings) holds the same `backbone` and a `keypoint_head`
(mmpose/models/heads/topdown_heatmap_simple_head.py: `TopdownHeatmapSimpleHead` with num_deconv_layers=0, whose
`deconv_layers` is an nn.Identity without tensors, and extra=dict(final_conv_kernel=1), whose `final_layer` is one
Conv2d with bias): `keypoint_head.final_layer.weight` / `.bias` are the official pose_hrnet's `final_layer.*`.
tests/models/test_pose_hrnet.py checks the whole key list against tests/assets/spec/pose_hrnet_w32_256x192.json
and pose_hrnet_w48_256x192.json.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

from .io import CheckpointError, _listing

__all__ = ["extract_state_dict", "is_mmpose_layout", "convert_mmpose_state_dict", "to_mmpose_state_dict",
           "describe_weights"]

_WRAPPER_KEYS = ("state_dict", "model")
_KEY_PREFIXES = ("module.", "1.", "model.module.")


def extract_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The model weights inside a loaded checkpoint, with wrapper prefixes removed."""
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{source} holds no model weights (expected a dict of tensors, possibly under "
                              f"'state_dict' or 'model'; got {_describe(obj)})")
    not_tensors = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{source}: entries that are not tensors: {_listing(not_tensors)}")
    state = dict(obj)
    if is_mmpose_layout(state):
        try:
            return convert_mmpose_state_dict(state)
        except CheckpointError as e:
            raise CheckpointError(f"{source}: {e}") from None
    changed = True
    while changed:
        changed = False
        for prefix in _KEY_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state


# First key components of the two halves of the network (official names, = mmpose's after the prefix).
_BACKBONE_MODULES = frozenset({"conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2",
                               "transition2", "stage3", "transition3", "stage4"})
# HigherHRNet's head (final_layers, deconv_layers) or the top-down HRNet's (final_layer).
_HEAD_MODULES = frozenset({"final_layers", "deconv_layers", "final_layer"})
_MMPOSE_PREFIXES = {"backbone.": _BACKBONE_MODULES, "keypoint_head.": _HEAD_MODULES}


def is_mmpose_layout(state: Mapping[str, torch.Tensor]) -> bool:
    """True if every key sits under mmpose's `backbone.` or `keypoint_head.` (a bare state dict, after
    taking it out of the checkpoint's "state_dict")."""
    return bool(state) and all(key.startswith(tuple(_MMPOSE_PREFIXES)) for key in state)


def convert_mmpose_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An mmpose 0.x AssociativeEmbedding (HRNet + AEHigherResolutionHead) or TopDown (HRNet +
    TopdownHeatmapSimpleHead without deconvolutions) state dict in our (= official) key layout. Tensors are
    passed through unchanged (same shapes and dtypes; see the module docstring)."""
    converted, foreign = {}, []
    for key, value in state.items():
        prefix = next((p for p in _MMPOSE_PREFIXES if key.startswith(p)), None)
        name = key[len(prefix):] if prefix else key
        if prefix is None or name.split(".")[0] not in _MMPOSE_PREFIXES[prefix]:
            foreign.append(key)
        converted[name] = value
    if foreign:
        raise CheckpointError(f"an mmpose network other than HigherHRNet or top-down HRNet: {len(foreign)} keys "
                              f"outside backbone.<HRNet> / keypoint_head.<final_layers|deconv_layers|final_layer>: "
                              f"{_listing(foreign, 3)}")
    return converted


def to_mmpose_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `convert_mmpose_state_dict`: our HigherHRNet or top-down HRNet keys under mmpose's
    prefixes."""
    converted, foreign = {}, []
    for key, value in state.items():
        top = key.split(".")[0]
        prefix = next((p for p, modules in _MMPOSE_PREFIXES.items() if top in modules), None)
        if prefix is None:
            foreign.append(key)
        converted[f"{prefix}{key}"] = value
    if foreign:
        raise CheckpointError(f"{len(foreign)} keys have no place in mmpose's HRNet + AEHigherResolutionHead or "
                              f"TopdownHeatmapSimpleHead (e.g. the hrnet_v2 representation_head, SWAHR's "
                              f"conv_scale_layers): {_listing(foreign)}")
    return converted


def describe_weights(state: Mapping[str, torch.Tensor]) -> str:
    """What network a state dict (our key layout, as `extract_state_dict` returns it) looks like, as a noun
    phrase for messages: "a HigherHRNet-W32 (17 joints)", "an ImageNet HRNet-W48 classifier (...)", ...
    Read from key names and a few shapes only."""
    tops = {key.split(".")[0] for key in state}
    if {"stage4", "transition1"} <= tops and "transition1.0.0.weight" in state:
        width = state["transition1.0.0.weight"].shape[0]
        if tops & {"incre_modules", "classifier"}:
            return f"an ImageNet HRNet-W{width} classifier (backbone weights, for MODEL.PRETRAINED)"
        if "final_layer.weight" in state:
            return (f"a top-down HRNet-W{width} pose network ({state['final_layer.weight'].shape[0]} heatmaps, "
                    f"one person per crop)")
        heads = sorted(k for k in state if k.startswith("final_layers.") and k.endswith(".weight"))
        if not heads:
            return f"an HRNet-W{width} without a pose head"
        name = "a HigherHRNet" if "deconv_layers" in tops else "an HRNet"
        extras = [what for key, what in (("representation_head", "HRNetV2 head"),
                                         ("conv_scale_layers", "SWAHR scale heads")) if key in tops]
        channels = [state[k].shape[0] for k in heads]
        outputs = f"{channels[-1]} joints" if len(channels) > 1 else f"{channels[0]} output channels"
        return f"{name}-W{width} ({', '.join([outputs, *extras])})"
    if {"pre", "outs"} <= tops:
        return f"an Associative Embedding stacked hourglass ({_count(state, 'outs')} stacks)"
    if {"hourglasses", "predictions"} <= tops:
        return f"a residual stacked hourglass ({_count(state, 'hourglasses')} stacks)"
    if {"hg", "res", "fc", "score"} <= tops:
        heatmaps = state["score.0.weight"].shape[0] if "score.0.weight" in state else "?"
        return f"a stacked hourglass (bearpaw/pytorch-pose; {_count(state, 'hg')} stacks, {heatmaps} heatmaps)"
    return f"an unknown network ({len(state)} tensors, e.g. {_listing(sorted(state), 2)})"


def _count(state: Mapping[str, torch.Tensor], module: str) -> int:
    """How many entries the nn.ModuleList `module` has."""
    return len({key.split(".")[1] for key in state if key.startswith(module + ".")})


def _describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        return f"a dict with keys {_listing([str(k) for k in obj])}"
    return type(obj).__name__
