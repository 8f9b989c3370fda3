from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import higherhrnet
from higherhrnet.models import HigherHRNet, StageSpec
from higherhrnet.outputs import OutputSpec
from higherhrnet.models.hrnet import HighResolutionModule, BasicBlock

from conftest import EXPERIMENTS, SPEC, randomize, state_dict_layout, tiny_cfg

W32 = EXPERIMENTS / "coco/higher_hrnet/w32_512_adam_lr1e-3.yaml"
W48 = EXPERIMENTS / "coco/higher_hrnet/w48_640_adam_lr1e-3.yaml"


@pytest.mark.parametrize("cfg_path,spec_name,millions", [
    (W32, "higher_hrnet_w32_512.json", 28.6),
    (W48, "higher_hrnet_w48_640.json", 63.8),
])
def test_state_dict_equals_official_checkpoint_layout(cfg_path, spec_name, millions):
    spec = json.loads((SPEC / spec_name).read_text())
    model = higherhrnet.build_model(higherhrnet.load_cfg(cfg_path))
    ours = state_dict_layout(model)
    assert [k for k, _, _ in ours] == [k for k, _, _ in spec["keys"]]  # names, in registration order
    assert ours == spec["keys"]  # and shapes and dtypes
    n = sum(p.numel() for p in model.parameters())
    assert n == spec["num_parameters"]
    assert round(n / 1e6, 1) == millions


@pytest.mark.parametrize("height,width", [(512, 512), (640, 640), (384, 512), (512, 256), (448, 704)])
def test_output_shapes(tiny_model, height, width):
    with torch.no_grad():
        out = tiny_model(torch.randn(2, 3, height, width))
    assert [tuple(o.shape) for o in out] == [(2, 34, height // 4, width // 4), (2, 17, height // 2, width // 2)]
    assert all(torch.isfinite(o).all() for o in out)


def test_full_w32_forward_shapes():
    model = higherhrnet.build_model(higherhrnet.load_cfg(W32)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 320))
    assert [tuple(o.shape) for o in out] == [(1, 34, 64, 80), (1, 17, 128, 160)]


@pytest.mark.parametrize("opts,channels", [
    (["MODEL.TAG_PER_JOINT", "False"], (18, 17)),
    (["LOSS.WITH_AE_LOSS", "[False, False]"], (17, 17)),
    (["LOSS.WITH_AE_LOSS", "[True, True]"], (34, 34)),
    (["MODEL.NUM_JOINTS", "14", "DATASET.NUM_JOINTS", "14"], (28, 14)),
])
def test_output_channels_follow_config(opts, channels):
    model = higherhrnet.build_model(tiny_cfg(*opts)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert tuple(o.shape[1] for o in out) == channels


def test_two_deconv_modules():
    cfg = tiny_cfg("LOSS.NUM_STAGES", "3", "MODEL.EXTRA.DECONV.NUM_DECONVS", "2",
                   "MODEL.EXTRA.DECONV.NUM_CHANNELS", "[8, 8]", "MODEL.EXTRA.DECONV.KERNEL_SIZE", "[4, 2]",
                   "MODEL.EXTRA.DECONV.CAT_OUTPUT", "[True, False]", "LOSS.WITH_AE_LOSS", "[True, False, False]",
                   "LOSS.WITH_HEATMAPS_LOSS", "[True, True, True]", "LOSS.HEATMAPS_LOSS_FACTOR", "[1.0, 1.0, 1.0]",
                   "LOSS.PUSH_LOSS_FACTOR", "[0.001, 0.001, 0.001]", "LOSS.PULL_LOSS_FACTOR", "[0.001, 0.001, 0.001]",
                   "TEST.WITH_HEATMAPS", "(True, True, True)", "TEST.WITH_AE", "(True, False, False)",
                   "DATASET.OUTPUT_SIZE", "[32, 64, 128]")
    model = higherhrnet.build_model(cfg).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in out] == [(1, 34, 16, 16), (1, 17, 32, 32), (1, 17, 64, 64)]


def test_modules_build_without_a_config():
    stages = [StageSpec(1, "BOTTLENECK", (1,), (8,)), StageSpec(1, "BASIC", (1, 1), (8, 16)),
              StageSpec(1, "BASIC", (1, 1, 1), (8, 16, 32)), StageSpec(1, "BASIC", (1, 1, 1, 1), (8, 16, 32, 64))]
    outputs = (OutputSpec(0, 4.0, 0, 16, num_joints=5, tag_channels=5, heatmap_loss_factor=1.0, push_loss_factor=1e-3,
                          pull_loss_factor=1e-3, test_heatmaps=True, test_tags=True),
               OutputSpec(1, 2.0, 1, 32, num_joints=5, tag_channels=0, heatmap_loss_factor=1.0, push_loss_factor=1e-3,
                          pull_loss_factor=1e-3, test_heatmaps=True, test_tags=False))
    model = HigherHRNet(*stages, outputs=outputs, deconv_channels=(8,), num_basic_blocks=2, stem_channels=16).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in out] == [(1, 10, 16, 24), (1, 5, 32, 48)]


