"""The residual-block stacked hourglass AE network (MODEL.NAME hourglass_residual): layout, parameter counts,
intermediate supervision, input normalisation, inference with a chosen stack, and the command-line tools."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import higherhrnet
from higherhrnet import COCO_KEYPOINTS, ConfigError, Predictor
from higherhrnet.inference import run_network
from higherhrnet.losses import AELoss, HeatmapLoss
from higherhrnet.models import ResidualHourglassNet
from higherhrnet.models.hourglass import Hourglass
from higherhrnet.outputs import OutputSpec

from conftest import (EXPERIMENTS, REPO, painted_image, painted_network, people_in, randomize, tiny_cfg,
                      tiny_hourglass_cfg)

J = 17
HOURGLASS_512 = EXPERIMENTS / "coco/hourglass/hourglass_residual_512.yaml"
HOURGLASS_TINY = EXPERIMENTS / "synthetic/hourglass_256_tiny.yaml"


# ---------------------------------------------------------------- parameter counts from the description

def bn(c):
    return 2 * c                                    # weight and bias


def residual(cin, cout):
    """BN-ReLU-conv1x1 (cout/2), BN-ReLU-conv3x3, BN-ReLU-conv1x1 (cout), 1x1 skip conv if widths differ."""
    mid = cout // 2
    skip = cin * cout if cin != cout else 0
    return bn(cin) + cin * mid + bn(mid) + 9 * mid * mid + bn(mid) + mid * cout + skip


def hourglass(widths):
    """skip residual, pool, residual down to the next width, inner hourglass (or residual), residual back."""
    outer, inner = widths[0], widths[1]
    middle = hourglass(widths[1:]) if len(widths) > 2 else residual(inner, inner)
    return residual(outer, outer) + residual(outer, inner) + middle + residual(inner, outer)


def network(stacks, widths, stem=(64, 128), joints=J, tag_dim=J):
    """stem: 7x7 conv + BN, residual(s0, s1), residual(s1, s1), residual(s1, C). Per stack: hourglass,
    residual, 1x1 conv + BN, prediction conv with bias. Between stacks: two 1x1 merge convs."""
    k, c = joints + tag_dim, widths[0]
    stem_params = 3 * 49 * stem[0] + bn(stem[0]) + residual(stem[0], stem[1]) + residual(stem[1], stem[1]) + \
        residual(stem[1], c)
    stack = hourglass(widths) + residual(c, c) + c * c + bn(c) + c * k + k
    merges = (stacks - 1) * (c * c + k * c)
    return stem_params + stacks * stack + merges


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_paper_widths_one_level_deep_counted_by_hand():
    # One stack, one pooling, widths 256 -> 384 as the AE paper's first drop in resolution, COCO's 17 joints.
    stem = (3 * 7 * 7 * 64 + 128                                         # 7x7 conv, BN
            + 128 + 64 * 64 + 128 + 9 * 64 * 64 + 128 + 64 * 128 + 64 * 128    # residual 64 -> 128
            + 256 + 128 * 64 + 128 + 9 * 64 * 64 + 128 + 64 * 128               # residual 128 -> 128
            + 256 + 128 * 128 + 256 + 9 * 128 * 128 + 256 + 128 * 256 + 128 * 256)  # residual 128 -> 256
    r256 = 512 + 256 * 128 + 256 + 9 * 128 * 128 + 256 + 128 * 256              # residual 256 -> 256
    hourglass_1 = (r256
                   + 512 + 256 * 192 + 384 + 9 * 192 * 192 + 384 + 192 * 384 + 256 * 384   # 256 -> 384
                   + 768 + 384 * 192 + 384 + 9 * 192 * 192 + 384 + 192 * 384               # 384 -> 384
                   + 768 + 384 * 128 + 256 + 9 * 128 * 128 + 256 + 128 * 256 + 384 * 256)  # 384 -> 256
    head = r256 + 256 * 256 + 512 + 256 * 34 + 34                      # residual, 1x1 conv + BN, prediction
    assert stem == 351_168 and hourglass_1 == 1_577_984
    assert stem + hourglass_1 + head == 2_217_954
    one_stack = OutputSpec(0, 4.0, 0, 64, num_joints=J, tag_channels=J, heatmap_loss_factor=1.0, push_loss_factor=1e-3,
                           pull_loss_factor=1e-3, test_heatmaps=True, test_tags=True)
    assert count(ResidualHourglassNet([one_stack], channels=(256, 384))) == 2_217_954
    assert network(1, (256, 384)) == 2_217_954


@pytest.mark.parametrize("path,opts,expected", [
    (HOURGLASS_512, [], network(4, (256, 384, 512, 640, 768))),
    (HOURGLASS_TINY, [], network(2, (64, 80, 96, 112, 128), stem=(16, 32))),
    (HOURGLASS_TINY, ["MODEL.TAG_PER_JOINT", "False"], network(2, (64, 80, 96, 112, 128), stem=(16, 32), tag_dim=1)),
    (HOURGLASS_TINY, ["MODEL.NUM_JOINTS", "14", "DATASET.NUM_JOINTS", "14"],
     network(2, (64, 80, 96, 112, 128), stem=(16, 32), joints=14, tag_dim=14)),
], ids=["residual_512", "tiny", "tiny_one_tag", "tiny_14_joints"])
def test_parameter_counts_per_config(path, opts, expected):
    model = higherhrnet.build_model(higherhrnet.load_cfg(path, opts))
    assert count(model) == expected


def test_published_sizes_of_the_configs():
    assert network(4, (256, 384, 512, 640, 768)) == 59_605_576       # docs/configs.md: 59.6M
    assert network(2, (64, 80, 96, 112, 128), stem=(16, 32)) == 1_046_196   # docs/configs.md: 1.0M


# ---------------------------------------------------------------- shapes and wiring

@pytest.mark.parametrize("height,width", [(128, 128), (96, 160), (100, 70), (64, 64)])
def test_every_stack_outputs_heatmaps_and_tags_at_a_quarter(height, width):
    torch.manual_seed(0)
    model = randomize(higherhrnet.build_model(tiny_hourglass_cfg()))
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width))
    quarter = (-(-height // 4), -(-width // 4))   # odd sizes round up, as the stem's strided layers do
    assert [tuple(o.shape) for o in out] == [(2, 2 * J, *quarter)] * 2
    assert all(torch.isfinite(o).all() for o in out)


@pytest.mark.parametrize("opts,channels", [
    (["MODEL.TAG_PER_JOINT", "False"], (18, 18)),
    (["LOSS.WITH_AE_LOSS", "[False, True]"], (17, 34)),
    (["MODEL.HOURGLASS.NUM_STACKS", "3", "LOSS.NUM_STAGES", "3", "LOSS.WITH_AE_LOSS", "[True, True, True]",
      "LOSS.WITH_HEATMAPS_LOSS", "[True, True, True]", "LOSS.HEATMAPS_LOSS_FACTOR", "[1.0, 1.0, 1.0]",
      "LOSS.PUSH_LOSS_FACTOR", "[0.001, 0.001, 0.001]", "LOSS.PULL_LOSS_FACTOR", "[0.001, 0.001, 0.001]",
      "TEST.WITH_HEATMAPS", "(False, False, True)", "TEST.WITH_AE", "(False, False, True)"], (34, 34, 34)),
])
def test_output_channels_follow_config(opts, channels):
    model = higherhrnet.build_model(tiny_hourglass_cfg(*opts)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert tuple(o.shape[1] for o in out) == channels
    assert all(o.shape[2:] == (16, 16) for o in out)


def test_hourglass_adds_the_skip_to_the_upsampled_lower_branch():
    torch.manual_seed(0)
    module = randomize(Hourglass((4, 6)))
    x = torch.randn(1, 4, 8, 12)
    with torch.no_grad():
        pooled = x.reshape(1, 4, 4, 2, 6, 2).amax(dim=(3, 5))              # 2x2 max-pool, written out
        low = module.up(module.inner(module.down(pooled)))
        upsampled = low.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)   # nearest, x2
        expected = module.skip(x) + upsampled
        torch.testing.assert_close(module(x), expected)
    assert isinstance(module.inner, nn.Module) and not isinstance(module.inner, Hourglass)   # one level deep


def test_next_stack_gets_input_plus_merged_features_and_predictions():
    torch.manual_seed(0)
    model = randomize(higherhrnet.build_model(tiny_hourglass_cfg()))
    seen = {}

    def record(key, output=True):
        def hook(module, inputs, out):
            seen[key] = (out if output else inputs[0]).clone()
        return hook

    handles = [model.hourglasses[0].register_forward_hook(record("in0", output=False)),
               model.hourglasses[1].register_forward_hook(record("in1", output=False)),
               model.features[0].register_forward_hook(record("feature0"))]
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
        for h in handles:
            h.remove()
        expected = seen["in0"] + model.merge_features[0](seen["feature0"]) + model.merge_predictions[0](out[0])
        torch.testing.assert_close(seen["in1"], expected)
        torch.testing.assert_close(out[0], model.predictions[0](seen["feature0"]))
    assert len(model.merge_features) == len(model.merge_predictions) == 1   # none after the last stack


# ---------------------------------------------------------------- configuration

@pytest.mark.parametrize("opts,message", [
    (["MODEL.HOURGLASS.NUM_STACKS", "3"], r"LOSS.NUM_STAGES \(2\) must equal MODEL.HOURGLASS.NUM_STACKS \(3\)"),
    (["DATASET.OUTPUT_SIZE", "[32, 64]"], r"DATASET.OUTPUT_SIZE must be \[32\]"),
    (["DATASET.OUTPUT_SIZE", "[32, 32]"], r"DATASET.OUTPUT_SIZE must be \[32\]"),
    (["MODEL.HOURGLASS.DEPTH", "3"], "MODEL.HOURGLASS.NUM_CHANNELS has 3 entries but MODEL.HOURGLASS.DEPTH"),
    (["MODEL.HOURGLASS.STEM_CHANNELS", "[8]"], "MODEL.HOURGLASS.STEM_CHANNELS has 1 entries"),
    (["MODEL.HOURGLASS.DEPTH", "0", "MODEL.HOURGLASS.NUM_CHANNELS", "[8]"], "NUM_STACKS and DEPTH must be >= 1"),
    (["MODEL.INPUT_MEAN", "[0.5, 0.5, 0.5]"], "MODEL.INPUT_MEAN and MODEL.INPUT_STD must both"),
    (["MODEL.INPUT_STD", "[0.5, 0.0, 0.5]", "MODEL.INPUT_MEAN", "[0.5, 0.5, 0.5]"], "std > 0"),
    (["TEST.WITH_AE", "(False, False, True)"], "TEST.WITH_AE has 3 entries but LOSS.NUM_STAGES says 2"),
    (["MODEL.NAME", "hourglass"], "MODEL.NAME 'hourglass' is not a known model"),
])
def test_bad_combinations_name_the_keys(opts, message):
    with pytest.raises(ConfigError, match=message):
        tiny_hourglass_cfg(*opts)


def test_no_stack_chosen_for_tags_is_an_error():
    cfg = tiny_hourglass_cfg("TEST.WITH_AE", "(False, False)")
    with pytest.raises(ConfigError, match="TEST.WITH_AE"):
        Predictor.from_model(cfg, higherhrnet.build_model(cfg), raw=True)


# ---------------------------------------------------------------- intermediate supervision

def test_loss_has_one_term_per_stack_against_the_same_targets_with_its_weights():
    cfg = tiny_hourglass_cfg("LOSS.HEATMAPS_LOSS_FACTOR", "[0.5, 2.0]", "LOSS.PUSH_LOSS_FACTOR", "[0.1, 0.3]",
                             "LOSS.PULL_LOSS_FACTOR", "[0.2, 0.4]")
    loss = higherhrnet.build_loss(cfg)
    g = torch.Generator().manual_seed(0)
    outputs = [torch.randn(2, 2 * J, 8, 8, generator=g, requires_grad=True) for _ in range(2)]
    heatmaps, masks = [torch.rand(2, J, 8, 8, generator=g)], [torch.ones(2, 8, 8)]
    joints = [torch.zeros(2, 30, J, 2, dtype=torch.int64)]
    joints[0][:, 0, :3] = torch.tensor([[5, 1], [J * 64 + 9, 1], [2 * 64 + 3, 1]])
    joints[0][:, 1, :2] = torch.tensor([[40, 1], [J * 64 + 50, 1]])
    terms = loss(outputs, heatmaps, masks, joints)
    heat, push, pull = ([terms[f"{t}_1/4_output{s}"] for s in range(2)] for t in ("heatmaps", "push", "pull"))
    assert len(terms) == 6
    for s, (hf, pf, lf) in enumerate([(0.5, 0.1, 0.2), (2.0, 0.3, 0.4)]):
        torch.testing.assert_close(heat[s], hf * HeatmapLoss()(outputs[s][:, :J], heatmaps[0], masks[0]))
        raw_push, raw_pull = AELoss("exp")(outputs[s][:, J:].reshape(2, -1), joints[0])
        torch.testing.assert_close(push[s], pf * raw_push)
        torch.testing.assert_close(pull[s], lf * raw_pull)
    assert heat[0].ne(heat[1]).all() and (push[1] > 0).all()
    sum(t.mean() for t in terms.values()).backward()
    assert all(o.grad.abs().sum() > 0 for o in outputs)     # every stack is supervised
    with pytest.raises(ValueError, match="targets at 1 resolutions"):
        loss(outputs, heatmaps * 2, masks * 2, joints * 2)


# ---------------------------------------------------------------- input normalisation

class Recorder(nn.Module):
    """Passes through to a network and keeps the last input it saw."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.inputs = None

    def forward(self, x):
        self.inputs = x.detach().clone()
        return self.net(x)


