"""MODEL.NAME pose_hrnet, the top-down HRNet: the official checkpoints' key layout (tests/assets/spec, facts from the
official code), strict loading of the official and mmpose layouts, its output spec, its config checks, its size
and compute, and the bottom-up pipeline's refusal to run it."""
from __future__ import annotations

import json

import pytest
import torch

import higherhrnet
from higherhrnet import ConfigError, CheckpointError
from higherhrnet.models import build_output_specs

from conftest import EXPERIMENTS, SPEC, randomize, state_dict_layout, tiny_pose_hrnet_cfg

RECIPES = EXPERIMENTS / "coco" / "hrnet"
W32 = RECIPES / "w32_256x192_adam_lr1e-3.yaml"


@pytest.mark.parametrize("recipe, spec_name, millions", [
    ("w32_256x192_adam_lr1e-3.yaml", "pose_hrnet_w32_256x192.json", 28.5),
    ("w32_384x288_adam_lr1e-3.yaml", "pose_hrnet_w32_256x192.json", 28.5),
    ("w48_256x192_adam_lr1e-3.yaml", "pose_hrnet_w48_256x192.json", 63.6),
    ("w48_384x288_adam_lr1e-3.yaml", "pose_hrnet_w48_256x192.json", 63.6),
])
def test_state_dict_equals_official_checkpoint_layout(recipe, spec_name, millions):
    spec = json.loads((SPEC / spec_name).read_text())
    model = higherhrnet.build_model(higherhrnet.load_cfg(RECIPES / recipe))
    ours = state_dict_layout(model)
    assert [k for k, _, _ in ours] == [k for k, _, _ in spec["keys"]]      # names, in registration order
    assert ours == spec["keys"]                                             # and shapes and dtypes
    n = sum(p.numel() for p in model.parameters())
    assert n == spec["num_parameters"] and round(n / 1e6, 1) == millions   # the README's 28.5M / 63.6M


def test_the_official_layout_loads_strict_parameter_for_parameter():
    """A state dict laid out as the official pose_hrnet_w32 files (every key of the facts), random values."""
    spec = json.loads((SPEC / "pose_hrnet_w32_256x192.json").read_text())
    g = torch.Generator().manual_seed(0)
    state = {key: (torch.randn(shape, generator=g) if dtype == "float32" else torch.tensor(7))
             for key, shape, dtype in spec["keys"]}
    model = higherhrnet.build_model(higherhrnet.load_cfg(W32))
    higherhrnet.load_checkpoint(model, state)
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[key], state[key]) for key in state)


@pytest.mark.parametrize("wrap", [
    lambda state: {f"module.{k}": v for k, v in state.items()},                 # saved from DataParallel
    lambda state: {"state_dict": {f"backbone.{k}" if k.split(".")[0] != "final_layer" else f"keypoint_head.{k}": v
                                  for k, v in state.items()}},                  # mmpose 0.x TopDown
])
def test_wrapped_layouts_load_strict(wrap):
    state = randomize(higherhrnet.build_model(tiny_pose_hrnet_cfg())).state_dict()
    model = higherhrnet.build_model(tiny_pose_hrnet_cfg())
    higherhrnet.load_checkpoint(model, wrap(state))
    assert all(torch.equal(model.state_dict()[key], state[key]) for key in state)


def test_missing_or_foreign_weights_are_refused():
    model = higherhrnet.build_model(tiny_pose_hrnet_cfg())
    state = model.state_dict()
    with pytest.raises(CheckpointError, match="1 missing"):
        higherhrnet.load_checkpoint(model, {k: v for k, v in state.items() if k != "final_layer.bias"})
    bottom_up = higherhrnet.build_model(higherhrnet.load_cfg(None, ["MODEL.EXTRA.STAGE4.NUM_MODULES", "1"]))
    with pytest.raises(CheckpointError, match="holds the weights of a HigherHRNet-W32 .* not of this config's network, "
                                              "a top-down HRNet-W8 pose network"):
        higherhrnet.load_checkpoint(model, bottom_up.state_dict())


