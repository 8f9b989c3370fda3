"""SWAHR's network (MODEL.SWAHR): the state_dict layout of greatlog/SWAHR-HumanPose, weights in that layout load
and give that model's outputs, the scale heads start at 0, test time drops the scale maps, the configs.

What SWAHR's model is, read from its lib/models/pose_higher_hrnet.py (commit f54acf8) and written out here by
hand: the official HigherHRNet modules unchanged, then `conv_scale_layers`, registered after `deconv_layers`,
one nn.Sequential per output of Conv2d(C, J, 1, 1, 0) (bias) / BatchNorm2d(J) / ReLU / Conv2d(J, J, 9, 1, 4,
groups=J) (bias), reading the features of final_layers[i] (C = STAGE4.NUM_CHANNELS[0], then
DECONV.NUM_CHANNELS[i - 1]); output i = cat(scale maps, final_layers[i](x)); the deconv module concatenates
y[:, J:], i.e. the final layer's channels only; init: every conv N(0, 0.001) with bias 0, BN 1 / 0, then the
last conv of every scale head all zeros.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import higherhrnet
from higherhrnet.inference import InferenceParams
from higherhrnet.data.registry import keypoints_from_config
from higherhrnet.models.fuse import fold_batchnorm
from higherhrnet.models import build_output_specs
from higherhrnet.predictor import Predictor

from conftest import EXPERIMENTS, SPEC, assert_same_maps, painted_image, randomize, state_dict_layout, tiny_cfg

SWAHR_W32 = EXPERIMENTS / "coco/swahr/w32_512.yaml"
SWAHR_W48 = EXPERIMENTS / "coco/swahr/w48_640.yaml"
SWAHR_CROWDPOSE = EXPERIMENTS / "crowd_pose/swahr/w48_640.yaml"


def scale_head_keys(index: int, in_channels: int, joints: int) -> list:
    """SWAHR's conv_scale_layers.<index> entries: [name, shape, dtype], in registration order."""
    p = f"conv_scale_layers.{index}"
    return [[f"{p}.0.weight", [joints, in_channels, 1, 1], "float32"], [f"{p}.0.bias", [joints], "float32"],
            [f"{p}.1.weight", [joints], "float32"], [f"{p}.1.bias", [joints], "float32"],
            [f"{p}.1.running_mean", [joints], "float32"], [f"{p}.1.running_var", [joints], "float32"],
            [f"{p}.1.num_batches_tracked", [], "int64"],
            [f"{p}.3.weight", [joints, 1, 9, 9], "float32"], [f"{p}.3.bias", [joints], "float32"]]


@pytest.mark.parametrize("cfg_path,official,widths,head_params", [
    (SWAHR_W32, "higher_hrnet_w32_512.json", (32, 32), 1989),     # 17*32 + 17 + 2*17 + 81*17 + 17
    (SWAHR_W48, "higher_hrnet_w48_640.json", (48, 48), 2261),
])
def test_state_dict_is_swahrs_layout(cfg_path, official, widths, head_params):
    # SWAHR's model = the official HigherHRNet (its checkpoint's key list, shipped with the tests) + the heads.
    spec = json.loads((SPEC / official).read_text())
    expected = spec["keys"] + [k for i, c in enumerate(widths) for k in scale_head_keys(i, c, 17)]
    model = higherhrnet.build_model(higherhrnet.load_cfg(cfg_path))
    ours = state_dict_layout(model)
    assert ours == expected
    assert sum(p.numel() for p in model.parameters()) == spec["num_parameters"] + 2 * head_params


def test_crowdpose_config_builds_14_joint_heads():
    cfg = higherhrnet.load_cfg(SWAHR_CROWDPOSE)
    shapes = {k: list(v.shape) for k, v in higherhrnet.build_model(cfg).state_dict().items()}
    for i in (0, 1):
        assert [[k, v] for k, v, _ in scale_head_keys(i, 48, 14)] == \
            [[k, shapes[k]] for k, _, _ in scale_head_keys(i, 48, 14)]
    assert shapes["final_layers.0.weight"] == [28, 48, 1, 1] and shapes["final_layers.1.weight"] == [14, 48, 1, 1]
    assert shapes["deconv_layers.0.0.0.weight"] == [48 + 28, 48, 4, 4]       # no scale maps in the deconv input
    assert [s.channels for s in build_output_specs(cfg)] == [42, 28]


