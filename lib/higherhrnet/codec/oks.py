"""Object keypoint similarity (COCO's OKS) between decoded poses, and duplicate removal by OKS."""
from __future__ import annotations

import numpy as np

__all__ = ["oks", "oks_nms"]


def oks(a: np.ndarray, b: np.ndarray, sigmas: np.ndarray, area: float) -> float:
    """OKS of two poses (J, 3) (x, y, value; same pixel frame) over all joints, with COCO's formula:
    mean_j exp(-d_j^2 / (2 area (2 sigma_j)^2)); `area` is the reference pose's area in pixels^2."""
    variances = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    d2 = ((a[:, :2] - b[:, :2]) ** 2).sum(1)
    return float(np.mean(np.exp(-d2 / variances / (area + np.spacing(1)) / 2)))


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, sigmas: np.ndarray, threshold: float) -> np.ndarray:
    """Indices (ascending) of the poses to keep: in order of falling score, a pose is dropped when its OKS with
    an already kept pose exceeds `threshold`.

    keypoints (P, J, 3) x, y, value; scores (P,). The area of a kept pose is that of the box around its
    joints with value > 0 (all joints if none). A pose with no joint of value > 0 is always kept.
    """
    order = sorted(range(len(keypoints)), key=lambda i: -scores[i])
    kept: list[int] = []
    for i in order:
        pose = keypoints[i]
        visible = pose[:, 2] > 0
        for k in kept:
            ref = keypoints[k]
            extent = ref[ref[:, 2] > 0, :2] if (ref[:, 2] > 0).any() else ref[:, :2]
            area = float(np.prod(extent.max(0) - extent.min(0)))
            if visible.any() and oks(ref, pose, sigmas, area) > threshold:
                break
        else:
            kept.append(i)
    return np.array(sorted(kept), dtype=np.int64)
