"""Input normalisation, shared by the training data and the test-time pipeline.

A network sees pixels / 255, then (x - mean) / std per RGB channel (ImageNet's statistics for HRNet); the
Associative Embedding hourglass sees pixels / 255 only (mean and std None).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .config import CfgNode

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "normalize", "normalization_from_config"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(image: np.ndarray, mean: Sequence[float] | None, std: Sequence[float] | None) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32: pixels / 255, then (x - mean) / std if given."""
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div(255)
    if mean is not None:
        m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        s = torch.tensor(std, dtype=torch.float32)[:, None, None]
        tensor = tensor.sub(m).div(s)
    return tensor


def normalization_from_config(cfg: CfgNode) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """(mean, std) of MODEL.INPUT_MEAN / INPUT_STD for `normalize`; (None, None) when they are empty."""
    if not cfg.MODEL.INPUT_MEAN:
        return None, None
    return tuple(float(m) for m in cfg.MODEL.INPUT_MEAN), tuple(float(s) for s in cfg.MODEL.INPUT_STD)
