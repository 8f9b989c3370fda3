"""Losses: masked heatmap MSE and the associative-embedding (push / pull) loss, per output."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..config import CfgNode
from ..models.build import output_targets

__all__ = ["HeatmapLoss", "AELoss", "MultiLoss", "build_loss"]


class HeatmapLoss(nn.Module):
    """pred, gt (N, J, H, W), mask (N, H, W) (1 = use) -> (N,): mean over J, H, W of (pred - gt)^2 * mask."""

    def forward(self, pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if pred.shape != gt.shape:
            raise ValueError(f"heatmap prediction {tuple(pred.shape)} and target {tuple(gt.shape)} differ")
        return (((pred - gt) ** 2) * mask[:, None]).mean(dim=(1, 2, 3))


class AELoss(nn.Module):
    """Associative embedding (Newell et al. 2017) with one scalar tag per pixel.

    tags (N, K): every tag map of an image flattened (K = J*H*W with a map per joint, H*W with one).
    joints (N, M, J, 2): (flat index, valid) per person slot, as from codec.targets.joint_indices.
    Per image, over the P people with at least one valid joint: reference tag = mean of the person's tags;
    pull = mean over people of the mean squared deviation from it; push = sum over ordered pairs of
    people a != b of exp(-(ref_a - ref_b)^2) ('exp') or max(0, 1 - |ref_a - ref_b|) ('max'), divided by
    P (P - 1), times 0.5. No one: both 0; one person: push 0. Returns push (N,), pull (N,).
    """

    def __init__(self, loss_type: str = "exp"):
        super().__init__()
        if loss_type not in ("exp", "max"):
            raise ValueError(f"AE loss type must be 'exp' or 'max', got {loss_type!r}")
        self.loss_type = loss_type

    def forward(self, tags: torch.Tensor, joints: torch.Tensor):
        n, m, j, _ = joints.shape
        index = joints[..., 0].long().clamp(min=0, max=tags.shape[1] - 1)
        valid = (joints[..., 1] > 0).to(tags.dtype)                                  # (N, M, J)
        values = torch.gather(tags, 1, index.reshape(n, m * j)).reshape(n, m, j)
        count = valid.sum(dim=2)                                                      # (N, M)
        present = (count > 0).to(tags.dtype)
        ref = (values * valid).sum(dim=2) / count.clamp(min=1)                         # (N, M)
        pull_person = (((values - ref[..., None]) ** 2) * valid).sum(dim=2) / count.clamp(min=1)
        people = present.sum(dim=1)                                                   # (N,)
        pull = (pull_person * present).sum(dim=1) / people.clamp(min=1)

        diff = ref[:, :, None] - ref[:, None, :]
        pair = present[:, :, None] * present[:, None, :]
        if self.loss_type == "exp":
            terms = torch.exp(-diff ** 2)
        else:
            terms = torch.clamp(1 - diff.abs(), min=0)
        off_diagonal = (terms * pair).sum(dim=(1, 2)) - people
        push = torch.where(people > 1, off_diagonal / (people * (people - 1)).clamp(min=1) * 0.5,
                           torch.zeros_like(people))
        return push, pull


class MultiLoss(nn.Module):
    """One heatmap loss and one AE loss per network output, each optional, with its factor.

    forward(outputs, heatmaps, masks, joints): outputs has one entry per network output; heatmaps, masks
    and joints one per target resolution (the dataset's lists). targets[i] names the target resolution
    that trains output i (default: output i <-> target i; every hourglass stack uses target 0).
    Returns (heatmap_losses, push_losses, pull_losses): lists of per-image (N,) tensors, one per output,
    None where off.
    """

    def __init__(self, num_joints: int, with_heatmaps: Sequence[bool], heatmap_factors: Sequence[float],
                 with_ae: Sequence[bool], push_factors: Sequence[float], pull_factors: Sequence[float],
                 ae_type: str = "exp", targets: Sequence[int] | None = None):
        super().__init__()
        self.num_joints = num_joints
        self.with_heatmaps, self.with_ae = list(with_heatmaps), list(with_ae)
        self.heatmap_factors = list(heatmap_factors)
        self.push_factors, self.pull_factors = list(push_factors), list(pull_factors)
        self.targets = list(range(len(self.with_heatmaps)) if targets is None else targets)
        if not (len(self.targets) == len(self.with_ae) == len(self.heatmap_factors) == len(self.push_factors)
                == len(self.pull_factors) == len(self.with_heatmaps)):
            raise ValueError("with_heatmaps, heatmap_factors, with_ae, push_factors, pull_factors and targets need "
                             "one entry per network output")
        self.heatmap_loss = HeatmapLoss()
        self.ae_loss = AELoss(ae_type)

    def forward(self, outputs, heatmaps, masks, joints):
        num_targets = max(self.targets) + 1
        if not (len(outputs) == len(self.with_heatmaps) and len(heatmaps) == len(masks) == len(joints) == num_targets):
            raise ValueError(f"expected {len(self.with_heatmaps)} outputs and targets at {num_targets} resolutions, "
                             f"got {len(outputs)} outputs, {len(heatmaps)} heatmaps, {len(masks)} masks, "
                             f"{len(joints)} joints")
        heatmap_losses, push_losses, pull_losses = [], [], []
        for i, output in enumerate(outputs):
            t = self.targets[i]
            offset = 0
            if self.with_heatmaps[i]:
                offset = self.num_joints
                loss = self.heatmap_loss(output[:, :self.num_joints], heatmaps[t], masks[t])
                heatmap_losses.append(loss * self.heatmap_factors[i])
            else:
                heatmap_losses.append(None)
            if self.with_ae[i]:
                tags = output[:, offset:].reshape(output.shape[0], -1)
                push, pull = self.ae_loss(tags, joints[t])
                push_losses.append(push * self.push_factors[i])
                pull_losses.append(pull * self.pull_factors[i])
            else:
                push_losses.append(None)
                pull_losses.append(None)
        return heatmap_losses, push_losses, pull_losses


def build_loss(cfg: CfgNode) -> MultiLoss:
    """The reference's MultiLossFactory, from LOSS.*, with outputs mapped to the dataset's targets."""
    loss = cfg.LOSS
    return MultiLoss(cfg.MODEL.NUM_JOINTS, loss.WITH_HEATMAPS_LOSS, loss.HEATMAPS_LOSS_FACTOR, loss.WITH_AE_LOSS,
                     loss.PUSH_LOSS_FACTOR, loss.PULL_LOSS_FACTOR, loss.AE_LOSS_TYPE, targets=output_targets(cfg))
