"""Training augmentation: one random affine (scale, rotation, translation, horizontal flip) applied to the
image, the ignore masks and the joints, for the input and every output resolution."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..geometry import apply_affine, crop_matrix, mirror_matrix, scale_matrix, warp_image

__all__ = ["AugmentParams", "random_affine", "warp_sample"]


@dataclass(frozen=True)
class AugmentParams:
    """DATASET.* augmentation settings. Scales are factors of the image's short (or long) side."""

    min_scale: float = 0.75
    max_scale: float = 1.5
    max_rotation: float = 30.0
    max_translate: float = 40.0
    scale_type: str = "short"
    flip_prob: float = 0.5


def random_affine(width: int, height: int, input_size: int, params: AugmentParams,
                  rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Draw one augmentation: (3, 3) image -> input matrix (flip included), and whether it flips. (Scale-aware
    sigmas read the drawn scale from the matrix.)"""
    side = (min(width, height) if params.scale_type == "short" else max(width, height)) / 200.0
    scale = side * rng.uniform(params.min_scale, params.max_scale)
    rot = rng.uniform(-1.0, 1.0) * params.max_rotation
    center = np.array([width / 2.0, height / 2.0])
    if params.max_translate > 0:
        limit = int(params.max_translate * scale)
        if limit > 0:
            center += rng.integers(-limit, limit, size=2)
    matrix = crop_matrix(center, scale, input_size, rot)
    flip = rng.random() < params.flip_prob
    if flip:
        # Mirror the input: pixel x -> S - 1 - x. The outputs use the same matrix scaled down, so image,
        # masks and joints stay consistent at every resolution.
        matrix = mirror_matrix(input_size) @ matrix
    return matrix, flip


def warp_sample(image: np.ndarray, mask: np.ndarray, joints: np.ndarray, matrix: np.ndarray, flip: bool,
                flip_index: np.ndarray, input_size: int, output_sizes: Sequence[int]):
    """Apply an input matrix from `random_affine`.

    image (H, W, 3) uint8; mask (H, W) uint8, 255 where the loss applies (or bool, True = use); joints
    (P, J, 3) x, y, visibility in image pixels. Returns the (S, S, 3) input image, and per output size o:
    mask (o, o) float32 and joints (P, J, 3) in that output's pixels (channels swapped left/right when
    flipped).
    """
    warped = warp_image(image, matrix[:2], (input_size, input_size))
    if flip:
        joints = joints[:, flip_index]
    masks, joints_out = [], []
    mask_u8 = mask.astype(np.uint8) * 255 if mask.dtype == bool else mask
    for size in output_sizes:
        m = scale_matrix(size / input_size) @ matrix
        # v / 255 > 0.5 for a uint8 v is v >= 128: compared in uint8, without a float copy of the mask.
        masks.append((warp_image(mask_u8, m[:2], (size, size)) >= 128).astype(np.float32))
        xy = apply_affine(joints[..., :2], m[:2])
        joints_out.append(np.concatenate([xy, joints[..., 2:3]], axis=-1))
    return warped, masks, joints_out