@pytest.mark.parametrize("which", ["hourglass", "imagenet"])
def test_predictor_feeds_the_configured_normalisation(which):
    cfg = tiny_hourglass_cfg() if which == "hourglass" else tiny_cfg()
    recorder = Recorder(higherhrnet.build_model(cfg))
    image = np.full((128, 128, 3), (51, 102, 204), np.uint8)
    Predictor.from_model(cfg, recorder, fold_bn=False, raw=True)(image)   # the recorder itself must run
    centre = recorder.inputs[0, :, 64, 64]
    pixels = torch.tensor([0.2, 0.4, 0.8])
    if which == "hourglass":
        torch.testing.assert_close(centre, pixels)
    else:
        torch.testing.assert_close(centre, (pixels - torch.tensor([0.485, 0.456, 0.406]))
                                   / torch.tensor([0.229, 0.224, 0.225]))


def test_training_feeds_pixels_over_255_to_the_hourglass(tmp_path):
    from higherhrnet.engine import Trainer
    from tinycoco import write_tiny_coco

    write_tiny_coco(tmp_path / "data", num_images=2)
    common = ["DATASET.ROOT", str(tmp_path / "data"), "DATASET.TRAIN", "train", "WORKERS", "0",
              "TRAIN.IMAGES_PER_GPU", "2", "TRAIN.END_EPOCH", "1", "TRAIN.MAX_ITERS_PER_EPOCH", "1",
              "OUTPUT_DIR", str(tmp_path / "out"), "LOG_DIR", str(tmp_path / "log")]
    seen = {}
    for name, cfg in (("hourglass", tiny_hourglass_cfg(*common)), ("imagenet", tiny_cfg(*common))):
        trainer = Trainer(cfg, f"{name}.yaml", device="cpu")
        trainer.net = Recorder(trainer.model)
        trainer.run()
        seen[name] = trainer.net.inputs
    pixels = seen["hourglass"] * 255
    assert pixels.min() >= 0 and pixels.max() <= 255 and pixels.max() > 200
    torch.testing.assert_close(pixels, pixels.round(), atol=1e-3, rtol=0)   # nothing but / 255
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    torch.testing.assert_close(seen["imagenet"], (seen["hourglass"] - mean) / std)   # same augmentation


