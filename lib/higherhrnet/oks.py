"""Object keypoint similarity (COCO's OKS) between poses, and the rules it rests on, defined once: which joints
of a pose are visible, the box around a pose, the area OKS scales distances by, and duplicate removal by OKS.

Used by the Predictor (duplicate removal, `Person.box`, `Person.to_coco`'s bbox) and the tracker (matching
tracks to detections); `box_oks`, `box_oks_nms` and `box_soft_oks_nms` are the top-down evaluation's
(the official code's nms.py, with its order of equal scores: `numpy1_argsort`). Pure numpy.

Poses are arrays (..., J, 3): x, y in the pixels of one image (x right, y down) and a joint value (a heatmap
peak, or a score); NaN coordinates or values mean "not there".
"""
from __future__ import annotations

import numpy as np

__all__ = ["MIN_AREA", "visible_joints", "pose_box", "pose_area", "oks_matrix", "oks_nms", "box_oks",
           "box_oks_nms", "box_soft_oks_nms", "numpy1_argsort"]

# COCO's "small object" boundary (COCOeval's area ranges: small is below 32^2 px). A pose whose visible joints
# span less (one joint, joints on a line, a far-away person) is compared as if it had this area: with the bare
# box area, a degenerate pose has area 0 and OKS 0 for any displacement, so it could neither be tracked nor
# recognised as a duplicate.
MIN_AREA = 32.0 ** 2


def visible_joints(poses: np.ndarray, threshold: float) -> np.ndarray:
    """(..., J) bool: the joints of poses (..., J, 3) whose x, y and value are finite, whose value is at least
    `threshold`, and above 0: value 0 marks a joint the grouping never found (or one moved onto the image's
    border), whose x, y mean nothing, so it is not visible at any threshold."""
    poses = np.asarray(poses)
    finite = np.isfinite(poses[..., :3]).all(axis=-1)
    # NaN values are already excluded by `finite`; fill them so the comparisons stay quiet.
    values = np.nan_to_num(poses[..., 2], nan=-np.inf)
    return finite & (values > 0) & (values >= threshold)


