from __future__ import annotations


import numpy as np
import pytest
import torch

import higherhrnet
from higherhrnet.losses import AELoss, HeatmapLoss, MultiLoss, scale_regularizer, weight_adaptive_heatmap_loss
from higherhrnet.outputs import OutputSpec

from conftest import tiny_cfg


def loop_ae(tags, joints, loss_type):
    """The AE loss written as plainly as the reference describes it, one image at a time."""
    pushes, pulls = [], []
    for t, js in zip(tags, joints):
        refs, pull = [], 0.0
        for person in js:
            vals = [t[int(i)] for i, ok in person if ok > 0]
            if not vals:
                continue
            vals = torch.stack(vals)
            refs.append(vals.mean())
            pull = pull + ((vals - refs[-1]) ** 2).mean()
        n = len(refs)
        if n == 0:
            pushes.append(torch.tensor(0.0)), pulls.append(torch.tensor(0.0))
            continue
        if n == 1:
            pushes.append(torch.tensor(0.0)), pulls.append(pull / n)
            continue
        r = torch.stack(refs)
        d = r[:, None] - r[None, :]
        terms = torch.exp(-d ** 2) if loss_type == "exp" else torch.clamp(1 - d.abs(), min=0)
        pushes.append((terms.sum() - n) / (n * (n - 1)) * 0.5)
        pulls.append(pull / n)
    return torch.stack(pushes), torch.stack(pulls)


def person_slots(indices, max_people=5, j=4):
    joints = torch.zeros(max_people, j, 2, dtype=torch.int64)
    for p, idx in enumerate(indices):
        for k, i in enumerate(idx):
            joints[p, k] = torch.tensor([i, 1])
    return joints


def test_heatmap_loss_is_masked_mse_per_image():
    pred, gt = torch.rand(2, 3, 4, 5), torch.rand(2, 3, 4, 5)
    mask = torch.ones(2, 4, 5)
    mask[1, :2] = 0
    loss = HeatmapLoss()(pred, gt, mask)
    expected = [((pred[i] - gt[i]) ** 2 * mask[i]).sum() / (3 * 4 * 5) for i in range(2)]
    torch.testing.assert_close(loss, torch.stack(expected))
    assert HeatmapLoss()(pred, gt, torch.zeros(2, 4, 5)).abs().sum() == 0


@pytest.mark.parametrize("loss_type", ["exp", "max"])
def test_ae_loss_matches_plain_loop(loss_type):
    rng = np.random.default_rng(0)
    tags = torch.tensor(rng.normal(0, 1, (3, 64)), dtype=torch.float32, requires_grad=True)
    joints = torch.zeros(3, 6, 4, 2, dtype=torch.int64)
    for n in range(3):
        for p in range(n * 2):                       # 0, 2 and 4 people
            k = rng.integers(1, 5)
            joints[n, p, :k, 0] = torch.tensor(rng.integers(0, 64, k))
            joints[n, p, :k, 1] = 1
    push, pull = AELoss(loss_type)(tags, joints)
    ref_push, ref_pull = loop_ae(tags, joints, loss_type)
    torch.testing.assert_close(push, ref_push)
    torch.testing.assert_close(pull, ref_pull)
    (push.sum() + pull.sum()).backward()
    assert tags.grad is not None and tags.grad.abs().sum() > 0 and torch.isfinite(tags.grad).all()


def test_perfect_tags_far_apart_cost_nothing():
    tags = torch.zeros(1, 40)
    tags[0, :10], tags[0, 10:20], tags[0, 20:30] = 0.0, 10.0, 20.0
    joints = person_slots([[0, 1, 2], [10, 11], [20, 25, 29]])[None]
    push, pull = AELoss("exp")(tags, joints)
    assert pull.item() == 0 and push.item() < 1e-20