# ---------------------------------------------------------------- inference with the chosen stack

class PaintedStacks(nn.Module):
    """A 'hourglass' with two stacks on a painted image: the chosen stack carries the true 1/4 heatmaps and
    tags, the other one people somewhere else entirely."""

    def __init__(self, cfg, people, decoys, image_size, true_stack):
        super().__init__()
        self.true = painted_network(cfg, people, image_size)
        self.decoy = painted_network(cfg, decoys, image_size)
        self.true_stack = true_stack

    def forward(self, x):
        true, decoy = self.true(x)[self.true_stack], self.decoy(x)[1 - self.true_stack]
        return [true, decoy] if self.true_stack == 0 else [decoy, true]


@pytest.mark.parametrize("opts", [
    [],
    ["TEST.FLIP_TEST", "False"],
    ["TEST.SCALE_FACTOR", "[1.0, 0.5]"],
    ["TEST.SCALE_FACTOR", "[2.0, 1.0, 0.5]", "TEST.PROJECT2IMAGE", "False"],
])
@pytest.mark.parametrize("stack", [0, 1])
def test_predictor_uses_the_chosen_stack_with_flip_and_multi_scale(opts, stack):
    w, h = 300, 220
    people, decoys = people_in(w, h, 3, seed=4), people_in(w, h, 2, seed=9)
    choice = "(True, False)" if stack == 0 else "(False, True)"
    cfg = tiny_hourglass_cfg("DATASET.INPUT_SIZE", "256", "DATASET.OUTPUT_SIZE", "[64]", "TEST.WITH_HEATMAPS",
                             choice, "TEST.WITH_AE", choice, *opts)
    model = PaintedStacks(cfg, people, decoys, (w, h), true_stack=stack)
    found = Predictor.from_model(cfg, model, raw=True)(painted_image(w, h))
    assert len(found) == 3
    for person in found:
        gt = people[np.argmin([np.abs(g - person.keypoints[:, :2]).mean() for g in people])]
        # One pixel of the 1/4 output is 300 / 256 * 4 = 4.7 image pixels.
        assert np.abs(person.keypoints[:, :2] - gt).max() < 5.0
        assert person.score > 0.5


