"""Training losses, per network output as its OutputSpec says, returned as named terms.

HigherHRNet / Associative Embedding: the masked heatmap MSE (`HeatmapLoss`) and the push / pull tag loss
(`AELoss`). SWAHR (Luo et al., CVPR 2021), for outputs with scale maps: the weight-adaptive heatmap loss
(`weight_adaptive_heatmap_loss`) on scale-adaptive targets (`scale_adaptive_heatmaps`) and the scale
regulariser (`scale_regularizer`), computed as the authors' code (greatlog/SWAHR-HumanPose) computes them.

Shapes: N images, J joints, H x W pixels of one network output; every map is in that output's pixel frame.
`MultiLoss` returns one (N,) tensor per term, named "<term>_<output label>" (outputs.output_labels):
"heatmaps_1/4", "scale_1/4", "push_1/4", "pull_1/4", "heatmaps_1/2", ... in that order (SWAHR's trainer
sums heatmap, scale, push, pull per output, and so does the training loop). `loss_term_names` lists them.

SWAHR's arithmetic follows the reference operation by operation (same products in the same order, and the
reference's chained means over W, H, J instead of one mean over all three), so equal float32 inputs give
equal losses to the last bit on the same device. Nothing is detached: the scale maps learn through the
target they reshape, and the weights pass gradient to the prediction. See docs/swahr.md.

Top-down networks (pose_hrnet, stacked_hourglass): `TopDownLoss`, the official JointsMSELoss (with target
weights) or its online hard keypoint mining variant (`joints_mse_loss`), one "heatmaps_<label>" term per output,
the same interface; a stacked hourglass's terms (one per stack) sum to bearpaw/pytorch-pose's training loss.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from yacs.config import CfgNode

from .models.registry import build_output_specs, model_entry
from .outputs import OutputSpec, output_labels, target_sizes

__all__ = ["HeatmapLoss", "AELoss", "MultiLoss", "TopDownLoss", "joints_mse_loss", "build_loss", "loss_term_names", "SWAHR_GAMMA",
           "foreground_scale_maps", "scale_adaptive_heatmaps", "weight_adaptive_weights",
           "weight_adaptive_heatmap_loss", "scale_regularizer"]

# The exponent of the ground truth in SWAHR's weights (hard-coded in the reference's loss).
SWAHR_GAMMA = 0.01


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


# ---------------------------------------------------------------- SWAHR's terms
#
# `s` is the raw scale map: s = 0 leaves the Gaussian target unchanged, s > 0 narrows it, s < 0 widens it
# (effective sigma = sigma / sqrt(1 + s), to second order).

def _check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} {tuple(a.shape)} and {name_b} {tuple(b.shape)} must have the same shape")


def _check_maps(name: str, maps: torch.Tensor) -> None:
    if maps.dim() != 4:
        raise ValueError(f"{name} must be (N, J, H, W), got shape {tuple(maps.shape)}")


def _check_mask(mask: torch.Tensor, maps: torch.Tensor) -> None:
    n, _, h, w = maps.shape
    if tuple(mask.shape) != (n, h, w):
        raise ValueError(f"mask must be (N, H, W) = {(n, h, w)} for maps {tuple(maps.shape)}, got {tuple(mask.shape)}")


def _mean_per_image(per_pixel: torch.Tensor) -> torch.Tensor:
    """(N, J, H, W) -> (N,): the reference's chained means (W, then H, then J)."""
    return per_pixel.mean(dim=3).mean(dim=2).mean(dim=1)


def foreground_scale_maps(scale_maps: torch.Tensor, base_heatmaps: torch.Tensor) -> torch.Tensor:
    """(N, J, H, W) scale maps kept where the plain Gaussian target is > 0 and set to 0 elsewhere.

    The reference masks the predicted scale maps this way before both the target and the regulariser, so
    background pixels neither reshape anything nor get a gradient.
    """
    _check_maps("scale maps", scale_maps)
    _check_same_shape("scale maps", scale_maps, "heatmap targets", base_heatmaps)
    return scale_maps * (base_heatmaps > 0).float()


def scale_adaptive_heatmaps(base_heatmaps: torch.Tensor, scale_maps: torch.Tensor) -> torch.Tensor:
    """The scale-adapted target (N, J, H, W): the second-order Taylor expansion of H^(1 + s) around s = 0,

        H + H ln(H) s + 0.5 H ln(H)^2 s^2       (ln(H) taken as 0 where H = 0),

    with H the plain Gaussian target (values in [0, 1]) and s the scale maps, masked to H > 0 here as the
    reference does. Exactly H where s = 0; the peak (H = 1) never moves; never negative (1 + u + u^2/2 > 0).
    No clamping and no detach: the gradient reaches s.
    """
    _check_maps("heatmap targets", base_heatmaps)
    scale = foreground_scale_maps(scale_maps, base_heatmaps)
    gt = base_heatmaps
    log_gt = torch.log(torch.where(torch.gt(gt, 0), gt, gt + 1))
    return gt + gt * log_gt * scale + 0.5 * gt * log_gt ** 2 * scale ** 2


