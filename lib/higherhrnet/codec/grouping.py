"""Decoding: heatmaps + associative-embedding tags -> people (Newell et al., 2017; HigherHRNet).

All functions work on one image's arrays unless their docstring says otherwise. Frames: heatmap pixels,
x = column, y = row. A person is a (J, 3 + T) float32 row block: x, y, detection value, then the T tag
values of each joint; joints never assigned are all zeros. T = 2 with flip test (tag of the image and of
its mirror), 1 without.

The steps and their numerics follow the reference implementation, the official HigherHRNet code's
`HeatmapParser` (HRNet/HigherHRNet-Human-Pose-Estimation), exactly (docs/agreement.md): float32 maps, float64
grouping costs, NumPy's round-half-to-even, first-index argmax, and the reference's Hungarian tie-breaking
(below).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from munkres import Munkres
from scipy.optimize import linear_sum_assignment

from .compiled import compiled

__all__ = ["GroupingParams", "nms", "top_k", "match_by_tag", "assign", "adjust", "person_scores", "refine",
           "group"]

# Cost of leaving a candidate unmatched (it then starts a new person), as in the reference.
_UNMATCHED_COST = 1e10
# Extra cost put on the found assignment's edges to detect whether another assignment is as good.
_TIE_PROBE = 1e-3


@dataclass(frozen=True)
class GroupingParams:
    """Grouping settings (TEST.* and DATASET.MAX_NUM_PEOPLE in a config).

    joint_order: the order in which joint types are matched (KeypointSpec.grouping_indices).
    """

    joint_order: tuple[int, ...]
    max_num_people: int = 30
    detection_threshold: float = 0.1
    tag_threshold: float = 1.0
    use_detection_val: bool = True
    ignore_too_much: bool = False
    nms_kernel: int = 5
    nms_padding: int = 2
    adjust: bool = True
    refine: bool = True


def nms(heatmaps: torch.Tensor, kernel: int, padding: int) -> torch.Tensor:
    """(N, J, H, W) -> same shape: values that are not the maximum of their kernel x kernel window are 0.

    The reference's max_pool2d(kernel, stride 1, padding) test. On CPU the window maximum is OpenCV's
    dilation (exact, with a -inf border like max_pool2d's padding, several times faster than max_pool2d
    with stride 1); elsewhere it is max_pool2d itself.
    """
    if heatmaps.device.type == "cpu" and heatmaps.dtype == torch.float32 and kernel == 2 * padding + 1:
        maps = heatmaps.detach().contiguous().numpy()
        flat = maps.reshape(-1, *maps.shape[2:])
        element = np.ones((kernel, kernel), np.uint8)
        pooled = np.empty_like(flat)
        for m, out in zip(flat, pooled):      # map by map, so that the mask is made while the map is in cache
            cv2.dilate(m, element, dst=out)
            np.multiply(m, out == m, out=out)     # x * 1.0 or x * 0.0, as the reference's mask product
        return torch.from_numpy(pooled.reshape(maps.shape))
    pooled = F.max_pool2d(heatmaps, kernel, 1, padding)
    return heatmaps * torch.eq(pooled, heatmaps).float()


def top_k(heatmaps_nms: torch.Tensor, tags: torch.Tensor, k: int):
    """The k strongest peaks of every joint map.

    heatmaps_nms (N, J, H, W); tags (N, J or 1, H, W, T) (one tag map shared by all joints when the
    model has TAG_PER_JOINT False).
    Returns NumPy arrays: values (N, J, k) float32, xy (N, J, k, 2) int64, tag_vectors (N, J, k, T) float32.
    """
    n, j, h, w = heatmaps_nms.shape
    values, index = heatmaps_nms.view(n, j, -1).topk(k, dim=2)
    flat_tags = tags.reshape(tags.shape[0], tags.shape[1], h * w, tags.shape[4])
    if flat_tags.shape[1] != j:
        flat_tags = flat_tags.expand(-1, j, -1, -1)
    gathered = torch.gather(flat_tags, 2, index.unsqueeze(-1).expand(-1, -1, -1, flat_tags.shape[3]))
    xy = torch.stack((index % w, index // w), dim=3)
    return values.cpu().numpy(), xy.cpu().numpy(), gathered.cpu().numpy()


def assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost assignment of every row of `cost` (R, C) with R <= C; (row, col) pairs by row.

    scipy's linear_sum_assignment finds an optimum. When several assignments are equally good, which
    one is returned decides which candidate joins which person, so ties are resolved as the reference
    (the munkres package) resolves them: the optimum is tested for uniqueness by penalising its own
    edges slightly and solving again; only if another assignment is (nearly) as good is munkres run.
    """
    rows, cols = linear_sum_assignment(cost)
    if cost.shape[0] > 1 or cost.shape[1] > 1:
        probe = cost.copy()
        probe[rows, cols] += _TIE_PROBE
        rows2, cols2 = linear_sum_assignment(probe)
        if not np.array_equal(cols, cols2):
            return [(int(r), int(c)) for r, c in Munkres().compute(cost.tolist())]
    return [(int(r), int(c)) for r, c in zip(rows, cols)]


