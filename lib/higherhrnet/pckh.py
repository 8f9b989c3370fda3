"""MPII's single-person metrics, computed as the code that reports them computes them. Pure numpy.

    pckh(preds, joints, visible, head_boxes, rules)   PCKh: a joint is right when its error is within half the
                                                      person's head size; per joint, per body part, the mean,
                                                      the mean at 0.1 and the curve over thresholds
    to_matlab_frame(xy)                               this project's image pixels -> MPII's 1-based frame
    pck(pred_coords, target_coords, width, joints)    the PCK bearpaw/pytorch-pose's training code prints
                                                      (pose/utils/evaluation.accuracy)

PCKh (Andriluka et al., CVPR 2014) is scored by the script bearpaw/pytorch-pose ships as evaluation/eval_PCKh.py
(and eval_PCKh.m, Tompson et al.'s MATLAB, which it reproduces): per person, the head size is the diagonal of
the annotated head box times SC_BIAS = 0.6; a visible joint counts as found when its distance to the ground
truth, divided by the head size, is below the threshold (0.5); invisible joints count nowhere. Later copies of
the script score differently, and papers report them, so `rules` picks one (PCKH_RULES):

    "bearpaw"  evaluation/eval_PCKh.py: found when below the threshold (<); Mean: the plain mean over the 14
               joints other than pelvis and thorax; curve at np.arange(0, 0.5, 0.01) (50 thresholds, 0 to
               0.49). The script prints no Mean@0.1: here it is the curve's 0.1 row averaged as its Mean.
    "hrnet"    deep-high-resolution-net.pytorch lib/dataset/mpii.py MPIIDataset.evaluate: found when at most
               the threshold (<=); Mean weighted by each joint's number of visible people (pelvis and thorax
               left out); curve at np.arange(0, 0.51, 0.01) (51 thresholds); its "Mean@0.1" is the curve's
               row 11, i.e. the threshold 0.11.
    "mmpose"   mmpose 0.x TopDownMpiiDataset.evaluate (its "PCKh" and "PCKh@0.1"): HRNet's, with the curve
               stored as float32 and its "PCKh@0.1" read at row 10 (0.1; before v0.17 mmpose read row 11,
               as HRNet does).

Every rule prints the same seven parts (Head; Shoulder, Elbow, Wrist, Hip, Knee, Ankle: the mean of the left
and right joint). The upper neck counts in the mean but in no part.

Frame: the official scripts compare predictions with the ground truth of a .mat file (MPII's annotations,
MATLAB's 1-based pixel coordinates: the first pixel's centre is (1, 1)); this project's image pixels are
0-based (geometry.py). `pckh` takes both in the .mat's frame, so that its arithmetic is the scripts'; a
project-frame array goes there with `to_matlab_frame` (+ 1.0 in its own dtype, as HRNet's and mmpose's
evaluate convert their predictions).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from .keypoints import MPII_KEYPOINTS

__all__ = ["PCKH_PARTS", "NOT_IN_MEAN", "SC_BIAS", "PCKhRules", "PCKH_RULES", "PCKh", "pckh",
           "to_matlab_frame", "PCK_JOINTS", "pck"]

# The 16 joints are MPII's, in its order (keypoints.MPII_KEYPOINTS; the ground-truth .mat's dataset_joints
# abbreviate the same names: rank, rkne, ..., lwri).
# What the scripts print: a part's PCKh is its one joint's, or the mean of its left and right joint.
PCKH_PARTS = (("Head", ("head_top",)), ("Shoulder", ("l_shoulder", "r_shoulder")),
              ("Elbow", ("l_elbow", "r_elbow")), ("Wrist", ("l_wrist", "r_wrist")), ("Hip", ("l_hip", "r_hip")),
              ("Knee", ("l_knee", "r_knee")), ("Ankle", ("l_ankle", "r_ankle")))
NOT_IN_MEAN = ("pelvis", "thorax")
SC_BIAS = 0.6           # the head size is 0.6 x the head box's diagonal (MPII's util_get_head_size.m)
THRESHOLD = 0.5


@dataclass(frozen=True)
class PCKhRules:
    """How one implementation scores (see the module docstring). inclusive: an error equal to the threshold
    counts as found. weighted_mean: the mean weights each joint by its share of the visible joints (else a
    plain mean). curve_stop: the curve's thresholds are np.arange(0, curve_stop, 0.01). row_at_0_1: the curve
    row that Mean@0.1 reads. curve_dtype: the curve's stored precision."""

    name: str
    inclusive: bool
    weighted_mean: bool
    curve_stop: float
    row_at_0_1: int
    curve_dtype: type


