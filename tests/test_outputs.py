"""outputs.py: one OutputSpec per network output, and everything that reads it agrees with it."""
from __future__ import annotations

import pytest
import torch

import higherhrnet
from higherhrnet import ConfigError
from higherhrnet.models import build_output_specs
from higherhrnet.outputs import OutputSpec, check_test_use, target_sizes

from conftest import EXPERIMENTS, tiny_cfg, tiny_hourglass_cfg

W32 = EXPERIMENTS / "coco" / "higher_hrnet" / "w32_512_adam_lr1e-3.yaml"


def test_official_w32_outputs():
    first, second = build_output_specs(higherhrnet.load_cfg(W32))
    assert (first.stride, first.target_index, first.target_size, first.channels) == (4.0, 0, 128, 34)
    assert (second.stride, second.target_index, second.target_size, second.channels) == (2.0, 1, 256, 17)
    assert first.tag_per_joint and not second.has_tags
    assert (first.heatmap_loss_factor, first.push_loss_factor, first.pull_loss_factor) == (1.0, 0.001, 0.001)
    assert first.test_heatmaps and first.test_tags and second.test_heatmaps and not second.test_tags


def test_hourglass_stacks_share_the_quarter_targets():
    specs = build_output_specs(tiny_hourglass_cfg())
    assert [(s.stride, s.target_index, s.target_size) for s in specs] == [(4.0, 0, 32), (4.0, 0, 32)]
    assert target_sizes(specs) == (32,)
    assert [s.test_tags for s in specs] == [False, True]


def test_channel_slices():
    spec = OutputSpec(0, 4.0, 0, 8, num_joints=3, tag_channels=1, heatmap_loss_factor=1.0, push_loss_factor=0.1,
                      pull_loss_factor=0.1, test_heatmaps=True, test_tags=True, unused_channels=2)
    output = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert spec.channels == 6 and not spec.tag_per_joint
    assert spec.heatmaps(output).flatten().tolist() == [0.0, 1.0, 2.0]
    assert spec.tags(output).flatten().tolist() == [3.0]


@pytest.mark.parametrize("opts", [[], ["MODEL.TAG_PER_JOINT", "False"], ["LOSS.WITH_AE_LOSS", "[True, True]"],
                                  ["MODEL.SWAHR", "True"]])
def test_model_loss_and_data_follow_the_specs(opts):
    cfg = tiny_cfg(*opts)
    specs = build_output_specs(cfg)
    model = higherhrnet.build_model(cfg).eval()
    with torch.no_grad():
        outputs = model(torch.zeros(1, 3, 128, 128))
    for spec, output in zip(specs, outputs):
        assert output.shape[1] == spec.channels
        assert 128 / output.shape[2] == spec.stride
    assert higherhrnet.build_loss(cfg).outputs == specs


def test_tags_on_an_output_without_heatmap_loss_are_refused():
    with pytest.raises(ConfigError, match=r"output 0 is trained with tags \(LOSS.WITH_AE_LOSS\) but not with heatmaps"):
        tiny_cfg("LOSS.WITH_HEATMAPS_LOSS", "[False, True]", "TEST.WITH_HEATMAPS", "(False, True)")   # at load


@pytest.mark.parametrize("opts,message", [
    (["TEST.WITH_AE", "(True, True)"], "TEST.WITH_AE uses the tags of output 1, which has none"),
    (["LOSS.WITH_HEATMAPS_LOSS", "[True, False]"], "TEST.WITH_HEATMAPS uses the heatmaps of output 1, which are not"),
    (["TEST.WITH_HEATMAPS", "(False, False)"], "no network output is used for heatmaps"),
])
def test_test_time_use_must_exist(opts, message):
    specs = build_output_specs(tiny_cfg(*opts))          # training these outputs is fine ...
    with pytest.raises(ConfigError, match=message):      # ... asking test time for what they lack is not
        check_test_use(specs)


def test_target_sizes_must_agree():
    a = OutputSpec(0, 4.0, 0, 32, 17, 17, 1.0, 0.1, 0.1, True, True)
    b = OutputSpec(1, 4.0, 0, 64, 17, 0, 1.0, 0.1, 0.1, True, False)
    with pytest.raises(ValueError, match="disagree on the size of target 0"):
        target_sizes([a, b])


def test_scale_channels_come_first():
    spec = OutputSpec(0, 4.0, 0, 8, num_joints=3, tag_channels=1, heatmap_loss_factor=1.0, push_loss_factor=0.1,
                      pull_loss_factor=0.1, test_heatmaps=True, test_tags=True, unused_channels=2, scale_channels=3)
    output = torch.arange(9.0).reshape(1, 9, 1, 1)
    assert (spec.channels, spec.final_channels, spec.has_scales) == (9, 6, True)
    assert spec.scales(output).flatten().tolist() == [0.0, 1.0, 2.0]
    assert spec.heatmaps(output).flatten().tolist() == [3.0, 4.0, 5.0]
    assert spec.tags(output).flatten().tolist() == [6.0]
    with pytest.raises(ValueError, match="scale_channels must be 0 or num_joints"):
        OutputSpec(0, 4.0, 0, 8, 3, 1, 1.0, 0.1, 0.1, True, True, scale_channels=1)


def test_swahr_puts_scale_maps_on_every_output():
    # SWAHR's layout: [scale J | heatmaps J | tags J] at 1/4, [scale J | heatmaps J] at 1/2.
    first, second = build_output_specs(higherhrnet.load_cfg(EXPERIMENTS / "coco" / "swahr" / "w32_512.yaml"))
    assert (first.scale_channels, first.channels, first.final_channels) == (17, 51, 34)
    assert (second.scale_channels, second.channels, second.final_channels) == (17, 34, 17)
    assert [s.scale_channels for s in build_output_specs(higherhrnet.load_cfg(W32))] == [0, 0]


def test_swahr_needs_higher_hrnet():
    with pytest.raises(ConfigError, match="MODEL.SWAHR .* pose_higher_hrnet only, got 'hourglass_residual'"):
        tiny_hourglass_cfg("MODEL.SWAHR", "True")                                                      # at load


@pytest.mark.parametrize("key,value,message", [
    ("LOSS.PUSH_LOSS_FACTOR", "(0.001,)", "LOSS.PUSH_LOSS_FACTOR has 1 entries but LOSS.NUM_STAGES says 2"),
    ("TEST.WITH_HEATMAPS", "(True,)", "TEST.WITH_HEATMAPS has 1 entries but LOSS.NUM_STAGES says 2"),
])
def test_build_output_specs_names_a_per_output_list_of_the_wrong_length(key, value, message):
    # build_output_specs is the one reader of these keys: called on its own (not through check_cfg) it must
    # still say which list is short, not fail indexing it.
    cfg = tiny_cfg()
    cfg.defrost()
    cfg.merge_from_list([key, value])
    with pytest.raises(ConfigError, match=message):
        build_output_specs(cfg)