def pose_box(poses: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """(..., 4) float64 boxes x, y, w, h (COCO's layout; image pixels, (x, y) the top-left corner) around the
    visible joints of each pose; around all its joints with finite x, y when none is visible; NaN when none
    has finite x, y.

    poses (..., J, 2 or more): x, y first. visible (..., J) bool, e.g. visible_joints(poses, threshold);
    None: every joint counts.
    """
    xy = np.asarray(poses, dtype=np.float64)[..., :2]
    finite = np.isfinite(xy).all(axis=-1)
    if visible is None:
        counted = finite
    else:
        visible = np.asarray(visible, dtype=bool) & finite
        counted = np.where(visible.any(axis=-1, keepdims=True), visible, finite)
    mask = counted[..., None]
    low = np.where(mask, xy, np.inf).min(axis=-2)
    high = np.where(mask, xy, -np.inf).max(axis=-2)
    found = counted.any(axis=-1)[..., None]
    return np.where(found, np.concatenate([low, high - low], axis=-1), np.nan)


def pose_area(boxes: np.ndarray) -> np.ndarray:
    """(...) the area OKS scales distances by, in px^2: the box's w * h, at least MIN_AREA (see there).
    boxes (..., 4) x, y, w, h from pose_box; NaN boxes give NaN."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.maximum(boxes[..., 2] * boxes[..., 3], MIN_AREA)


def oks_matrix(reference: np.ndarray, candidates: np.ndarray, sigmas: np.ndarray, keypoint_threshold: float,
               areas: np.ndarray | None = None) -> np.ndarray:
    """(T, P) OKS of every candidate pose against every reference pose; NaN where a pair shares no visible
    joint (OKS is undefined there).

    reference (T, J, 3), candidates (P, J, 3): x, y, value in the same image's pixels. sigmas (J,): the keypoint
    set's OKS constants. keypoint_threshold: the joint value a joint needs to count (visible_joints).
    areas (T,): the reference poses' areas in px^2 where known (COCO's annotated areas), used as they are;
    default pose_area(pose_box(reference, visible)): the box around each reference pose's visible joints, at
    least MIN_AREA.

    COCO's formula, mean over joints of exp(-d^2 / (2 * area * (2 * sigma)^2)), over the joints visible in
    BOTH poses: neither pose need be ground truth (duplicates, tracks), and a joint missing from one of them
    says nothing about whether they are the same person.
    """
    reference = np.asarray(reference, dtype=np.float64)
    candidates = np.asarray(candidates, dtype=np.float64)
    sigmas = np.asarray(sigmas, dtype=np.float64)
    for name, poses in (("reference", reference), ("candidates", candidates)):
        if poses.ndim != 3 or poses.shape[2] != 3 or poses.shape[1] != len(sigmas):
            raise ValueError(f"oks_matrix: {name} must have shape (N, {len(sigmas)}, 3) (x, y, value for "
                             f"each of the {len(sigmas)} joints the sigmas describe), got {poses.shape}")
    ref_visible = visible_joints(reference, keypoint_threshold)
    cand_visible = visible_joints(candidates, keypoint_threshold)
    if areas is None:
        areas = pose_area(pose_box(reference, ref_visible))
    else:
        # As COCOeval: a tiny epsilon keeps an annotated area of 0 from dividing by zero.
        areas = np.asarray(areas, dtype=np.float64).reshape(len(reference)) + np.spacing(1)
    # Invisible joints get coordinates 0 so that NaN never enters the arithmetic; `common` drops them.
    ref_xy = np.where(ref_visible[..., None], reference[..., :2], 0.0)
    cand_xy = np.where(cand_visible[..., None], candidates[..., :2], 0.0)
    d2 = ((ref_xy[:, None] - cand_xy[None]) ** 2).sum(axis=-1)                       # (T, P, J)
    variances = (2.0 * sigmas) ** 2
    common = ref_visible[:, None] & cand_visible[None]
    # A reference with no visible joint may have a NaN area (pose_box); NaN stays quiet, and `common` drops it.
    similarity = np.exp(-d2 / (2.0 * areas[:, None, None] * variances))
    counts = common.sum(axis=-1)
    totals = np.where(common, similarity, 0.0).sum(axis=-1)
    return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, sigmas: np.ndarray, threshold: float,
            keypoint_threshold: float = 0.0) -> np.ndarray:
    """Indices (ascending) of the poses to keep: in order of falling score (ties: the earlier pose first), a
    pose is dropped when its OKS (oks_matrix) with an already kept pose exceeds `threshold`.

    keypoints (P, J, 3) x, y, value; scores (P,). The kept pose is the reference (its box gives the area).
    keypoint_threshold 0: every joint the grouping found counts. A pose sharing no visible joint with the kept
    ones (e.g. one with no joint found) is kept.
    """
    keypoints = np.asarray(keypoints)
    if len(keypoints) == 0:
        return np.zeros(0, dtype=np.int64)
    similarity = oks_matrix(keypoints, keypoints, sigmas, keypoint_threshold)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    kept: list[int] = []
    for i in order:
        # NaN (no common joint) compares False: not a duplicate.
        if not (similarity[kept, i] > threshold).any():
            kept.append(int(i))
    return np.array(sorted(kept), dtype=np.int64)


def box_oks(reference: np.ndarray, candidates: np.ndarray, reference_area: float, candidate_areas: np.ndarray,
            sigmas: np.ndarray, in_vis_thre: float | None = None) -> np.ndarray:
    """(P,) OKS of candidates (P, J, 3) with one reference pose (J, 3), as the top-down code of the HRNet paper
    (deep-high-resolution-net.pytorch, nms.oks_iou) measures it, which differs from `oks_matrix`:

    - the area is the mean of the two poses' areas (the caller's, e.g. their crops' w * h), plus
      np.spacing(1);
    - every joint counts, whatever its value; with in_vis_thre, only the candidate's joints scoring above it
      (the official test reads `ref > t and cand > t` as Python lists, which keeps the candidate's mask alone);
      no joint left gives 0;
    - the squared distances are summed in the poses' own dtype (float32 predictions stay float32 there) before
      the float64 division, as the official arithmetic runs.
    """
    reference = np.asarray(reference)
    candidates = np.asarray(candidates)
    candidate_areas = np.asarray(candidate_areas)
    if in_vis_thre is not None:
        # A Python float, as the official config gives it: compared with float32 joint scores in float32 (NumPy
        # 1.x and 2 alike; a NumPy float64 would be compared in float64 under NumPy 2).
        in_vis_thre = float(in_vis_thre)
    variances = (np.asarray(sigmas, dtype=np.float64) * 2) ** 2
    result = np.zeros(len(candidates))
    for n, candidate in enumerate(candidates):
        dx = candidate[:, 0] - reference[:, 0]
        dy = candidate[:, 1] - reference[:, 1]
        e = (dx ** 2 + dy ** 2) / variances / ((reference_area + candidate_areas[n]) / 2 + np.spacing(1)) / 2
        if in_vis_thre is not None and len(e):
            e = e[candidate[:, 2] > in_vis_thre]
        result[n] = np.sum(np.exp(-e)) / e.shape[0] if e.shape[0] != 0 else 0.0
    return result


def box_oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, threshold: float,
                sigmas: np.ndarray, in_vis_thre: float | None = None) -> list[int]:
    """Indices of the poses to keep, in the order they were kept (falling score), by the top-down code's
    OKS-NMS (nms.oks_nms): repeatedly keep the best remaining pose and drop every remaining one whose `box_oks`
    with it exceeds `threshold` (a pose at exactly the threshold stays).

    keypoints (P, J, 3), scores (P,), areas (P,): each pose's area in px^2 (the official evaluation passes its
    crop's w * h, scale * 200, not its joints' box). The order of equal scores is the official
    `scores.argsort()[::-1]` under the NumPy 1.x it ran with (`numpy1_argsort`): among 16 poses or fewer, the
    later of equal scores first; among more, the order the sort's partitions leave. Unlike `oks_nms` (the Predictor's duplicate removal), a pose is compared on all its joints
    and with the mean area; `box_oks` says more.
    """
    keypoints = np.asarray(keypoints)
    if len(keypoints) == 0:
        return []
    areas = np.asarray(areas)
    order = numpy1_argsort(scores)[::-1]
    kept: list[int] = []
    while order.size > 0:
        best = int(order[0])
        kept.append(best)
        overlaps = box_oks(keypoints[best], keypoints[order[1:]], areas[best], areas[order[1:]], sigmas,
                           in_vis_thre)
        order = order[1:][overlaps <= threshold]
    return kept


def box_soft_oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, threshold: float,
                     sigmas: np.ndarray, in_vis_thre: float | None = None, max_kept: int = 20) -> list[int]:
    """Indices of the poses to keep, in the order they were kept, by the top-down code's soft OKS-NMS
    (nms.soft_oks_nms, TEST.SOFT_NMS): repeatedly keep the pose whose decayed score is highest, then decay every
    remaining pose's score by exp(-oks^2 / threshold) (`box_oks` with the kept one, its Gaussian rescoring)
    and order them again; at most `max_kept` poses (the official 20). Nothing is dropped for its overlap
    alone: a pose is left out only when `max_kept` are kept first. The decayed scores only order the poses
    (equal ones as `box_oks_nms` orders equal scores); the caller reports their own scores. Arguments as
    `box_oks_nms`."""
    keypoints = np.asarray(keypoints)
    if len(keypoints) == 0:
        return []
    areas = np.asarray(areas)
    order = numpy1_argsort(scores)[::-1]
    decayed = np.asarray(scores)[order]
    kept: list[int] = []
    while order.size > 0 and len(kept) < max_kept:
        best = int(order[0])
        kept.append(best)
        overlaps = box_oks(keypoints[best], keypoints[order[1:]], areas[best], areas[order[1:]], sigmas,
                           in_vis_thre)
        order, decayed = order[1:], decayed[1:] * np.exp(-overlaps ** 2 / threshold)
        resort = numpy1_argsort(decayed)[::-1]
        order, decayed = order[resort], decayed[resort]
    return kept


# NumPy 1.x's quicksort switches to insertion sort for ranges of at most this many + 1 elements.
_SMALL_QUICKSORT = 15


def numpy1_argsort(values: np.ndarray) -> np.ndarray:
    """(N,) int64: `np.argsort(values)` of a 1-D array as NumPy 1.x computes it with its default kind,
    'quicksort' (before 1.25 on any CPU; 1.25 and 1.26 on CPUs without AVX-512), including the order it leaves
    equal values in.

    The official top-down code orders people by `scores.argsort()[::-1]` (nms.oks_nms, nms.soft_oks_nms), so
    among equal scores (people rescored 0 for want of a confident joint, copies of one detection) the order,
    and with it which person NMS keeps, is whatever that sort leaves. NumPy 1.x sorts with an introsort: a
    median-of-3 quicksort that pushes the larger part on a stack, insertion sort for ranges of at most 16,
    heapsort for a range reached deeper than 2 log2 N partitions (NumPy's npysort quicksort and heapsort,
    redone here step for step). NumPy 2 sorts with SIMD routines whose order of equal values differs and
    depends on the CPU. Values are ordered as NumPy orders them, NaN last. Without NaN or equal values every
    sort gives the one order, and NumPy's own (stable) sort is used.
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"numpy1_argsort: expected a 1-D array, got shape {values.shape}")
    n = len(values)
    if n < 2 or (not np.isnan(values).any() and len(np.unique(values)) == n):
        return np.argsort(values, kind="stable").astype(np.int64)
    v = values.tolist()

    def less(i: int, j: int) -> bool:
        """NumPy's order of values i and j: a < b, and any number before NaN."""
        a, b = v[i], v[j]
        return a < b or (b != b and a == a)

    return np.array(_introsort(n, less), dtype=np.int64)