def test_swahr_recipes_hold_the_values_of_swahrs_files():
    # From SWAHR's three experiment files and its lib/config/default.py (WORLD_SIZE 8, WARM_UP_EPOCH 3).
    expected = {SWAHR_W32: (0.00025, 20, 0.12, False, True), SWAHR_W48: (0.00012, 10, 0.1, True, False),
                SWAHR_CROWDPOSE: (0.00012, 10, 0.1, True, False)}
    for path, (lr, batch, threshold, sync_bn, auto_resume) in expected.items():
        cfg = higherhrnet.load_cfg(path)
        assert cfg.MODEL.SWAHR and cfg.TRAIN.LR_SCHEDULE == "swahr"
        assert (cfg.TRAIN.LR, cfg.WORLD_SIZE, cfg.TRAIN.IMAGES_PER_GPU) == (lr, 8, batch)
        assert (cfg.TRAIN.WARM_UP_EPOCH, cfg.TRAIN.END_EPOCH, cfg.TRAIN.OPTIMIZER) == (3, 300, "adam")
        assert cfg.TRAIN.WD == 0.0001              # SWAHR's value, which Adam ignores (there as here)
        assert (cfg.TEST.DETECTION_THRESHOLD, cfg.MODEL.SYNC_BN, cfg.AUTO_RESUME) == (threshold, sync_bn, auto_resume)
        assert (cfg.TEST.FLIP_TEST, list(cfg.TEST.SCALE_FACTOR), cfg.DATASET.SIGMA) == (True, [1.0], 2.0)
        assert not cfg.FP16.ENABLED
        params = InferenceParams.from_config(cfg, keypoints_from_config(cfg))      # test time: the spec's slices
        assert [(s.scale_channels, s.test_heatmaps, s.test_tags) for s in params.outputs] == \
            [(cfg.MODEL.NUM_JOINTS, True, True), (cfg.MODEL.NUM_JOINTS, True, False)]
        assert params.grouping.detection_threshold == threshold


def swahr_cfg(*opts):
    return tiny_cfg("MODEL.SWAHR", "True", *opts)


def test_fresh_scale_heads_output_zero_and_keep_their_first_conv_random():
    torch.manual_seed(0)
    model = higherhrnet.build_model(swahr_cfg())
    for head in model.conv_scale_layers:
        first, norm, _, last = head
        assert not last.weight.any() and not last.bias.any()
        assert 0 < first.weight.std() < 0.002 and not first.bias.any()            # N(0, 0.001), bias 0
        assert (norm.weight == 1).all() and not norm.bias.any()
    with torch.no_grad():
        outputs = model.train()(torch.randn(2, 3, 64, 64))
    assert all(not o[:, :17].any() for o in outputs)
    assert outputs[0][:, 17:].std() > 0                 # the rest is not zero


def swahr_state_dict(plain_state: dict, widths, joints: int, seed: int = 1) -> dict:
    """A fake checkpoint as SWAHR's code saves it: the HigherHRNet tensors plus conv_scale_layers.*."""
    g = torch.Generator().manual_seed(seed)
    state = dict(plain_state)
    for i, c in enumerate(widths):
        for name, shape, dtype in scale_head_keys(i, c, joints):
            if dtype == "int64":
                state[name] = torch.tensor(7)
            elif name.endswith("running_var"):
                state[name] = torch.rand(shape, generator=g) + 0.5
            else:
                state[name] = torch.randn(shape, generator=g) * 0.3
    return state