PCKH_RULES = {
    "bearpaw": PCKhRules("bearpaw", inclusive=False, weighted_mean=False, curve_stop=0.5, row_at_0_1=10,
                         curve_dtype=np.float64),
    "hrnet": PCKhRules("hrnet", inclusive=True, weighted_mean=True, curve_stop=0.5 + 0.01, row_at_0_1=11,
                       curve_dtype=np.float64),
    "mmpose": PCKhRules("mmpose", inclusive=True, weighted_mean=True, curve_stop=0.5 + 0.01, row_at_0_1=10,
                        curve_dtype=np.float32),
}


class PCKh(NamedTuple):
    """PCKh in percent. per_joint (16,) float64 at 0.5, in MPII's joint order (NaN for a joint no person has
    visible). curve (T, 16) at each of thresholds (T,). counts (16,) int64: the visible joints.
    metrics: Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean, Mean@0.1 as floats, in that order."""

    per_joint: np.ndarray
    curve: np.ndarray
    thresholds: np.ndarray
    counts: np.ndarray
    metrics: dict[str, float]


def to_matlab_frame(xy: np.ndarray) -> np.ndarray:
    """(..., 2 or more) x, y in this project's image pixels -> (..., 2) x, y in MPII's 1-based frame: + 1.0 in
    the array's dtype (float32 stays float32), as HRNet's and mmpose's evaluate convert their predictions."""
    return np.asarray(xy)[..., :2] + 1.0


def _found(scaled_errors: np.ndarray, visible: np.ndarray, threshold: float, inclusive: bool) -> np.ndarray:
    within = scaled_errors <= threshold if inclusive else scaled_errors < threshold
    return within & visible


def pckh(preds: np.ndarray, joints: np.ndarray, visible: np.ndarray, head_boxes: np.ndarray,
         rules: str = "bearpaw") -> PCKh:
    """PCKh of N people's predictions, as PCKH_RULES[rules] computes it.

    preds (N, 16, 2) and joints (N, 16, 2): x, y in MPII's 1-based frame (`to_matlab_frame`), joints in MPII's
    order (keypoints.MPII_KEYPOINTS); give them in the dtypes the official script reads (predictions as saved:
    float32 for bearpaw's and HRNet's, the ground truth float64 as the .mat holds it) to get its results to the last bit.
    visible (N, 16): true (or 1) where the joint is annotated (1 - the .mat's jnt_missing). head_boxes (N, 2, 2):
    each person's head box corners (x1, y1), (x2, y2) (the .mat's headboxes_src, which is (2, 2, N)).
    """
    if rules not in PCKH_RULES:
        raise ValueError(f"unknown PCKh rules {rules!r}: expected one of {', '.join(PCKH_RULES)}")
    rule = PCKH_RULES[rules]
    preds, joints, head_boxes = np.asarray(preds), np.asarray(joints), np.asarray(head_boxes)
    visible = np.asarray(visible).astype(bool)
    n = len(preds)
    for name, array, shape in (("preds", preds, (n, 16, 2)), ("joints", joints, (n, 16, 2)),
                               ("visible", visible, (n, 16)), ("head_boxes", head_boxes, (n, 2, 2))):
        if array.shape != shape:
            raise ValueError(f"PCKh: {name} has shape {array.shape}, expected {shape} (N people, MPII's 16 joints)")
    errors = np.linalg.norm(preds - joints, axis=2)
    head_sizes = np.linalg.norm(head_boxes[:, 1] - head_boxes[:, 0], axis=1) * SC_BIAS
    counts = visible.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = errors / head_sizes[:, None]
        per_joint = 100. * _found(scaled, visible, THRESHOLD, rule.inclusive).sum(axis=0) / counts
        thresholds = np.arange(0, rule.curve_stop, 0.01)
        curve = np.stack([100. * _found(scaled, visible, t, rule.inclusive).sum(axis=0) / counts
                          for t in thresholds]).astype(rule.curve_dtype)

    index = {name: i for i, name in enumerate(MPII_KEYPOINTS.names)}
    metrics = {part: per_joint[index[names[0]]] if len(names) == 1
               else 0.5 * (per_joint[index[names[0]]] + per_joint[index[names[1]]]) for part, names in PCKH_PARTS}
    in_mean = np.ones(16, bool)
    in_mean[[index[name] for name in NOT_IN_MEAN]] = False
    # As the scripts' masked arrays: the left-out joints are zeros in a sum over all 16.
    if rule.weighted_mean:
        ratio = counts / np.float64(counts[in_mean].sum())
        metrics["Mean"] = np.where(in_mean, per_joint * ratio, 0.0).sum()
        metrics["Mean@0.1"] = np.where(in_mean, curve[rule.row_at_0_1] * ratio, 0.0).sum()
    else:
        metrics["Mean"] = np.where(in_mean, per_joint, 0.0).sum() / in_mean.sum()
        metrics["Mean@0.1"] = np.where(in_mean, curve[rule.row_at_0_1], 0.0).sum() / in_mean.sum()
    return PCKh(per_joint, curve, thresholds, counts, {name: float(value) for name, value in metrics.items()})


