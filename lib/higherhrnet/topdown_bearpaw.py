"""The top-down crop geometry and training targets of the stacked hourglass code (bearpaw/pytorch-pose,
pose/utils/transforms.py and imutils.py), as NumPy / OpenCV functions that do its arithmetic in its dtypes, so
that their results equal its own to the last bit. They are the alternatives of the HRNet stages of topdown.py
for a network trained by that code (MODEL.NAME stacked_hourglass):

    person_center_scale(objpos, scale)          MPII's person centre and scale -> the crop's (+15 scale px down,
                                                x 1.25)
    image_to_float(image)                        uint8 image -> float32 in [0, 1] (its load_image)
    crop_image(image, center, scale, size, rot)  one crop (its crop: slice, rotate, resize)
    crop_people(image, centers, scales, size)    the test-time crops, (N, H, W, 3) float32 (topdown.crop_people's
                                                 counterpart)
    (topdown.normalize_crops makes the network's input from these float crops as its color_normalize does)
    crop_transform / transform_point / transform_predictions   image <-> crop (or heatmap) pixels
    mirror_joints(joints, width, flip_index)     its shufflelr
    draw_gaussian(heatmap, point, sigma)         one joint's training target (its draw_labelmap)

Frame: MPII's, as the code uses it. MPII writes joints and person centres in MATLAB's 1-based pixels (pixel
(1, 1) is the top-left one); the code uses them as given. `transform_point` subtracts 1 from a point, maps it and
truncates it to an integer (toward zero), then adds 1 back; crops are cut at those integer corners. Predictions
that come back through `transform_predictions` are in the same 1-based frame as the annotations (and as MPII's
ground truth, which PCKh compares them with): subtract 1 for this package's frame (geometry.py: 0-based, an
integer (x, y) is a pixel's centre). Sizes are (width, height) pairs as the code's `res`, always square there.

Dtypes: the code holds a person's centre in a float32 tensor and its scale in a Python float until the training
scale augmentation makes it a float32 tensor (and the rotation one); every product with them then rounds to
float32, and a Python number divided by such a tensor is computed as PyTorch does it, the tensor's reciprocal
times the number (`_divide`). These functions keep the dtypes of what they are given and do the same operations
in the same order: a NumPy scalar stands for the code's 0-d tensor of its dtype, a Python number for its Python
number. Pass a float32 centre and a Python float (test time) or np.float32 (augmented) scale and rotation, and the
results are the code's. (geometry.crop_matrix is the same crop in float64 throughout, which the code's augmented
crops are not.)
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

__all__ = ["PERSON_CENTER_SHIFT", "PERSON_SCALE_PADDING", "person_center_scale", "image_to_float",
           "crop_transform", "transform_point", "transform_predictions", "crop_image", "crop_people",
           "mirror_joints", "draw_gaussian"]

# MPII's person centre is moved down by 15 x scale pixels and its scale padded by 1.25, so that the crop keeps
# the limbs (the code's Mpii.__getitem__; mmpose's and HRNet's MPII datasets do the same).
PERSON_CENTER_SHIFT = 15
PERSON_SCALE_PADDING = 1.25


def _divide(number: float, divisor):
    """number / divisor as the code computes it: by a tensor (here a NumPy scalar), PyTorch's
    Tensor.__rtruediv__, the divisor's reciprocal times the number in the divisor's dtype (not always the
    correctly rounded quotient); by a Python number, the plain quotient."""
    if isinstance(divisor, np.floating):
        return np.reciprocal(divisor) * number
    return number / divisor


def person_center_scale(objpos: Sequence[float], scale: float) -> tuple[np.ndarray, float]:
    """MPII's person centre `objpos` (x, y; MPII's frame) and `scale` (person height / 200 px) -> the crop's
    centre (2,) float32 and scale: y + 15 scale and scale x 1.25, unless the centre's x is exactly -1 (then both
    as given), in float32 arithmetic for the centre as the code's tensor."""
    center = np.array(objpos, dtype=np.float32)
    if center[0] != -1:
        center[1] = center[1] + PERSON_CENTER_SHIFT * scale
        scale = scale * PERSON_SCALE_PADDING
    return center, scale