def match_by_tag(values: np.ndarray, xy: np.ndarray, tag_vectors: np.ndarray,
                 params: GroupingParams) -> np.ndarray:
    """Group one image's candidates into people.

    values (J, K), xy (J, K, 2), tag_vectors (J, K, T) as from `top_k`.
    Returns persons (P, J, 3 + T) float32 in heatmap pixels, in order of creation.
    """
    num_joints, _, tag_dim = tag_vectors.shape
    cap = values.size
    persons = np.zeros((cap, num_joints, 3 + tag_dim))
    tag_sums = np.zeros((cap, tag_dim))
    tag_counts = np.zeros(cap)
    num_persons = 0

    def new_person(joint: int, candidate: np.ndarray) -> None:
        nonlocal num_persons
        persons[num_persons, joint] = candidate
        tag_sums[num_persons] = candidate[3:]
        tag_counts[num_persons] = 1
        num_persons += 1

    for joint in params.joint_order:
        candidates = np.concatenate(
            (xy[joint].astype(np.float64), values[joint, :, None].astype(np.float64),
             tag_vectors[joint].astype(np.float64)), axis=1)
        candidates = candidates[candidates[:, 2] > params.detection_threshold]
        if len(candidates) == 0:
            continue
        if num_persons == 0:
            for candidate in candidates:
                new_person(joint, candidate)
            continue

        active = min(num_persons, params.max_num_people)
        if params.ignore_too_much and active == params.max_num_people:
            continue
        mean_tags = tag_sums[:active] / tag_counts[:active, None]
        distances = np.linalg.norm(candidates[:, None, 3:] - mean_tags[None, :, :], ord=2, axis=2)
        cost = np.round(distances) * 100 - candidates[:, 2:3] if params.use_detection_val else distances.copy()
        num_candidates = len(candidates)
        if num_candidates > active:
            cost = np.concatenate((cost, np.full((num_candidates, num_candidates - active), _UNMATCHED_COST)), 1)
        for row, col in assign(cost):
            if col < active and distances[row, col] < params.tag_threshold:
                persons[col, joint] = candidates[row]
                tag_sums[col] += candidates[row, 3:]
                tag_counts[col] += 1
            else:
                new_person(joint, candidates[row])
    return persons[:num_persons].astype(np.float32)


def _quarter_offsets(heatmaps: np.ndarray, joints: np.ndarray, xs: np.ndarray, ys: np.ndarray):
    """+-0.25 towards the larger neighbour in x and in y (borders clamped). heatmaps (J, H, W);
    joints, xs, ys (M,) int."""
    h, w = heatmaps.shape[1:]
    right = heatmaps[joints, ys, np.minimum(xs + 1, w - 1)]
    left = heatmaps[joints, ys, np.maximum(xs - 1, 0)]
    down = heatmaps[joints, np.minimum(ys + 1, h - 1), xs]
    up = heatmaps[joints, np.maximum(ys - 1, 0), xs]
    return np.where(right > left, 0.25, -0.25), np.where(down > up, 0.25, -0.25)