def test_deconv_input_is_features_then_first_output(tiny_model):
    """CAT_OUTPUT: the deconv sees concat(1/4 features, out_1/4) in that channel order."""
    seen = {}
    deconv = tiny_model.deconv_layers[0][0][0]
    assert isinstance(deconv, nn.ConvTranspose2d)

    def record(key):
        def hook(module, inputs, output):
            seen[key] = inputs[0].clone()
        return hook

    h1 = deconv.register_forward_hook(record("deconv_in"))
    h2 = tiny_model.final_layers[0].register_forward_hook(record("features"))
    with torch.no_grad():
        out = tiny_model(torch.randn(1, 3, 64, 64))
    h1.remove(), h2.remove()
    c = seen["features"].shape[1]
    assert torch.equal(seen["deconv_in"][:, :c], seen["features"])
    assert torch.equal(seen["deconv_in"][:, c:], out[0])


def test_fusion_is_sum_with_nearest_upsampling_and_strided_convs():
    torch.manual_seed(0)
    module = randomize(HighResolutionModule(BasicBlock, (1, 1, 1), (4, 8, 16), (4, 8, 16)))
    xs = [torch.randn(1, 4, 16, 16), torch.randn(1, 8, 8, 8), torch.randn(1, 16, 4, 4)]
    with torch.no_grad():
        out = module([x.clone() for x in xs])
        b = [branch(x) for branch, x in zip(module.branches, xs)]
        f = module.fuse_layers

        def conv_bn(seq, x, stride, relu=False):
            conv, bn = seq[0], seq[1]
            y = F.batch_norm(F.conv2d(x, conv.weight, stride=stride, padding=conv.padding), bn.running_mean,
                             bn.running_var, bn.weight, bn.bias, eps=bn.eps)
            return F.relu(y) if relu else y

        up = lambda x, s: F.interpolate(x, scale_factor=s, mode="nearest")
        expect0 = F.relu(b[0] + up(conv_bn(f[0][1], b[1], 1), 2) + up(conv_bn(f[0][2], b[2], 1), 4))
        expect2 = F.relu(conv_bn(f[2][0][1], conv_bn(f[2][0][0], b[0], 2, relu=True), 2)
                         + conv_bn(f[2][1][0], b[1], 2) + b[2])
    torch.testing.assert_close(out[0], expect0)
    torch.testing.assert_close(out[2], expect2)


def test_official_initialisation():
    model = higherhrnet.build_model(tiny_cfg())
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert abs(weights.std().item() - 0.001) < 1e-4 and abs(weights.mean().item()) < 1e-4
    assert all(m.bias is None or not m.bias.any() for m in convs)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.all(m.weight == 1) and not m.bias.any() for m in bns)


def test_unknown_model_name():
    with pytest.raises(higherhrnet.ConfigError, match="MODEL.NAME 'resnet'"):
        higherhrnet.build_model(tiny_cfg("MODEL.NAME", "resnet"))


# ---------------------------------------------------------------- HRNetV2 representation head

V2 = ["MODEL.EXTRA.HEAD", "hrnet_v2"]
NO_DECONV = ["MODEL.EXTRA.DECONV.NUM_DECONVS", "0", "MODEL.EXTRA.DECONV.NUM_CHANNELS", "[]",
             "MODEL.EXTRA.DECONV.KERNEL_SIZE", "[]", "MODEL.EXTRA.DECONV.CAT_OUTPUT", "[]", "LOSS.NUM_STAGES", "1",
             "LOSS.WITH_HEATMAPS_LOSS", "[True]", "LOSS.HEATMAPS_LOSS_FACTOR", "[1.0]", "LOSS.WITH_AE_LOSS", "[True]",
             "LOSS.PUSH_LOSS_FACTOR", "[0.001]", "LOSS.PULL_LOSS_FACTOR", "[0.001]", "TEST.WITH_HEATMAPS", "(True,)",
             "TEST.WITH_AE", "(True,)", "DATASET.OUTPUT_SIZE", "[32]"]


def fuse_row_params(widths, i):
    """Parameters of the fusion into branch i of an HRNet module: 1x1 conv + BN from each lower branch,
    chains of stride-2 3x3 conv + BN (keeping the width until the last step) from each higher one."""
    total = 0
    for j, c in enumerate(widths):
        if j > i:
            total += c * widths[i] + 2 * widths[i]
        elif j < i:
            total += (i - j - 1) * (9 * c * c + 2 * c) + 9 * c * widths[i] + 2 * widths[i]
    return total


