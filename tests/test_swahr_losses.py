"""SWAHR's targets, loss terms, schedule and scale head, checked against hand-computed values and against
facts read from the authors' code (greatlog/SWAHR-HumanPose), written out here independently."""
from __future__ import annotations

import math

import pytest
import torch

from higherhrnet.engine.build import swahr_lr_factor, swahr_step_lr_factor
from higherhrnet.losses import (
    MultiLoss,
    foreground_scale_maps,
    scale_adaptive_heatmaps,
    scale_regularizer,
    weight_adaptive_heatmap_loss,
    weight_adaptive_weights,
)
from higherhrnet.outputs import OutputSpec
from higherhrnet.models.scale_head import ScaleMapHead, make_scale_layers


def gaussian_maps(sigma: float = 2.0, size: int = 15, radius: int = 5) -> torch.Tensor:
    """(1, 1, size, size): a Gaussian at the centre, cut to zero beyond `radius` pixels per axis (a square
    window, as HigherHRNet's targets), so that the map has a peak of 1, a support and a background."""
    r = torch.arange(size, dtype=torch.float32) - size // 2
    d2 = r[None, :] ** 2 + r[:, None] ** 2
    g = torch.exp(-d2 / (2 * sigma ** 2))
    support = (r[None, :].abs() <= radius) & (r[:, None].abs() <= radius)
    return (g * support)[None, None]


def test_zero_scale_gives_back_the_plain_target_exactly():
    gt = gaussian_maps()
    assert torch.equal(scale_adaptive_heatmaps(gt, torch.zeros_like(gt)), gt)


def test_target_is_second_order_taylor_of_the_power():
    # hand: H = e^-1, s = 1 -> H (1 + s ln H + (s ln H)^2 / 2) = e^-1 * 0.5 (the exact power would be e^-2)
    gt = torch.tensor([math.exp(-1.0), 1.0, 0.0], dtype=torch.float64).reshape(1, 1, 1, 3)
    s = torch.tensor([1.0, 5.0, 3.0], dtype=torch.float64).reshape(1, 1, 1, 3)
    out = scale_adaptive_heatmaps(gt, s).flatten().tolist()
    assert out == pytest.approx([0.5 * math.exp(-1.0), 1.0, 0.0], abs=1e-15)
    # small s: close to H^(1 + s), i.e. a Gaussian of sigma / sqrt(1 + s)
    s_small = 0.02
    gt = gaussian_maps(sigma=2.0).double()
    narrowed = scale_adaptive_heatmaps(gt, torch.full_like(gt, s_small))
    inside = gt > math.exp(-3)
    expected = gaussian_maps(sigma=2.0 / math.sqrt(1 + s_small)).double()
    torch.testing.assert_close(narrowed[inside], expected[inside], atol=2e-6, rtol=0)
    assert (narrowed[inside & (gt < 1)] < gt[inside & (gt < 1)]).all()


def test_scale_is_masked_to_the_gaussian_support():
    gt = gaussian_maps()
    s = torch.randn_like(gt)
    kept = foreground_scale_maps(s, gt)
    assert torch.equal(kept[gt > 0], s[gt > 0])
    assert (kept[gt == 0] == 0).all()


def test_weights_match_the_paper_at_hand_points():
    # W = H^g |1 - P| + (1 - H^g) |P|, g = 0.01
    gt = torch.tensor([1.0, 0.0, 0.0, math.exp(-50.0), 1.0], dtype=torch.float64).reshape(1, 1, 1, 5)
    pred = torch.tensor([0.3, 0.2, -0.5, 0.0, 1.4], dtype=torch.float64).reshape(1, 1, 1, 5)
    w = weight_adaptive_weights(pred, gt).flatten().tolist()
    # e^-50 ^ 0.01 = e^-0.5
    assert w == pytest.approx([0.7, 0.2, 0.5, math.exp(-0.5), 0.4], abs=1e-12)


def test_loss_value_by_hand():
    # one image, one joint, 1 x 2 pixels: pixel a gt 1, pred 0.5 -> (0.5)^2 * 0.5 = 0.125;
    # pixel b gt 0, pred 0.2 -> 0.04 * 0.2 = 0.008; mean 0.0665. Masking b out leaves 0.125 / 2.
    pred = torch.tensor([[[[0.5, 0.2]]]])
    gt = torch.tensor([[[[1.0, 0.0]]]])
    ones = torch.ones(1, 1, 2)
    assert weight_adaptive_heatmap_loss(pred, gt, ones).item() == pytest.approx(0.0665, abs=1e-7)
    assert weight_adaptive_heatmap_loss(pred, gt, torch.tensor([[[1.0, 0.0]]])).item() == pytest.approx(0.0625)
    # the scale maps cannot move the peak (gt = 1) nor the background (gt = 0)
    big = torch.full_like(gt, 3.0)
    assert weight_adaptive_heatmap_loss(pred, gt, ones, big).item() == pytest.approx(0.0665, abs=1e-7)


def test_scale_regularizer_by_hand():
    gt = torch.tensor([[[[0.5, 0.0], [1.0, 0.25]]]])
    s = torch.tensor([[[[2.0, 7.0], [-1.0, 0.5]]]])
    mask = torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])
    # support pixels 0.5 (s 2) and 1.0 (s -1) count; 0.25 is masked out; background (s 7) is dropped
    assert scale_regularizer(s, gt, mask).item() == pytest.approx((4 + 1) / 4)