def weight_adaptive_weights(pred: torch.Tensor, gt: torch.Tensor, gamma: float = SWAHR_GAMMA) -> torch.Tensor:
    """(N, J, H, W) per-pixel weights |1 - P| G + |P| (1 - G) with G = gt^gamma (gt: the PLAIN Gaussian
    target, as in the reference, not the scale-adapted one). Keypoint-like pixels (G near 1) weigh by how
    far P is below 1, background (G = 0) by |P|. Not detached from P."""
    _check_same_shape("heatmap prediction", pred, "heatmap targets", gt)
    return torch.abs(1 - pred) * gt ** gamma + torch.abs(pred) * (1 - gt ** gamma)


def weight_adaptive_heatmap_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor,
                                 scale_maps: torch.Tensor | None = None, gamma: float = SWAHR_GAMMA) -> torch.Tensor:
    """(N,) per image: mean over J, H, W of (P - T)^2 W mask, where T is the scale-adapted target
    (`scale_adaptive_heatmaps(gt, scale_maps)`; gt itself when scale_maps is None) and W the
    weight-adaptive weights of the plain gt.

    pred, gt, scale_maps (N, J, H, W); mask (N, H, W), 1 = use the pixel. No 1/2 factor and no
    HEATMAPS_LOSS_FACTOR here (the reference multiplies by it afterwards).
    """
    _check_maps("heatmap prediction", pred)
    _check_same_shape("heatmap prediction", pred, "heatmap targets", gt)
    _check_mask(mask, pred)
    target = gt if scale_maps is None else scale_adaptive_heatmaps(gt, scale_maps)
    weights = weight_adaptive_weights(pred, gt, gamma)
    return _mean_per_image((pred - target) ** 2 * weights * mask[:, None].expand_as(gt))


