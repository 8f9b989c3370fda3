"""checkpoint/layouts.py: mmpose 0.x HigherHRNet and top-down HRNet checkpoints (keys under backbone. /
keypoint_head.) convert to the official layout. The expected mmpose names are enumerated here from mmpose's module
structure, independently of the converter, and compared with the official key lists (tests/assets/spec)."""
from __future__ import annotations

import json

import pytest
import torch

import higherhrnet
from higherhrnet.checkpoint import (CheckpointError, convert_mmpose_state_dict, is_mmpose_layout,
                                    to_mmpose_state_dict)

from conftest import SPEC, randomize, tiny_cfg, tiny_pose_hrnet_cfg

def _bn(prefix, c):
    return {f"{prefix}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")} | \
        {f"{prefix}.num_batches_tracked": ()}


def _basic_block(prefix, cin, c):
    # mmpose backbones/resnet.py BasicBlock: conv1 (3x3), bn1 (build_norm_layer postfix 1), conv2, bn2
    return {f"{prefix}.conv1.weight": (c, cin, 3, 3), **_bn(f"{prefix}.bn1", c),
            f"{prefix}.conv2.weight": (c, c, 3, 3), **_bn(f"{prefix}.bn2", c)}


def _bottleneck(prefix, cin, cout):
    mid = cout // 4
    return {f"{prefix}.conv1.weight": (mid, cin, 1, 1), **_bn(f"{prefix}.bn1", mid),
            f"{prefix}.conv2.weight": (mid, mid, 3, 3), **_bn(f"{prefix}.bn2", mid),
            f"{prefix}.conv3.weight": (cout, mid, 1, 1), **_bn(f"{prefix}.bn3", cout)}


def mmpose_backbone_shapes(stem, stage1, stages):
    """Keys and shapes of mmpose 0.x's HRNet backbone (`backbone.*`), written from mmpose's module construction.

    stage1: (num_blocks, channels) of the Bottleneck layer; stages: [(num_modules, num_blocks, channels)]
    for stages 2..4 (BASIC blocks). mmpose fixes stem = 64; other values only shrink the test network.
    """
    out = {"backbone.conv1.weight": (stem, 3, 3, 3), **_bn("backbone.bn1", stem),
           "backbone.conv2.weight": (stem, stem, 3, 3), **_bn("backbone.bn2", stem)}
    # HRNet._make_layer(Bottleneck, 64, stage1_out, blocks): downsample = Sequential(conv1x1, BN)
    blocks1, c1 = stage1
    out.update(_bottleneck("backbone.layer1.0", stem, 4 * c1))
    out["backbone.layer1.0.downsample.0.weight"] = (4 * c1, stem, 1, 1)
    out.update(_bn("backbone.layer1.0.downsample.1", 4 * c1))
    for b in range(1, blocks1):
        out.update(_bottleneck(f"backbone.layer1.{b}", 4 * c1, 4 * c1))
    previous = [4 * c1]
    for s, (num_modules, num_blocks, channels) in enumerate(stages, start=2):
        # HRNet._make_transition_layer: Sequential(conv3x3, BN, ReLU) where widths differ, None where equal,
        # and for a new branch Sequential of Sequential(conv3x3 s2, BN, ReLU) from the last branch.
        t = f"backbone.transition{s - 1}"
        for i, c in enumerate(channels):
            if i < len(previous):
                if c != previous[i]:
                    out[f"{t}.{i}.0.weight"] = (c, previous[i], 3, 3)
                    out.update(_bn(f"{t}.{i}.1", c))
            else:
                for j in range(i + 1 - len(previous)):
                    cin = previous[-1]
                    cout = c if j == i - len(previous) else cin
                    out[f"{t}.{i}.{j}.0.weight"] = (cout, cin, 3, 3)
                    out.update(_bn(f"{t}.{i}.{j}.1", cout))
        widths = list(channels)
        for m in range(num_modules):
            p = f"backbone.stage{s}.{m}"
            for b, c in enumerate(channels):  # HRModule.branches; inputs already have the branch width
                for k in range(num_blocks[b]):
                    out.update(_basic_block(f"{p}.branches.{b}.{k}", c, c))
            # HRModule.fuse_layers: stage 4's last module (multiscale_output=False) keeps output 0 only.
            outputs = 1 if (s == 4 and m == num_modules - 1) else len(channels)
            for i in range(outputs):
                for j in range(len(channels)):
                    if j > i:  # Sequential(conv1x1, BN, Upsample)
                        out[f"{p}.fuse_layers.{i}.{j}.0.weight"] = (widths[i], widths[j], 1, 1)
                        out.update(_bn(f"{p}.fuse_layers.{i}.{j}.1", widths[i]))
                    elif j < i:  # Sequential of Sequential(conv3x3 s2, BN[, ReLU]); the last one changes width
                        for k in range(i - j):
                            cout = widths[i] if k == i - j - 1 else widths[j]
                            out[f"{p}.fuse_layers.{i}.{j}.{k}.0.weight"] = (cout, widths[j], 3, 3)
                            out.update(_bn(f"{p}.fuse_layers.{i}.{j}.{k}.1", cout))
        previous = list(channels)
    return out