def reference_outputs(plain, state: dict, x: torch.Tensor, joints: int) -> list[torch.Tensor]:
    """SWAHR's forward rebuilt from pieces: the plain HigherHRNet's outputs, and before each one the scale head
    applied (functionally, with the checkpoint's tensors) to the input of its final layer."""
    features = []
    hooks = [layer.register_forward_hook(lambda m, args, out: features.append(args[0])) for layer in plain.final_layers]
    with torch.no_grad():
        ys = plain(x)
    for h in hooks:
        h.remove()
    outputs = []
    for i, (feature, y) in enumerate(zip(features, ys)):
        p = f"conv_scale_layers.{i}"
        s = F.conv2d(feature, state[f"{p}.0.weight"], state[f"{p}.0.bias"])
        s = F.batch_norm(s, state[f"{p}.1.running_mean"], state[f"{p}.1.running_var"], state[f"{p}.1.weight"],
                         state[f"{p}.1.bias"], training=False, eps=1e-5)
        s = F.conv2d(F.relu(s), state[f"{p}.3.weight"], state[f"{p}.3.bias"], padding=4, groups=joints)
        outputs.append(torch.cat((s, y), 1))
    return outputs


@pytest.mark.parametrize("wrap", ["bare", "module_prefix"])
def test_weights_in_swahrs_layout_load_and_give_swahrs_outputs(tmp_path, wrap):
    torch.manual_seed(0)
    plain = randomize(higherhrnet.build_model(tiny_cfg()))
    state = swahr_state_dict(plain.state_dict(), (8, 8), 17)
    saved = state if wrap == "bare" else {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    torch.save(saved, tmp_path / "swahr.pth")
    model = higherhrnet.build_model(swahr_cfg())
    higherhrnet.load_checkpoint(model, tmp_path / "swahr.pth")
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = model.eval()(x)
    expected = reference_outputs(plain, state, x, 17)
    assert [tuple(o.shape) for o in ours] == [(2, 51, 16, 24), (2, 34, 32, 48)]
    for a, e in zip(ours, expected):
        torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-5)
    assert ours[0][:, :17].abs().max() > 0.01            # the scale maps are not trivially zero
    # BatchNorm folding (used by every Predictor) keeps them.
    for a, e in zip(fold_batchnorm(model)(x), ours):
        torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-5)


def test_swahr_weights_need_the_swahr_config():
    torch.manual_seed(0)
    state = swahr_state_dict(higherhrnet.build_model(tiny_cfg()).state_dict(), (8, 8), 17)
    with pytest.raises(higherhrnet.CheckpointError, match=r"holds the weights of a HigherHRNet-W8 \(17 joints, SWAHR "
                                                          r"scale heads\), not of this config's network") as error:
        higherhrnet.load_checkpoint(higherhrnet.build_model(tiny_cfg()), state)
    assert "unexpected (18): conv_scale_layers.0.0.weight" in error.value.details


def test_test_time_drops_the_scale_maps():
    # The same HigherHRNet weights with and without (random, non-zero) scale heads: equal maps, equal people.
    torch.manual_seed(0)
    plain = randomize(higherhrnet.build_model(tiny_cfg()))
    state = swahr_state_dict(plain.state_dict(), (8, 8), 17)
    images = [painted_image(150, 110), painted_image(96, 128)]
    with_scales = Predictor.from_config(swahr_cfg(), state, device="cpu", fold_bn=False, raw=True)
    without = Predictor.from_config(tiny_cfg(), plain.state_dict(), device="cpu", fold_bn=False, raw=True)
    assert_same_maps(without, with_scales, images, atol=1e-6)
    people_a, people_b = with_scales(images[0]), without(images[0])
    assert len(people_a) == len(people_b) > 0
    np.testing.assert_allclose(people_a[0].keypoints, people_b[0].keypoints, atol=1e-4)


def test_hrnet_v2_head_feeds_the_first_scale_head():
    cfg = swahr_cfg("MODEL.EXTRA.HEAD", "hrnet_v2", "MODEL.EXTRA.HEAD_CHANNELS", "24")
    model = higherhrnet.build_model(cfg).eval()
    assert model.conv_scale_layers[0][0].weight.shape == (17, 24, 1, 1)
    with torch.no_grad():
        assert [o.shape[1] for o in model(torch.zeros(1, 3, 64, 64))] == [51, 34]


def test_scale_maps_on_some_outputs_only_are_refused():
    specs = build_output_specs(swahr_cfg())
    mixed = (specs[0], build_output_specs(tiny_cfg())[1])
    with pytest.raises(ValueError, match=r"every output or on none.*outputs \[0\] only"):
        higherhrnet.build_model(swahr_cfg(), outputs=mixed)