def test_random_hourglass_maps_batch_equal_single_with_flip_and_multi_scale():
    torch.manual_seed(0)
    cfg = tiny_hourglass_cfg("TEST.SCALE_FACTOR", "[1.0, 0.5, 2.0]", "TEST.FLIP_TEST", "True")
    model = randomize(higherhrnet.build_model(cfg))
    predictor = Predictor.from_model(cfg, model, raw=True)
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, shape, dtype=np.uint8) for shape in [(60, 80, 3), (60, 80, 3), (45, 100, 3)]]
    batched = run_network(model, images, predictor.params)
    for image, maps in zip(images, batched):
        single = run_network(model, [image], predictor.params)[0]
        torch.testing.assert_close(maps[0], single[0], atol=1e-5, rtol=1e-4)     # heatmaps
        torch.testing.assert_close(maps[1], single[1], atol=1e-5, rtol=1e-4)     # tags
        # Tags: J maps from the chosen stack for the image and for its mirror, at scale 1 only.
        assert maps[1].shape == (J, *maps[0].shape[1:], 2)


# ---------------------------------------------------------------- tools, unchanged for the user

@pytest.fixture(scope="module")
def hourglass_files(tmp_path_factory):
    from tinycoco import write_tiny_coco

    root = tmp_path_factory.mktemp("hourglass")
    write_tiny_coco(root / "data", split="val", num_images=2)
    cfg = tiny_hourglass_cfg("DATASET.ROOT", str(root / "data"), "DATASET.TEST", "val", "WORKERS", "0")
    torch.manual_seed(0)
    higherhrnet.save_model(root / "random.pth", randomize(higherhrnet.build_model(cfg)), cfg)
    (root / "hourglass.yaml").write_text(cfg.dump())
    return root