def mmpose_shapes(stem, stage1, stages, joints, deconv_channels, basic_blocks):
    """Keys and shapes of an mmpose 0.x AssociativeEmbedding(HRNet, AEHigherResolutionHead) state dict,
    written from mmpose's module construction (one deconv module, tags per joint on the first output only)."""
    out = mmpose_backbone_shapes(stem, stage1, stages)
    # AEHigherResolutionHead: final_layers = ModuleList(Conv2d (with bias) per output); deconv_layers =
    # ModuleList(Sequential(Sequential(ConvTranspose2d, BN, ReLU), Sequential(BasicBlock) x num_basic_blocks)),
    # the deconv input being the features concatenated with output 0 (cat_output).
    width = stages[-1][2][0]
    out["keypoint_head.final_layers.0.weight"] = (2 * joints, width, 1, 1)
    out["keypoint_head.final_layers.0.bias"] = (2 * joints,)
    out["keypoint_head.final_layers.1.weight"] = (joints, deconv_channels, 1, 1)
    out["keypoint_head.final_layers.1.bias"] = (joints,)
    out["keypoint_head.deconv_layers.0.0.0.weight"] = (width + 2 * joints, deconv_channels, 4, 4)
    out.update(_bn("keypoint_head.deconv_layers.0.0.1", deconv_channels))
    for k in range(basic_blocks):
        out.update(_basic_block(f"keypoint_head.deconv_layers.0.{k + 1}.0", deconv_channels, deconv_channels))
    return out


def _hrnet(width):
    return dict(stem=64, stage1=(4, 64), joints=17, deconv_channels=width, basic_blocks=4,
                stages=[(1, (4, 4), (width, 2 * width)), (4, (4,) * 3, (width, 2 * width, 4 * width)),
                        (3, (4,) * 4, (width, 2 * width, 4 * width, 8 * width))])


@pytest.mark.parametrize("spec_file, width", [("higher_hrnet_w32_512.json", 32), ("higher_hrnet_w48_640.json", 48)])
def test_mmpose_names_convert_to_official_spec(spec_file, width):
    spec = {key: tuple(shape) for key, shape, _ in json.loads((SPEC / spec_file).read_text())["keys"]}
    mmpose = {key: torch.empty(shape, device="meta") for key, shape in mmpose_shapes(**_hrnet(width)).items()}
    assert is_mmpose_layout(mmpose) and not is_mmpose_layout(spec)
    converted = convert_mmpose_state_dict(mmpose)
    assert {key: tuple(t.shape) for key, t in converted.items()} == spec


