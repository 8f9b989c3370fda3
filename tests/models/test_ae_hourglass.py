"""AEHourglassNet, the network released with the Associative Embedding paper (princeton-vl/pose-ae-train),
MODEL.NAME hourglass_ae: parameter count, parameter names and shapes, loading pose-ae-train's checkpoint
files, outputs, the config, and the network through the loss, the Predictor, ONNX and the summary command."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import higherhrnet
from higherhrnet import CheckpointError, ConfigError, Predictor, load_checkpoint
from higherhrnet.inference import run_network
from higherhrnet.models.ae_hourglass import HEATMAP_CHANNELS, TAG_CHANNELS, AEHourglassNet
from higherhrnet.models import build_output_specs

from conftest import (EXPERIMENTS, REPO, painted_image, painted_network, people_in, randomize, tiny_hourglass_cfg,
                      train_once)

J = 17
AE_512 = EXPERIMENTS / "coco/hourglass/hourglass_ae_512.yaml"

# A reduced network: 2 stacks, 2 hourglass levels, widths 16 -> 24 -> 32, 68 outputs as released.
SMALL = dict(num_stacks=2, width=16, increase=8, depth=2, num_outputs=68, inner_increase=8)


def small_net(seed: int = 0) -> AEHourglassNet:
    torch.manual_seed(seed)
    return randomize(AEHourglassNet(**SMALL), seed)


# ---------------------------------------------------------------- parameter count from the description

def conv(cin: int, cout: int, k: int = 3) -> int:
    return cin * cout * k * k + cout                # every conv in pose-ae-train has a bias


def hourglass(depth: int, width: int, increase: int, inner_increase: int) -> int:
    """up1 (f->f), low1 (f->f+inc), next level or a bottom conv at f+inc, low3 (f+inc->f); all 3x3.
    Deeper levels add inner_increase (pose-ae-train: 128, its Hourglass's default)."""
    inner = width + increase
    middle = hourglass(depth - 1, inner, inner_increase, inner_increase) if depth > 1 else conv(inner, inner)
    return conv(width, width) + conv(width, inner) + middle + conv(inner, width)


def expected_parameters(stacks: int, width: int, increase: int, depth: int, outputs: int,
                        inner_increase: int = 128) -> int:
    """Stem 7x7 3->64, 3x3 64->128, 128->128, 128->width. Per stack: hourglass, two 3x3 convs, 1x1 output
    conv. Between stacks: 1x1 convs width->width and outputs->width."""
    stem = conv(3, 64, 7) + conv(64, 128) + conv(128, 128) + conv(128, width)
    stack = hourglass(depth, width, increase, inner_increase) + 2 * conv(width, width) + conv(width, outputs, 1)
    merges = (stacks - 1) * (conv(width, width, 1) + conv(outputs, width, 1))
    return stem + stacks * stack + merges


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_released_network_has_the_published_138_9m_parameters():
    expected = expected_parameters(stacks=4, width=256, increase=128, depth=4, outputs=68)
    assert round(expected / 1e6, 1) == 138.9
    with torch.device("meta"):                      # shapes only: no memory, no initialisation
        model = AEHourglassNet()
    assert count(model) == expected == 138_893_840


def test_small_network_parameter_count():
    assert count(AEHourglassNet(**SMALL)) == expected_parameters(2, 16, 8, 2, 68, inner_increase=8)


def test_config_builds_the_released_network():
    """hourglass_ae_512.yaml: exactly PoseNet(nstack=4, inp_dim=256, oup_dim=68, bn=False, increase=128)."""
    cfg = higherhrnet.load_cfg(AE_512)
    with torch.device("meta"):
        model = higherhrnet.build_model(cfg)
        released = AEHourglassNet()
    assert isinstance(model, AEHourglassNet)
    assert count(model) == expected_parameters(stacks=4, width=256, increase=128, depth=4, outputs=68) == 138_893_840
    assert {k: v.shape for k, v in model.state_dict().items()} == \
        {k: v.shape for k, v in released.state_dict().items()}
    specs = build_output_specs(cfg)
    assert [(s.stride, s.channels, s.unused_channels) for s in specs] == [(4.0, 68, 34)] * 4
    assert [(s.test_heatmaps, s.test_tags) for s in specs] == [(False, False)] * 3 + [(True, True)]
    output = torch.arange(68.0).reshape(1, 68, 1, 1)
    assert torch.equal(specs[-1].heatmaps(output), output[:, HEATMAP_CHANNELS])
    assert torch.equal(specs[-1].tags(output), output[:, TAG_CHANNELS])


def test_increase_widens_the_outermost_level_only():
    """pose-ae-train's models/layers.py: `Hourglass(n, f, bn, increase)` builds `Hourglass(n-1, nf, bn=bn)`,
    so the levels below the first add the default 128. Widths for increase 8: 16 -> 24 -> 152 -> 280."""
    state = AEHourglassNet(num_stacks=1, width=16, increase=8, depth=3, num_outputs=68).state_dict()
    hg = "features.0.0"
    shapes = {name: tuple(state[f"{hg}.{name}.conv.weight"].shape[:2])
              for name in ("low1", "low2.low1", "low2.low2.low1", "low2.low2.low2", "low2.low2.low3", "low3")}
    assert shapes == {"low1": (24, 16), "low2.low1": (152, 24), "low2.low2.low1": (280, 152),
                      "low2.low2.low2": (280, 280), "low2.low2.low3": (152, 280), "low3": (16, 24)}


# ---------------------------------------------------------------- names and shapes, written out by hand

def expected_small_state() -> dict[str, tuple[int, ...]]:
    """pose-ae-train's names: `pre` Sequential (index 2 is the pool), `features[s]` = (Hourglass, Conv,
    Conv), Hourglass attributes up1/low1/low2/low3, each Conv holding `.conv`, Merge holding a Conv."""
    convs = {"pre.0": (64, 3, 7), "pre.1": (128, 64, 3), "pre.3": (128, 128, 3), "pre.4": (16, 128, 3)}
    for s in (0, 1):
        hg = f"features.{s}.0"
        convs.update({
            f"{hg}.up1": (16, 16, 3), f"{hg}.low1": (24, 16, 3),
            f"{hg}.low2.up1": (24, 24, 3), f"{hg}.low2.low1": (32, 24, 3), f"{hg}.low2.low2": (32, 32, 3),
            f"{hg}.low2.low3": (24, 32, 3), f"{hg}.low3": (16, 24, 3),
            f"features.{s}.1": (16, 16, 3), f"features.{s}.2": (16, 16, 3), f"outs.{s}": (68, 16, 1),
        })
    convs.update({"merge_features.0.conv": (16, 16, 1), "merge_preds.0.conv": (16, 68, 1)})
    state = {}
    for name, (cout, cin, k) in convs.items():
        state[f"{name}.conv.weight"] = (cout, cin, k, k)
        state[f"{name}.conv.bias"] = (cout,)
    return state


def test_names_and_shapes_match_pose_ae_train():
    own = {k: tuple(v.shape) for k, v in AEHourglassNet(**SMALL).state_dict().items()}
    assert own == expected_small_state()


def test_batch_norm_variant_adds_norms_where_pose_ae_train_does():
    own = AEHourglassNet(**SMALL, batch_norm=True).state_dict()
    normed = sorted({k.rsplit(".bn.", 1)[0] for k in own if ".bn." in k})
    # Stem convs and the hourglass's up1, low1 and bottom conv; never low3, the post-hourglass convs,
    # the output convs or the merges.
    assert normed == sorted(["pre.0", "pre.1", "pre.3", "pre.4"] + [
        f"features.{s}.0.{n}" for s in (0, 1)
        for n in ("up1", "low1", "low2.up1", "low2.low1", "low2.low2")])


# ---------------------------------------------------------------- pose-ae-train's checkpoint layout

def pose_ae_forward(state: dict[str, torch.Tensor], images_nhwc: torch.Tensor, stacks: int,
                    depth: int) -> torch.Tensor:
    """pose-ae-train's PoseNet.forward written over its key names: NHWC in, (N, stacks, C, H/4, W/4) out."""
    def conv_block(name, x, relu=True, stride=1):
        w = state[f"{name}.conv.weight"]
        x = F.conv2d(x, w, state[f"{name}.conv.bias"], stride, (w.shape[-1] - 1) // 2)
        return x.clamp(min=0) if relu else x

    def hourglass_level(name, x, level):
        low = conv_block(f"{name}.low1", F.max_pool2d(x, 2))
        low = hourglass_level(f"{name}.low2", low, level - 1) if level > 1 else conv_block(f"{name}.low2", low)
        low = conv_block(f"{name}.low3", low)
        return conv_block(f"{name}.up1", x) + low.repeat_interleave(2, 2).repeat_interleave(2, 3)

    x = conv_block("pre.1", conv_block("pre.0", images_nhwc.permute(0, 3, 1, 2), stride=2))
    x = conv_block("pre.4", conv_block("pre.3", F.max_pool2d(x, 2)))
    preds = []
    for s in range(stacks):
        feature = hourglass_level(f"features.{s}.0", x, depth)
        feature = conv_block(f"features.{s}.2", conv_block(f"features.{s}.1", feature))
        preds.append(conv_block(f"outs.{s}", feature, relu=False))
        if s < stacks - 1:
            x = x + conv_block(f"merge_preds.{s}.conv", preds[-1], relu=False) \
                + conv_block(f"merge_features.{s}.conv", feature, relu=False)
    return torch.stack(preds, 1)


def pose_ae_checkpoint(state: dict[str, torch.Tensor], path, legacy: bool = False) -> None:
    """train.py's save(): Trainer.state_dict() (model -> DataParallel.module -> PoseNet), optimizer, epoch.
    legacy: torch.save's format before PyTorch 1.6 (2020); pose-ae-train and its pretrained file are older."""
    params = [nn.Parameter(v.clone()) for v in state.values()]
    optimizer = torch.optim.Adam(params, 2e-4)
    sum(p.sum() for p in params).backward()
    optimizer.step()                                # its state now holds tensors too (exp_avg, exp_avg_sq)
    torch.save({"state_dict": {"model.module." + k: v for k, v in state.items()},
                "optimizer": optimizer.state_dict(), "epoch": 7}, path, _use_new_zipfile_serialization=not legacy)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_pose_ae_checkpoint_loads_and_gives_identical_outputs(tmp_path, legacy):
    source = small_net(seed=1)
    path = tmp_path / "checkpoint.pth.tar"
    pose_ae_checkpoint(source.state_dict(), path, legacy)
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    state = {k[len("model.module."):]: v for k, v in state.items()}
    loaded = AEHourglassNet(**SMALL).eval()
    assert load_checkpoint(loaded, path)["epoch"] == 7     # strict: every name and shape must match

    images = torch.rand(2, 3, 64, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = loaded(images)
        reference = pose_ae_forward(state, images.permute(0, 2, 3, 1), stacks=2, depth=2)
    assert torch.equal(torch.stack(ours, 1), torch.stack(source(images), 1))
    torch.testing.assert_close(torch.stack(ours, 1), reference, rtol=1e-5, atol=1e-6)


def full_state() -> dict[str, torch.Tensor]:
    return AEHourglassNet(**SMALL).state_dict()


@pytest.mark.parametrize("checkpoint, problem", [
    (lambda: {"model": {}}, "'state_dict'"),
    (lambda: {"state_dict": {}}, "no model weights"),
    (lambda: {"state_dict": {"model.module." + k: v for k, v in full_state().items() if k != "outs.1.conv.bias"}},
     r"missing \(1\): outs.1.conv.bias"),
    (lambda: {"state_dict": {"model." + k: v for k, v in full_state().items()}}, "missing"),
    (lambda: {"state_dict": {**{"model.module." + k: v for k, v in full_state().items()},
                             "model.module.pre.0.conv.scale": [0.0]}}, "not tensors"),
    (lambda: {"state_dict": {"model.module." + k: v[:1] for k, v in full_state().items()}}, "wrong shape"),
    (lambda: [1, 2], "list"),
])
def test_other_layouts_are_refused_by_name(tmp_path, checkpoint, problem):
    path = tmp_path / "checkpoint.pth.tar"
    torch.save(checkpoint(), path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(AEHourglassNet(**SMALL), path)
    # The message says what is wrong in its first line; the keys that differ may be in the error's details.
    assert re.search(problem, f"{error.value}\n{error.value.details}")
    assert str(path) in str(error.value).splitlines()[0]


# ---------------------------------------------------------------- outputs

def test_outputs_one_per_stack_at_quarter_resolution():
    with torch.no_grad():
        outputs = small_net()(torch.rand(2, 3, 64, 192))
    assert [tuple(o.shape) for o in outputs] == [(2, 68, 16, 48)] * 2
    assert all(torch.isfinite(o).all() for o in outputs)
    # pose-ae-train's calc_loss: preds[:, :, :17] are heatmaps, preds[:, :, 17:34] tags; the rest unread.
    channels = list(range(68))
    assert channels[HEATMAP_CHANNELS] == list(range(17))
    assert channels[TAG_CHANNELS] == list(range(17, 34))


def test_unsupervised_channels_feed_the_next_stack():
    """Channels 34-67 are read by nobody but the merge: changing their merge weights changes stack 2."""
    model = small_net()
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = model(images)
        model.merge_preds[0].conv.conv.weight[:, 34:] += 1.0
        after = model(images)
    assert torch.equal(before[0], after[0])
    assert not torch.allclose(before[1], after[1])


@pytest.mark.parametrize("shape", [(1, 3, 72, 64), (1, 3, 64, 100), (1, 64, 64, 3)])
def test_bad_input_sizes_are_refused(shape):
    with pytest.raises(ValueError, match="multiple of 16|expected images"):
        AEHourglassNet(**SMALL)(torch.rand(shape))


# ---------------------------------------------------------------- configuration

def tiny_ae_cfg(*opts: str):
    """The tiny hourglass test config as hourglass_ae: 2 stacks, 2 poolings, widths 16 -> 24 -> 152."""
    return tiny_hourglass_cfg("MODEL.NAME", "hourglass_ae", "MODEL.HOURGLASS_AE.NUM_STACKS", "2",
                              "MODEL.HOURGLASS_AE.DEPTH", "2", "MODEL.HOURGLASS_AE.WIDTH", "16",
                              "MODEL.HOURGLASS_AE.INCREASE", "8", *opts)


def test_tiny_config_network_and_outputs():
    cfg = tiny_ae_cfg()
    model = higherhrnet.build_model(cfg)
    assert count(model) == expected_parameters(2, 16, 8, 2, 68)
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, 64, 128))
    assert [tuple(o.shape) for o in outputs] == [(1, 68, 16, 32)] * 2
    cfg = tiny_ae_cfg("MODEL.TAG_PER_JOINT", "False", "MODEL.HOURGLASS_AE.UNUSED_CHANNELS", "5")
    assert [s.channels for s in build_output_specs(cfg)] == [J + 1 + 5] * 2
    assert higherhrnet.build_model(cfg).outs[1].conv.out_channels == J + 1 + 5


@pytest.mark.parametrize("opts,message", [
    (["MODEL.HOURGLASS_AE.NUM_STACKS", "3"], r"LOSS.NUM_STAGES \(2\) must equal MODEL.HOURGLASS_AE.NUM_STACKS \(3\)"),
    (["DATASET.INPUT_SIZE", "136", "DATASET.OUTPUT_SIZE", "[34]"],
     r"DATASET.INPUT_SIZE \(136\) must be a multiple of 16"),
    (["DATASET.OUTPUT_SIZE", "[32, 64]"], r"DATASET.OUTPUT_SIZE must be \[32\] .* hourglass_ae"),
    (["MODEL.HOURGLASS_AE.DEPTH", "0"], "NUM_STACKS and DEPTH must be >= 1"),
    (["MODEL.HOURGLASS_AE.UNUSED_CHANNELS", "-1"], "UNUSED_CHANNELS >= 0"),
])
def test_bad_settings_name_the_keys(opts, message):
    with pytest.raises(ConfigError, match=message):
        tiny_ae_cfg(*opts)


def test_stacks_with_different_channels_are_refused():
    cfg = tiny_ae_cfg("LOSS.WITH_AE_LOSS", "[False, True]")
    with pytest.raises(ConfigError, match=r"\[51, 68\].*LOSS.WITH_AE_LOSS"):
        higherhrnet.build_model(cfg)


@pytest.mark.slow
def test_summary_command_prints_the_published_size():
    # A 64 x 64 input keeps the forward pass short; the parameter count does not depend on it.
    result = subprocess.run([sys.executable, "-m", "higherhrnet", "summary", "--cfg", str(AE_512), "--input-size",
                             "64", "64"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "hourglass_ae" in result.stdout and "parameters: 138.9M" in result.stdout
    assert "output 3: [1, 68, 16, 16]  (stride 4)" in result.stdout


# ---------------------------------------------------------------- training

def test_loss_reads_heatmaps_and_tags_and_unused_channels_train_through_the_merge():
    cfg = tiny_ae_cfg()
    torch.manual_seed(0)
    model = higherhrnet.build_model(cfg)
    g = torch.Generator().manual_seed(0)
    outputs = model(torch.rand(2, 3, 64, 64, generator=g))
    for output in outputs:
        output.retain_grad()
    heatmaps, masks = [torch.rand(2, J, 16, 16, generator=g)], [torch.ones(2, 16, 16)]
    joints = torch.zeros(2, 30, J, 2, dtype=torch.int64)
    joints[:, 0, :2] = torch.tensor([[3 * 256 + 5, 1], [4 * 256 + 9, 1]])
    joints[:, 1, :2] = torch.tensor([[3 * 256 + 200, 1], [4 * 256 + 180, 1]])
    terms = higherhrnet.build_loss(cfg)(outputs, heatmaps, masks, [joints])
    sum(t.mean() for t in terms.values()).backward()
    last, first = outputs[-1].grad, outputs[0].grad
    assert last[:, :J].abs().sum() > 0 and last[:, J:2 * J].abs().sum() > 0
    assert torch.equal(last[:, 2 * J:], torch.zeros_like(last[:, 2 * J:]))     # no loss reads them
    assert first[:, 2 * J:].abs().sum() > 0                                     # but stack 2 does


def test_one_training_step_writes_a_checkpoint_that_loads(tmp_path):
    from tinycoco import write_tiny_coco

    write_tiny_coco(tmp_path / "data", num_images=2)
    cfg = tiny_ae_cfg("DATASET.ROOT", str(tmp_path / "data"), "DATASET.TRAIN", "train", "WORKERS", "0",
                      "TRAIN.IMAGES_PER_GPU", "2", "TRAIN.END_EPOCH", "1", "TRAIN.MAX_ITERS_PER_EPOCH", "1",
                      "OUTPUT_DIR", str(tmp_path / "out"), "LOG_DIR", str(tmp_path / "log"))
    trainer, result = train_once(cfg, "ae.yaml")
    assert np.isfinite(result["epochs"][0]["loss"])
    model = higherhrnet.build_model(cfg).eval()
    load_checkpoint(model, tmp_path / "out/coco_kpt/hourglass_ae/ae/final_state.pth")
    trained = trainer.model.state_dict()
    assert all(torch.equal(value, trained[key]) for key, value in model.state_dict().items())
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():      # the trainer's copy is channels-last (the CPU default): equal up to rounding
        for ours, theirs in zip(model(images), trainer.model.eval()(images)):
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- test time

class NoiseInUnusedChannels(nn.Module):
    """Fills the channels after the tags with large values: test time must never read them."""

    def __init__(self, net, specs):
        super().__init__()
        self.net, self.specs = net, specs

    def forward(self, x):
        outputs = [o.clone() for o in self.net(x)]
        for spec, output in zip(self.specs, outputs):
            used = spec.num_joints + spec.tag_channels
            output[:, used:] = 50.0 + torch.rand(output[:, used:].shape, generator=torch.Generator().manual_seed(0))
        return outputs


@pytest.mark.parametrize("opts", [[], ["TEST.SCALE_FACTOR", "[1.0, 0.5]"], ["TEST.PROJECT2IMAGE", "True"]])
def test_predictor_finds_painted_people_in_the_released_layout(opts):
    w, h = 300, 220
    people = people_in(w, h, 3, seed=4)
    cfg = tiny_ae_cfg("DATASET.INPUT_SIZE", "256", "DATASET.OUTPUT_SIZE", "[64]", *opts)
    specs = build_output_specs(cfg)
    assert [s.channels for s in specs] == [68, 68]
    found = Predictor.from_model(cfg, NoiseInUnusedChannels(painted_network(cfg, people, (w, h)), specs), raw=True)(
        painted_image(w, h))
    assert len(found) == 3
    for person in found:
        gt = people[np.argmin([np.abs(g - person.keypoints[:, :2]).mean() for g in people])]
        # One pixel of the 1/4 output is 300 / 256 * 4 = 4.7 image pixels.
        assert np.abs(person.keypoints[:, :2] - gt).max() < 5.0
        assert person.score > 0.5


def test_random_network_through_the_predictor_batch_equals_single():
    cfg = tiny_ae_cfg("TEST.SCALE_FACTOR", "[1.0, 0.5]", "TEST.FLIP_TEST", "True")
    torch.manual_seed(0)
    model = higherhrnet.build_model(cfg)       # not randomize(): without BatchNorm its weights make maps explode
    predictor = Predictor.from_model(cfg, model, raw=True)
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, shape, dtype=np.uint8) for shape in [(60, 80, 3), (60, 80, 3), (45, 100, 3)]]
    for image, maps in zip(images, run_network(predictor.network, images, predictor.params)):
        single = run_network(predictor.network, [image], predictor.params)[0]
        torch.testing.assert_close(maps[0], single[0], atol=1e-5, rtol=1e-4)     # heatmaps
        torch.testing.assert_close(maps[1], single[1], atol=1e-5, rtol=1e-4)     # tags: J per image and mirror
        assert maps[1].shape == (J, *maps[0].shape[1:], 2)
    people = predictor(images[2])
    assert all(p.keypoints.shape == (J, 3) and np.isfinite(p.keypoints).all() for p in people)


def test_onnx_export_matches_torch():
    pytest.importorskip("onnxruntime", reason='onnxruntime is not installed; pip install -e ".[onnx]"')
    from higherhrnet.models.onnx import OnnxRuntimeNetwork, create_session, export_onnx

    cfg = tiny_ae_cfg()
    torch.manual_seed(0)
    model = higherhrnet.build_model(cfg).eval()
    network = OnnxRuntimeNetwork(create_session(export_onnx(model, input_size=(128, 128)), threads=1))
    assert network.output_channels == [68, 68]
    g = torch.Generator().manual_seed(5)
    for shape in [(2, 3, 64, 192), (1, 3, 128, 64)]:                 # sizes other than the traced one
        images = torch.rand(shape, generator=g)
        with torch.no_grad():
            expected = model(images)
        actual = network(images)
        assert len(actual) == 2
        for a, e in zip(actual, expected):
            torch.testing.assert_close(a, e, atol=1e-4, rtol=1e-4)
    image = np.random.default_rng(2).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    torch_predictor = Predictor.from_model(cfg, model, raw=True)
    torch_maps = run_network(torch_predictor.network, [image], torch_predictor.params)[0]
    onnx_predictor = Predictor.from_model(cfg, model, backend="onnxruntime", raw=True)
    onnx_maps = run_network(onnx_predictor.network, [image], onnx_predictor.params)[0]
    torch.testing.assert_close(onnx_maps[0], torch_maps[0], atol=1e-3, rtol=0)
    torch.testing.assert_close(onnx_maps[1], torch_maps[1], atol=1e-3, rtol=0)