def image_to_float(image: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 -> float32 pixels / 255 (its load_image, in (H, W, C) order). Like the code, an image whose
    pixels are all 0 or 1 is left unscaled (it divides only when the maximum exceeds 1)."""
    pixels = image.astype(np.float32)
    if pixels.size and pixels.max() > 1:
        pixels /= np.float32(255)
    return pixels


def crop_transform(center: Sequence[float], scale, size: Sequence[int], rot=0) -> np.ndarray:
    """(3, 3) float64 matrix from image pixels to the pixels of a crop of `size` whose side is 200 x scale image
    pixels around `center`, rotated `rot` degrees (its get_transform; both frames 0-based: transform_point takes
    1 off before and adds it back after). The crop's x axis is scaled by size[1] and its y axis by size[0] as in
    the code (the same for its square sizes); the image turns `rot` degrees counter-clockwise in the crop about
    the crop's centre, as crop_image turns it. The same crop as geometry.crop_matrix (the HigherHRNet
    training crop), kept apart because bearpaw's results depend on its order of operations and dtypes
    (_divide, rot negated in its own dtype): crop_matrix's arithmetic differs in the last bits."""
    side = 200 * scale
    matrix = np.zeros((3, 3))
    matrix[0, 0] = _divide(float(size[1]), side)
    matrix[1, 1] = _divide(float(size[0]), side)
    matrix[0, 2] = size[1] * (_divide(-float(center[0]), side) + .5)
    matrix[1, 2] = size[0] * (_divide(-float(center[1]), side) + .5)
    matrix[2, 2] = 1
    if rot != 0:
        # In rot's dtype, negated first: the code's order of operations.
        radians = -rot * np.pi / 180
        sin, cos = np.sin(radians), np.cos(radians)
        rotation = np.zeros((3, 3))
        rotation[0, :2] = [cos, -sin]
        rotation[1, :2] = [sin, cos]
        rotation[2, 2] = 1
        to_center = np.eye(3)
        to_center[0, 2] = -size[1] / 2
        to_center[1, 2] = -size[0] / 2
        back = to_center.copy()
        back[:2, 2] *= -1
        matrix = np.dot(back, np.dot(rotation, np.dot(to_center, matrix)))
    return matrix


def transform_point(point: Sequence[float], center: Sequence[float], scale, size: Sequence[int],
                    invert: bool = False, rot=0) -> np.ndarray:
    """One point (x, y) in MPII's 1-based frame -> (2,) int64 in the crop's (or, with invert, from the crop back
    to the image), also 1-based: minus 1, the matrix of crop_transform (inverted), truncated toward zero, plus 1
    (its transform). `point`'s own dtype is kept for the minus 1 (the code's targets are float32)."""
    matrix = crop_transform(center, scale, size, rot=rot)
    if invert:
        matrix = np.linalg.inv(matrix)
    homogeneous = np.array([point[0] - 1, point[1] - 1, 1.], dtype=np.float64)
    return np.dot(matrix, homogeneous)[:2].astype(np.int64) + 1


def transform_predictions(coords: np.ndarray, center: Sequence[float], scale, size: Sequence[int]) -> np.ndarray:
    """(J, >= 2) coordinates in a (w, h) = size heatmap -> a copy with x, y mapped back to image pixels by
    transform_point(..., invert=True), whole numbers in coords' dtype (its transform_preds)."""
    out = np.array(coords, copy=True)
    for joint in range(len(out)):
        out[joint, :2] = transform_point(out[joint, :2], center, scale, size, invert=True)
    return out


