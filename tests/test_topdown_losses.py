"""The top-down loss (the official JointsMSELoss and JointsOHKMMSELoss) against hand-computed values."""
import pytest
import torch

import higherhrnet
from higherhrnet.losses import TopDownLoss, build_loss, joints_mse_loss
from higherhrnet.models import build_output_specs

from conftest import tiny_pose_hrnet_cfg


def maps(*per_joint_values):
    """(1, J, 2, 2) maps, joint j filled with per_joint_values[j]."""
    return torch.tensor([[[[v, v], [v, v]] for v in per_joint_values]], dtype=torch.float32)


def test_joints_mse_is_half_the_weighted_squared_error_averaged_over_joints():
    pred, gt = maps(0.0, 0.0, 1.0), maps(1.0, 2.0, 0.0)
    # per joint 0.5 * mean((w p - w g)^2): 0.5 * 1, 0.5 * 4, 0.5 * 1
    assert joints_mse_loss(pred, gt).tolist() == pytest.approx([(0.5 + 2.0 + 0.5) / 3])
    weight = torch.tensor([[1.0, 0.5, 0.0]])
    # 0.5 * 1, 0.5 * (0.5 * 2)^2 = 0.5, 0
    assert joints_mse_loss(pred, gt, weight).tolist() == pytest.approx([(0.5 + 0.5 + 0.0) / 3])
    assert joints_mse_loss(pred, gt, weight[..., None]).tolist() == pytest.approx([1.0 / 3])    # (N, J, 1)


def test_ohkm_keeps_the_topk_hardest_joints_of_each_image():
    pred = torch.cat([maps(0.0, 0.0, 0.0), maps(0.0, 0.0, 0.0)])
    gt = torch.cat([maps(1.0, 2.0, 3.0), maps(3.0, 1.0, 0.0)])
    # per-joint losses 0.5, 2, 4.5 and 4.5, 0.5, 0: top 2 -> (2 + 4.5) / 2, (4.5 + 0.5) / 2
    assert joints_mse_loss(pred, gt, topk=2).tolist() == pytest.approx([3.25, 2.5])
    weight = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    assert joints_mse_loss(pred, gt, weight, topk=1).tolist() == pytest.approx([2.0, 4.5])
    with pytest.raises(ValueError, match="TOPK"):
        joints_mse_loss(pred, gt, topk=4)


def test_batch_mean_equals_the_official_per_joint_loop():
    """The official JointsMSELoss: for each joint, 0.5 x MSE over the batch and pixels of the weighted maps,
    summed and divided by J (written out here as a loop, as the official code computes it)."""
    g = torch.Generator().manual_seed(0)
    pred, gt = torch.rand(3, 4, 5, 6, generator=g), torch.rand(3, 4, 5, 6, generator=g)
    weight = (torch.rand(3, 4, 1, generator=g) > 0.3).float()
    official = sum(0.5 * torch.mean((pred[:, j].reshape(3, -1) * weight[:, j] - gt[:, j].reshape(3, -1) * weight[:, j])
                                    ** 2) for j in range(4)) / 4
    assert joints_mse_loss(pred, gt, weight).mean().item() == pytest.approx(official.item(), rel=1e-6)


def test_build_loss_reads_the_loss_keys_and_names_the_term():
    cfg = tiny_pose_hrnet_cfg()
    specs = build_output_specs(cfg)
    loss = build_loss(cfg)
    assert isinstance(loss, TopDownLoss) and loss.use_target_weight and loss.topk == 0
    assert higherhrnet.losses.loss_term_names(specs) == ("heatmaps_1/4",)
    ohkm = build_loss(tiny_pose_hrnet_cfg("LOSS.USE_OHKM", "True", "LOSS.TOPK", "4", "LOSS.USE_TARGET_WEIGHT", "False"))
    assert ohkm.topk == 4 and not ohkm.use_target_weight
    pred = torch.zeros(2, 17, 24, 16)
    gt = torch.zeros(2, 17, 24, 16)
    gt[0, 3] = 1.0
    weights = torch.ones(2, 17, 1)
    weights[0, 3] = 0
    terms = loss([pred], [gt], [weights], [])
    assert list(terms) == ["heatmaps_1/4"] and terms["heatmaps_1/4"].tolist() == [0.0, 0.0]   # weight 0 hides it
    assert ohkm([pred], [gt], [weights], [])["heatmaps_1/4"].tolist() == [pytest.approx(0.5 / 4), 0.0]
