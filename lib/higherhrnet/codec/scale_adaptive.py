"""SWAHR (Luo et al., CVPR 2021): scale-adaptive targets, the weight-adaptive heatmap loss, the scale
regulariser and the learning-rate schedule, as the authors' code (greatlog/SWAHR-HumanPose) computes them.

Shapes: N images, J joints, H x W pixels of one network output. Every map is in that output's pixel frame.
A SWAHR network output carries [scale maps J | heatmaps J | tags T] along the channels (T = 0 where the
output has no tags). `s` below is the raw scale map: s = 0 leaves the Gaussian target unchanged, s > 0
narrows it, s < 0 widens it (effective sigma = sigma / sqrt(1 + s), to second order).

The arithmetic follows the reference operation by operation (same products in the same order, and the
reference's chained means over W, H, J instead of one mean over all three), so equal float32 inputs give
equal losses to the last bit on the same device. Nothing is detached: the scale maps learn through the
target they reshape, and the weights pass gradient to the prediction. See docs/swahr.md.
"""
from __future__ import annotations

import torch

__all__ = ["GAMMA", "split_swahr_output", "foreground_scale_maps", "scale_adaptive_heatmaps",
           "weight_adaptive_weights", "weight_adaptive_heatmap_loss", "scale_regularizer", "swahr_output_losses",
           "swahr_lr_factor", "swahr_step_lr_factor"]

# The exponent of the ground truth in the weights (hard-coded in the reference's loss).
GAMMA = 0.01


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


def split_swahr_output(output: torch.Tensor, num_joints: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One raw SWAHR output (N, 2J + T, H, W) -> scale maps (N, J, H, W), heatmaps (N, J, H, W),
    tags (N, T, H, W) (T = 0 where the output has none). Views, no copies."""
    if output.dim() != 4 or output.shape[1] < 2 * num_joints:
        raise ValueError(f"a SWAHR output needs (N, >= 2J = {2 * num_joints}, H, W) channels "
                         f"[scale maps | heatmaps | tags], got shape {tuple(output.shape)}")
    return output[:, :num_joints], output[:, num_joints:2 * num_joints], output[:, 2 * num_joints:]


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


def weight_adaptive_weights(pred: torch.Tensor, gt: torch.Tensor, gamma: float = GAMMA) -> torch.Tensor:
    """(N, J, H, W) per-pixel weights |1 - P| G + |P| (1 - G) with G = gt^gamma (gt: the PLAIN Gaussian
    target, as in the reference, not the scale-adapted one). Keypoint-like pixels (G near 1) weigh by how
    far P is below 1, background (G = 0) by |P|. Not detached from P."""
    _check_same_shape("heatmap prediction", pred, "heatmap targets", gt)
    return torch.abs(1 - pred) * gt ** gamma + torch.abs(pred) * (1 - gt ** gamma)


def weight_adaptive_heatmap_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor,
                                 scale_maps: torch.Tensor | None = None, gamma: float = GAMMA) -> torch.Tensor:
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


def swahr_output_losses(output: torch.Tensor, base_heatmaps: torch.Tensor, mask: torch.Tensor, num_joints: int,
                        heatmap_factor: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The reference's per-output loss for an output trained with heatmaps.

    output (N, 2J + T, H, W) raw; base_heatmaps (N, J, H, W) plain Gaussian targets; mask (N, H, W).
    Returns heatmap loss (N,) (already times heatmap_factor), scale regulariser (N,), and the tag maps
    (N, T, H, W) for the associative-embedding loss (unchanged from HigherHRNet).
    """
    scale_maps, heatmaps, tags = split_swahr_output(output, num_joints)
    _check_same_shape("heatmap prediction", heatmaps, "heatmap targets", base_heatmaps)
    scale = foreground_scale_maps(scale_maps, base_heatmaps)
    scale_loss = scale_regularizer(scale, base_heatmaps, mask)
    heatmap_loss = weight_adaptive_heatmap_loss(heatmaps, base_heatmaps, mask, scale) * heatmap_factor
    return heatmap_loss, scale_loss, tags


def _check_schedule(iters_per_epoch: int, warm_up_epochs: int, end_epoch: int) -> None:
    if iters_per_epoch <= 0:
        raise ValueError(f"iters_per_epoch must be positive, got {iters_per_epoch}")
    if not 0 <= warm_up_epochs < end_epoch:
        raise ValueError(f"need 0 <= TRAIN.WARM_UP_EPOCH ({warm_up_epochs}) < TRAIN.END_EPOCH ({end_epoch})")


def swahr_lr_factor(iteration: int, iters_per_epoch: int, warm_up_epochs: int, end_epoch: int) -> float:
    """The factor of the initial learning rate (TRAIN.LR x WORLD_SIZE) that the reference SETS after
    optimizer step `iteration` (0-based, counted over all epochs):

        warm-up (iteration < W = warm_up_epochs x iters_per_epoch): 0.1 + 0.9 iteration / W
        then: 1 - (iteration - W) / ((end_epoch - warm_up_epochs) x iters_per_epoch), linearly to 0.

    The step that follows uses it; see `swahr_step_lr_factor` for the factor a step actually uses.
    """
    _check_schedule(iters_per_epoch, warm_up_epochs, end_epoch)
    warm_up_iters = warm_up_epochs * iters_per_epoch
    train_iters = (end_epoch - warm_up_epochs) * iters_per_epoch
    if iteration < warm_up_iters:
        return 0.1 + iteration / warm_up_iters * 0.9
    return 1 - (iteration - warm_up_iters) / train_iters


def swahr_step_lr_factor(step: int, iters_per_epoch: int, warm_up_epochs: int, end_epoch: int) -> float:
    """The factor of the initial learning rate that optimizer step `step` (0-based) uses in the reference:
    1.0 for step 0 (the optimizer is built with the full rate and the first update comes before any
    schedule), then `swahr_lr_factor(step - 1, ...)`. Fits torch.optim.lr_scheduler.LambdaLR stepped once
    per iteration after optimizer.step()."""
    _check_schedule(iters_per_epoch, warm_up_epochs, end_epoch)
    if step == 0:
        return 1.0
    return swahr_lr_factor(step - 1, iters_per_epoch, warm_up_epochs, end_epoch)
