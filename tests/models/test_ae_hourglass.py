"""AEHourglassNet, the network released with the Associative Embedding paper (princeton-vl/pose-ae-train):
parameter count, parameter names and shapes, loading pose-ae-train's checkpoint layout, outputs."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from higherhrnet.checkpoint import CheckpointError
from higherhrnet.models.ae_hourglass import HEATMAP_CHANNELS, TAG_CHANNELS, AEHourglassNet, strip_pose_ae_prefix

from conftest import randomize

# A reduced network: 2 stacks, 2 hourglass levels, widths 16 -> 24 -> 32, 68 outputs as released.
SMALL = dict(num_stacks=2, width=16, increase=8, depth=2, num_outputs=68)


def small_net(seed: int = 0) -> AEHourglassNet:
    torch.manual_seed(seed)
    return randomize(AEHourglassNet(**SMALL), seed)


# ---------------------------------------------------------------- parameter count from the description

def conv(cin: int, cout: int, k: int = 3) -> int:
    return cin * cout * k * k + cout                # every conv in pose-ae-train has a bias


def hourglass(depth: int, width: int, increase: int) -> int:
    """up1 (f->f), low1 (f->f+inc), next level or a bottom conv at f+inc, low3 (f+inc->f); all 3x3."""
    inner = width + increase
    middle = hourglass(depth - 1, inner, increase) if depth > 1 else conv(inner, inner)
    return conv(width, width) + conv(width, inner) + middle + conv(inner, width)


def expected_parameters(stacks: int, width: int, increase: int, depth: int, outputs: int) -> int:
    """Stem 7x7 3->64, 3x3 64->128, 128->128, 128->width. Per stack: hourglass, two 3x3 convs, 1x1 output
    conv. Between stacks: 1x1 convs width->width and outputs->width."""
    stem = conv(3, 64, 7) + conv(64, 128) + conv(128, 128) + conv(128, width)
    stack = hourglass(depth, width, increase) + 2 * conv(width, width) + conv(width, outputs, 1)
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
    assert count(AEHourglassNet(**SMALL)) == expected_parameters(2, 16, 8, 2, 68)


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


def test_pose_ae_checkpoint_loads_and_gives_identical_outputs(tmp_path):
    source = small_net(seed=1)
    path = tmp_path / "checkpoint.pth.tar"
    # train.py's save(): Trainer.state_dict() (model -> DataParallel.module -> PoseNet), optimizer, epoch.
    torch.save({"state_dict": {"model.module." + k: v for k, v in source.state_dict().items()},
                "optimizer": torch.optim.Adam(source.parameters(), 2e-4).state_dict(), "epoch": 7}, path)
    state = strip_pose_ae_prefix(torch.load(path, map_location="cpu", weights_only=True), str(path))
    loaded = AEHourglassNet(**SMALL).eval()
    loaded.load_state_dict(state)                   # strict: every name and shape must match

    images = torch.rand(2, 3, 64, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = loaded(images)
        reference = pose_ae_forward(state, images.permute(0, 2, 3, 1), stacks=2, depth=2)
    assert torch.equal(torch.stack(ours, 1), torch.stack(source(images), 1))
    torch.testing.assert_close(torch.stack(ours, 1), reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("checkpoint, problem", [
    ({"model": {}}, "'state_dict'"),
    ({"state_dict": {}}, "empty"),
    ({"state_dict": {"module.pre.0.conv.weight": torch.zeros(1)}}, "prefix"),
    ({"state_dict": {"model.module.pre.0.conv.weight": [0.0]}}, "not tensors"),
    ([1, 2], "list"),
])
def test_strip_rejects_other_layouts(checkpoint, problem):
    with pytest.raises(CheckpointError, match=problem) as error:
        strip_pose_ae_prefix(checkpoint, "exp/pretrained/checkpoint.pth.tar")
    assert "exp/pretrained/checkpoint.pth.tar" in str(error.value)


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
