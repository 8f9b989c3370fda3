"""Encoding: ground-truth people -> training targets for one output resolution (bottom-up: every person of an
image; `topdown_targets`: one person's crop).

joints (P, J, 3): x, y in that output's pixels, visibility (> 0: labelled). A joint is on the map when its
integer part int(x), int(y) lies in [0, size); int() truncates toward zero as the reference does, so a
joint at x = -0.4 still lands on column 0.
"""
from __future__ import annotations

import functools

import numpy as np

from .compiled import compiled

__all__ = ["heatmap_targets", "joint_indices", "person_sigmas", "topdown_targets"]


def _on_map(joints: np.ndarray, size: int):
    """Integer positions (P, J) xs, ys and the (P, J) mask of labelled joints on the map."""
    xs = joints[..., 0].astype(np.int64)   # truncation toward zero, as int() in the reference
    ys = joints[..., 1].astype(np.int64)
    ok = (joints[..., 2] > 0) & (xs >= 0) & (ys >= 0) & (xs < size) & (ys < size)
    return xs, ys, ok


@compiled
def _paint(maps: np.ndarray, channels: np.ndarray, xs: np.ndarray, ys: np.ndarray, which: np.ndarray,
           windows: np.ndarray, reaches: np.ndarray) -> None:
    """For each joint k, maps[channels[k]] = max(maps, windows[which[k]]) over the pixels within reaches[which[k]]
    of (xs[k], ys[k]) (windows are centred: pixel offset d sits at index radius + d)."""
    size = maps.shape[1]
    radius = windows.shape[1] // 2
    for k in range(channels.shape[0]):
        j, x, y, w = channels[k], xs[k], ys[k], which[k]
        r = reaches[w]
        for py in range(max(y - r, 0), min(y + r + 1, size)):
            for px in range(max(x - r, 0), min(x + r + 1, size)):
                value = windows[w, py - y + radius, px - x + radius]
                if value > maps[j, py, px]:
                    maps[j, py, px] = value


def heatmap_targets(joints: np.ndarray, size: int, sigma: float | np.ndarray) -> np.ndarray:
    """(J, size, size) float32: a Gaussian exp(-d^2 / (2 sigma^2)) around the integer position of every
    labelled joint on the map, cut at 3 sigma + 1 pixels, maximum over people.

    sigma: one value, or one per person (P,) for scale-aware sigmas. With one integer sigma the values
    equal the reference's HeatmapGenerator exactly.
    """
    joints = np.asarray(joints, dtype=np.float64)
    num_people, num_joints = joints.shape[:2]
    maps = np.zeros((num_joints, size, size), dtype=np.float32)
    if num_people == 0:
        return maps
    xs, ys, ok = _on_map(joints, size)
    p_idx, j_idx = np.nonzero(ok)
    if len(p_idx) == 0:
        return maps
    if np.ndim(sigma) == 0:
        # One sigma for everyone (the official recipes): its window is made once per process.
        windows, reaches = _windows(float(sigma))
        which = np.zeros(len(p_idx), np.int64)
    else:
        s = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (num_people,))[p_idx]
        # One window of values per distinct sigma, shared by the joints that use it.
        sigmas, which = np.unique(s, return_inverse=True)
        windows, reaches = _make_windows(sigmas)
    _paint(maps, j_idx.astype(np.int64), xs[p_idx, j_idx], ys[p_idx, j_idx], which.astype(np.int64).reshape(-1),
           windows, reaches)
    return maps