def crop_image(image: np.ndarray, center: Sequence[float], scale, size: Sequence[int], rot=0) -> np.ndarray:
    """(H, W, C) float image -> (size[1], size[0], C) float32 crop of side 200 x scale around `center`, rotated
    `rot` degrees counter-clockwise (its crop).

    The code's steps: when the crop is at least twice as large as `size`, the image is first resized down by
    that factor (bilinear) and centre and scale with it; the crop's corners come from transform_point (integers);
    the image is sliced into a zero canvas between them (padded by the rotation's margin when rotating); a
    rotation is cv2.getRotationMatrix2D about the canvas's centre (w // 2, h // 2) and cv2.warpAffine (as the
    imutils package's rotate), and the margin is cut off again; then a bilinear resize to `size`. The canvas is
    float64 as the code's. Like the code, a result above 1 anywhere is divided by 255. A crop so large that the
    resized image would be under 2 pixels is all zeros (the code returns it in another layout; zeros here).
    """
    height, width = image.shape[:2]
    factor = scale * 200.0 / size[0]
    if factor >= 2:
        new_size = int(math.floor(_divide(max(height, width), factor)))
        new_height = int(math.floor(_divide(height, factor)))
        new_width = int(math.floor(_divide(width, factor)))
        if new_size < 2:
            return np.zeros((size[1], size[0], *image.shape[2:]), dtype=np.float32)
        image = cv2.resize(image, dsize=(new_width, new_height), interpolation=cv2.INTER_LINEAR)
        center = np.asarray(center) * 1.0 / factor
        scale = scale / factor

    upper_left = transform_point([0, 0], center, scale, size, invert=True)
    bottom_right = transform_point(size, center, scale, size, invert=True)
    # The margin that keeps the corners filled when the crop is rotated: half the diagonal less half the side.
    pad = int(np.linalg.norm(bottom_right - upper_left) / 2 - float(bottom_right[1] - upper_left[1]) / 2)
    if rot != 0:
        upper_left -= pad
        bottom_right += pad

    canvas = np.zeros([bottom_right[1] - upper_left[1], bottom_right[0] - upper_left[0], *image.shape[2:]])
    canvas_x = [max(0, -upper_left[0]), min(bottom_right[0], image.shape[1]) - upper_left[0]]
    canvas_y = [max(0, -upper_left[1]), min(bottom_right[1], image.shape[0]) - upper_left[1]]
    image_x = [max(0, upper_left[0]), min(image.shape[1], bottom_right[0])]
    image_y = [max(0, upper_left[1]), min(image.shape[0], bottom_right[1])]
    if canvas_x[1] < canvas_x[0]:
        # A crop wholly left or right of the image: the code swaps both x ranges, which leaves both slices empty.
        canvas_x.reverse()
        image_x.reverse()
    canvas[canvas_y[0]:canvas_y[1], canvas_x[0]:canvas_x[1]] = image[image_y[0]:image_y[1], image_x[0]:image_x[1]]

    if rot != 0:
        rows, cols = canvas.shape[:2]
        rotation = cv2.getRotationMatrix2D((cols // 2, rows // 2), float(rot), 1.0)
        canvas = cv2.warpAffine(canvas, rotation, (cols, rows))
        canvas = canvas[pad:-pad, pad:-pad]

    crop = cv2.resize(canvas, dsize=(size[0], size[1]), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    if crop.max() > 1:
        crop /= np.float32(255)
    return crop


def crop_people(image: np.ndarray, centers: np.ndarray, scales: Sequence, size: Sequence[int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB image -> (N, size[1], size[0], 3) float32 test-time crops (rotation 0), one per centre
    (N, 2) float32 and scale (N,) (person_center_scale's, MPII's frame): image_to_float, then crop_image, as the
    code's test items are made."""
    pixels = image_to_float(image)
    crops = np.zeros((len(centers), size[1], size[0], *image.shape[2:]), dtype=np.float32)
    for i, (center, scale) in enumerate(zip(centers, scales)):
        crops[i] = crop_image(pixels, center, scale, size)
    return crops


def mirror_joints(joints: np.ndarray, width: int, flip_index: Sequence[int]) -> np.ndarray:
    """(J, >= 2) joints of an image `width` pixels wide -> those of its mirror image: x -> width - x (MPII's
    frame, the code's arithmetic, in joints' dtype) and the rows permuted by flip_index (the keypoint set's), as
    its shufflelr."""
    mirrored = np.array(joints, copy=True)
    mirrored[:, 0] = width - mirrored[:, 0]
    return mirrored[np.asarray(flip_index)]


def draw_gaussian(heatmap: np.ndarray, point: Sequence[float], sigma: float) -> tuple[np.ndarray, int]:
    """Paint a Gaussian of peak 1 and `sigma` at `point` (x, y, heatmap pixels) into heatmap (h, w) in place,
    as its draw_labelmap ('Gaussian'): a (6 sigma + 1)-pixel square patch whose centre pixel goes to
    (int(x), int(y)) (truncated toward zero), cut at the map's edges, overwriting what is there.
    Returns (heatmap, 1), or (heatmap unchanged, 0) when no part of the patch is on the map."""
    height, width = heatmap.shape
    upper_left = [int(point[0] - 3 * sigma), int(point[1] - 3 * sigma)]
    bottom_right = [int(point[0] + 3 * sigma + 1), int(point[1] + 3 * sigma + 1)]
    if upper_left[0] >= width or upper_left[1] >= height or bottom_right[0] < 0 or bottom_right[1] < 0:
        return heatmap, 0
    patch_size = 6 * sigma + 1
    xs = np.arange(0, patch_size, 1, float)
    ys = xs[:, np.newaxis]
    middle = patch_size // 2
    gaussian = np.exp(- ((xs - middle) ** 2 + (ys - middle) ** 2) / (2 * sigma ** 2))
    patch_x = max(0, -upper_left[0]), min(bottom_right[0], width) - upper_left[0]
    patch_y = max(0, -upper_left[1]), min(bottom_right[1], height) - upper_left[1]
    map_x = max(0, upper_left[0]), min(bottom_right[0], width)
    map_y = max(0, upper_left[1]), min(bottom_right[1], height)
    heatmap[map_y[0]:map_y[1], map_x[0]:map_x[1]] = gaussian[patch_y[0]:patch_y[1], patch_x[0]:patch_x[1]]
    return heatmap, 1