@pytest.mark.slow
def test_valid_cli_scores_a_hourglass(hourglass_files):
    root = hourglass_files
    result = subprocess.run([sys.executable, str(REPO / "tools/valid.py"), "--cfg", str(root / "hourglass.yaml"),
                             "--weights", str(root / "random.pth"), "--device", "cpu", "--out", str(root / "eval")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((root / "eval/metrics_val.json").read_text())
    assert len(metrics) == 10
    results = json.loads((root / "eval/keypoints_val_results.json").read_text())
    assert results and all(len(r["keypoints"]) == 3 * J for r in results)


@pytest.mark.slow
def test_demo_runs_a_hourglass(hourglass_files, tmp_path):
    import cv2

    root = hourglass_files
    image = tmp_path / "street.jpg"
    assert cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    result = subprocess.run([sys.executable, str(REPO / "demo/inference.py"), "--cfg", str(root / "hourglass.yaml"),
                             "--weights", str(root / "random.pth"), "--image", str(image), "--out",
                             str(tmp_path / "out"), "--all"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out/street.json").read_text())
    assert (tmp_path / "out/street_pose.jpg").exists()
    assert record["keypoint_names"] == list(COCO_KEYPOINTS.names)
    assert record["people"] and len(record["people"][0]["keypoints"]) == J