def _introsort(n: int, less) -> list[int]:
    """The indices 0..n-1 sorted by less(i, j) (is item i before item j), as NumPy 1.x's aquicksort does."""
    order = list(range(n))
    stack: list[tuple[int, int, int]] = []          # ranges left for later: (first, last, depth budget)
    first, last = 0, n - 1
    depth = 2 * (n.bit_length() - 1) if n else 0    # 2 * floor(log2 n)
    while True:
        if depth < 0:
            _heapsort(order, first, last - first + 1, less)
        else:
            while last - first > _SMALL_QUICKSORT:
                # Median of the first, middle and last as pivot, parked before the last.
                middle = first + ((last - first) >> 1)
                if less(order[middle], order[first]):
                    order[middle], order[first] = order[first], order[middle]
                if less(order[last], order[middle]):
                    order[last], order[middle] = order[middle], order[last]
                if less(order[middle], order[first]):
                    order[middle], order[first] = order[first], order[middle]
                pivot = order[middle]
                i, j = first, last - 1
                order[middle], order[j] = order[j], order[middle]
                while True:
                    i += 1
                    while less(order[i], pivot):
                        i += 1
                    j -= 1
                    while less(pivot, order[j]):
                        j -= 1
                    if i >= j:
                        break
                    order[i], order[j] = order[j], order[i]
                order[i], order[last - 1] = order[last - 1], order[i]
                # Go on with the smaller part; the larger waits on the stack.
                depth -= 1
                if i - first < last - i:
                    stack.append((i + 1, last, depth))
                    last = i - 1
                else:
                    stack.append((first, i - 1, depth))
                    first = i + 1
            for i in range(first + 1, last + 1):       # insertion sort
                item = order[i]
                j = i
                while j > first and less(item, order[j - 1]):
                    order[j] = order[j - 1]
                    j -= 1
                order[j] = item
        if not stack:
            return order
        first, last, depth = stack.pop()


def _heapsort(order: list[int], start: int, n: int, less) -> None:
    """Sort order[start:start + n] in place by less, as NumPy 1.x's aheapsort (a 1-based binary heap)."""
    base = start - 1                                # heap position k is order[base + k]

    def sift(item: int, i: int, n: int) -> None:
        j = 2 * i
        while j <= n:
            if j < n and less(order[base + j], order[base + j + 1]):
                j += 1
            if not less(item, order[base + j]):
                break
            order[base + i] = order[base + j]
            i, j = j, 2 * j
        order[base + i] = item

    for top in range(n >> 1, 0, -1):
        sift(order[base + top], top, n)
    while n > 1:
        item = order[base + n]
        order[base + n] = order[base + 1]
        n -= 1
        sift(item, 1, n)