@pytest.mark.parametrize("loss_type", ["exp", "max"])
def test_identical_tags_give_maximal_push(loss_type):
    tags = torch.full((1, 20), 3.0)
    joints = person_slots([[0, 1], [5, 6]])[None]
    push, pull = AELoss(loss_type)(tags, joints)
    assert push.item() == pytest.approx(0.5) and pull.item() == 0   # every pair term at its maximum, 1


def test_zero_and_one_person():
    tags = torch.randn(2, 20, requires_grad=True)
    joints = torch.stack([person_slots([]), person_slots([[3, 4, 7]])])
    push, pull = AELoss("exp")(tags, joints)
    assert push.tolist() == [0.0, 0.0] and pull[0].item() == 0
    expected = ((tags[1, [3, 4, 7]] - tags[1, [3, 4, 7]].mean()) ** 2).mean()
    assert pull[1].item() == pytest.approx(expected.item(), rel=1e-6)
    pull.sum().backward()
    assert torch.isfinite(tags.grad).all()


def test_build_loss_per_output_with_factors():
    cfg = tiny_cfg("LOSS.PUSH_LOSS_FACTOR", "[0.5, 0.001]", "LOSS.HEATMAPS_LOSS_FACTOR", "[2.0, 1.0]")
    loss = higherhrnet.build_loss(cfg)
    outputs = [torch.randn(2, 34, 8, 8, requires_grad=True), torch.randn(2, 17, 16, 16, requires_grad=True)]
    heatmaps = [torch.rand(2, 17, 8, 8), torch.rand(2, 17, 16, 16)]
    masks = [torch.ones(2, 8, 8), torch.ones(2, 16, 16)]
    joints = [torch.zeros(2, 30, 17, 2, dtype=torch.int64) for _ in range(2)]
    joints[0][:, 0, 0] = torch.tensor([5, 1])
    joints[0][:, 1, 0] = torch.tensor([17 * 64 + 9, 1])
    terms = loss(outputs, heatmaps, masks, joints)
    # no AE loss on the 1/2 output, no scale maps without MODEL.SWAHR
    assert list(terms) == ["heatmaps_1/4", "push_1/4", "pull_1/4", "heatmaps_1/2"]
    assert terms["heatmaps_1/4"].shape == (2,)
    torch.testing.assert_close(terms["heatmaps_1/4"], 2.0 * HeatmapLoss()(outputs[0][:, :17], heatmaps[0], masks[0]))
    torch.testing.assert_close(terms["heatmaps_1/2"], HeatmapLoss()(outputs[1], heatmaps[1], masks[1]))
    raw_push, _ = AELoss("exp")(outputs[0][:, 17:].reshape(2, -1), joints[0])
    torch.testing.assert_close(terms["push_1/4"], 0.5 * raw_push)
    total = sum(t.mean() for t in terms.values())
    total.backward()
    assert all(torch.isfinite(o.grad).all() for o in outputs)