def test_tiny_network_output():
    model = randomize(higherhrnet.build_model(tiny_pose_hrnet_cfg()))
    with torch.no_grad():
        out = model(torch.randn(2, 3, 96, 64))
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == (2, 17, 24, 16)
    assert torch.isfinite(out).all()
    three = higherhrnet.build_model(tiny_pose_hrnet_cfg("MODEL.EXTRA.FINAL_CONV_KERNEL", "3"))
    assert tuple(three.final_layer.weight.shape) == (17, 8, 3, 3) and three.final_layer.padding == (1, 1)
    with torch.no_grad():
        assert tuple(three.eval()(torch.randn(1, 3, 96, 64)).shape) == (1, 17, 24, 16)


def test_one_output_spec_from_the_top_down_keys_only():
    (spec,) = build_output_specs(higherhrnet.load_cfg(W32))
    assert (spec.stride, spec.channels, spec.tag_channels, spec.scale_channels) == (4.0, 17, 0, 0)
    assert (spec.target_size, spec.heatmap_loss_factor, spec.test_heatmaps, spec.test_tags) == ((48, 64), 1.0, True,
                                                                                                 False)
    # The bottom-up output keys are not read: tags on output 0 and three stages change nothing.
    cfg = tiny_pose_hrnet_cfg("LOSS.WITH_AE_LOSS", "[True, True]", "TEST.WITH_AE", "(True, True)")
    assert build_output_specs(cfg) == build_output_specs(tiny_pose_hrnet_cfg())


@pytest.mark.parametrize("opts, message", [
    (["MODEL.IMAGE_SIZE", "[60, 96]", "MODEL.HEATMAP_SIZE", "[15, 24]"], "MODEL.IMAGE_SIZE .* multiples of 32"),
    (["MODEL.IMAGE_SIZE", "[64]"], r"MODEL.IMAGE_SIZE must be \[width, height\]"),
    (["MODEL.HEATMAP_SIZE", "[24, 16]"], r"MODEL.HEATMAP_SIZE must be MODEL.IMAGE_SIZE / 4 \(\[16, 24\]\)"),
    (["MODEL.TARGET_TYPE", "offset"], "MODEL.TARGET_TYPE must be 'gaussian'"),
    (["MODEL.SWAHR", "True"], "MODEL.SWAHR"),
    (["MODEL.EXTRA.HEAD", "hrnet_v2"], "MODEL.EXTRA.HEAD must be hrnet_v1"),
    (["MODEL.EXTRA.FINAL_CONV_KERNEL", "5"], "FINAL_CONV_KERNEL must be 1 or 3"),
    (["MODEL.SIGMA", "0"], "MODEL.SIGMA must be > 0"),
])
def test_config_checks(opts, message):
    with pytest.raises(ConfigError, match=message):
        tiny_pose_hrnet_cfg(*opts)


def test_summary_command_measures_the_person_crop(capsys):
    """The official README: 28.5M parameters and 7.1 GFLOPs for W32-256x192: its get_model_summary counts conv
    weights x output pixels (7,645,003,776 here) and divides by 2**30."""
    from higherhrnet.cli import main

    assert main(["summary", "--cfg", str(W32)]) == 0
    out = capsys.readouterr().out
    assert "input: [1, 3, 256, 192] (N, C, H, W)" in out and "parameters: 28.5M" in out
    assert "GFLOPs (official count, conv weights x output pixels): 7.6" in out
    assert "GFLOPs as the top-down HRNet README reports them (the same count / 2**30): 7.1" in out
    assert "output 0: [1, 17, 64, 48]  (stride 4)" in out


def test_the_bottom_up_pipeline_refuses_it():
    from higherhrnet.inference import InferenceParams

    cfg = tiny_pose_hrnet_cfg()
    with pytest.raises(ConfigError, match="MODEL.NAME pose_hrnet is a top-down network .* higherhrnet.topdown"):
        InferenceParams.from_config(cfg, higherhrnet.COCO_KEYPOINTS)
    # Training builds its own loss and data (tests/engine/test_topdown_training.py).
    assert isinstance(higherhrnet.build_loss(cfg), higherhrnet.losses.TopDownLoss)
