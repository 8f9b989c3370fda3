"""Input normalisation, shared by the training data and the test-time pipeline.

A network sees pixels / 255, then (x - mean) / std per RGB channel (ImageNet's statistics for HRNet); the
Associative Embedding hourglass sees pixels / 255 only (mean and std None).
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import torch
from numba import njit
from yacs.config import CfgNode

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "normalize", "normalize_reference", "normalization_from_config"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_reference(image: np.ndarray, mean: Sequence[float] | None,
                        std: Sequence[float] | None) -> torch.Tensor:
    """`normalize` computed element by element in float32 as the official code does (to_tensor, then
    Normalize): x / 255, then (x - mean) / std. Slow; it defines what `normalize` returns."""
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div(255)
    if mean is not None:
        m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        s = torch.tensor(std, dtype=torch.float32)[:, None, None]
        tensor = tensor.sub(m).div(s)
    return tensor


@functools.lru_cache(maxsize=16)
def _lookup_table(mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> np.ndarray:
    """(3, 256) float32: row c is what normalize_reference gives each pixel value in channel c."""
    ramp = np.repeat(np.arange(256, dtype=np.uint8).reshape(1, 256, 1), 3, axis=2)
    return np.ascontiguousarray(normalize_reference(ramp, mean, std)[:, 0, :].numpy())


def _compiled(function):
    """numba-compiled, releasing the GIL, cached on disk where it can be (codec.compiled's settings; that
    module is a layer above this one)."""
    try:
        return njit(cache=True, nogil=True)(function)
    except RuntimeError:
        return njit(nogil=True)(function)


@_compiled
def _lookup_planes(image: np.ndarray, tables: np.ndarray, out: np.ndarray) -> None:
    """out[c, y, x] = tables[c, image[y, x, c]] for image (H, W, C) uint8 (any strides), tables (C, 256) and out
    (C, H, W) float32: the lookup, the split into planes and the transpose to (C, H, W) in one pass."""
    height, width, channels = image.shape
    for c in range(channels):
        table = tables[c]
        for y in range(height):
            row = image[y]
            plane_row = out[c, y]
            for x in range(width):
                plane_row[x] = table[row[x, c]]


def normalize(image: np.ndarray, mean: Sequence[float] | None, std: Sequence[float] | None) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32: pixels / 255, then (x - mean) / std if given.

    A uint8 pixel has 256 values, so each output value is one lookup into the values normalize_reference
    computes: bit for bit the same result. One compiled pass reads the image once and writes each output value
    once (OpenCV's split + three cv2.LUT, used before, wrote three planes and read them again: about 1.5x the
    time in a training worker, where the 3 MB output is not in cache; the arithmetic takes 2 - 3x)."""
    tables = _lookup_table(None if mean is None else tuple(mean), None if std is None else tuple(std))
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"normalize takes (H, W, 3) uint8 images, got {image.shape} {image.dtype}")
    out = np.empty((3, *image.shape[:2]), np.float32)
    _lookup_planes(image, tables, out)
    return torch.from_numpy(out)


def normalization_from_config(cfg: CfgNode) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """(mean, std) of MODEL.INPUT_MEAN / INPUT_STD for `normalize`; (None, None) when they are empty."""
    if not cfg.MODEL.INPUT_MEAN:
        return None, None
    return tuple(float(m) for m in cfg.MODEL.INPUT_MEAN), tuple(float(s) for s in cfg.MODEL.INPUT_STD)
