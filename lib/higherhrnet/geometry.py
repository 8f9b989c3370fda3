"""Affine geometry between image pixels and network / heatmap pixels.

Pixel convention (one for the whole package): (x, y) = (column, row); a point at integer (x, y) is the
CENTRE of pixel (x, y) as OpenCV's warpAffine samples it. Transforms are 2x3 float64 matrices mapping
[x, y, 1] to the destination frame.

A crop is described the way the reference code does: a `center` in source pixels, a `scale` (sx, sy) in
units of 200 source pixels, and a destination `output_size` (width, height). The crop's width sx*200 is
mapped onto the destination width; the same factor applies vertically, the centre goes to the
destination centre, and `rot` degrees rotate the source counter-clockwise about the centre. The three
reference points are built in float32 and solved with cv2.getAffineTransform, as the reference does, so
the matrices agree with it to the last bit.

Training crops (`crop_matrix`) describe the same square crop -- side 200 * scale source pixels around
`center`, onto a size x size input, rotated `rot` degrees counter-clockwise -- as a 3x3 float64 matrix
computed directly (as the reference's training code does), so that it can be composed with a mirror
(`mirror_matrix`) and rescaled to each output resolution (`scale_matrix`). For the same crop it equals
get_affine_transform(center, (scale, scale), rot, (size, size)) up to the float32 rounding of the latter.
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

__all__ = ["get_affine_transform", "apply_affine", "multi_scale_size", "warp_image", "crop_matrix", "mirror_matrix",
           "scale_matrix"]


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # The point that makes (a, b, c) a right angle at b, turning a - b by 90 degrees.
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def get_affine_transform(center: Sequence[float], scale: Sequence[float], rot: float,
                         output_size: Sequence[int], shift: Sequence[float] = (0.0, 0.0),
                         inv: bool = False) -> np.ndarray:
    """(2, 3) matrix from source pixels to the destination of size output_size = (width, height);
    with inv=True, from the destination back to the source.

    The arithmetic follows the reference's dtypes: `scale` keeps its own (the top-down code's float32 person
    boxes are scaled by 200 in float32, the bottom-up code's float64 image crops in float64), the rotation
    goes through NumPy's float64 sin and cos; so the matrices agree with the reference's to the last bit for
    either kind of input."""
    scale_px = np.asarray(scale) * 200.0
    shift = np.asarray(shift, dtype=np.float32)
    dst_w, dst_h = float(output_size[0]), float(output_size[1])
    theta = np.pi * rot / 180
    sn, cs = np.sin(theta), np.cos(theta)
    # "Up" vector of half the crop width, rotated by rot.
    half = scale_px[0] * -0.5
    src_dir = np.array([0 * cs - half * sn, 0 * sn + half * cs])

    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = np.asarray(center) + scale_px * shift
    src[1] = np.asarray(center) + src_dir + scale_px * shift
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + np.array([0.0, dst_w * -0.5])
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    return cv2.getAffineTransform(dst, src) if inv else cv2.getAffineTransform(src, dst)


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """points (..., 2) x, y -> (..., 2) float64 in the matrix's destination frame."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def multi_scale_size(width: int, height: int, input_size: int, scale: float, min_scale: float):
    """Network input size for one test scale, and the crop (center, scale) that produces it.

    The short side becomes input_size * scale; the long side keeps the aspect ratio, rounded UP to a
    multiple of 64 at the smallest test scale and multiplied up from there, so every scale's input is a
    multiple of 64 * scale / min_scale and the image is never stretched (the extra area is padding).
    Returns ((w', h'), center (2,) int, scale (2,) float64 in units of 200 px).
    """
    center = np.array([int(width / 2.0 + 0.5), int(height / 2.0 + 0.5)])
    min_size = int((min_scale * input_size + 63) // 64 * 64)
    if width < height:
        w_resized = int(min_size * scale / min_scale)
        h_resized = int(int((min_size / width * height + 63) // 64 * 64) * scale / min_scale)
        scale_w = width / 200.0
        scale_h = h_resized / w_resized * width / 200.0
    else:
        h_resized = int(min_size * scale / min_scale)
        w_resized = int(int((min_size / height * width + 63) // 64 * 64) * scale / min_scale)
        scale_h = height / 200.0
        scale_w = w_resized / h_resized * height / 200.0
    return (w_resized, h_resized), center, np.array([scale_w, scale_h])


def warp_image(image: np.ndarray, matrix: np.ndarray, size: Sequence[int],
               interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """cv2.warpAffine to size (width, height); outside the source is 0."""
    return cv2.warpAffine(image, matrix, (int(size[0]), int(size[1])), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def crop_matrix(center: Sequence[float], scale: float, size: int, rot: float = 0.0) -> np.ndarray:
    """(3, 3) matrix mapping image pixels to a size x size crop: a square of side 200 * scale around
    `center` fills the crop, rotated by `rot` degrees counter-clockwise about the crop centre (the
    reference's training crop). topdown_bearpaw.crop_transform is the same crop in bearpaw's arithmetic."""
    side = 200.0 * scale
    m = np.array([[size / side, 0.0, size * (-center[0] / side + 0.5)],
                  [0.0, size / side, size * (-center[1] / side + 0.5)],
                  [0.0, 0.0, 1.0]])
    if rot:
        theta = math.radians(-rot)
        sn, cs = math.sin(theta), math.cos(theta)
        half = size / 2.0
        to_origin = np.array([[1.0, 0.0, -half], [0.0, 1.0, -half], [0.0, 0.0, 1.0]])
        back = np.array([[1.0, 0.0, half], [0.0, 1.0, half], [0.0, 0.0, 1.0]])
        rotation = np.array([[cs, -sn, 0.0], [sn, cs, 0.0], [0.0, 0.0, 1.0]])
        m = back @ rotation @ to_origin @ m
    return m


def mirror_matrix(width: int) -> np.ndarray:
    """(3, 3) horizontal mirror of an image `width` pixels wide: pixel x -> width - 1 - x (pixel centres map
    onto pixel centres, as cv2.flip does)."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def scale_matrix(factor: float) -> np.ndarray:
    """(3, 3) uniform scaling by `factor` (e.g. input pixels -> output-map pixels)."""
    return np.diag([factor, factor, 1.0])
