"""Losses: masked heatmap MSE and the associative-embedding (push / pull) loss, per output; for outputs with
SWAHR's scale maps, its weight-adaptive heatmap loss on scale-adaptive targets and its scale regulariser."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..codec.scale_adaptive import swahr_output_losses
from ..config import CfgNode
from ..outputs import OutputSpec, build_output_specs, target_sizes

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
    """One heatmap loss and one AE loss per network output, as its OutputSpec says (each optional, with its
    factor).

    An output with scale maps (SWAHR) and a heatmap loss is trained as SWAHR's code trains it
    (codec.scale_adaptive.swahr_output_losses): the weight-adaptive loss against the scale-adapted target,
    times HEATMAPS_LOSS_FACTOR, and the scale regulariser (factor 1); the AE loss reads its tags as usual.

    forward(outputs, heatmaps, masks, joints): outputs has one entry per network output; heatmaps, masks
    and joints one per target resolution (the dataset's lists, by OutputSpec.target_index).
    Returns (heatmap_losses, push_losses, pull_losses, scale_losses): lists of per-image (N,) tensors, one
    per output, None where off (scale: outputs without scale maps or without a heatmap loss).
    """

    def __init__(self, outputs: Sequence[OutputSpec], ae_type: str = "exp"):
        super().__init__()
        self.outputs = tuple(outputs)
        self.num_targets = len(target_sizes(self.outputs))
        self.heatmap_loss = HeatmapLoss()
        self.ae_loss = AELoss(ae_type)

    def forward(self, outputs, heatmaps, masks, joints):
        if not (len(outputs) == len(self.outputs) and len(heatmaps) == len(masks) == len(joints) == self.num_targets):
            raise ValueError(f"expected {len(self.outputs)} outputs and targets at {self.num_targets} resolutions, "
                             f"got {len(outputs)} outputs, {len(heatmaps)} heatmaps, {len(masks)} masks, "
                             f"{len(joints)} joints")
        heatmap_losses, push_losses, pull_losses, scale_losses = [], [], [], []
        for spec, output in zip(self.outputs, outputs):
            t = spec.target_index
            scale_loss = None
            if spec.train_heatmaps and spec.has_scales:
                loss, scale_loss, _ = swahr_output_losses(output, heatmaps[t], masks[t], spec.num_joints,
                                                          spec.heatmap_loss_factor)
                heatmap_losses.append(loss)
            elif spec.train_heatmaps:
                loss = self.heatmap_loss(spec.heatmaps(output), heatmaps[t], masks[t])
                heatmap_losses.append(loss * spec.heatmap_loss_factor)
            else:
                heatmap_losses.append(None)
            scale_losses.append(scale_loss)
            if spec.has_tags:
                tags = spec.tags(output).reshape(output.shape[0], -1)
                push, pull = self.ae_loss(tags, joints[t])
                push_losses.append(push * spec.push_loss_factor)
                pull_losses.append(pull * spec.pull_loss_factor)
            else:
                push_losses.append(None)
                pull_losses.append(None)
        return heatmap_losses, push_losses, pull_losses, scale_losses


def build_loss(cfg: CfgNode, outputs: Sequence[OutputSpec] | None = None) -> MultiLoss:
    """The reference's MultiLossFactory: the losses the output specs ask for (default:
    build_output_specs(cfg)), with LOSS.AE_LOSS_TYPE."""
    return MultiLoss(build_output_specs(cfg) if outputs is None else outputs, cfg.LOSS.AE_LOSS_TYPE)