def _make_windows(sigmas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sigmas (S,) float64: windows (S, 2r + 1, 2r + 1) float32 of exp(-d^2 / (2 sigma^2)) around the centre,
    r = floor(3 max(sigma) + 1), and each sigma's reach (S,) int64, floor(3 sigma + 1)."""
    radius = int(np.floor(3 * sigmas.max() + 1))
    offsets = np.arange(-radius, radius + 1)
    d2 = offsets[None, None, :] ** 2 + offsets[None, :, None] ** 2
    windows = np.exp(-d2 / (2 * sigmas[:, None, None] ** 2)).astype(np.float32)
    return windows, np.floor(3 * sigmas + 1).astype(np.int64)


@functools.lru_cache(maxsize=32)
def _windows(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """_make_windows of one sigma, kept: the same values the per-call computation gives."""
    return _make_windows(np.array([sigma], dtype=np.float64))


def joint_indices(joints: np.ndarray, size: int, max_people: int, tag_per_joint: bool = True) -> np.ndarray:
    """(max_people, J, 2) int32 associative-embedding targets: for person i, its labelled on-map joints
    packed in joint order as (flat index into the tag maps, 1); unused slots are (0, 0).

    flat index = j * size^2 + y * size + x with one tag map per joint, y * size + x with a single map.
    People beyond max_people are dropped: the caller decides which to keep.
    """
    joints = np.asarray(joints, dtype=np.float64)
    num_joints = joints.shape[1] if joints.ndim == 3 else 0
    out = np.zeros((max_people, num_joints, 2), dtype=np.int32)
    if joints.ndim != 3 or len(joints) == 0:
        return out
    joints = joints[:max_people]
    xs, ys, ok = _on_map(joints, size)
    index = ys * size + xs
    if tag_per_joint:
        index = index + np.arange(num_joints)[None, :] * size * size
    slot = np.cumsum(ok, axis=1) - 1                   # packed position of each kept joint
    p_idx, j_idx = np.nonzero(ok)
    out[p_idx, slot[p_idx, j_idx], 0] = index[p_idx, j_idx]
    out[p_idx, slot[p_idx, j_idx], 1] = 1
    return out


def person_sigmas(boxes_wh: np.ndarray, base_size: float, base_sigma: float, int_sigma: bool = False) -> np.ndarray:
    """Scale-aware sigma per person (P,), in output pixels: max(box w, h) / BASE_SIZE * BASE_SIGMA.

    boxes_wh (P, 2): person boxes in network-input pixels (after the augmentation's scaling). A person of
    BASE_SIZE input pixels (256: half of a 512 input) gets BASE_SIGMA (2), the fixed sigma of the official
    recipes, at every output resolution, as the fixed sigma is used. This is the official design's intent
    (its COCOKeypoints fills the sigma from the box in original-image pixels, before augmentation and in
    no declared unit); measuring in input pixels makes the sigma follow the person as it is scaled.
    INT_SIGMA rounds up to an integer as the official code does (round(sigma + 0.5)). At least 0.1.
    """
    size = np.max(np.asarray(boxes_wh, dtype=np.float64).reshape(-1, 2), axis=1)
    sigma = size / base_size * base_sigma
    if int_sigma:
        sigma = np.round(sigma + 0.5)
    return np.maximum(sigma, 0.1)


def topdown_targets(joints_xy: np.ndarray, visible: np.ndarray, image_size, heatmap_size,
                    sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """One person's top-down targets, as the official JointsDataset.generate_target makes them.

    joints_xy (J, 2): x, y in crop (network input) pixels; visible (J,): > 0 labelled; image_size and
    heatmap_size (width, height). Returns heatmaps (J, h, w) float32 and target weights (J, 1) float32.

    A joint's centre is int(x / stride + 0.5) per axis (stride = image_size / heatmap_size, int() truncating
    toward zero); its Gaussian exp(-d^2 / (2 sigma^2)) (float32, peak 1) is painted over the window
    [int(mu - 3 sigma), int(mu + 3 sigma + 1)) clipped to the map. Weight: the visibility (0 or 1), and 0 when
    the window lies wholly off the map; a joint of weight 0 has an all-zero heatmap.
    """
    joints_xy = np.asarray(joints_xy, dtype=np.float64).reshape(-1, 2)
    visible = np.asarray(visible, dtype=np.float32).reshape(-1)
    num_joints = len(joints_xy)
    map_w, map_h = int(heatmap_size[0]), int(heatmap_size[1])
    stride = np.asarray(image_size, dtype=np.float64) / np.asarray(heatmap_size, dtype=np.float64)
    weights = visible.copy().reshape(num_joints, 1)
    heatmaps = np.zeros((num_joints, map_h, map_w), dtype=np.float32)
    tmp_size = sigma * 3
    size = 2 * tmp_size + 1
    xs = np.arange(0, size, 1, np.float32)
    center = size // 2
    # One window for every joint: float32 as the official (an arange of float32 against Python floats).
    window = np.exp(-((xs - center) ** 2 + (xs[:, None] - center) ** 2) / (2 * sigma ** 2))
    for j in range(num_joints):
        mu_x = int(joints_xy[j, 0] / stride[0] + 0.5)
        mu_y = int(joints_xy[j, 1] / stride[1] + 0.5)
        left, top = int(mu_x - tmp_size), int(mu_y - tmp_size)
        right, bottom = int(mu_x + tmp_size + 1), int(mu_y + tmp_size + 1)
        if left >= map_w or top >= map_h or right < 0 or bottom < 0:
            weights[j] = 0
            continue
        if weights[j, 0] > 0.5:
            heatmaps[j, max(0, top):min(bottom, map_h), max(0, left):min(right, map_w)] = \
                window[max(0, -top):min(bottom, map_h) - top, max(0, -left):min(right, map_w) - left]
    return heatmaps, weights
