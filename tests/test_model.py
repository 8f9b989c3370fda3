from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import higherhrnet
from higherhrnet.models import HigherHRNet, StageSpec
from higherhrnet.models.hrnet import HighResolutionModule, BasicBlock

from conftest import EXPERIMENTS, SPEC, randomize, tiny_cfg

W32 = EXPERIMENTS / "coco/higher_hrnet/w32_512_adam_lr1e-3.yaml"
W48 = EXPERIMENTS / "coco/higher_hrnet/w48_640_adam_lr1e-3.yaml"


@pytest.mark.parametrize("cfg_path,spec_name,millions", [
    (W32, "higher_hrnet_w32_512.json", 28.6),
    (W48, "higher_hrnet_w48_640.json", 63.8),
])
def test_state_dict_equals_official_checkpoint_layout(cfg_path, spec_name, millions):
    if not (SPEC / spec_name).exists():
        pytest.skip(f"{SPEC / spec_name} not present (the shared/ folder beside the repository)")
    spec = json.loads((SPEC / spec_name).read_text())
    model = higherhrnet.build_model(higherhrnet.load_cfg(cfg_path))
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
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
    model = HigherHRNet(*stages, num_joints=5, deconv_channels=(8,), num_basic_blocks=2, stem_channels=16).eval()
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