def test_gradients_flow_through_the_target_and_the_weights():
    torch.manual_seed(0)
    gt = gaussian_maps(size=9, radius=3).repeat(2, 3, 1, 1)
    pred = torch.rand_like(gt, requires_grad=True)
    s = (0.3 * torch.randn_like(gt)).requires_grad_()
    mask = torch.ones(2, 9, 9)
    weight_adaptive_heatmap_loss(pred, gt, mask, s).sum().backward()
    # the scale maps learn through the target, only where the Gaussian is strictly between 0 and 1
    assert (s.grad[gt == 0] == 0).all() and (s.grad[gt == 1] == 0).all()
    assert (s.grad[(gt > 0) & (gt < 1)].abs() > 0).all()
    # the weights are not detached: d/dP of (P - T)^2 W = 2 (P - T) W + (P - T)^2 dW/dP
    with torch.no_grad():
        p, g = pred, gt ** 0.01
        t = scale_adaptive_heatmaps(gt, s)
        w = (1 - p).abs() * g + p.abs() * (1 - g)
        dw = -torch.sign(1 - p) * g + torch.sign(p) * (1 - g)
        expected = (2 * (p - t) * w + (p - t) ** 2 * dw) / (3 * 9 * 9)
    torch.testing.assert_close(pred.grad, expected)


def test_output_losses_split_and_sum_like_the_reference():
    torch.manual_seed(1)
    j, tags_dim = 3, 3
    gt = gaussian_maps(size=9, radius=3).repeat(2, j, 1, 1)
    output = torch.randn(2, 2 * j + tags_dim, 9, 9)
    mask = torch.ones(2, 9, 9)
    # [scale maps J | heatmaps J | tags J], as SWAHR's code lays out an output (OutputSpec reads it)
    spec = OutputSpec(0, 4.0, 0, 9, num_joints=j, tag_channels=tags_dim, heatmap_loss_factor=2.0, push_loss_factor=0.0,
                      pull_loss_factor=0.0, test_heatmaps=True, test_tags=True, scale_channels=j)
    joints = torch.zeros(2, 1, j, 2, dtype=torch.int64)
    terms = MultiLoss([spec])([output], [gt], [mask], [joints])
    assert list(terms) == ["heatmaps_1/4", "scale_1/4", "push_1/4", "pull_1/4"]
    heat, reg = terms["heatmaps_1/4"], terms["scale_1/4"]
    assert heat.shape == reg.shape == (2,)
    s = output[:, :j] * (gt > 0).float()
    torch.testing.assert_close(heat, 2.0 * weight_adaptive_heatmap_loss(output[:, j:2 * j], gt, mask, s))
    torch.testing.assert_close(reg, (s ** 2).mean(dim=(1, 2, 3)))
    with pytest.raises(ValueError, match=r"output 0 must be \(N, 9, H, W\) \(3 scale maps"):   # no scale maps
        MultiLoss([spec])([output[:, j:]], [gt], [mask], [joints])


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="mask"):
        weight_adaptive_heatmap_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), torch.ones(1, 4, 5))
    with pytest.raises(ValueError, match="same shape"):
        scale_adaptive_heatmaps(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, 4))


def test_lr_schedule_at_hand_points():
    f = lambda it: swahr_lr_factor(it, 10, 3, 300)  # noqa: E731  warm-up 30 iterations, 2970 after it
    assert f(0) == pytest.approx(0.1)
    assert f(15) == pytest.approx(0.55)
    assert f(30) == pytest.approx(1.0)
    assert f(30 + 1485) == pytest.approx(0.5)
    assert f(2999) == pytest.approx(1 / 2970)
    # the reference sets the rate after each step: step 0 runs at the full rate, step 1 at 0.1
    assert swahr_step_lr_factor(0, 10, 3, 300) == 1.0
    assert swahr_step_lr_factor(1, 10, 3, 300) == pytest.approx(0.1)
    assert swahr_lr_factor(0, 10, 0, 300) == 1.0  # no warm-up
    with pytest.raises(ValueError, match="WARM_UP_EPOCH"):
        swahr_lr_factor(0, 10, 300, 300)


def test_head_parameter_names_and_shapes_for_w32():
    # from the reference's _make_conv_scale_layers with NUM_JOINTS 17 and STAGE4 / DECONV width 32
    expected = {
        "0.weight": (17, 32, 1, 1), "0.bias": (17,),
        "1.weight": (17,), "1.bias": (17,), "1.running_mean": (17,), "1.running_var": (17,),
        "1.num_batches_tracked": (),
        "3.weight": (17, 1, 9, 9), "3.bias": (17,),
    }
    head = ScaleMapHead(32, 17)
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == expected
    layers = make_scale_layers([32, 32], 17)
    assert set(layers.state_dict()) == {f"{i}.{k}" for i in range(2) for k in expected}
    # 561 + 34 + 1394 parameters per head
    assert sum(p.numel() for p in head.parameters()) == 17 * 32 + 17 + 2 * 17 + 17 * 81 + 17


def test_fresh_head_outputs_zero_and_loads_reference_keys():
    torch.manual_seed(2)
    head = ScaleMapHead(8, 5)
    head.train()
    out = head(torch.randn(2, 8, 12, 16))
    assert out.shape == (2, 5, 12, 16) and (out == 0).all()
    assert head[0].weight.abs().max() > 0  # only the last conv is zeroed
    # a state_dict keyed as the reference's `conv_scale_layers.<i>.*` loads strictly under that name
    parent = torch.nn.Module()
    parent.conv_scale_layers = make_scale_layers([8, 4], 5)
    state = {f"conv_scale_layers.{i}.{k}": torch.randn(v.shape) if v.dim() else v
             for i, c in enumerate([8, 4]) for k, v in ScaleMapHead(c, 5).state_dict().items()}
    parent.load_state_dict(state, strict=True)
    with pytest.raises(ValueError, match="odd"):
        ScaleMapHead(8, 5, kernel_size=8)