# The joints bearpaw's training code scores for MPII: example/main.py's idx = [1, 2, 3, 4, 5, 6, 11, 12, 15, 16]
# (1-based; accuracy() reads dists[idx - 1]): the ankles, knees, hips, wrists and elbows.
PCK_JOINTS = (0, 1, 2, 3, 4, 5, 10, 11, 14, 15)


def pck(pred_coords: np.ndarray, target_coords: np.ndarray, width: int,
        joints: Sequence[int] = PCK_JOINTS, threshold: float = 0.5) -> tuple[np.float32, np.ndarray]:
    """The accuracy bearpaw/pytorch-pose prints while training and validating (pose/utils/evaluation.accuracy):
    the share of joints whose predicted heatmap maximum lies within threshold x width / 10 heatmap pixels of
    the target heatmap's maximum, in float32 as its torch tensors hold it.

    pred_coords, target_coords (N, J, 2): the maxima of the network's and of the target heatmaps, in bearpaw's
    1-based heatmap pixels, (0, 0) where a map has no positive value (topdown.bearpaw_max_predictions). width:
    the heatmaps' width. joints: 0-based joint indices. A joint counts where its target lies at x > 1 and y > 1
    (so also not on the first row or column); a joint with no such target in the batch gets -1 and stays out of
    the mean. Returns (mean over the joints that have one, (len(joints),) per joint), float32. (The official
    accuracy() takes a threshold but always scores at 0.5.)
    """
    pred_coords = np.asarray(pred_coords, dtype=np.float32)
    target_coords = np.asarray(target_coords, dtype=np.float32)
    normalize = np.float32(width) / np.float32(10)
    counted = (target_coords[..., 0] > 1) & (target_coords[..., 1] > 1)
    # Integer heatmap pixels: the float32 distance is sqrt's correctly rounded value (torch.dist's).
    distances = np.sqrt(((pred_coords - target_coords).astype(np.float64) ** 2).sum(axis=-1)).astype(np.float32)
    distances = distances / normalize
    per_joint = np.full(len(joints), -1, dtype=np.float32)
    total, scored = np.float32(0), 0
    for i, joint in enumerate(joints):
        d = distances[counted[:, joint], joint]
        if len(d):
            per_joint[i] = 1.0 * (d < threshold).sum() / len(d)
            total = np.float32(total + per_joint[i])
            scored += 1
    mean = np.float32(total / np.float32(scored)) if scored else np.float32(0)
    return mean, per_joint