def v2_extra_params(widths, head, outputs0, deconv_channels=(), deconv_kernel=4):
    """What the hrnet_v2 head adds to the hrnet_v1 network: the last stage-4 module fuses into branches 1-3
    too; the 1x1 conv (no bias) + BN from the 15C concatenation; the heads see `head` channels, not C."""
    extra = sum(fuse_row_params(widths, i) for i in range(1, 4))
    extra += sum(widths) * head + 2 * head
    extra += (head - widths[0]) * outputs0                      # final_layers[0]: 1x1 conv
    for channels in deconv_channels[:1]:                        # the first deconv sees features + output 0
        extra += (head - widths[0]) * channels * deconv_kernel ** 2
    return extra


@pytest.mark.parametrize("opts,shapes", [
    ([], [(2, 34, 24, 40), (2, 17, 48, 80)]),
    (NO_DECONV, [(2, 34, 24, 40)]),
    (["MODEL.EXTRA.HEAD_CHANNELS", "24"], [(2, 34, 24, 40), (2, 17, 48, 80)]),
    (NO_DECONV + ["MODEL.EXTRA.HEAD_CHANNELS", "24"], [(2, 34, 24, 40)]),
])
def test_v2_head_output_shapes_with_and_without_deconv(opts, shapes):
    torch.manual_seed(0)
    model = randomize(higherhrnet.build_model(tiny_cfg(*V2, *opts)))
    with torch.no_grad():
        out = model(torch.randn(2, 3, 96, 160))
    assert [tuple(o.shape) for o in out] == shapes
    assert all(torch.isfinite(o).all() for o in out)


@pytest.mark.parametrize("head_opts,opts,head,deconv", [
    ([], [], 8 + 16 + 32 + 64, (8,)),
    (["MODEL.EXTRA.HEAD_CHANNELS", "24"], [], 24, (8,)),
    ([], NO_DECONV, 8 + 16 + 32 + 64, ()),
])
def test_v2_head_parameter_count(head_opts, opts, head, deconv):
    v1 = higherhrnet.build_model(tiny_cfg(*opts))
    v2 = higherhrnet.build_model(tiny_cfg(*V2, *head_opts, *opts))
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(v2) - count(v1) == v2_extra_params((8, 16, 32, 64), head, 34, deconv)


def test_v2_head_w32_parameter_count_from_the_official_layout():
    spec_file = SPEC / "higher_hrnet_w32_512.json"
    official = json.loads(spec_file.read_text())["num_parameters"]
    model = higherhrnet.build_model(higherhrnet.load_cfg(EXPERIMENTS / "coco/higher_hrnet/w32_512_hrnetv2_head.yaml"))
    expected = official + v2_extra_params((32, 64, 128, 256), 480, 34, (32,))
    assert sum(p.numel() for p in model.parameters()) == expected == 29_891_283


def test_v2_head_sees_all_branches_upsampled_and_concatenated():
    torch.manual_seed(0)
    model = randomize(higherhrnet.build_model(tiny_cfg(*V2)))
    seen = {}
    h1 = model.stage4.register_forward_hook(lambda m, i, o: seen.update(branches=[b.clone() for b in o]))
    h2 = model.representation_head.register_forward_hook(lambda m, i, o: seen.update(head_in=i[0].clone()))
    h3 = model.final_layers[0].register_forward_hook(lambda m, i, o: seen.update(final_in=i[0].clone()))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 96))
    h1.remove(), h2.remove(), h3.remove()
    b = seen["branches"]
    assert [tuple(x.shape) for x in b] == [(1, 8, 16, 24), (1, 16, 8, 12), (1, 32, 4, 6), (1, 64, 2, 3)]
    up = [F.interpolate(x, size=(16, 24), mode="bilinear", align_corners=False) for x in b[1:]]
    torch.testing.assert_close(seen["head_in"], torch.cat([b[0], *up], 1))
    head = model.representation_head
    with torch.no_grad():
        expected = F.relu(head[1](head[0](seen["head_in"])))
    torch.testing.assert_close(seen["final_in"], expected)


def test_v1_head_keeps_the_official_modules():
    model = higherhrnet.build_model(tiny_cfg())
    assert not hasattr(model, "representation_head")
    assert len(model.stage4[-1].fuse_layers) == 1        # the last module fuses into the 1/4 branch only


@pytest.mark.parametrize("opts,message", [
    (["MODEL.EXTRA.HEAD", "hrnet_v3"], "MODEL.EXTRA.HEAD must be 'hrnet_v1'"),
    (["MODEL.EXTRA.HEAD_CHANNELS", "32"], "MODEL.EXTRA.HEAD_CHANNELS is the width of the hrnet_v2 head"),
    (V2 + ["MODEL.EXTRA.HEAD_CHANNELS", "-1"], "MODEL.EXTRA.HEAD_CHANNELS must be >= 0"),
])
def test_v2_head_config_errors(opts, message):
    with pytest.raises(higherhrnet.ConfigError, match=message):
        tiny_cfg(*opts)