def test_round_trip_ours_mmpose_ours():
    model = randomize(higherhrnet.build_model(tiny_cfg()))
    ours = model.state_dict()
    mmpose = to_mmpose_state_dict(ours)
    # The tiny config's architecture (tests/conftest.py TINY_OPTS), enumerated the mmpose way.
    tiny = dict(stem=16, stage1=(1, 8), joints=17, deconv_channels=8, basic_blocks=1,
                stages=[(1, (1, 1), (8, 16)), (2, (1,) * 3, (8, 16, 32)), (2, (1,) * 4, (8, 16, 32, 64))])
    assert {key: tuple(t.shape) for key, t in mmpose.items()} == mmpose_shapes(**tiny)
    back = convert_mmpose_state_dict(mmpose)
    assert list(back) == list(ours)
    assert all(torch.equal(back[key], ours[key]) and back[key].dtype == ours[key].dtype for key in ours)
    model.load_state_dict(back, strict=True)


def test_conversion_refuses_foreign_keys():
    head = {"keypoint_head.final_layers.0.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="neck.conv.weight"):
        convert_mmpose_state_dict({**head, "neck.conv.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="keypoint_head.conv1.weight"):
        convert_mmpose_state_dict({**head, "keypoint_head.conv1.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="conv_scale_layers.0.0.weight"):
        to_mmpose_state_dict({"conv1.weight": torch.zeros(1), "conv_scale_layers.0.0.weight": torch.zeros(1)})


def mmpose_topdown_shapes(stem, stage1, stages, joints):
    """Keys and shapes of an mmpose 0.x TopDown(HRNet, TopdownHeatmapSimpleHead) state dict as its COCO HRNet configs
    build it: num_deconv_layers=0 (deconv_layers is an nn.Identity, no tensors) and final_conv_kernel=1
    (final_layer is one Conv2d with bias, on the highest-resolution branch)."""
    width = stages[-1][2][0]
    return {**mmpose_backbone_shapes(stem, stage1, stages),
            "keypoint_head.final_layer.weight": (joints, width, 1, 1), "keypoint_head.final_layer.bias": (joints,)}


@pytest.mark.parametrize("spec_file, width", [("pose_hrnet_w32_256x192.json", 32), ("pose_hrnet_w48_256x192.json", 48)])
def test_mmpose_topdown_names_convert_to_official_spec(spec_file, width):
    spec = {key: tuple(shape) for key, shape, _ in json.loads((SPEC / spec_file).read_text())["keys"]}
    hrnet = _hrnet(width)
    mmpose = {key: torch.empty(shape, device="meta")
              for key, shape in mmpose_topdown_shapes(hrnet["stem"], hrnet["stage1"], hrnet["stages"], 17).items()}
    assert is_mmpose_layout(mmpose)
    converted = convert_mmpose_state_dict(mmpose)
    assert {key: tuple(t.shape) for key, t in converted.items()} == spec


def test_topdown_round_trip_ours_mmpose_ours():
    model = randomize(higherhrnet.build_model(tiny_pose_hrnet_cfg()))
    ours = model.state_dict()
    mmpose = to_mmpose_state_dict(ours)
    tiny = dict(stem=16, stage1=(1, 8), stages=[(1, (1, 1), (8, 16)), (2, (1,) * 3, (8, 16, 32)),
                                                (2, (1,) * 4, (8, 16, 32, 64))])
    assert {key: tuple(t.shape) for key, t in mmpose.items()} == mmpose_topdown_shapes(**tiny, joints=17)
    back = convert_mmpose_state_dict(mmpose)
    assert list(back) == list(ours)
    assert all(torch.equal(back[key], ours[key]) for key in ours)
    fresh = higherhrnet.build_model(tiny_pose_hrnet_cfg())
    higherhrnet.load_checkpoint(fresh, {"state_dict": mmpose})      # as mmpose saves it
    assert all(torch.equal(fresh.state_dict()[key], ours[key]) for key in ours)