def adjust(persons: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
    """Quarter-pixel refinement towards the larger neighbour, then +0.5 to pixel centres.

    persons (P, J, 3+T) float32; heatmaps (J, H, W) float32, aggregated and not NMS'd. Joints with value
    0 are left alone. Returns a new array.
    """
    out = persons.copy()
    p_idx, j_idx = np.nonzero(out[:, :, 2] > 0)
    if len(p_idx) == 0:
        return out
    x = out[p_idx, j_idx, 0]
    y = out[p_idx, j_idx, 1]
    dx, dy = _quarter_offsets(heatmaps, j_idx, x.astype(np.int64), y.astype(np.int64))
    out[p_idx, j_idx, 0] = x.astype(np.float64) + dx + 0.5
    out[p_idx, j_idx, 1] = y.astype(np.float64) + dy + 0.5
    return out


def person_scores(persons: np.ndarray) -> np.ndarray:
    """(P, J, 3+T) -> (P,) float32: mean joint value, missing joints counted as 0."""
    return np.array([p[:, 2].mean() for p in persons], dtype=np.float32).reshape(len(persons))


@compiled
def _rounded_distance(tag: np.ndarray, mean: np.ndarray) -> np.float32:
    """round(|tag - mean|) for one pixel's tag (T,) in float32 as the reference computes it: squared
    components summed in order, float32 square root (correctly rounded), round half to even."""
    squared = np.float32(0.0)
    for t in range(tag.shape[0]):
        d = np.float32(tag[t] - mean[t])
        squared = np.float32(squared + np.float32(d * d))
    return np.float32(np.rint(np.float32(np.sqrt(np.float64(squared)))))


@compiled
def _tile_heat_max(heat: np.ndarray, block: int) -> np.ndarray:
    """Maximum of every block x block tile of heat (H, W), tiles in row-major order (edge tiles may be
    smaller)."""
    h, w = heat.shape
    rows, cols = (h + block - 1) // block, (w + block - 1) // block
    heat_max = np.full(rows * cols, -np.inf, dtype=np.float32)
    for r in range(rows):
        for y in range(r * block, min(r * block + block, h)):
            for c in range(cols):
                tile = r * cols + c
                for x in range(c * block, min(c * block + block, w)):
                    heat_max[tile] = max(heat_max[tile], heat[y, x])
    return heat_max


@compiled
def _tile_tag_box(tag: np.ndarray, tile: int, block: int, cols: int, box: np.ndarray) -> None:
    """Per-component minimum (box[0]) and maximum (box[1]) of the tags (H, W, T) in one tile."""
    h, w = tag.shape[:2]
    y0, x0 = (tile // cols) * block, (tile % cols) * block
    y1, x1 = min(y0 + block, h), min(x0 + block, w)
    for t in range(tag.shape[2]):
        low, high = np.float32(np.inf), np.float32(-np.inf)
        for y in range(y0, y1):
            for x in range(x0, x1):
                v = tag[y, x, t]
                if v < low:
                    low = v
                if v > high:
                    high = v
        box[0, t], box[1, t] = low, high


@compiled
def _scan_tile(heat, tag, mean, tile, block, cols, best, best_index):
    """Update (best score, first index reaching it) with the pixels of one tile."""
    h, w = heat.shape
    y0, x0 = (tile // cols) * block, (tile % cols) * block
    for y in range(y0, min(y0 + block, h)):
        for x in range(x0, min(x0 + block, w)):
            if heat[y, x] < best:      # the distance term is >= 0: cannot reach best
                continue
            score = np.float32(heat[y, x] - _rounded_distance(tag[y, x], mean))
            index = y * w + x
            if score > best or (score == best and index < best_index):
                best, best_index = score, index
    return best, best_index


@compiled
def _best_positions(heat: np.ndarray, tag: np.ndarray, means: np.ndarray, block: int) -> np.ndarray:
    """For each mean tag m (M, T): the row-major index of the first pixel maximising
    heat - round(|tag - m|), exactly as a full-map argmax would find it. heat (H, W), tag (H, W, T).

    Branch and bound over tiles. No pixel of a tile scores more than the tile's maximum heat minus the
    rounded distance from m to the tile's tag bounding box; float arithmetic is monotone, so this bound is
    exact and a tile whose bound is below a score already reached cannot hold the maximum. Tiles are
    visited by decreasing maximum heat, which also bounds every tile after it: the search stops there.
    Ties (bound equal to the best score) are scanned, so the first index among equal scores is kept.
    """
    h, w = heat.shape
    tag_dim = tag.shape[2]
    cols = (w + block - 1) // block
    heat_max = _tile_heat_max(heat, block)
    order = np.argsort(-heat_max, kind="mergesort")
    boxes = np.empty((heat_max.shape[0], 2, tag_dim), dtype=np.float32)   # tag boxes, filled on first use
    has_box = np.zeros(heat_max.shape[0], dtype=np.bool_)
    gap = np.empty(tag_dim, dtype=np.float32)
    zero = np.zeros(tag_dim, dtype=np.float32)
    result = np.empty(means.shape[0], dtype=np.int64)
    for i in range(means.shape[0]):
        m = means[i]
        best = np.float32(-np.inf)
        best_index = h * w
        for tile in order:
            if heat_max[tile] < best:
                break
            if not has_box[tile]:
                _tile_tag_box(tag, tile, block, cols, boxes[tile])
                has_box[tile] = True
            for t in range(tag_dim):
                gap[t] = max(np.float32(boxes[tile, 0, t] - m[t]), np.float32(m[t] - boxes[tile, 1, t]),
                             np.float32(0.0))
            if np.float32(heat_max[tile] - _rounded_distance(gap, zero)) >= best:
                best, best_index = _scan_tile(heat, tag, m, tile, block, cols, best, best_index)
        result[i] = best_index
    return result


def refine(persons: np.ndarray, heatmaps: torch.Tensor, tags: torch.Tensor, block: int = 16) -> np.ndarray:
    """Fill in each person's missing joints from the full maps.

    persons (P, J, 3+T) float32 (after `adjust`); heatmaps (J, H, W) float32; tags (J or 1, H, W, T)
    float32. For a missing joint j of person p with mean tag m (mean of the tags read at p's detected
    joints): the first (row-major) position maximising heatmap_j - round(|tag_j - m|) is taken, with the
    quarter-pixel offset of `adjust`, if the heatmap value there is > 0 (any value: REFINE may add joints
    below the detection threshold). Only missing joints are evaluated, and only on the tiles that can
    hold the maximum (see _best_positions); the result is the same as evaluating every pixel.
    Returns a new array.
    """
    out = persons.copy()
    num_joints, _, w = heatmaps.shape
    tag_maps = tags if tags.shape[0] == num_joints else tags.expand(num_joints, -1, -1, -1)
    detected = out[:, :, 2] > 0
    missing = (out[:, :, 2] == 0) & detected.any(axis=1, keepdims=True)
    if not missing.any():
        return out
    tags_np = tag_maps.cpu().numpy()
    means = np.zeros((len(out), tag_maps.shape[3]), dtype=np.float32)
    for p in np.nonzero(missing.any(axis=1))[0]:
        joints = np.nonzero(detected[p])[0]
        xs = out[p, joints, 0].astype(np.int32)
        ys = out[p, joints, 1].astype(np.int32)
        means[p] = np.mean(tags_np[joints, ys, xs], axis=0)

    heat_np = heatmaps.cpu().numpy()

    def search(j: int) -> np.ndarray:
        # C-contiguous float32 throughout, so that numba compiles (and caches) one signature only.
        return _best_positions(np.ascontiguousarray(heat_np[j], np.float32),
                               np.ascontiguousarray(tags_np[j], np.float32), means[missing[:, j]], block)

    # The compiled search releases the GIL: joints are searched in parallel, on as many threads as torch uses.
    joints_to_search = np.nonzero(missing.any(axis=0))[0]
    workers = min(torch.get_num_threads(), len(joints_to_search))
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            found = list(pool.map(search, joints_to_search))
    else:
        found = [search(j) for j in joints_to_search]
    for j, flat in zip(joints_to_search, found):
        people = np.nonzero(missing[:, j])[0]
        ys, xs = flat // w, flat % w
        joint = np.full(len(people), j)
        vals = heat_np[j, ys, xs]
        dx, dy = _quarter_offsets(heat_np, joint, xs, ys)
        take = vals > 0
        sel = people[take]
        out[sel, j, 0] = xs[take] + 0.5 + dx[take]
        out[sel, j, 1] = ys[take] + 0.5 + dy[take]
        out[sel, j, 2] = vals[take]
    return out


def group(heatmaps: torch.Tensor, tags: torch.Tensor, params: GroupingParams) -> tuple[np.ndarray, np.ndarray]:
    """Full decoding of one image.

    heatmaps (J, H, W) float32 aggregated heatmaps; tags (J or 1, H, W, T) float32.
    Returns persons (P, J, 3+T) float32 in heatmap pixels (x, y at pixel centres) and scores (P,)
    float32 (mean joint value after ADJUST, before REFINE).
    """
    values, xy, tag_vectors = top_k(nms(heatmaps[None], params.nms_kernel, params.nms_padding), tags[None],
                                    params.max_num_people)
    persons = match_by_tag(values[0], xy[0], tag_vectors[0], params)
    if params.adjust:
        persons = adjust(persons, heatmaps.cpu().numpy())
    scores = person_scores(persons)
    if params.refine:
        persons = refine(persons, heatmaps, tags)
    return persons, scores