def test_swahr_output_terms_by_hand():
    # One joint, one tag map, two pixels: [scale | heatmap | tag] = [1, 3 | 0.5, 0.2 | 0.7, -0.4], target
    # [e^-1, 0]. Adapted target at pixel 0: e^-1 (1 - 1 + 1/2) = e^-1 / 2; pixel 1 stays 0. Weights:
    # |1 - P| G + |P| (1 - G) with G = target^0.01: 0.5 at pixel 0 (P = 0.5), |P| = 0.2 at pixel 1 (G = 0).
    # Scale regulariser: s masked to the target's support, [1, 0] -> mean s^2 = 0.5 (factor 1 always).
    spec = OutputSpec(0, 4.0, 0, 1, num_joints=1, tag_channels=1, heatmap_loss_factor=2.0, push_loss_factor=0.1,
                      pull_loss_factor=0.3, test_heatmaps=True, test_tags=True, scale_channels=1)
    output = torch.tensor([1.0, 3.0, 0.5, 0.2, 0.7, -0.4], dtype=torch.float64).reshape(1, 3, 1, 2)
    target = torch.tensor([np.exp(-1.0), 0.0], dtype=torch.float64).reshape(1, 1, 1, 2)
    mask = torch.ones(1, 1, 2, dtype=torch.float64)
    joints = torch.tensor([[[[0, 1]], [[1, 1]]]])                   # two people, one joint each
    terms = MultiLoss([spec])([output], [target], [mask], [joints])
    assert list(terms) == ["heatmaps_1/4", "scale_1/4", "push_1/4", "pull_1/4"]    # SWAHR's trainer's order
    expected_heat = 2.0 * ((0.5 - np.exp(-1.0) / 2) ** 2 * 0.5 + 0.2 ** 2 * 0.2) / 2
    assert terms["heatmaps_1/4"].item() == pytest.approx(expected_heat, rel=1e-12)
    assert terms["scale_1/4"].item() == pytest.approx(0.5, rel=1e-12)
    # 2 ordered pairs / (2 * 1)
    assert terms["push_1/4"].item() == pytest.approx(0.1 * 0.5 * np.exp(-1.1 ** 2), rel=1e-12)
    assert terms["pull_1/4"].item() == 0.0
    # ... and they are the SWAHR terms computed one by one (the reference's arithmetic, to the bit).
    scale = spec.scales(output) * (target > 0).float()
    assert torch.equal(terms["heatmaps_1/4"], weight_adaptive_heatmap_loss(spec.heatmaps(output), target, mask, scale) * 2.0)
    assert torch.equal(terms["scale_1/4"], scale_regularizer(scale, target, mask))


def test_fresh_swahr_model_trains_the_plain_target_with_adaptive_weights():
    # Zero-initialised scale heads: the scale maps are 0, so the target is the plain Gaussian and the
    # regulariser 0; the heatmap loss is the weight-adaptive one, written out here.
    torch.manual_seed(0)
    cfg = tiny_cfg("MODEL.SWAHR", "True", "LOSS.HEATMAPS_LOSS_FACTOR", "[1.0, 3.0]")
    model = higherhrnet.build_model(cfg).train()
    outputs = model(torch.randn(2, 3, 64, 64))
    sizes = [(16, 16), (32, 32)]
    heatmaps = [torch.rand(2, 17, *s) * (torch.rand(2, 17, *s) > 0.7) for s in sizes]
    masks = [(torch.rand(2, *s) > 0.1).float() for s in sizes]
    joints = [torch.zeros(2, 30, 17, 2, dtype=torch.int64) for _ in sizes]
    joints[0][:, 0, 0] = torch.tensor([5, 1])
    joints[0][:, 1, 3] = torch.tensor([3 * 256 + 40, 1])
    terms = higherhrnet.build_loss(cfg)(outputs, heatmaps, masks, joints)
    heat = [terms["heatmaps_1/4"], terms["heatmaps_1/2"]]
    scale = [terms["scale_1/4"], terms["scale_1/2"]]
    for i, factor in enumerate((1.0, 3.0)):
        pred, gt = outputs[i][:, 17:34], heatmaps[i]
        weights = (1 - pred).abs() * gt ** 0.01 + pred.abs() * (1 - gt ** 0.01)
        expected = ((pred - gt) ** 2 * weights * masks[i][:, None]).mean(dim=(1, 2, 3)) * factor
        torch.testing.assert_close(heat[i], expected, rtol=1e-5, atol=1e-12)
        assert torch.equal(scale[i], torch.zeros(2))
    raw_push, raw_pull = AELoss("exp")(outputs[0][:, 34:].reshape(2, -1), joints[0])
    torch.testing.assert_close(terms["push_1/4"], 0.001 * raw_push)
    torch.testing.assert_close(terms["pull_1/4"], 0.001 * raw_pull)
    assert "push_1/2" not in terms and "pull_1/2" not in terms
    # Nothing is detached: the zero scale heads get a gradient through the adapted target.
    sum(h.mean() + s.mean() for h, s in zip(heat, scale)).backward()
    assert all(head[3].weight.grad.abs().sum() > 0 for head in model.conv_scale_layers)