def scale_regularizer(scale_maps: torch.Tensor, base_heatmaps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,) per image: mean over J, H, W of s^2 mask, s masked to the Gaussian's support (H > 0).

    The mean runs over every pixel, background included, so it scales with the support's share of the map.
    The reference adds it to the total loss with factor 1 (HEATMAPS_LOSS_FACTOR does not apply).
    """
    scale = foreground_scale_maps(scale_maps, base_heatmaps)
    _check_mask(mask, scale)
    return _mean_per_image(scale ** 2 * mask[:, None, :, :].expand_as(scale))


# ---------------------------------------------------------------- all outputs

def loss_term_names(outputs: Sequence[OutputSpec]) -> tuple[str, ...]:
    """The names of the terms MultiLoss(outputs) returns, in its (and the sum's) order."""
    names = []
    for spec, label in zip(outputs, output_labels(outputs)):
        if spec.train_heatmaps:
            names.append(f"heatmaps_{label}")
            if spec.has_scales:
                names.append(f"scale_{label}")
        if spec.has_tags:
            names += [f"push_{label}", f"pull_{label}"]
    return tuple(names)


class MultiLoss(nn.Module):
    """One heatmap loss and one AE loss per network output, as its OutputSpec says (each optional, with its
    factor).

    An output with scale maps (SWAHR) and a heatmap loss is trained as SWAHR's code trains it: the
    weight-adaptive loss against the scale-adapted target, times HEATMAPS_LOSS_FACTOR, and the scale
    regulariser (factor 1); the AE loss reads its tags as usual.

    forward(outputs, heatmaps, masks, joints): outputs has one entry per network output (N, C, H, W); heatmaps
    (N, J, H, W), masks (N, H, W) and joints (N, M, J, 2) one per target resolution (the dataset's lists, by
    OutputSpec.target_index). Returns {term name: per-image loss (N,)}, factors applied, named and ordered as
    `loss_term_names(outputs)`.
    """

    def __init__(self, outputs: Sequence[OutputSpec], ae_type: str = "exp"):
        super().__init__()
        self.outputs = tuple(outputs)
        self.labels = output_labels(self.outputs)
        self.num_targets = len(target_sizes(self.outputs))
        self.heatmap_loss = HeatmapLoss()
        self.ae_loss = AELoss(ae_type)

    def forward(self, outputs, heatmaps, masks, joints) -> dict[str, torch.Tensor]:
        if not (len(outputs) == len(self.outputs) and len(heatmaps) == len(masks) == len(joints) == self.num_targets):
            raise ValueError(f"expected {len(self.outputs)} outputs and targets at {self.num_targets} resolutions, "
                             f"got {len(outputs)} outputs, {len(heatmaps)} heatmaps, {len(masks)} masks, "
                             f"{len(joints)} joints")
        terms = {}
        for spec, label, output in zip(self.outputs, self.labels, outputs):
            if output.dim() != 4 or output.shape[1] != spec.channels:
                raise ValueError(f"network output {spec.index} must be (N, {spec.channels}, H, W) ({spec.scale_channels} "
                                 f"scale maps, {spec.num_joints} heatmaps, {spec.tag_channels} tag maps, "
                                 f"{spec.unused_channels} unused), got shape {tuple(output.shape)}")
            t = spec.target_index
            if spec.train_heatmaps and spec.has_scales:
                pred = spec.heatmaps(output)
                _check_same_shape("heatmap prediction", pred, "heatmap targets", heatmaps[t])
                scale = foreground_scale_maps(spec.scales(output), heatmaps[t])
                scale_loss = scale_regularizer(scale, heatmaps[t], masks[t])
                terms[f"heatmaps_{label}"] = weight_adaptive_heatmap_loss(pred, heatmaps[t], masks[t], scale) \
                    * spec.heatmap_loss_factor
                terms[f"scale_{label}"] = scale_loss
            elif spec.train_heatmaps:
                loss = self.heatmap_loss(spec.heatmaps(output), heatmaps[t], masks[t])
                terms[f"heatmaps_{label}"] = loss * spec.heatmap_loss_factor
            if spec.has_tags:
                tags = spec.tags(output).reshape(output.shape[0], -1)
                push, pull = self.ae_loss(tags, joints[t])
                terms[f"push_{label}"] = push * spec.push_loss_factor
                terms[f"pull_{label}"] = pull * spec.pull_loss_factor
        return terms


# ---------------------------------------------------------------- top-down

def joints_mse_loss(pred: torch.Tensor, gt: torch.Tensor, target_weight: torch.Tensor | None = None,
                    topk: int = 0) -> torch.Tensor:
    """(N,) per image: the official JointsMSELoss, 0.5 x the mean over pixels of (w pred - w gt)^2 per joint
    (w: the joint's target weight, or 1 when target_weight is None), averaged over the J joints; with topk > 0
    the official JointsOHKMMSELoss: the sum of the topk largest per-joint losses divided by topk. The mean over
    the batch is the official loss.

    pred, gt (N, J, H, W); target_weight (N, J) or (N, J, 1).
    """
    _check_maps("heatmap prediction", pred)
    _check_same_shape("heatmap prediction", pred, "heatmap targets", gt)
    n, j = pred.shape[:2]
    pred, gt = pred.reshape(n, j, -1), gt.reshape(n, j, -1)
    if target_weight is not None:
        weight = target_weight.reshape(n, j, 1).to(pred.dtype)
        pred, gt = pred * weight, gt * weight
    per_joint = 0.5 * ((pred - gt) ** 2).mean(dim=2)                 # (N, J)
    if topk > 0:
        if topk > j:
            raise ValueError(f"LOSS.TOPK ({topk}) must be at most the number of joints ({j})")
        return per_joint.topk(topk, dim=1).values.sum(dim=1) / topk
    return per_joint.mean(dim=1)


class TopDownLoss(nn.Module):
    """A top-down network's loss: `joints_mse_loss` of each output's heatmaps against its target (the
    official JointsMSELoss; OHKM with topk > 0), target weights applied when use_target_weight.

    Every output the specs describe gets its term, against the target its OutputSpec.target_index names: the
    stacks of a stacked hourglass all against the one target, so that the sum of the terms' batch means (the
    training loop's loss) is bearpaw/pytorch-pose's, which adds JointsMSELoss over the stacks' outputs.

    forward(outputs, heatmaps, target_weights, joints): the training loop's call, as MultiLoss's; outputs one
    (N, J, h, w) per network output; heatmaps (N, J, h, w) and target_weights (N, J, 1) one per target
    resolution (TopDownTrainingDataset's lists); joints is unused (no tags). Returns {"heatmaps_<label>": (N,)}
    per trained output, in their order, factors applied.
    """

    def __init__(self, outputs: Sequence[OutputSpec], use_target_weight: bool = True, topk: int = 0):
        super().__init__()
        self.outputs = tuple(outputs)
        self.labels = output_labels(self.outputs)
        self.use_target_weight, self.topk = use_target_weight, topk

    def forward(self, outputs, heatmaps, target_weights, joints=()) -> dict[str, torch.Tensor]:
        if len(outputs) != len(self.outputs):
            raise ValueError(f"expected {len(self.outputs)} outputs, got {len(outputs)}")
        terms = {}
        for spec, label, output in zip(self.outputs, self.labels, outputs):
            if not spec.train_heatmaps:
                continue
            t = spec.target_index
            weight = target_weights[t] if self.use_target_weight else None
            terms[f"heatmaps_{label}"] = joints_mse_loss(spec.heatmaps(output), heatmaps[t], weight, self.topk) \
                * spec.heatmap_loss_factor
        return terms


def build_loss(cfg: CfgNode, outputs: Sequence[OutputSpec] | None = None) -> nn.Module:
    """The losses the output specs ask for (default: the config's, models.build_output_specs(cfg)).
    Bottom-up networks: the reference's MultiLossFactory with LOSS.AE_LOSS_TYPE. Top-down networks (the
    registry's top_down): TopDownLoss with LOSS.USE_TARGET_WEIGHT, and LOSS.TOPK when LOSS.USE_OHKM."""
    outputs = build_output_specs(cfg) if outputs is None else outputs
    if model_entry(cfg.MODEL.NAME).top_down:
        return TopDownLoss(outputs, cfg.LOSS.USE_TARGET_WEIGHT, cfg.LOSS.TOPK if cfg.LOSS.USE_OHKM else 0)
    return MultiLoss(outputs, cfg.LOSS.AE_LOSS_TYPE)
